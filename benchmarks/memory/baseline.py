"""What the compact index replaced, as it was (pkjwt before issue 10 item 15): the baseline.

``ExpiringSet`` is the replay stores' index verbatim; :func:`old_add` is what a store did with
it per request; :class:`OldTokenTable` is the token issuer's memory of live tokens (a ``dict``
of hex SHA-256 digests to a tuple, and an expiry deque purged 8 entries per issue);
:func:`old_reload` is the SQLite store's reload (every unexpired row, decoded, into the set).
"""

from __future__ import annotations

import hashlib
import heapq
import sqlite3
import threading
from collections import deque
from typing import NamedTuple

from pkjwt.server.replay.base import replay_key

__all__ = ["ExpiringSet", "OldTokenTable", "old_add", "old_reload"]


class ExpiringSet:
    """Keys with an expiry, in memory; expired keys leave one second's bucket at a time."""

    __slots__ = ("_buckets", "_seconds", "_until")

    def __init__(self) -> None:
        self._until: dict[str, float] = {}
        self._buckets: dict[int, list[str]] = {}
        self._seconds: list[int] = []  # a min-heap of the buckets' seconds

    def __len__(self) -> int:
        return len(self._until)

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
            if until.get(key, now) <= now:
                until.pop(key, None)


def old_add(
    seen: ExpiringSet, lock: threading.Lock, client_id: str, jti: str, expires_at: float, now: float
) -> bool:
    """One request, as the memory store (and the SQLite store, writing behind) did it."""
    key = replay_key(client_id, jti)
    with lock:
        if not seen.admits(key, now):
            return False
        seen.put(key, expires_at)
        return True


def old_reload(path: str, now: float) -> ExpiringSet:
    """The SQLite store's start: every unexpired row of the log into the set."""
    seen = ExpiringSet()
    with sqlite3.connect(path) as db:
        rows = db.execute("SELECT seq, key, expires_at FROM jti_log WHERE seq > 0 ORDER BY seq")
        for _seq, raw, expires_at in rows:
            key = raw if isinstance(raw, str) else bytes(raw).decode("utf-8", "surrogatepass")
            if expires_at > now and not seen.live(key, now):
                seen.put(key, expires_at)
    return seen


class OldIssuedToken(NamedTuple):
    client_id: str
    scope: str | None
    audience: str | tuple[str, ...] | None
    issued_at: int
    expires_at: int
    jti: str


class OldTokenTable:
    """The issuer's ``_remember`` and its structures, as they were."""

    def __init__(self) -> None:
        self._tokens: dict[str, OldIssuedToken] = {}
        self._revoked: set[str] = set()
        self._expiry: deque[tuple[int, str]] = deque()

    def remember(self, token: str, record: OldIssuedToken, now: float) -> None:
        expiry = self._expiry
        for _ in range(8):
            if not expiry or expiry[0][0] > now:
                break
            _, old = expiry.popleft()
            self._tokens.pop(old, None)
            self._revoked.discard(old)
        digest = hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()
        self._tokens[digest] = record
        expiry.append((record.expires_at, digest))

    def __len__(self) -> int:
        return len(self._tokens)
