"""Replay stores: remember (client_id, jti) until the assertion can no longer be used.

One operation matters: an atomic insert-if-absent with an expiry. SQLite is the default so a
restart does not reopen a replay window; memory is for tests and benchmarks; a Redis store
(shared by several servers) slots in behind the same protocol.
"""

from __future__ import annotations

import heapq
import logging
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


def replay_key(client_id: str, jti: str) -> str:
    """One string per (client_id, jti) pair, unambiguous whatever either holds."""
    # the length prefix keeps ("a:b", "c") and ("a", "b:c") apart; lone surrogates (legal in
    # JSON strings) become escapes so the key is valid UTF-8 text for SQLite
    key = f"{len(client_id)}:{client_id}{jti}"
    return key.encode("utf-8", "surrogatepass").decode("utf-8", "backslashreplace")


class ExpiringSet:
    """Keys with an expiry, in memory; expired keys leave one second's bucket at a time.

    A ``dict[str, float]`` plus per-second buckets rather than a heap of tuples: a dict of
    strings and floats is invisible to the cyclic garbage collector, so a few hundred thousand
    live entries cost no GC pauses, and purging is a bucket pop, not a heap walk.
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
            seen = self._seen
            seen.purge(now)
            if seen.live(key, now):
                return False
            seen.put(key, expires_at)
            return True

    def close(self) -> None:
        self._seen.clear()


#: rows deleted per purge statement; a full batch means more are due, so the next commit
#: purges again instead of waiting a second (a backlog drains without one long stall)
_PURGE_BATCH = 2000

log = logging.getLogger("pkjwt.server")


class SqliteReplayStore:
    """An in-memory index in front of an append-only SQLite log (WAL mode), written behind.

    Why a log: jtis are random, so a table keyed by jti puts every insert on a random B-tree
    page, and each commit then writes (and each checkpoint copies) one page per insert. The log
    is keyed by an increasing sequence number, so a batch of inserts fills the same few pages;
    the lookup happens in memory. Why behind: a request only records its pair in memory and in a
    pending list; every ``commit_interval`` seconds one ``executemany`` and one commit write the
    batch (measured under load: an insert per request cost as much as all the other rules).

    Atomicity across processes: the first insert of a batch opens a write transaction (SQLite's
    one writer lock) and reads every row other processes appended since it last looked; the
    lock is held until the batch is committed. A second server process on the same file
    therefore waits for the first one's commit, then sees its rows before it decides: replays
    are caught across processes. A restart reloads the unexpired rows. A graceful stop commits;
    a hard crash can forget the last ``commit_interval`` of jtis. ``commit_interval=0`` commits
    every insert before answering.
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
        self._seen = ExpiringSet()
        self._pending: list[tuple[str, float]] = []
        #: the highest sequence number read or written; rows above it are news
        self._last_seq = self._tx_seq = 0
        self._in_tx = False
        self._next_purge = 0.0
        try:
            self._db = sqlite3.connect(
                self.path, check_same_thread=False, isolation_level=None, timeout=10
            )
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute("BEGIN IMMEDIATE")
            self._create_schema()
            self._read_log(self._clock())
            self._db.execute("COMMIT")
        except sqlite3.Error as exc:
            raise ConfigError(f"replay store {self.path}: {exc}") from None
        self._closed = threading.Event()
        if commit_interval > 0:
            threading.Thread(target=self._flusher, name="pkjwt-replay-flush", daemon=True).start()

    def __len__(self) -> int:
        return len(self._seen)

    def _create_schema(self) -> None:
        db = self._db
        # AUTOINCREMENT: a sequence number is never reused after its row is purged, so
        # "rows above the last one I saw" stays a correct question for every process
        db.execute(
            "CREATE TABLE IF NOT EXISTS jti_log (seq INTEGER PRIMARY KEY AUTOINCREMENT,"
            " key TEXT NOT NULL, expires_at REAL NOT NULL)"
        )
        db.execute("CREATE INDEX IF NOT EXISTS jti_log_expiry ON jti_log (expires_at)")
        # the first layout (one row per pair, keyed by it): carry its live rows over
        old = db.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name='seen_jti'")
        if old.fetchone():
            rows = db.execute(
                "SELECT client_id, jti, expires_at FROM seen_jti WHERE expires_at > ?",
                (self._clock(),),
            ).fetchall()
            db.executemany(
                "INSERT INTO jti_log (key, expires_at) VALUES (?, ?)",
                ((replay_key(c, j), e) for c, j, e in rows),
            )
            db.execute("DROP TABLE seen_jti")

    def _read_log(self, now: float) -> None:
        """Take in the rows appended since we last looked (by other processes, or at start)."""
        rows = self._db.execute(
            "SELECT seq, key, expires_at FROM jti_log WHERE seq > ? ORDER BY seq",
            (self._last_seq,),
        )
        seen = self._seen
        for seq, key, expires_at in rows:
            if expires_at > now and not seen.live(key, now):
                seen.put(key, expires_at)
            self._last_seq = seq

    def _flusher(self) -> None:
        while not self._closed.wait(self.commit_interval):
            with self._lock:
                if not self._closed.is_set():
                    self._flush()

    def _flush(self) -> None:
        """Commit the open batch, or retry one whose commit failed."""
        if not self._in_tx:
            if not self._pending:
                return
            try:
                self._begin(self._clock())
            except sqlite3.Error as exc:
                log.warning("replay store %s: %s (will retry)", self.path, exc)
                return
        self._commit()

    def _begin(self, now: float) -> None:
        """Take the writer lock and catch up with other processes (raises if that fails)."""
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        self._in_tx = True
        self._tx_seq = self._last_seq
        try:
            self._read_log(now)
        except sqlite3.Error:
            self._rollback()
            raise

    def _rollback(self) -> None:
        # the sequence numbers of a rolled-back batch go to whoever writes next: look again
        self._last_seq = self._tx_seq
        self._in_tx = False
        if self._db.in_transaction:
            self._db.execute("ROLLBACK")

    def _commit(self) -> None:
        """Write the pending batch and release the writer lock. A failure keeps the batch for
        the next attempt (the pairs stay refused in memory meanwhile) and is logged."""
        db = self._db
        pending = self._pending
        try:
            now = self._clock()
            if now >= self._next_purge:
                deleted = db.execute(
                    "DELETE FROM jti_log WHERE seq IN (SELECT seq FROM jti_log "
                    "WHERE expires_at <= ? ORDER BY expires_at LIMIT ?)",
                    (now, _PURGE_BATCH),
                ).rowcount
                self._next_purge = now if deleted >= _PURGE_BATCH else now + 1
            if pending:
                db.executemany("INSERT INTO jti_log (key, expires_at) VALUES (?, ?)", pending)
                (last,) = db.execute("SELECT last_insert_rowid()").fetchone()
            db.execute("COMMIT")
        except sqlite3.Error as exc:
            self._rollback()
            now = self._clock()
            self._pending = [row for row in pending if row[1] > now]
            log.warning(
                "replay store %s: could not record %d jti(s), will retry: %s",
                self.path,
                len(self._pending),
                exc,
            )
            return
        if pending:
            self._last_seq = last
            pending.clear()
        self._in_tx = False

    def add(self, client_id: str, jti: str, expires_at: float) -> bool:
        key = replay_key(client_id, jti)
        now = self._clock()
        with self._lock:
            if not self._in_tx:
                self._begin(now)
            seen = self._seen
            seen.purge(now)
            fresh = not seen.live(key, now)
            if fresh:
                seen.put(key, expires_at)
                self._pending.append((key, expires_at))
            if self.commit_interval <= 0:
                self._commit()  # no flusher: never keep the writer lock past this call
            return fresh

    def close(self) -> None:
        with self._lock:
            self._closed.set()
            self._flush()
            self._db.close()


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
