"""The replay index on disk: a snapshot of its flat buffers, so a restart reads the buffers back
instead of re-hashing every row of the log.

Why: reading 26 M rows from SQLite and fingerprinting each costs minutes in Python (the old
index took 32 s to reload them); copying the buffers back is a few large ``readinto`` calls.
A snapshot records the log's sequence number ``S`` it covers: a restart loads it, then reads the
rows after ``S`` (the tail) from the log.

Why that is enough, with requests running while the snapshot is taken: every entry the index
held when the snapshot began is still in it until it expires (entries only leave by expiring),
and is copied with whichever shard holds it when that shard's turn comes; an entry added after
the snapshot began is in the log after ``S``. Each shard is copied whole under the store's lock
(tens of microseconds), one shard at a time, walking the fingerprint space in order: a shard
that grows or splits meanwhile is copied as it is then, so the shards written cover the space
exactly once. Entries accepted but not yet in the log (write-behind) may be in the snapshot:
they were accepted, so refusing them after a restart is right.

A snapshot that is missing, truncated, corrupt (CRC-32 over the whole file), written for
another database (a random id kept in the database and in the snapshot), ahead of the log, or
in another byte order is ignored: the store reads the whole log instead, as before. Never a
false replay, never a crash. The file is written to a private temporary file (0600, like the
database), synced and renamed over the old one, so a crash mid-write leaves the old snapshot.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import struct
import sys
import tempfile
import threading
import time
import zlib
from array import array
from collections.abc import Callable
from typing import IO, NamedTuple

from .compact import BUCKET, MAX_DEPTH, WAYS, CompactIndex, Shard

__all__ = ["Snapshot", "Snapshots", "read_snapshot", "write_snapshot"]

log = logging.getLogger("pkjwt.server")

_MAGIC = b"PKJWTIX1"
_VERSION = 1
#: magic, version, byte order, last sequence number, database id, written at
_HEADER = struct.Struct("<8sHHq16sd")
#: a shard: prefix, depth, buckets (depth 255 ends the file)
_CHUNK = struct.Struct("<QII")
_END = 255
#: a shard bigger than this in a file is garbage, not a shard (the index splits at 256)
_MAX_FILE_BUCKETS = 1 << 20
_ORDER = 1 if sys.byteorder == "little" else 2
#: at close, a snapshot is written if at least this many rows would otherwise be read back
_CLOSE_ROWS = 10_000


class Snapshot(NamedTuple):
    #: the index as saved
    saved: CompactIndex
    #: the log rows up to this sequence number are in it
    last_seq: int


def write_snapshot(
    path: str,
    index: CompactIndex,
    lock: threading.Lock,
    *,
    last_seq: int,
    db_id: bytes,
    should_stop: Callable[[], bool] = lambda: False,
) -> bool:
    """Write ``index`` (which covers the log up to ``last_seq``) to ``path``, a shard at a time,
    each copied under ``lock``. False if ``should_stop`` said so first (the old file stays)."""
    folder = os.path.dirname(os.path.abspath(path))
    fd, temp = tempfile.mkstemp(dir=folder, prefix=os.path.basename(path) + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as out:
            crc = _put(out, 0, _HEADER.pack(_MAGIC, _VERSION, _ORDER, last_seq, db_id, time.time()))
            position = 0
            while position < 1 << 64:
                if should_stop():
                    return False
                with lock:  # one shard, whole: tens of microseconds
                    shard = index.shard_at(position)
                    parts = (bytes(shard.keys), shard.exp.tobytes(), bytes(shard.fill))
                    prefix, depth, buckets = shard.prefix, shard.depth, shard.buckets
                crc = _put(out, crc, _CHUNK.pack(prefix, depth, buckets), *parts)
                position = (prefix + 1) << (64 - depth)
            crc = _put(out, crc, _CHUNK.pack(0, _END, 0))
            out.write(struct.pack("<I", crc))
            out.flush()
            os.fsync(out.fileno())
        os.replace(temp, path)
        return True
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)


def _put(out: IO[bytes], crc: int, *parts: bytes) -> int:
    for part in parts:
        out.write(part)
        crc = zlib.crc32(part, crc)
    return crc


def read_snapshot(path: str, *, db_id: bytes, max_seq: int) -> Snapshot | None:
    """The index saved at ``path`` if it is whole and belongs to this database (``db_id``,
    sequence numbers up to ``max_seq``); None otherwise (say why in the log)."""
    try:
        with open(path, "rb") as source:
            size = os.fstat(source.fileno()).st_size
            return _read(source, size, db_id, max_seq)
    except FileNotFoundError:
        return None
    except (OSError, ValueError, struct.error) as exc:
        log.warning("replay index %s ignored (%s): reading the whole log instead", path, exc)
        return None


def _read(source: io.BufferedReader, size: int, db_id: bytes, max_seq: int) -> Snapshot:
    raw = _exactly(source, _HEADER.size)
    magic, version, order, last_seq, file_id, _written = _HEADER.unpack(raw)
    if magic != _MAGIC or version != _VERSION:
        raise ValueError("not a pkjwt replay index")
    if order != _ORDER or array("I").itemsize != 4:
        raise ValueError("written on a machine of another byte order")
    if file_id != db_id:
        raise ValueError("written for another database")
    if not 0 <= last_seq <= max_seq:
        raise ValueError("ahead of the log (was the database restored from a backup?)")
    crc = zlib.crc32(raw)
    shards: list[Shard] = []
    left = size - _HEADER.size
    while True:
        raw = _exactly(source, _CHUNK.size)
        crc = zlib.crc32(raw, crc)
        prefix, depth, buckets = _CHUNK.unpack(raw)
        if depth == _END:
            break
        if depth > MAX_DEPTH or prefix >> depth or not 0 < buckets <= _MAX_FILE_BUCKETS:
            raise ValueError("a shard header that makes no sense")
        left -= _CHUNK.size + buckets * (BUCKET + 4 * WAYS + 1)
        if left < 0:
            raise ValueError("truncated")
        shard = Shard(prefix, depth, buckets)
        for buffer in (shard.keys, shard.exp, shard.fill):
            view = memoryview(buffer).cast("B")
            if source.readinto(view) != len(view):
                raise ValueError("truncated")
            crc = zlib.crc32(view, crc)
        if max(shard.fill) > WAYS:
            raise ValueError("a bucket that holds more than it can")
        shard.used = sum(shard.fill)
        shards.append(shard)
    (expected,) = struct.unpack("<I", _exactly(source, 4))
    if expected != crc:
        raise ValueError("checksum mismatch")
    depth = max((s.depth for s in shards), default=0)
    if 1 << depth > 256 * len(shards):  # the index's directory is never this sparse
        raise ValueError("a directory out of proportion to its shards")
    return Snapshot(CompactIndex.restore(depth, shards), last_seq)


def _exactly(source: IO[bytes], n: int) -> bytes:
    data = source.read(n)
    if len(data) != n:
        raise ValueError("truncated")
    return data


def remove_stale_temporaries(path: str, *, older_than: float) -> None:
    """Delete temporary files a crash mid-write left next to ``path`` (older than the given
    age in seconds: another process sharing the file may be writing its own right now)."""
    folder, name = os.path.split(os.path.abspath(path))
    now = time.time()
    with contextlib.suppress(OSError):
        for entry in os.scandir(folder):
            if entry.name.startswith(name + ".") and entry.name.endswith(".tmp"):
                with contextlib.suppress(OSError):
                    if now - entry.stat().st_mtime >= older_than:
                        os.unlink(entry.path)


class Snapshots:
    """``PATH.index`` for one store: loaded at start, rewritten by a thread once the log has
    grown ``rows`` past it (at most every ``interval`` seconds, and never more than 5% of the
    time: a 26 M index takes seconds to write), and at close if a restart would otherwise
    read many rows back. Writing is off the request path: requests wait at most for the copy
    of one shard."""

    #: seconds between two snapshots, at least
    interval = 60.0

    def __init__(self, path: str, lock: threading.Lock, *, rows: int, exclusive: bool) -> None:
        self.path = path
        self.rows = rows
        self._lock = lock
        self._writing = threading.Lock()
        self._stop = threading.Event()
        #: log rows past the last snapshot (approximate: counted as they are written or read)
        self.tail = 0
        self._next = 0.0
        self._failing = False
        self._index: CompactIndex | None = None
        self._covered: Callable[[], int] = lambda: 0
        self._db_id = b""
        # a crash mid-write leaves a temporary file; another process sharing the store may be
        # writing its own right now, so in shared mode only old ones go
        remove_stale_temporaries(path, older_than=0 if exclusive else 3600)

    def load(self, *, db_id: bytes, max_seq: int) -> Snapshot | None:
        self._db_id = db_id
        return read_snapshot(self.path, db_id=db_id, max_seq=max_seq)

    def grew(self, rows: int) -> None:
        self.tail += rows

    def start(self, index: CompactIndex, covered: Callable[[], int]) -> None:
        """Watch ``index``; ``covered()`` says up to which sequence number the log is in it."""
        self._index, self._covered = index, covered
        threading.Thread(target=self._run, name="pkjwt-replay-snapshot", daemon=True).start()

    def _run(self) -> None:
        while not self._stop.wait(1.0):
            if self.tail >= self.rows and time.monotonic() >= self._next:
                try:
                    self.write(stoppable=True)
                except Exception:  # the thread must outlive any surprise; the next turn retries
                    log.exception("replay index %s: snapshot failed", self.path)

    def write(self, *, stoppable: bool = False) -> bool:
        """Write a snapshot now; False if it could not (logged) or was stopped."""
        index = self._index
        if index is None:
            return False
        with self._writing:
            last_seq = self._covered()
            tail, self.tail = self.tail, 0
            started = time.monotonic()
            try:
                done = write_snapshot(
                    self.path,
                    index,
                    self._lock,
                    last_seq=last_seq,
                    db_id=self._db_id,
                    should_stop=self._stop.is_set if stoppable else lambda: False,
                )
            except OSError as exc:
                self.tail += tail
                if not self._failing:
                    self._failing = True
                    log.warning("replay index %s: cannot write (%s); retrying", self.path, exc)
                return False
            if not done:
                self.tail += tail
                return False
            took = time.monotonic() - started
            self._next = time.monotonic() + max(self.interval, 20 * took)
            if self._failing:
                self._failing = False
                log.warning("replay index %s: writing again", self.path)
            return True

    def close(self) -> None:
        """Stop the thread; write a last snapshot if a restart would read many rows back."""
        self._stop.set()
        if self.tail >= min(self.rows, _CLOSE_ROWS):
            self.write()
