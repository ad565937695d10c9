"""The SQLite replay store (the default): an in-memory index in front of an append-only log,
and a snapshot of the index next to it."""

from __future__ import annotations

import contextlib
import logging
import math
import os
import secrets
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

from ..._private import private_file
from ...errors import ConfigError, ReplayStoreUnavailable
from .base import ReplayStoreInUse, blob, replay_key
from .compact import CompactIndex, expiry_seconds, fingerprint
from .snapshot import Snapshots

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

__all__ = ["SqliteReplayStore"]

#: rows deleted per purge statement; a full batch means more are due, so the next write
#: purges again instead of waiting a second (a backlog drains without one long stall)
_PURGE_BATCH = 2000
#: seconds a write waits for SQLite's writer lock before it fails
_BUSY_TIMEOUT = 10.0
#: log rows past the snapshot before a new one is written. A restart reads the tail at ~7 us a
#: row and the snapshot at ~70 ns an entry (measured: 26 M in 1.7 s), so 100,000 rows add
#: under a second; writing 26 M entries takes ~4 s, so not much more often than that
SNAPSHOT_ROWS = 100_000

log = logging.getLogger("pkjwt.server")


class SqliteReplayStore:
    """An in-memory index in front of an append-only SQLite log (WAL mode).

    Why a log: jtis are random, so a table keyed by jti puts every insert on a random B-tree
    page, and each commit then writes (and each checkpoint copies) one page per insert. The log
    is keyed by an increasing sequence number, so inserts fill the same few pages; lookups
    happen in memory. A restart reloads every unexpired row.

    Two modes, chosen by ``commit_interval``:

    * ``> 0`` (default 0.05 s), write-behind: a request only records its pair in memory and in
      a pending list; a flusher thread writes the batch with one ``executemany`` and one commit
      every ``commit_interval`` seconds (measured under load: an insert per request cost as much
      as all the other rules). The process must be the file's only user, and an exclusive lock
      on ``PATH.lock`` makes sure of it. A process crash forgets the jtis accepted since the
      last completed commit: the last interval, plus the batch in flight when it dies mid-commit
      (``python -m benchmarks.crash_window`` measures the window: it is the interval plus one
      commit's duration, not the interval alone).
    * ``0``, shared: every new pair is written and committed before the answer, inside SQLite's
      writer lock, after reading the rows other processes appended: any number of processes
      may share the file (each holds a shared lock on ``PATH.lock``), and a replay sent to
      two of them is refused by one. A write that fails raises :class:`ReplayStoreUnavailable`
      (the server answers 503) and accepts nothing.

    Mixing the modes on one file is refused at start: a write-behind process would not see the
    others' jtis in time, nor they its. (``PATH.lock`` uses ``flock``; where it is missing, as on
    Windows, nothing enforces this.)

    The index (:mod:`.compact`: 20 bytes an entry, not a ``dict``) is also saved to
    ``PATH.index`` (:mod:`.snapshot`) once ``snapshot_rows`` rows have been logged since the last
    save, and at close: a restart loads it and reads only the log rows after it (26 M jtis in
    seconds, not minutes). A snapshot that is missing or damaged only makes a restart slower.
    """

    def __init__(
        self,
        path: str | Path,
        clock: Callable[[], float] = time.time,
        *,
        commit_interval: float = 0.05,
        snapshot_rows: int = SNAPSHOT_ROWS,
    ) -> None:
        if not (math.isfinite(commit_interval) and 0 <= commit_interval <= 60):
            raise ConfigError(
                f"replay store {path}: commit_interval must be 0-60 seconds, "
                f"got {commit_interval!r}"
            )
        self.path = str(path)
        self._clock = clock
        self._lock = threading.Lock()
        self.commit_interval = commit_interval
        self.write_behind = commit_interval > 0
        #: shared mode waits for SQLite's writer lock: called off the event loop then
        self.blocking = not self.write_behind
        self._seen = CompactIndex()
        self._pending: list[tuple[str, float]] = []
        #: the highest sequence number read or written; rows above it are news
        self._last_seq = 0
        self._next_purge = 0.0
        self._failing = False
        #: the connection's lock in write-behind mode (the flusher's, and close's); requests
        #: there take only ``_lock``, which guards the memory index and the pending list
        self._io_lock = threading.Lock()
        self._db_closed = False
        self._closing = False
        self._file_lock = _lock_file(self.path + ".lock", exclusive=self.write_behind)
        self._snapshots = Snapshots(
            self.path + ".index", self._lock, rows=snapshot_rows, exclusive=self.write_behind
        )
        try:
            private_file(Path(self.path))  # 0600 before SQLite makes it (and its -wal, -shm)
            self._db = sqlite3.connect(
                self.path, check_same_thread=False, isolation_level=None, timeout=_BUSY_TIMEOUT
            )
        except (sqlite3.Error, ConfigError) as exc:
            self._file_lock.close()
            raise ConfigError(f"replay store {self.path}: {exc}") from None
        try:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            with self._transaction():
                self._load()
        except sqlite3.Error as exc:
            self._db.close()
            self._file_lock.close()
            raise ConfigError(f"replay store {self.path}: {exc}") from None
        self._closed = threading.Event()
        if self.write_behind:
            threading.Thread(target=self._flusher, name="pkjwt-replay-flush", daemon=True).start()
        self._snapshots.start(self._seen, self._covered)

    def __len__(self) -> int:
        return len(self._seen)

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """SQLite's writer lock for one write; rolled back (and re-raised) on any failure."""
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        last_seq = self._last_seq
        try:
            yield db
            db.execute("COMMIT")
        except BaseException:
            # the sequence numbers of a rolled-back write go to whoever writes next: look again
            self._last_seq = last_seq
            with contextlib.suppress(sqlite3.Error):
                db.execute("ROLLBACK")
            raise

    def _load(self) -> None:
        """The index at start: the snapshot if there is a good one, then the log after it."""
        db, now = self._db, self._clock()
        db_id = _create_schema(db, now)
        row = db.execute("SELECT seq FROM sqlite_sequence WHERE name = 'jti_log'").fetchone()
        saved = self._snapshots.load(db_id=db_id, max_seq=row[0] if row else 0)
        if saved is not None:
            self._seen, self._last_seq = saved.saved, saved.last_seq
        else:  # the whole log: the index sized for it first (each entry placed once)
            (live,) = db.execute(
                "SELECT count(*) FROM jti_log WHERE expires_at > ?", (now,)
            ).fetchone()
            self._seen.reserve(live)
        self._read_log(now)

    def _covered(self) -> int:
        """The sequence number up to which every log row is in the index (for a snapshot):
        in write-behind mode, read between two flushes; in shared mode, between two adds."""
        with self._io_lock if self.write_behind else self._lock:
            return self._last_seq

    def _read_log(self, now: float) -> None:
        """Take in the rows appended since we last looked (by other processes, or at start)."""
        rows = self._db.execute(
            "SELECT seq, key, expires_at FROM jti_log WHERE seq > ? ORDER BY seq",
            (self._last_seq,),
        )
        add, seq, count = self._seen.add, self._last_seq, 0
        for seq, raw, expires_at in rows:  # noqa: B007 - the last one is kept
            count += 1
            if expires_at > now:
                key = raw if isinstance(raw, bytes) else blob(raw)  # the first layout's text
                add(fingerprint(key), expiry_seconds(expires_at), now)
        self._last_seq = seq
        self._snapshots.grew(count)

    def _purge(self, now: float) -> None:
        if now < self._next_purge:
            return
        deleted = self._db.execute(
            "DELETE FROM jti_log WHERE seq IN (SELECT seq FROM jti_log "
            "WHERE expires_at <= ? ORDER BY expires_at LIMIT ?)",
            (now, _PURGE_BATCH),
        ).rowcount
        self._next_purge = now if deleted >= _PURGE_BATCH else now + 1

    def add(self, client_id: str, jti: str, expires_at: float) -> bool:
        key = replay_key(client_id, jti)
        fp, until = fingerprint(blob(key)), expiry_seconds(expires_at)
        now = self._clock()
        with self._lock:
            if self._closing:  # nothing after close() would ever be written
                raise ReplayStoreUnavailable(f"replay store {self.path} is closed")
            seen = self._seen
            if self.write_behind:
                if not seen.add(fp, until, now):
                    return False
                self._pending.append((key, expires_at))
                return True
            if seen.live(fp, now):
                return False
            try:
                with self._transaction() as db:
                    self._read_log(now)
                    if seen.live(fp, now):  # another process took it first
                        return False
                    self._purge(now)
                    cur = db.execute(
                        "INSERT INTO jti_log (key, expires_at) VALUES (?, ?)",
                        (blob(key), expires_at),
                    )
            except sqlite3.Error as exc:
                raise ReplayStoreUnavailable(f"replay store {self.path}: {exc}") from None
            assert cur.lastrowid is not None
            self._last_seq = cur.lastrowid
            self._snapshots.grew(1)
            seen.add(fp, until, now)
            return True

    # -- write-behind --------------------------------------------------------------------------
    def _flusher(self) -> None:
        while not self._closed.wait(self.commit_interval):
            try:
                self._flush()
            except Exception:  # the thread must outlive any surprise; the next turn retries
                log.exception("replay store %s: flush failed", self.path)

    def _flush(self) -> None:
        """Write the pending batch. Requests wait only for the swap of the list, never for the
        disk (a commit can checkpoint and fsync for milliseconds: measured as dips under
        load). A failure puts the batch back (its pairs stay refused in memory, though a
        restart now would forget them) and is logged once, as is the recovery."""
        with self._io_lock:
            if self._db_closed:
                return
            with self._lock:
                batch, self._pending = self._pending, []
            now = self._clock()
            if not batch and now < self._next_purge:
                return
            try:
                with self._transaction() as db:
                    self._purge(now)
                    if batch:
                        db.executemany(
                            "INSERT INTO jti_log (key, expires_at) VALUES (?, ?)",
                            [(blob(key), until) for key, until in batch],
                        )
                        (self._last_seq,) = db.execute(
                            "SELECT seq FROM sqlite_sequence WHERE name = 'jti_log'"
                        ).fetchone()
            except sqlite3.Error as exc:
                with self._lock:
                    self._pending[:0] = [row for row in batch if row[1] > now]
                    kept = len(self._pending)
                if not self._failing:
                    self._failing = True
                    log.warning(
                        "replay store %s: cannot write (%s); %d jti(s) kept in memory, "
                        "retrying every %g s; a restart now would forget them",
                        self.path,
                        exc,
                        kept,
                        self.commit_interval,
                    )
                return
            self._snapshots.grew(len(batch))
            if self._failing:
                self._failing = False
                log.warning("replay store %s: writing again", self.path)

    def close(self) -> None:
        with self._lock:
            if self._closing:
                return
            self._closing = True  # from here add() refuses: the last flush below gets it all
        self._closed.set()
        if self.write_behind:
            self._flush()
            if self._pending:
                log.error(
                    "replay store %s: closing with %d jti(s) not written; a restart will not "
                    "know them",
                    self.path,
                    len(self._pending),
                )
        # (jtis that could not be written are in the index, so in the snapshot too)
        self._snapshots.close()
        with self._io_lock, self._lock:
            if not self._db_closed:
                self._db_closed = True
                self._db.close()
                self._file_lock.close()

    def snapshot(self) -> bool:
        """Save the index to ``PATH.index`` now (the snapshot thread does so by itself)."""
        return self._snapshots.write()

    def describe(self) -> str:
        mode = (
            f"written every {self.commit_interval * 1000:g} ms, this process only"
            if self.write_behind
            else "committed before each answer, shareable"
        )
        return f"sqlite {self.path} ({mode})"


