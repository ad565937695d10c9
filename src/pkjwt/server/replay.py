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
from urllib.parse import parse_qsl

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
    """WAL-mode SQLite; an upsert on the primary key is the atomic insert-if-absent.

    Writes are group-committed: one write transaction stays open for at most
    ``commit_interval`` seconds (a flusher thread commits it when requests stop), so a token
    request costs an in-transaction insert rather than a commit. SQLite allows one writer, so
    another process sharing the file waits for that commit and then sees the row: replays
    are still caught across processes. A graceful stop commits; a hard crash can forget the
    last ``commit_interval`` of jtis. ``commit_interval=0`` commits every insert.
    """

    def __init__(
        self,
        path: str | Path,
        clock: Callable[[], float] = time.time,
        *,
        commit_interval: float = 0.05,
    ) -> None:
        self.path = str(path)
        self._clock = clock
        self._lock = threading.Lock()
        self.commit_interval = commit_interval
        try:
            self._db = sqlite3.connect(
                self.path, check_same_thread=False, isolation_level=None, timeout=10
            )
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            # random jtis touch random B-tree pages: a 64 MB page cache keeps them in memory.
            # (Rarer checkpoints were faster still but made p99 latency worse: measured.)
            self._db.execute("PRAGMA cache_size=-65536")
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS seen_jti (client_id TEXT NOT NULL, jti TEXT NOT NULL,"
                " expires_at REAL NOT NULL, PRIMARY KEY (client_id, jti)) WITHOUT ROWID"
            )
            self._db.execute("CREATE INDEX IF NOT EXISTS seen_jti_expiry ON seen_jti (expires_at)")
        except sqlite3.Error as exc:
            raise ConfigError(f"replay store {self.path}: {exc}") from None
        self._next_purge = 0.0
        self._tx_since: float | None = None
        self._closed = threading.Event()
        if commit_interval > 0:
            threading.Thread(target=self._flusher, name="pkjwt-replay-flush", daemon=True).start()

    def _flusher(self) -> None:
        while not self._closed.wait(self.commit_interval):
            with self._lock:
                if self._tx_since is not None and not self._closed.is_set():
                    self._commit()

    def _commit(self) -> None:
        self._db.execute("COMMIT")
        self._tx_since = None

    def add(self, client_id: str, jti: str, expires_at: float) -> bool:
        now = self._clock()
        with self._lock:
            if self._tx_since is None:
                self._db.execute("BEGIN IMMEDIATE")
                self._tx_since = time.monotonic()
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
            fresh = cur.rowcount == 1
            if time.monotonic() - self._tx_since >= self.commit_interval:
                self._commit()
            return fresh

    def close(self) -> None:
        with self._lock:
            self._closed.set()
            if self._tx_since is not None:
                self._commit()
            self._db.close()


def _text(value: str) -> str:
    # a JSON string may hold lone surrogates, which SQLite cannot store as UTF-8 text
    return value.encode("utf-8", "surrogatepass").decode("utf-8", "backslashreplace")


def open_replay_store(url: str, *, default_dir: Path | None = None) -> ReplayStore:
    """``memory://`` or ``sqlite:///PATH`` (``sqlite:///`` alone: a file in ``default_dir``)."""
    if url.startswith("memory://"):
        return MemoryReplayStore()
    if url.startswith("sqlite://"):
        path, _, query = url[len("sqlite://") :].partition("?")
        options = dict(parse_qsl(query))
        try:
            interval = float(options.get("commit_interval", 0.05))
        except ValueError:
            raise ConfigError("replay_store: commit_interval must be seconds") from None
        if path in ("", "/"):
            base = default_dir or Path.cwd()
            base.mkdir(parents=True, exist_ok=True)
            return SqliteReplayStore(base / "pkjwt-replay.sqlite3", commit_interval=interval)
        # sqlite:///relative.db and sqlite:////absolute/path.db, as SQLAlchemy spells them
        return SqliteReplayStore(
            path[1:] if path.startswith("/") else path, commit_interval=interval
        )
    raise ConfigError(f"unsupported replay store {url!r}", hint="use memory:// or sqlite:///PATH")
