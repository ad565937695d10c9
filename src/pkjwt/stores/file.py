"""A file store for the CLI: one JSON file per cache key in the user's cache directory.

Files are created 0600 in a 0700 directory and replaced atomically; a per-key file lock makes
concurrent ``pkjwt token`` processes share one token instead of each fetching their own.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Hashable
from contextlib import AbstractContextManager
from pathlib import Path

from filelock import FileLock

from .._private import private_dir
from ..tokens import Token


def default_cache_dir() -> Path:
    import platformdirs

    return Path(os.environ.get("PKJWT_CACHE_DIR") or platformdirs.user_cache_dir("pkjwt"))


class FileStore:
    """Tokens as 0600 JSON files named by a SHA-256 digest of the cache key (never the key
    itself, which names the client), under ``directory`` (default: the user cache dir, or
    ``$PKJWT_CACHE_DIR``).

    Writes go to a temporary file renamed over the old one (atomic on POSIX), so a reader never
    sees half a token; a corrupt file reads as a miss. ``lock`` is a ``filelock`` per key,
    waited on for at most ``lock_timeout`` seconds: concurrent ``pkjwt token`` runs make one
    request between them.
    """

    def __init__(
        self, directory: str | os.PathLike[str] | None = None, *, lock_timeout: float = 30.0
    ) -> None:
        self.directory = Path(directory) if directory is not None else default_cache_dir()
        self.lock_timeout = float(lock_timeout)

    def _ensure_dir(self) -> None:
        private_dir(self.directory)  # 0700, and refused if another user owns or can write it

    def _path(self, key: tuple[Hashable, ...], kind: str = "token") -> Path:
        digest = hashlib.sha256(json.dumps([str(k) for k in key]).encode()).hexdigest()[:32]
        return self.directory / f"{kind}-{digest}.json"

    def get(self, key: tuple[Hashable, ...]) -> Token | None:
        """The token stored under ``key``, or None (a missing or unreadable file is a miss)."""
        path = self._path(key)
        try:
            data = json.loads(path.read_text("utf-8"))
            return Token.from_json(data)
        except FileNotFoundError:
            return None
        except (ValueError, KeyError, TypeError, OSError):
            # a corrupt cache file is not an error: it is replaced by the next fetch
            return None

    def set(self, key: tuple[Hashable, ...], token: Token) -> None:
        """Write ``token`` under ``key`` (a 0600 file, replaced atomically)."""
        self._write(self._path(key), token.to_json())

    def _write(self, path: Path, value: object) -> None:
        """``value`` as JSON at ``path``, 0600, replacing the old file in one rename."""
        self._ensure_dir()
        fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=".tmp-", suffix=".tmp")
        try:
            os.fchmod(fd, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(value, fh)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def get_note(self, name: str) -> str | None:
        """A small fact kept beside the tokens (which assertion profile a server took)."""
        try:
            value = json.loads(self._path((name,), "note").read_text("utf-8"))
        except (OSError, ValueError):
            return None
        return value if isinstance(value, str) else None

    def set_note(self, name: str, value: str) -> None:
        """Keep a small fact beside the tokens (which assertion profile a server took)."""
        self._write(self._path((name,), "note"), value)

    def delete(self, key: tuple[Hashable, ...]) -> None:
        """Remove the token file for ``key``."""
        self._path(key).unlink(missing_ok=True)

    def lock(self, key: tuple[Hashable, ...]) -> AbstractContextManager[object]:
        """A file lock per key: one process at a time fetches that token."""
        self._ensure_dir()
        path = self._path(key).with_suffix(".lock")
        # not thread-local: async callers take and release it from worker threads
        return FileLock(str(path), timeout=self.lock_timeout, mode=0o600, thread_local=False)

    def clear(self) -> int:
        """Remove every cached token; returns how many."""
        count = 0
        if self.directory.is_dir():
            for path in self.directory.glob("token-*.json"):
                path.unlink(missing_ok=True)
                count += 1
        return count

    def __repr__(self) -> str:
        return f"<FileStore {self.directory}>"
