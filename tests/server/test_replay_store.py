"""The replay stores on their own: atomic insert-if-absent, expiry, durability, sharing."""

from __future__ import annotations

import threading

import pytest

from pkjwt.errors import ConfigError
from pkjwt.server.replay import MemoryReplayStore, SqliteReplayStore, open_replay_store


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def test_memory_store_forgets_only_after_expiry():
    clock = Clock()
    store = MemoryReplayStore(clock)
    assert store.add("c", "j", clock.now + 10)
    assert not store.add("c", "j", clock.now + 10)
    assert store.add("other", "j", clock.now + 10)  # per client
    clock.now += 11
    assert store.add("c", "j", clock.now + 10)  # expired: usable again


def test_memory_store_purges_expired_entries_incrementally():
    clock = Clock()
    store = MemoryReplayStore(clock)
    for i in range(100):
        store.add("c", f"j{i}", clock.now + 1)
    clock.now += 2
    for i in range(20):
        store.add("c", f"new{i}", clock.now + 100)
    # bounded work per call: every call removed some expired entries, none of the new ones
    assert len(store._seen) < 100
    assert all(f"new{i}" in {k[1] for k in store._seen} for i in range(20))


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
