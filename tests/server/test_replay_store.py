"""The replay stores on their own: atomic insert-if-absent, expiry, durability, sharing."""

from __future__ import annotations

import gc
import sqlite3
import threading

import pytest

from pkjwt.errors import ConfigError, ReplayStoreUnavailable
from pkjwt.server.replay import (
    CompactIndex,
    MemoryReplayStore,
    SqliteReplayStore,
    describe_store,
    open_replay_store,
    replay_key,
)
from pkjwt.server.replay.compact import fingerprint


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def shared(tmp_path):
    """Two stores on one file with no group commit: two server processes, stepped by hand."""
    path = tmp_path / "shared.db"
    clock = Clock()
    a = SqliteReplayStore(path, clock, commit_interval=0)
    b = SqliteReplayStore(path, clock, commit_interval=0)
    yield a, b, clock, path
    a.close()
    b.close()


def test_memory_store_forgets_only_after_expiry():
    clock = Clock()
    store = MemoryReplayStore(clock)
    assert store.add("c", "j", clock.now + 10)
    assert not store.add("c", "j", clock.now + 10)
    assert store.add("other", "j", clock.now + 10)  # per client
    clock.now += 11
    assert store.add("c", "j", clock.now + 10)  # expired: usable again


def test_memory_store_reclaims_expired_entries():
    clock = Clock()
    store = MemoryReplayStore(clock)
    for i in range(100):
        store.add("c", f"j{i}", clock.now + 1)
    clock.now += 3
    for i in range(2000):  # enough to fill the index's shards, which reclaim as they fill
        store.add("c", f"new{i}", clock.now + 100)
    # the expired pairs are gone; the new ones are all still there
    assert len(store) == 2000
    assert all(not store.add("c", f"new{i}", clock.now + 100) for i in range(2000))


def test_a_key_added_again_after_expiry_survives_the_purge_of_its_old_bucket():
    clock = Clock()
    store = MemoryReplayStore(clock)
    assert store.add("c", "j", clock.now + 1)
    clock.now += 5
    assert store.add("c", "j", clock.now + 60)  # expired, so usable again
    assert store.add("c", "trigger", clock.now + 60)  # purges the old bucket
    assert not store.add("c", "j", clock.now + 60)


@pytest.mark.parametrize(
    ("a", "b"),
    [
        (("a:b", "c"), ("a", "b:c")),
        (("1:a", "b"), ("1", ":ab")),
        (("c", "\udcff"), ("c", "?")),
        (("c", "\ud800"), ("c", "\\xed\\xa0\\x80")),
        (("\ud800", "jti"), ("\\", "xed\\xa0\\x80jti")),
    ],
)
def test_replay_keys_never_collide(a, b):
    assert replay_key(*a) != replay_key(*b)
    store = MemoryReplayStore()
    assert store.add(*a, 2e9)
    assert store.add(*b, 2e9)


def test_lone_surrogates_survive_a_restart_exactly(tmp_path):
    clock = Clock()
    first = SqliteReplayStore(tmp_path / "r.db", clock)
    assert first.add("c", "\ud800x", clock.now + 60)
    first.close()
    second = SqliteReplayStore(tmp_path / "r.db", clock)
    assert not second.add("c", "\ud800x", clock.now + 60)
    assert second.add("c", "\\xed\\xa0\\x80x", clock.now + 60)  # its old escaped spelling
    second.close()


def test_the_index_stays_invisible_to_the_garbage_collector():
    # flat buffers, not an object per entry: a big replay window costs no GC pauses
    gc.collect()
    before = len(gc.get_objects())
    seen = CompactIndex()
    for i in range(20_000):
        seen.add(fingerprint(str(i).encode()), 2_000_000_000, 1e9)
    gc.collect()
    assert len(gc.get_objects()) - before < 200  # a few per shard of ~1,500 entries