def _create_schema(db: sqlite3.Connection, now: float) -> bytes:
    """The log's tables (made, or carried over from the first layout); the database's id."""
    # AUTOINCREMENT: a sequence number is never reused after its row is purged, so
    # "rows above the last one I saw" stays a correct question for every process
    db.execute(
        "CREATE TABLE IF NOT EXISTS jti_log (seq INTEGER PRIMARY KEY AUTOINCREMENT,"
        " key BLOB NOT NULL, expires_at REAL NOT NULL)"
    )
    db.execute("CREATE INDEX IF NOT EXISTS jti_log_expiry ON jti_log (expires_at)")
    # the first layout (one row per pair, keyed by it): carry its live rows over
    old = db.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name='seen_jti'")
    if old.fetchone():
        rows = db.execute(
            "SELECT client_id, jti, expires_at FROM seen_jti WHERE expires_at > ?", (now,)
        ).fetchall()
        db.executemany(
            "INSERT INTO jti_log (key, expires_at) VALUES (?, ?)",
            ((blob(replay_key(c, j)), e) for c, j, e in rows),
        )
        db.execute("DROP TABLE seen_jti")
    # a random id per database: a snapshot of another one (the file deleted and made again,
    # say) is never taken for this one's
    db.execute("CREATE TABLE IF NOT EXISTS jti_meta (name TEXT PRIMARY KEY, value BLOB)")
    db.execute("INSERT OR IGNORE INTO jti_meta VALUES ('id', ?)", (secrets.token_bytes(16),))
    (db_id,) = db.execute("SELECT value FROM jti_meta WHERE name = 'id'").fetchone()
    return bytes(db_id)


def _lock_file(path: str, *, exclusive: bool) -> IO[bytes]:
    """Hold ``path`` locked (exclusive for a write-behind store, shared otherwise) until the
    returned file is closed; the system releases it if the process dies."""
    try:
        # held for the store's lifetime; 0600 like the database
        handle = os.fdopen(os.open(path, os.O_CREAT | os.O_WRONLY | os.O_APPEND, 0o600), "ab")
    except OSError as exc:
        raise ConfigError(f"replay store lock {path}: {exc.strerror}") from None
    if fcntl is None:  # pragma: no cover - Windows
        return handle
    try:
        fcntl.flock(handle, (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | fcntl.LOCK_NB)
    except OSError:
        handle.close()
        store = path.removesuffix(".lock")
        raise ReplayStoreInUse(
            f"replay store {store} is in use by another process"
            + (" with group commit" if not exclusive else ""),
            hint="processes sharing one replay store file must all use "
            f"sqlite:///{store}?commit_interval=0 (each commits before answering); "
            "or give each process its own file",
        ) from None
    return handle
