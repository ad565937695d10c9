"""Replay stores: remember (client_id, jti) until the assertion can no longer be used.

One operation matters: an atomic insert-if-absent with an expiry. SQLite is the default so a
restart does not reopen a replay window; memory is for tests and benchmarks; a Redis store
(shared by several servers) slots in behind the same protocol.
"""

from __future__ import annotations

import heapq
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from ..errors import ConfigError

__all__ = ["MemoryReplayStore", "ReplayStore", "SqliteReplayStore", "open_replay_store"]


class ReplayStore(Protocol):
    def add(self, client_id: str, jti: str, expires_at: float) -> bool:
        """Record the pair; True if it was new, False if it was seen and has not expired."""
        ...

    def close(self) -> None: ...


class MemoryReplayStore:
    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._seen: dict[tuple[str, str], float] = {}
        #: a min-heap of (expires_at, key): expired entries leave a few at a time, never in
        #: one long pass that would stall the event loop
        self._expiry: list[tuple[float, tuple[str, str]]] = []
        self._lock = threading.Lock()
        self._clock = clock

    def add(self, client_id: str, jti: str, expires_at: float) -> bool:
        key = (client_id, jti)
        now = self._clock()
        with self._lock:
            heap = self._expiry
            for _ in range(8):
                if not heap or heap[0][0] > now:
                    break
                expired_at, old = heapq.heappop(heap)
                if self._seen.get(old) == expired_at:
                    del self._seen[old]
            seen_until = self._seen.get(key)
            if seen_until is not None and seen_until > now:
                return False
            self._seen[key] = expires_at
            heapq.heappush(heap, (expires_at, key))
            return True

    def close(self) -> None:
        self._seen.clear()


class SqliteReplayStore:
    """WAL-mode SQLite; ``INSERT OR IGNORE`` on a primary key is the atomic insert-if-absent."""

    def __init__(self, path: str | Path, clock: Callable[[], float] = time.time) -> None:
        self.path = str(path)
        self._clock = clock
        self._lock = threading.Lock()
        try:
            self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS seen_jti (client_id TEXT NOT NULL, jti TEXT NOT NULL,"
                " expires_at REAL NOT NULL, PRIMARY KEY (client_id, jti)) WITHOUT ROWID"
            )
            self._db.execute("CREATE INDEX IF NOT EXISTS seen_jti_expiry ON seen_jti (expires_at)")
        except sqlite3.Error as exc:
            raise ConfigError(f"replay store {self.path}: {exc}") from None
        self._next_purge = 0.0

    def add(self, client_id: str, jti: str, expires_at: float) -> bool:
        now = self._clock()
        with self._lock:
            if now >= self._next_purge:
                # bounded batches through the expiry index: no long stall on a big table
                self._db.execute(
                    "DELETE FROM seen_jti WHERE (client_id, jti) IN (SELECT client_id, jti "
                    "FROM seen_jti WHERE expires_at <= ? ORDER BY expires_at LIMIT 500)",
                    (now,),
                )
                self._next_purge = now + 1
            cur = self._db.execute(
                "INSERT INTO seen_jti (client_id, jti, expires_at) VALUES (?, ?, ?) "
                "ON CONFLICT (client_id, jti) DO UPDATE SET expires_at = excluded.expires_at "
                "WHERE seen_jti.expires_at <= ?",
                (_text(client_id), _text(jti), expires_at, now),
            )
            return cur.rowcount == 1

    def close(self) -> None:
        with self._lock:
            self._db.close()


def _text(value: str) -> str:
    # a JSON string may hold lone surrogates, which SQLite cannot store as UTF-8 text
    return value.encode("utf-8", "surrogatepass").decode("utf-8", "backslashreplace")


def open_replay_store(url: str, *, default_dir: Path | None = None) -> ReplayStore:
    """``memory://`` or ``sqlite:///PATH`` (``sqlite:///`` alone: a file in ``default_dir``)."""
    if url.startswith("memory://"):
        return MemoryReplayStore()
    if url.startswith("sqlite://"):
        path = url[len("sqlite://") :]
        if path in ("", "/"):
            base = default_dir or Path.cwd()
            base.mkdir(parents=True, exist_ok=True)
            return SqliteReplayStore(base / "pkjwt-replay.sqlite3")
        return SqliteReplayStore(path[1:] if path.startswith("//") else path)
    raise ConfigError(f"unsupported replay store {url!r}", hint="use memory:// or sqlite:///PATH")
