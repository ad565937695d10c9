"""Replay stores: remember (client_id, jti) until the assertion can no longer be used.

One operation matters: an atomic insert-if-absent with an expiry. SQLite is the default so a
restart does not reopen a replay window; Redis is for several servers (processes or hosts)
sharing one window; memory is for tests and benchmarks.
"""

from __future__ import annotations

import contextlib
import hashlib
import heapq
import logging
import math
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any, Protocol
from urllib.parse import parse_qsl

from ..errors import ConfigError, ReplayStoreUnavailable

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

__all__ = [
    "MemoryReplayStore",
    "RedisReplayStore",
    "ReplayStore",
    "ReplayStoreInUse",
    "SqliteReplayStore",
    "describe_store",
    "open_replay_store",
]


class ReplayStoreInUse(ConfigError):
    """The store's file is held by another process in a mode that cannot share it."""


class ReplayStore(Protocol):
    def add(self, client_id: str, jti: str, expires_at: float) -> bool:
        """Record the pair; True if it was new, False if it was seen and has not expired."""
        ...

    def close(self) -> None: ...


def replay_key(client_id: str, jti: str) -> str:
    """One string per (client_id, jti) pair: the length prefix keeps ("a:b", "c") and
    ("a", "b:c") apart, whatever either holds (lone surrogates included)."""
    return f"{len(client_id)}:{client_id}{jti}"


def _blob(key: str) -> bytes:
    # JSON strings may hold lone surrogates: stored as bytes, they round-trip exactly
    return key.encode("utf-8", "surrogatepass")


def _unblob(raw: bytes | str) -> str:
    return raw if isinstance(raw, str) else bytes(raw).decode("utf-8", "surrogatepass")


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


