"""The SQLite store's index snapshot (``PATH.index``): a restart loads it and reads only the log
after it; a snapshot that is damaged, stale or someone else's is ignored (the whole log is read,
as before): never a crash, never a replay let through."""

from __future__ import annotations

import logging
import os
import sqlite3
import stat
import threading
from pathlib import Path

import pytest

from pkjwt.server.replay import SqliteReplayStore
from pkjwt.server.replay import snapshot as snapshots
from pkjwt.server.replay.compact import CompactIndex, fingerprint
from pkjwt.server.replay.snapshot import read_snapshot, write_snapshot

NOW = 1_800_000_000.0


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> float:
        return self.now


def _open(path: Path, clock: Clock, **options: object) -> SqliteReplayStore:
    return SqliteReplayStore(path, clock, snapshot_rows=1, **options)  # type: ignore[arg-type]


def _crash(store: SqliteReplayStore) -> None:
    """Leave as a killed process would: no close, no last flush or snapshot; only the lock
    goes (the system releases it when a process dies)."""
    store._closed.set()
    store._snapshots._stop.set()
    store._file_lock.close()


def _added(store: SqliteReplayStore, jtis: range, clock: Clock) -> None:
    for i in jtis:
        assert store.add("c", f"j{i}", clock.now + 600)


def _all_refused(store: SqliteReplayStore, jtis: range, clock: Clock) -> bool:
    return not any(store.add("c", f"j{i}", clock.now + 600) for i in jtis)


def test_close_saves_the_index_and_a_restart_reads_no_log(tmp_path):
    path, clock = tmp_path / "r.db", Clock()
    store = _open(path, clock)
    _added(store, range(3000), clock)
    store.close()
    index = Path(str(path) + ".index")
    assert stat.S_IMODE(index.stat().st_mode) == 0o600
    again = _open(path, clock)
    assert again._snapshots.tail == 0  # every pair came from the snapshot
    assert len(again) == 3000
    assert _all_refused(again, range(3000), clock)
    assert again.add("c", "new", clock.now + 600)
    again.close()


@pytest.mark.parametrize("interval", [0, 0.05])
def test_a_crash_after_a_snapshot_reloads_it_and_the_log_after_it(tmp_path, interval):
    path, clock = tmp_path / "r.db", Clock()
    store = _open(path, clock, commit_interval=interval)
    _added(store, range(1000), clock)
    if interval:
        store._flush()
    assert store.snapshot()
    _added(store, range(1000, 1200), clock)  # only in the log
    if interval:
        store._flush()
    _crash(store)
    again = _open(path, clock, commit_interval=interval)
    assert again._snapshots.tail == 200
    assert _all_refused(again, range(1200), clock)
    again.close()


def test_jtis_accepted_but_not_yet_written_are_in_the_snapshot(tmp_path):
    # write-behind: a snapshot taken between a request and its flush holds the jti, so a crash
    # right after (the log never got it) still refuses it
    path, clock = tmp_path / "r.db", Clock()
    store = _open(path, clock, commit_interval=30)  # flushed by hand only
    _added(store, range(10), clock)
    assert store.snapshot()
    _crash(store)
    again = _open(path, clock)
    assert _all_refused(again, range(10), clock)
    again.close()


def test_expired_pairs_in_a_snapshot_are_not_refused_after_a_restart(tmp_path):
    path, clock = tmp_path / "r.db", Clock()
    store = _open(path, clock)
    assert store.add("c", "short", clock.now + 5)
    assert store.add("c", "long", clock.now + 500)
    store.close()
    clock.now += 10
    again = _open(path, clock)
    assert again.add("c", "short", clock.now + 5)
    assert not again.add("c", "long", clock.now + 500)
    again.close()


def _saved(tmp_path: Path, clock: Clock) -> Path:
    path = tmp_path / "r.db"
    store = _open(path, clock)
    _added(store, range(2000), clock)
    store.close()
    return path


