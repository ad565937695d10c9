"""Clients' ``jwks_file`` keys, re-read when the file changes: a key rotation rehearsed
locally needs no restart.

A rotation publishes a JWKS holding the old and the new key, switches the client to the new
key, then drops the old one. With keys read once at start, every step needs a restart, and a
restart is exactly what a rehearsal should not need. So each file is looked at (``stat``: a
few microseconds, no read) at most once per ``interval`` seconds when a request needs its
keys, and read again only when its identity, size or modification time changed; ``SIGHUP``
(:meth:`JwksFiles.reload_all`) re-reads them all at once. A file that became unreadable or
invalid keeps the keys read last, and says so once in the log: a half-written file during an
edit must not lock every client out.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..errors import KeyLoadError
from ..keys import KeySet, load_jwks

__all__ = ["JwksFiles"]

log = logging.getLogger("pkjwt.server")


@dataclass(slots=True)
class _Watched:
    keys: KeySet
    #: (device, inode, size, mtime in ns): a replace by rename changes the inode
    identity: tuple[int, int, int, int] | None
    checked_at: float
    #: the identity whose read failed, so the failure is said once, not per request
    failed: tuple[int, int, int, int] | None = None


class JwksFiles:
    """The current keys of each ``jwks_file``; ``keys`` checks the file at most once per
    ``interval`` seconds (on the monotonic ``clock``)."""

    def __init__(self, *, interval: float = 1.0, clock: Callable[[], float] = time.monotonic):
        self.interval = interval
        self._clock = clock
        self._files: dict[Path, _Watched] = {}

    def watch(self, path: Path, keys: KeySet) -> None:
        """Start from the keys the config read at start."""
        self._files[path] = _Watched(keys, _identity(path), self._clock())

    def keys(self, path: Path, first: KeySet) -> KeySet:
        """The file's keys now; ``first``: those the config read at start."""
        watched = self._files.get(path)
        if watched is None:
            self.watch(path, first)
            return first
        now = self._clock()
        if now - watched.checked_at >= self.interval:
            watched.checked_at = now
            self._refresh(path, watched)
        return watched.keys

    def reload_all(self) -> int:
        """Re-read every file now (SIGHUP); the number that changed."""
        changed = 0
        for path, watched in self._files.items():
            before = watched.keys
            watched.checked_at = self._clock()
            self._refresh(path, watched, force=True)
            changed += watched.keys is not before
        log.warning("SIGHUP: re-read %d jwks_file(s), %d changed", len(self._files), changed)
        return changed

    def _refresh(self, path: Path, watched: _Watched, *, force: bool = False) -> None:
        identity = _identity(path)
        if identity is None:
            if watched.failed != (0, 0, 0, 0):
                watched.failed = (0, 0, 0, 0)
                log.warning("jwks_file %s is gone; keeping the keys read last", path)
            return
        if not force and (identity == watched.identity or identity == watched.failed):
            return
        try:
            keys = load_jwks(path)
        except KeyLoadError as exc:
            if identity != watched.failed:
                watched.failed = identity
                log.warning(
                    "jwks_file %s unusable (%s); keeping the keys read last", path, exc.message
                )
            return
        if force and identity == watched.identity:
            return  # unchanged: keep the same KeySet object (and what it has cached)
        watched.keys, watched.identity, watched.failed = keys, identity, None
        log.warning("jwks_file %s changed: %s", path, ", ".join(keys.kids) or "no keys")


def _identity(path: Path) -> tuple[int, int, int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