#: rows deleted per purge statement; a full batch means more are due, so the next write
#: purges again instead of waiting a second (a backlog drains without one long stall)
_PURGE_BATCH = 2000
#: seconds a write waits for SQLite's writer lock before it fails
_BUSY_TIMEOUT = 10.0

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
      on ``PATH.lock`` makes sure of it. A process crash forgets at most the last interval.
    * ``0``, shared: every new pair is written and committed before the answer, inside SQLite's
      writer lock, after reading the rows other processes appended: any number of processes
      may share the file (each holds a shared lock on ``PATH.lock``), and a replay sent to
      two of them is refused by one. A write that fails raises :class:`ReplayStoreUnavailable`
      (the server answers 503) and accepts nothing.

    Mixing the modes on one file is refused at start: a write-behind process would not see the
    others' jtis in time, nor they its. (``PATH.lock`` uses ``flock``; where it is missing, as on
    Windows, nothing enforces this.)
    """

    def __init__(
        self,
        path: str | Path,
        clock: Callable[[], float] = time.time,
        *,
        commit_interval: float = 0.05,
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
        self._seen = ExpiringSet()
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
        try:
            self._db = sqlite3.connect(
                self.path, check_same_thread=False, isolation_level=None, timeout=_BUSY_TIMEOUT
            )
        except sqlite3.Error as exc:
            self._file_lock.close()
            raise ConfigError(f"replay store {self.path}: {exc}") from None
        try:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            with self._transaction():
                self._create_schema()
                self._read_log(self._clock())
        except sqlite3.Error as exc:
            self._db.close()
            self._file_lock.close()
            raise ConfigError(f"replay store {self.path}: {exc}") from None
        self._closed = threading.Event()
        if self.write_behind:
            threading.Thread(target=self._flusher, name="pkjwt-replay-flush", daemon=True).start()

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

    def _create_schema(self) -> None:
        db = self._db
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
                "SELECT client_id, jti, expires_at FROM seen_jti WHERE expires_at > ?",
                (self._clock(),),
            ).fetchall()
            db.executemany(
                "INSERT INTO jti_log (key, expires_at) VALUES (?, ?)",
                ((_blob(replay_key(c, j)), e) for c, j, e in rows),
            )
            db.execute("DROP TABLE seen_jti")

    def _read_log(self, now: float) -> None:
        """Take in the rows appended since we last looked (by other processes, or at start)."""
        rows = self._db.execute(
            "SELECT seq, key, expires_at FROM jti_log WHERE seq > ? ORDER BY seq",
            (self._last_seq,),
        )
        seen = self._seen
        for seq, raw, expires_at in rows:
            key = _unblob(raw)
            if expires_at > now and not seen.live(key, now):
                seen.put(key, expires_at)
            self._last_seq = seq

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
        now = self._clock()
        with self._lock:
            if self._closing:  # nothing after close() would ever be written
                raise ReplayStoreUnavailable(f"replay store {self.path} is closed")
            seen = self._seen
            if not seen.admits(key, now):
                return False
            if self.write_behind:
                seen.put(key, expires_at)
                self._pending.append((key, expires_at))
                return True
            try:
                with self._transaction() as db:
                    self._read_log(now)
                    if seen.live(key, now):  # another process took it first
                        return False
                    self._purge(now)
                    cur = db.execute(
                        "INSERT INTO jti_log (key, expires_at) VALUES (?, ?)",
                        (_blob(key), expires_at),
                    )
            except sqlite3.Error as exc:
                raise ReplayStoreUnavailable(f"replay store {self.path}: {exc}") from None
            assert cur.lastrowid is not None
            self._last_seq = cur.lastrowid
            seen.put(key, expires_at)
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
                            [(_blob(key), until) for key, until in batch],
                        )
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
        with self._io_lock, self._lock:
            if not self._db_closed:
                self._db_closed = True
                self._db.close()
                self._file_lock.close()


def _lock_file(path: str, *, exclusive: bool) -> IO[bytes]:
    """Hold ``path`` locked (exclusive for a write-behind store, shared otherwise) until the
    returned file is closed; the system releases it if the process dies."""
    try:
        handle = open(path, "ab")  # noqa: SIM115 - held for the store's lifetime
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


def describe_store(store: ReplayStore) -> str:
    """What the server announces at start: where the jtis go, and how durably."""
    if isinstance(store, SqliteReplayStore):
        mode = (
            f"written every {store.commit_interval * 1000:g} ms, this process only"
            if store.write_behind
            else "committed before each answer, shareable"
        )
        return f"sqlite {store.path} ({mode})"
    if isinstance(store, MemoryReplayStore):
        return "memory (forgotten on exit)"
    if isinstance(store, RedisReplayStore):
        return f"redis {redacted_url(store.url)} (shared by every server using it)"
    return type(store).__name__


class RedisReplayStore:
    """Pairs as Redis keys that expire with them: ``SET key NX PX ttl`` is the atomic
    insert-if-absent, shared by every server using that Redis (any number of processes and
    hosts). Keys are ``pkjwt:jti:`` plus a SHA-256 of the pair, so nothing the client sent is
    stored verbatim. The TTL comes from this server's clock (``PX``, not ``PXAT``), so a Redis
    clock that runs ahead cannot shorten the window.

    A write that fails (Redis down, timeout) raises :class:`ReplayStoreUnavailable`: the server
    answers 503 rather than accept an assertion it could not record.
    """

    def __init__(
        self,
        url: str,
        *,
        prefix: str = "pkjwt:jti:",
        timeout: float = 2.0,
        clock: Callable[[], float] = time.time,
        client: Any = None,
    ) -> None:
        self.url = url
        self.prefix = prefix
        self._clock = clock
        if client is None:
            client = _connect_redis(url, timeout)
        self._redis = client

    def __repr__(self) -> str:
        return f"RedisReplayStore({redacted_url(self.url)!r})"

    def add(self, client_id: str, jti: str, expires_at: float) -> bool:
        digest = hashlib.sha256(_blob(replay_key(client_id, jti))).hexdigest()
        ttl_ms = max(1, math.ceil((expires_at - self._clock()) * 1000))
        try:
            return bool(self._redis.set(self.prefix + digest, b"1", nx=True, px=ttl_ms))
        except Exception as exc:  # redis.RedisError and its socket-level cousins
            raise ReplayStoreUnavailable(
                f"replay store {redacted_url(self.url)}: {type(exc).__name__}"
            ) from None

    def close(self) -> None:
        self._redis.close()


def _connect_redis(url: str, timeout: float) -> Any:
    shown = redacted_url(url)
    try:
        import redis
    except ImportError:
        raise ConfigError(
            "replay_store redis:// needs the redis package", hint="pip install 'pkjwt[redis]'"
        ) from None
    try:
        client = redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)
    except ValueError:  # its message may quote part of the URL, password included
        raise ConfigError(
            f"replay store {shown}: not a valid Redis URL", hint="redis://[:PASSWORD@]HOST:PORT/DB"
        ) from None
    try:
        client.ping()  # fail at start, not at the first token request
    except redis.RedisError as exc:
        client.close()
        raise ConfigError(
            f"replay store {shown}: {type(exc).__name__}",
            hint="is redis-server running there? (redis://HOST:PORT/DB)",
        ) from None
    return client


def redacted_url(url: str) -> str:
    """The URL with its userinfo (a Redis URL may carry a password) replaced by ``***``.

    Done on the text, not with a URL parser: a password may hold ``/``, ``?`` or ``#``, which
    would end a parser's idea of the authority before the ``@``.
    """
    scheme, sep, rest = url.partition("://")
    if not sep or "@" not in rest:
        return url
    return f"{scheme}://***@{rest.rpartition('@')[2]}"


_SHARED_DEFAULT = "pkjwt-replay.sqlite3"


def open_replay_store(
    url: str, *, default_dir: Path | None = None, default_name: str = "replay-2.sqlite3"
) -> ReplayStore:
    """``memory://``, ``redis://HOST:PORT/DB`` or ``sqlite:///PATH[?commit_interval=S]``.
    ``sqlite:///`` alone: the file
    ``pkjwt-replay.sqlite3`` in ``default_dir``, or ``default_name`` there when another process
    holds that one."""
    if url.startswith("memory://"):
        return MemoryReplayStore()
    if url.startswith("sqlite://"):
        path, _, query = url[len("sqlite://") :].partition("?")
        options = dict(parse_qsl(query, keep_blank_values=True))
        unknown = sorted(set(options) - {"commit_interval"})
        if unknown:
            raise ConfigError(
                f"replay_store: unknown option {unknown[0]!r}",
                hint="the one option is ?commit_interval=SECONDS (0: commit before answering)",
            )
        try:
            interval = float(options.get("commit_interval", 0.05))
        except ValueError:
            raise ConfigError("replay_store: commit_interval must be seconds") from None
        if path in ("", "/"):
            base = default_dir or Path.cwd()
            base.mkdir(parents=True, exist_ok=True)
            try:
                return SqliteReplayStore(base / _SHARED_DEFAULT, commit_interval=interval)
            except ReplayStoreInUse:
                return SqliteReplayStore(base / default_name, commit_interval=interval)
        # sqlite:///relative.db and sqlite:////absolute/path.db, as SQLAlchemy spells them
        return SqliteReplayStore(
            path[1:] if path.startswith("/") else path, commit_interval=interval
        )
    if url.startswith(("redis://", "rediss://", "unix://")):
        return RedisReplayStore(url)
    raise ConfigError(
        f"unsupported replay store {redacted_url(url)!r}",
        hint="use memory://, sqlite:///PATH or redis://HOST:PORT/DB",
    )