@pytest.mark.parametrize(
    "damage",
    [
        pytest.param(lambda data: data[: len(data) // 2], id="truncated-mid-shard"),
        pytest.param(lambda data: data[:20], id="truncated-header"),
        pytest.param(lambda data: data[:-3], id="truncated-checksum"),
        pytest.param(lambda data: b"", id="empty"),
        pytest.param(lambda data: os.urandom(len(data)), id="garbage"),
        pytest.param(
            lambda data: data[:5000] + bytes([data[5000] ^ 1]) + data[5001:], id="one-bit"
        ),
        pytest.param(lambda data: data[:-4] + b"\x00" * 4, id="checksum-zeroed"),
        pytest.param(  # the file's header is 44 bytes; the first shard's follows
            lambda data: data[:44] + b"\xff" * 16 + data[60:], id="shard-header-garbage"
        ),
    ],
)
def test_a_damaged_snapshot_falls_back_to_the_log(tmp_path, caplog, damage):
    clock = Clock()
    path = _saved(tmp_path, clock)
    index = Path(str(path) + ".index")
    index.write_bytes(damage(index.read_bytes()))
    with caplog.at_level(logging.WARNING, "pkjwt.server"):
        again = _open(path, clock)
    assert "ignored" in caplog.text
    assert again._snapshots.tail == 2000  # the whole log was read instead
    assert _all_refused(again, range(2000), clock)
    assert again.add("c", "new", clock.now + 600)
    again.close()


def test_a_snapshot_of_another_database_is_ignored(tmp_path, caplog):
    clock = Clock()
    path = _saved(tmp_path, clock)
    for suffix in ("", "-wal", "-shm"):
        Path(str(path) + suffix).unlink(missing_ok=True)
    with caplog.at_level(logging.WARNING, "pkjwt.server"):
        again = _open(path, clock)
    assert "written for another database" in caplog.text
    assert again.add("c", "j1", clock.now + 600)  # that database and its jtis are gone
    again.close()


def test_a_snapshot_ahead_of_its_log_is_ignored(tmp_path, caplog):
    # the database restored from an older backup: rows the snapshot claims are not in the log
    clock = Clock()
    path = _saved(tmp_path, clock)
    with sqlite3.connect(path) as db:
        db.execute("UPDATE sqlite_sequence SET seq = 5 WHERE name = 'jti_log'")
    with caplog.at_level(logging.WARNING, "pkjwt.server"):
        again = _open(path, clock)
    assert "ahead of the log" in caplog.text
    assert _all_refused(again, range(2000), clock)  # from the log
    again.close()


def test_a_snapshot_written_while_requests_run_holds_every_earlier_entry(tmp_path):
    # between two shards, requests add entries and shards grow and split under the writer
    index, lock = CompactIndex(max_buckets=2), threading.Lock()
    before = [fingerprint(b"old%d" % i) for i in range(3000)]
    for key in before:
        index.add(key, 2_000_000_000, NOW)
    during = iter(range(10**6))

    def requests_run() -> bool:
        with lock:
            for _ in range(50):
                index.add(fingerprint(b"new%d" % next(during)), 2_000_000_000, NOW)
        return False

    target = str(tmp_path / "index")
    assert write_snapshot(
        target, index, lock, last_seq=7, db_id=b"x" * 16, should_stop=requests_run
    )
    saved = read_snapshot(target, db_id=b"x" * 16, max_seq=7)
    assert saved is not None
    assert saved.last_seq == 7
    assert all(saved.saved.live(key, NOW) for key in before)


def test_a_well_formed_snapshot_with_an_absurd_directory_is_refused(tmp_path, caplog):
    # shards of depth 1, 2, ... 30 cover the space: a valid file (CRC and all) that would need
    # a directory of 2**30 entries; it is refused before anything that size is made
    import struct
    import zlib

    parts = [snapshots._HEADER.pack(b"PKJWTIX1", 1, snapshots._ORDER, 0, b"x" * 16, 0.0)]
    shapes = [((1 << depth) - 2, depth) for depth in range(1, 31)] + [((1 << 30) - 1, 30)]
    for prefix, depth in shapes:
        parts += [snapshots._CHUNK.pack(prefix, depth, 1), bytes(128), bytes(32), bytes(1)]
    parts.append(snapshots._CHUNK.pack(0, 255, 0))
    data = b"".join(parts)
    target = tmp_path / "index"
    target.write_bytes(data + struct.pack("<I", zlib.crc32(data)))
    with caplog.at_level(logging.WARNING, "pkjwt.server"):
        assert read_snapshot(str(target), db_id=b"x" * 16, max_seq=0) is None
    assert "out of proportion" in caplog.text


def test_a_stopped_snapshot_leaves_the_old_one(tmp_path):
    index, lock = CompactIndex(), threading.Lock()
    index.add(fingerprint(b"a"), 2_000_000_000, NOW)
    target = str(tmp_path / "index")
    assert write_snapshot(target, index, lock, last_seq=1, db_id=b"x" * 16)
    first = Path(target).read_bytes()
    assert not write_snapshot(
        target, index, lock, last_seq=2, db_id=b"x" * 16, should_stop=lambda: True
    )
    assert Path(target).read_bytes() == first
    assert os.listdir(tmp_path) == ["index"]  # no temporary file left behind


def test_stale_temporaries_are_removed_at_start(tmp_path):
    path, clock = tmp_path / "r.db", Clock()
    stale = tmp_path / "r.db.index.abc123.tmp"
    stale.write_bytes(b"half a snapshot")
    store = _open(path, clock)
    assert not stale.exists()
    store.close()


def test_the_snapshot_thread_writes_once_enough_rows_are_logged(tmp_path):
    path, clock = tmp_path / "r.db", Clock()
    store = SqliteReplayStore(path, clock, commit_interval=0.01, snapshot_rows=50)
    store._snapshots.interval = 0
    index = Path(str(path) + ".index")
    _added(store, range(49), clock)
    for _ in range(300):
        if store._snapshots.tail >= 49:
            break
        threading.Event().wait(0.01)
    threading.Event().wait(1.5)
    assert not index.exists()
    _added(store, range(49, 60), clock)
    for _ in range(500):
        if index.exists():
            break
        threading.Event().wait(0.01)
    assert index.exists()
    store.close()


def test_a_snapshot_that_cannot_be_written_is_logged_once_and_retried(
    tmp_path, caplog, monkeypatch
):
    path, clock = tmp_path / "r.db", Clock()
    store = _open(path, clock, commit_interval=0)
    _added(store, range(10), clock)

    def full_disk(*args: object, **kwargs: object) -> bool:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(snapshots, "write_snapshot", full_disk)
    assert not store.snapshot()
    assert not store.snapshot()
    assert caplog.text.count("cannot write") == 1
    assert store._snapshots.tail == 10  # still owed
    monkeypatch.undo()
    assert store.snapshot()
    assert "writing again" in caplog.text
    store.close()


def test_shared_stores_load_each_others_snapshots(tmp_path):
    path, clock = tmp_path / "r.db", Clock()
    a = _open(path, clock, commit_interval=0)
    b = _open(path, clock, commit_interval=0)
    assert a.add("c", "from-a", clock.now + 600)
    assert b.add("c", "from-b", clock.now + 600)
    assert a.snapshot()  # a has not seen b's row: its snapshot covers row 1 only
    assert b.add("c", "later-b", clock.now + 600)
    c = _open(path, clock, commit_interval=0)
    assert c._snapshots.tail == 2  # b's rows, from the log
    assert [c.add("c", j, clock.now + 600) for j in ("from-a", "from-b", "later-b")] == [
        False,
        False,
        False,
    ]
    for store in (a, b, c):
        store.close()