@pytest.mark.parametrize("interval", [0.0, 0.05])
def test_sqlite_close_commits_and_a_new_store_still_refuses(tmp_path, interval):
    path = tmp_path / "r.db"
    clock = Clock()
    first = SqliteReplayStore(path, clock, commit_interval=interval)
    assert first.add("c", "j", clock.now + 60)
    first.close()
    second = SqliteReplayStore(path, clock, commit_interval=interval)
    assert not second.add("c", "j", clock.now + 60)
    second.close()


@pytest.mark.parametrize(("first", "second"), [(0.05, 0.05), (0.05, 0), (0, 0.05)])
def test_a_write_behind_store_will_not_share_its_file(tmp_path, first, second):
    # a write-behind process would not see other processes' jtis in time, nor they its
    path = tmp_path / "r.db"
    a = SqliteReplayStore(path, commit_interval=first)
    with pytest.raises(ConfigError) as err:
        SqliteReplayStore(path, commit_interval=second)
    assert "in use by another process" in str(err.value)
    assert "commit_interval=0" in (err.value.hint or "")
    a.close()
    SqliteReplayStore(path, commit_interval=second).close()  # free again once a is closed


def test_shared_stores_under_concurrent_load_all_make_progress(tmp_path):
    # two processes hammering one file: each write takes the writer lock only briefly
    path = tmp_path / "r.db"
    stores = [SqliteReplayStore(path, commit_interval=0) for _ in range(2)]
    results: dict[int, list[bool]] = {0: [], 1: []}
    errors: list[BaseException] = []

    def hammer(i: int) -> None:
        try:
            for n in range(300):
                results[i].append(stores[i].add("c", f"{n}", 2e9))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=hammer, args=(i,)) for i in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert errors == []
    # every jti was accepted exactly once across the two
    assert [a + b for a, b in zip(results[0], results[1], strict=True)] == [1] * 300
    for store in stores:
        store.close()


