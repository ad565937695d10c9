"""The in-memory replay store (tests, benchmarks, ``memory://``)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from .base import blob, replay_key
from .compact import CompactIndex, expiry_seconds, fingerprint

__all__ = ["MemoryReplayStore"]


class MemoryReplayStore:
    """Pairs in this process's memory: forgotten on exit, not shared. The index is the SQLite
    store's (:class:`~.compact.CompactIndex`: ~27 bytes a pair, invisible to the garbage
    collector)."""

    #: never waits: called inline on the event loop
    blocking = False

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._seen = CompactIndex()
        self._lock = threading.Lock()
        self._clock = clock

    def __len__(self) -> int:
        """Pairs held: live ones, and expired ones not yet reclaimed."""
        return len(self._seen)

    def add(self, client_id: str, jti: str, expires_at: float) -> bool:
        fp = fingerprint(blob(replay_key(client_id, jti)))
        until = expiry_seconds(expires_at)
        now = self._clock()
        with self._lock:
            return self._seen.add(fp, until, now)

    def close(self) -> None:
        with self._lock:
            self._seen = CompactIndex()

    def describe(self) -> str:
        return "memory (forgotten on exit)"
