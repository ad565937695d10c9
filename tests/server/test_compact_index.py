"""The replay index on its own (no timing here: ``python -m benchmarks memory`` measures it):
insert-if-absent, expiry and reclaim, growth and splits, payloads, and a reference ``dict``
driven through random sequences by hypothesis."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pkjwt.server.replay.compact import (
    NEVER,
    CompactIndex,
    Shard,
    expiry_seconds,
    fingerprint,
)

NOW = 1_800_000_000


def fp(n: int | str) -> bytes:
    return fingerprint(str(n).encode())


def test_insert_if_absent():
    index = CompactIndex()
    assert index.add(fp(1), NOW + 10, NOW)
    assert not index.add(fp(1), NOW + 10, NOW)
    assert not index.add(fp(1), NOW + 99, NOW + 5)  # still live: refused, expiry unchanged
    assert index.add(fp(2), NOW + 10, NOW)
    assert index.live(fp(1), NOW + 9)
    assert not index.live(fp(1), NOW + 10)  # live while expiry > now
    assert not index.live(fp(3), NOW)


def test_an_expired_entry_can_be_added_again_and_lives_on():
    index = CompactIndex()
    assert index.add(fp(1), NOW + 10, NOW)
    assert index.add(fp(1), NOW + 100, NOW + 10)
    assert not index.add(fp(1), NOW + 100, NOW + 50)
    assert len(index) == 1


def test_an_already_expired_entry_is_not_kept():
    index = CompactIndex()
    assert index.add(fp(1), NOW, NOW)
    assert index.add(fp(1), NOW - 5, NOW)
    assert len(index) == 0


def test_expired_entries_are_reclaimed_as_shards_fill():
    index = CompactIndex()
    for i in range(3000):
        index.add(fp(i), NOW + 1, NOW)
    size = index.nbytes()
    for i in range(100_000):  # 33 windows of short-lived entries
        now = NOW + 1 + i // 3000
        assert index.add(fp(f"new{i}"), now + 1, now)
    assert len(index) <= 3000 * 2  # the live ones plus what a shard holds before reclaiming
    assert index.nbytes() <= size * 2  # bounded by the live window, not by everything seen
    index.purge(NOW + 10**6)
    assert len(index) == 0


def test_purge_reports_and_removes_only_expired_entries():
    index = CompactIndex()
    for i in range(50):
        index.add(fp(i), NOW + (5 if i % 2 else 50), NOW)
    assert index.purge(NOW + 5) == 25
    assert len(index) == 25
    assert sorted(index.expiries(NOW + 5)) == [NOW + 50] * 25
    assert all(index.live(fp(i), NOW + 5) == (i % 2 == 0) for i in range(50))


@pytest.mark.parametrize("max_buckets", [1, 2, 16, 0])
def test_growth_and_splits_keep_every_entry(max_buckets):
    index = CompactIndex(max_buckets=max_buckets)
    for i in range(20_000):
        assert index.add(fp(i), NOW + 100 + i % 7, NOW)
    assert len(index) == 20_000
    assert all(not index.add(fp(i), NOW + 100, NOW) for i in range(20_000))
    shards = index.shards()
    assert index.depth >= 1
    assert len(shards) > 1
    # each shard holds the fingerprints of its prefix, within its bound
    for shard in shards:
        assert shard.used == sum(shard.fill)
        for slot in range(len(shard.exp)):
            if shard.exp[slot]:
                first = int.from_bytes(shard.keys[slot * 16 : slot * 16 + 8])
                assert first >> (64 - shard.depth) == shard.prefix if shard.depth else True
    if max_buckets == 0:  # the default: bounded memory per entry (the benchmark measures it)
        assert index.nbytes() / 20_000 < 40


def test_an_index_reserved_for_a_reload_places_each_entry_once():
    index = CompactIndex()
    index.reserve(100_000)
    shards = index.shards()
    assert len(shards) > 32
    for i in range(100_000):
        assert index.add(fp(i), NOW + 10, NOW)
    assert index.shards() == shards  # none grew
    assert all(index.live(fp(i), NOW) for i in range(0, 100_000, 7))
    assert index.nbytes() / 100_000 < 30
    index.reserve(10**9)  # not empty any more: nothing happens
    assert index.shards() == shards


def test_a_match_across_two_slots_is_not_a_match():
    # slots are adjacent: the bytes from the middle of one to the middle of the next must
    # never be taken for a fingerprint (a new index has one bucket: these two sit side by side)
    index = CompactIndex()
    assert index.add(b"\x00" * 8 + b"\x01" * 8, NOW + 10, NOW)
    assert index.add(b"\x01" * 8 + b"\x02" * 8, NOW + 10, NOW)
    straddling = b"\x01" * 16
    assert not index.live(straddling, NOW)
    assert index.add(straddling, NOW + 10, NOW)
    assert not index.add(straddling, NOW + 10, NOW)


def test_fingerprints_that_share_every_bit_of_their_prefix_still_fit():
    # SHA-256 never makes these; the index must not split forever on them
    index = CompactIndex(max_buckets=2)
    keys = [bytes(8) + i.to_bytes(8) for i in range(500)]
    for key in keys:
        assert index.add(key, NOW + 10, NOW)
    assert all(index.live(key, NOW) for key in keys)
    assert index.depth <= 1


def test_payloads_and_what_is_dropped_with_them():
    dropped: list[int] = []
    index = CompactIndex(payload=True, on_drop=dropped.append)
    assert index.add(fp(1), NOW + 10, NOW, payload=41)
    assert index.add(fp(2), NOW + 20, NOW, payload=42)
    assert index.get(fp(1), NOW) == (NOW + 10, 41)
    assert index.set_payload(fp(1), 43)
    assert index.get(fp(1), NOW) == (NOW + 10, 43)
    assert not index.set_payload(fp(3), 1)
    assert index.get(fp(1), NOW + 10) is None  # expired
    assert index.add(fp(1), NOW + 30, NOW + 10, payload=44)  # in its old slot
    assert dropped == [43]
    index.purge(NOW + 20)
    assert dropped == [43, 42]
    assert index.get(fp(1), NOW + 20) == (NOW + 30, 44)


def test_payloads_survive_growth():
    index = CompactIndex(payload=True, max_buckets=2)
    for i in range(3000):
        index.add(fp(i), NOW + 10, NOW, payload=i * 3)
    assert all(index.get(fp(i), NOW) == (NOW + 10, i * 3) for i in range(3000))


def test_restore_wants_shards_that_cover_everything_once():
    whole = Shard(0, 0, 4)
    left, right = Shard(0, 1, 4), Shard(1, 1, 4)
    assert len(CompactIndex.restore(0, [whole]).shards()) == 1
    assert len(CompactIndex.restore(1, [left, right]).shards()) == 2
    assert len(CompactIndex.restore(2, [left, right]).shards()) == 2
    with pytest.raises(ValueError, match="gap"):
        CompactIndex.restore(1, [left])
    with pytest.raises(ValueError, match="overlap"):
        CompactIndex.restore(1, [whole, right])
    with pytest.raises(ValueError, match="outside"):
        CompactIndex.restore(0, [left, right])
    with pytest.raises(ValueError, match="outside"):
        CompactIndex.restore(1, [Shard(2, 1, 4)])
    with pytest.raises(ValueError, match="depth"):
        CompactIndex.restore(99, [])


@pytest.mark.parametrize(
    ("given_", "stored"),
    [
        (NOW + 0.2, NOW + 1),  # rounded up: remembered a little longer, never shorter
        (NOW, NOW),
        (0, 0),
        (-5.0, 0),
        (float("-inf"), 0),
        (float("inf"), NEVER),
        (float("nan"), NEVER),
        (1e300, NEVER),
        (NEVER + 0.5, NEVER),
    ],
)
def test_expiry_seconds(given_, stored):
    assert expiry_seconds(given_) == stored


# -- the index against a dict ------------------------------------------------------------------

keys = st.integers(0, 60).map(fp) | st.binary(min_size=16, max_size=16)
steps = st.lists(
    st.one_of(
        st.tuples(st.just("add"), keys, st.integers(-3, 40)),
        st.tuples(st.just("wait"), st.just(b""), st.integers(0, 25)),
        st.tuples(st.just("purge"), st.just(b""), st.just(0)),
    ),
    max_size=300,
)


@settings(max_examples=300, deadline=None)
@given(steps=steps, max_buckets=st.sampled_from([1, 2, 3, 0]), start=st.floats(0, 0.99))
def test_the_index_answers_as_a_dict_would(steps, max_buckets, start):
    index = CompactIndex(max_buckets=max_buckets)
    reference: dict[bytes, int] = {}
    now = NOW + start
    for op, key, n in steps:
        if op == "wait":
            now += n
        elif op == "purge":
            index.purge(now)
            reference = {k: v for k, v in reference.items() if v > now}
            assert len(index) == len(reference)
        else:
            until = expiry_seconds(now + n)
            fresh = not reference.get(key, 0) > now
            assert index.add(key, until, now) is fresh
            if fresh and until > now:
                reference[key] = until
    for key, until in reference.items():
        assert index.live(key, now) is (until > now)
    assert sorted(index.expiries(now)) == sorted(v for v in reference.values() if v > now)


@settings(max_examples=100, deadline=None)
@given(
    entries=st.dictionaries(keys, st.integers(1, 2**63), max_size=200),
    max_buckets=st.sampled_from([1, 2, 0]),
)
def test_payloads_answer_as_a_dict_would(entries, max_buckets):
    index = CompactIndex(payload=True, max_buckets=max_buckets)
    for key, payload in entries.items():
        assert index.add(key, NOW + 10, NOW, payload)
    for key, payload in entries.items():
        assert index.get(key, NOW) == (NOW + 10, payload)
    assert len(index) == len(entries)
