"""The replay stores on their own: atomic insert-if-absent, expiry, durability, sharing."""

from __future__ import annotations

import gc
import sqlite3
import threading

import pytest

from pkjwt.errors import ConfigError
from pkjwt.server.replay import (
    ExpiringSet,
    MemoryReplayStore,
    SqliteReplayStore,
    open_replay_store,
    replay_key,
)


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


def test_memory_store_purges_expired_entries_a_bucket_at_a_time():
    clock = Clock()
    store = MemoryReplayStore(clock)
    for i in range(100):
        store.add("c", f"j{i}", clock.now + 1)
    clock.now += 3
    for i in range(20):
        store.add("c", f"new{i}", clock.now + 100)
    # the expired second went in one pop; the new entries are all still there
    assert len(store) == 20
    assert all(not store.add("c", f"new{i}", clock.now + 100) for i in range(20))


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
    [(("a:b", "c"), ("a", "b:c")), (("1:a", "b"), ("1", ":ab")), (("c", "\udcff"), ("c", "?"))],
)
def test_replay_keys_never_collide(a, b):
    assert replay_key(*a) != replay_key(*b)


def test_expiring_set_stays_invisible_to_the_garbage_collector():
    # a dict of str -> float is untracked: a big replay window costs no GC pauses
    seen = ExpiringSet()
    for i in range(1000):
        seen.put(f"k{i}", 1e9 + i / 100)
    gc.collect()
    assert not gc.is_tracked(seen._until)


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


def test_sqlite_group_commit_still_refuses_replays_across_processes(tmp_path):
    # two stores on one file stand for two server processes: SQLite's single writer makes
    # the second wait for the first's commit, then it sees the row
    path = tmp_path / "shared.db"
    clock = Clock()
    a = SqliteReplayStore(path, clock, commit_interval=0.05)
    b = SqliteReplayStore(path, clock, commit_interval=0.05)
    results: list[bool] = []
    assert a.add("c", "same", clock.now + 60)
    thread = threading.Thread(target=lambda: results.append(b.add("c", "same", clock.now + 60)))
    thread.start()
    thread.join(timeout=15)
    assert results == [False]
    a.close()
    b.close()


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
    with pytest.raises(ConfigError):
        open_replay_store("postgres://nope")


def _rows(path):
    with sqlite3.connect(path) as db:
        return db.execute("SELECT key, expires_at FROM jti_log ORDER BY seq").fetchall()


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

    def executemany(self, sql: str, *args):
        raise sqlite3.OperationalError("database or disk is full")

    def __getattr__(self, name):
        return getattr(self.db, name)


def test_a_failed_write_is_logged_kept_and_retried_without_losing_other_rows(shared, caplog):
    a, b, clock, path = shared
    real = a._db
    a._db = FailingInserts(real)
    assert a.add("c", "x", clock.now + 60)  # accepted: memory is the authority here
    assert "could not record 1 jti(s)" in caplog.text
    assert "x" not in caplog.text.split("could not record")[1]  # no jti in the log
    assert not real.in_transaction  # the writer lock is released for other processes
    assert not a.add("c", "x", clock.now + 60)  # still refused in this process
    a._db = real
    assert b.add("c", "from-b", clock.now + 60)  # takes the sequence number a rolled back
    assert not a.add("c", "from-b", clock.now + 60)  # ...and a still sees it
    assert a.add("c", "y", clock.now + 60)  # this commit also writes the kept "x"
    c = SqliteReplayStore(path, clock)
    assert not c.add("c", "x", clock.now + 60)
    c.close()


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