def test_sqlite_url_forms(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    relative = open_replay_store("sqlite:///rel.db")
    relative.close()
    assert (tmp_path / "rel.db").exists()
    absolute = open_replay_store(f"sqlite:///{tmp_path / 'abs.db'}?commit_interval=0")
    assert isinstance(absolute, SqliteReplayStore)
    assert absolute.commit_interval == 0
    absolute.close()
    with pytest.raises(ConfigError):
        open_replay_store("sqlite:///x.db?commit_interval=soon")
    with pytest.raises(ConfigError) as err:
        open_replay_store("sqlite:///x.db?commit_intreval=0")
    assert "commit_intreval" in str(err.value)
    with pytest.raises(ConfigError):
        open_replay_store("postgres://nope")


@pytest.mark.parametrize("interval", ["nan", "inf", "-1", "61"])
def test_commit_intervals_that_would_wedge_the_store_are_refused(tmp_path, interval):
    with pytest.raises(ConfigError) as err:
        open_replay_store(f"sqlite:///{tmp_path / 'r.db'}?commit_interval={interval}")
    assert "commit_interval must be 0-60 seconds" in str(err.value)


def test_the_store_is_described_for_the_start_banner(tmp_path):
    behind = SqliteReplayStore(tmp_path / "a.db")
    shared_ = SqliteReplayStore(tmp_path / "b.db", commit_interval=0)
    assert describe_store(behind) == (
        f"sqlite {tmp_path / 'a.db'} (written every 50 ms, this process only)"
    )
    assert "committed before each answer, shareable" in describe_store(shared_)
    assert describe_store(MemoryReplayStore()) == "memory (forgotten on exit)"
    behind.close()
    shared_.close()


def _rows(path):
    with sqlite3.connect(path) as db:
        rows = db.execute("SELECT key, expires_at FROM jti_log ORDER BY seq").fetchall()
    return [(key.decode("utf-8", "surrogatepass"), until) for key, until in rows]


def test_sqlite_log_is_append_only_and_purged_after_expiry(tmp_path):
    path = tmp_path / "r.db"
    clock = Clock()
    store = SqliteReplayStore(path, clock, commit_interval=0)
    for i in range(10):
        assert store.add("c", f"j{i}", clock.now + 5)
    assert [k for k, _ in _rows(path)] == [replay_key("c", f"j{i}") for i in range(10)]
    clock.now += 6
    assert store.add("c", "later", clock.now + 5)
    assert [k for k, _ in _rows(path)] == [replay_key("c", "later")]
    store.close()


def test_sqlite_restart_reloads_only_unexpired_pairs(tmp_path):
    path = tmp_path / "r.db"
    clock = Clock()
    first = SqliteReplayStore(path, clock)
    assert first.add("c", "short", clock.now + 5)
    assert first.add("c", "long", clock.now + 500)
    first.close()
    clock.now += 10
    second = SqliteReplayStore(path, clock)
    assert len(second) == 1
    assert not second.add("c", "long", clock.now + 500)
    assert second.add("c", "short", clock.now + 5)
    second.close()


def test_sqlite_store_carries_over_the_first_layout(tmp_path):
    path = tmp_path / "old.db"
    clock = Clock()
    with sqlite3.connect(path) as db:
        db.execute(
            "CREATE TABLE seen_jti (client_id TEXT NOT NULL, jti TEXT NOT NULL,"
            " expires_at REAL NOT NULL, PRIMARY KEY (client_id, jti)) WITHOUT ROWID"
        )
        db.execute("INSERT INTO seen_jti VALUES ('c', 'live', ?)", (clock.now + 60,))
        db.execute("INSERT INTO seen_jti VALUES ('c', 'dead', ?)", (clock.now - 60,))
    store = SqliteReplayStore(path, clock)
    assert not store.add("c", "live", clock.now + 60)
    assert store.add("c", "dead", clock.now + 60)
    store.close()
    with sqlite3.connect(path) as db:
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert "seen_jti" not in tables


def test_sqlite_stores_sharing_a_file_see_each_others_rows_in_order(shared):
    a, b, clock, _ = shared
    assert a.add("c", "1", clock.now + 60)
    assert b.add("c", "2", clock.now + 60)
    assert a.add("c", "3", clock.now + 60)
    assert [a.add("c", j, clock.now + 60) for j in "1234"] == [False, False, False, True]
    assert [b.add("c", j, clock.now + 60) for j in "1234"] == [False, False, False, False]


class FailingInserts:
    """A connection whose INSERTs fail, as a full disk would make them (not producible on
    demand with a real file when running as root)."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def execute(self, sql: str, *args):
        if sql.startswith("INSERT"):
            raise sqlite3.OperationalError("database or disk is full")
        return self.db.execute(sql, *args)

    def executemany(self, sql: str, *args):
        raise sqlite3.OperationalError("database or disk is full")

    def __getattr__(self, name):
        return getattr(self.db, name)


def test_a_shared_store_fails_the_request_when_it_cannot_write(shared):
    a, b, clock, _ = shared
    real = a._db
    a._db = FailingInserts(real)
    with pytest.raises(ReplayStoreUnavailable, match="database or disk is full"):
        a.add("c", "x", clock.now + 60)  # the endpoint answers 503; nothing accepted
    assert not real.in_transaction  # the writer lock is released for other processes
    a._db = real
    assert b.add("c", "from-b", clock.now + 60)  # takes the sequence number a rolled back
    assert not a.add("c", "from-b", clock.now + 60)  # ...and a still sees it
    assert a.add("c", "x", clock.now + 60)  # x was never accepted, so it may be now
    assert not b.add("c", "x", clock.now + 60)


def test_a_write_behind_store_keeps_failed_batches_logs_once_and_retries(tmp_path, caplog):
    path = tmp_path / "r.db"
    clock = Clock()
    store = SqliteReplayStore(path, clock, commit_interval=30)  # flushed by hand below
    real = store._db
    store._db = FailingInserts(real)
    assert store.add("c", "x", clock.now + 60)
    store._flush()
    store._flush()
    warnings = [r.getMessage() for r in caplog.records if "cannot write" in r.getMessage()]
    assert len(warnings) == 1
    assert "1 jti(s) kept in memory" in warnings[0]
    assert "x" not in warnings[0].split("(")[0]  # no jti in the log line
    assert not real.in_transaction
    assert not store.add("c", "x", clock.now + 60)  # still refused in this process
    store._db = real
    assert store.add("c", "y", clock.now + 60)
    store._flush()
    assert any("writing again" in r.getMessage() for r in caplog.records)
    assert sorted(k for k, _ in _rows(path)) == [replay_key("c", "x"), replay_key("c", "y")]
    store.close()


def test_the_flusher_thread_survives_an_unexpected_error(tmp_path, caplog):
    store = SqliteReplayStore(tmp_path / "r.db", commit_interval=0.01)
    calls: list[int] = []

    def boom() -> None:
        calls.append(1)
        raise RuntimeError("surprise")

    store._flush = boom  # type: ignore[method-assign]
    deadline = threading.Event()
    for _ in range(500):
        if len(calls) >= 3:
            break
        deadline.wait(0.01)
    assert len(calls) >= 3  # it kept running after the first error
    assert "flush failed" in caplog.text
    del store._flush
    store.close()


def test_sequence_numbers_are_never_reused_after_a_purge(shared):
    # b has read a's last row; a purges it (expired); a's next row must still be news to b
    a, b, clock, _ = shared
    assert a.add("c", "old", clock.now + 1)
    assert b.add("c", "b1", clock.now + 1)
    clock.now += 5
    assert a.add("c", "new", clock.now + 60)  # the purge removed every older row
    assert not b.add("c", "new", clock.now + 60)


def test_group_commit_writes_behind_and_close_flushes(tmp_path):
    path = tmp_path / "r.db"
    clock = Clock()
    store = SqliteReplayStore(path, clock, commit_interval=30)  # the flusher will not run
    for i in range(5):
        assert store.add("c", f"j{i}", clock.now + 60)
    store.close()
    assert len(_rows(path)) == 5


def test_requests_never_wait_for_the_disk_in_write_behind_mode(tmp_path):
    # a commit that checkpoints and fsyncs can take milliseconds: the flusher holds the
    # connection meanwhile, and requests must still be decided from memory
    store = SqliteReplayStore(tmp_path / "r.db", commit_interval=30)  # flushed by hand
    real = store._db
    entered, release = threading.Event(), threading.Event()

    class SlowDisk:
        def executemany(self, sql, rows):
            entered.set()
            release.wait(10)
            return real.executemany(sql, rows)

        def __getattr__(self, name):
            return getattr(real, name)

    store._db = SlowDisk()
    assert store.add("c", "first", 2e9)
    flusher = threading.Thread(target=store._flush)
    flusher.start()
    assert entered.wait(10)
    results: list[bool] = []
    request = threading.Thread(target=lambda: results.append(store.add("c", "second", 2e9)))
    request.start()
    request.join(timeout=5)
    decided_while_writing = not request.is_alive()
    release.set()
    flusher.join(timeout=10)
    request.join(timeout=10)
    assert decided_while_writing
    assert results == [True]
    store._db = real
    store.close()
    assert sorted(k for k, _ in _rows(tmp_path / "r.db")) == [
        replay_key("c", "first"),
        replay_key("c", "second"),
    ]


@pytest.mark.parametrize("interval", [0, 0.05])
def test_add_after_close_refuses_instead_of_dropping(tmp_path, interval):
    store = SqliteReplayStore(tmp_path / "r.db", commit_interval=interval)
    store.close()
    with pytest.raises(ReplayStoreUnavailable, match="is closed"):
        store.add("c", "late", 2e9)
    store.close()  # twice is fine


def test_close_says_how_many_jtis_it_could_not_write(tmp_path, caplog):
    store = SqliteReplayStore(tmp_path / "r.db", commit_interval=30)
    real = store._db
    store._db = FailingInserts(real)
    assert store.add("c", "x", 2e9)
    store.close()
    assert "closing with 1 jti(s) not written" in caplog.text
