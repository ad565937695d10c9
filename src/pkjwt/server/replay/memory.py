"""The in-memory replay store (tests, benchmarks, ``memory://``), and the expiring set that
the SQLite store keeps in front of its log."""

from __future__ import annotations

import heapq
import threading
import time
from collections.abc import Callable

from .base import replay_key

__all__ = ["ExpiringSet", "MemoryReplayStore"]


class ExpiringSet:
    """Keys with an expiry, in memory; expired keys leave one second's bucket at a time.

    A ``dict[str, float]`` plus per-second buckets rather than a heap of tuples: the dict of
    strings and floats is invisible to the cyclic garbage collector and each bucket is one
    list, so a few hundred thousand live entries add a few hundred objects for it to walk, not
    a million; purging is a bucket pop, not a heap walk.
    """

    __slots__ = ("_buckets", "_seconds", "_until")

    def __init__(self) -> None:
        self._until: dict[str, float] = {}
        self._buckets: dict[int, list[str]] = {}
        self._seconds: list[int] = []  # a min-heap of the buckets' seconds

    def __len__(self) -> int:
        return len(self._until)

    def __contains__(self, key: object) -> bool:
        return key in self._until

    def live(self, key: str, now: float) -> bool:
        until = self._until.get(key)
        return until is not None and until > now

    def put(self, key: str, expires_at: float) -> None:
        self._until[key] = expires_at
        second = int(expires_at)
        bucket = self._buckets.get(second)
        if bucket is None:
            bucket = self._buckets[second] = []
            heapq.heappush(self._seconds, second)
        bucket.append(key)

    def admits(self, key: str, now: float) -> bool:
        """True if ``key`` is not live (purging one expired bucket on the way)."""
        self.purge(now)
        return not self.live(key, now)

    def purge(self, now: float) -> None:
        """Drop the oldest bucket if all of it has expired (called once per insert)."""
        seconds = self._seconds
        if not seconds or seconds[0] + 1 > now:
            return
        until = self._until
        for key in self._buckets.pop(heapq.heappop(seconds)):
            # a key put again since (after it expired) lives on in a later bucket
            if until.get(key, now) <= now:
                until.pop(key, None)

    def clear(self) -> None:
        self._until.clear()
        self._buckets.clear()
        self._seconds.clear()


class MemoryReplayStore:
    """Pairs in this process's memory: forgotten on exit, not shared."""

    #: never waits: called inline on the event loop
    blocking = False

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._seen = ExpiringSet()
        self._lock = threading.Lock()
        self._clock = clock

    def __len__(self) -> int:
        return len(self._seen)

    def add(self, client_id: str, jti: str, expires_at: float) -> bool:
        key = replay_key(client_id, jti)
        now = self._clock()
        with self._lock:
            if not self._seen.admits(key, now):
                return False
            self._seen.put(key, expires_at)
            return True

    def close(self) -> None:
        self._seen.clear()

    def describe(self) -> str:
        return "memory (forgotten on exit)"
