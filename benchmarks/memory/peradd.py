"""What one replay-store add costs, old index and new side by side in one process.

Both candidates do what a store does per request, key preparation included: the new one is
``MemoryReplayStore.add`` itself (the pair's fingerprint, the index under the lock: the SQLite
store, writing behind, adds only a list append); the old one is the same store as it was
(``replay_key``, ``ExpiringSet.admits`` and ``put`` under the lock).

* steady state: each structure holds ``n`` live jtis in a sliding window (600 s), every add a
  new jti, the clock moving so that one jti expires per add: reclaiming is paid as it goes.
  Timed interleaved with :func:`benchmarks.common.measure`. A replay (a live jti sent again)
  is timed too.
* growth: ``n`` new jtis into an empty structure (nothing expires), in alternating chunks, so
  the cost of growing (the new index moves each entry ~2.5 times as its shards grow) is
  included; each add is timed, so the worst pause (a shard growing or splitting) shows.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from pkjwt.server.replay import MemoryReplayStore

from ..common import Candidate, Stats, measure, table
from .baseline import ExpiringSet, old_add
from .child import CLIENT, jti

WINDOW = 600.0


class _Stream:
    """A store fed a new jti per call, its clock moving ``1 / rate`` per call."""

    def __init__(self, rate: float, old: bool) -> None:
        self.now, self.step, self.i = 1_900_000_000.0, 1 / rate, 0
        self.seen, self.lock = ExpiringSet(), threading.Lock()
        self.store = MemoryReplayStore(lambda: self.now)
        self.old = old

    def add(self) -> bool:
        self.i += 1
        self.now += self.step
        return self.add_at(jti(self.i), self.now)

    def add_at(self, jti_: str, now: float) -> bool:
        if self.old:
            return old_add(self.seen, self.lock, CLIENT, jti_, now + WINDOW, now)
        return self.store.add(CLIENT, jti_, now + WINDOW)

    def replay(self) -> bool:
        return self.add_at(jti(self.i - 1000), self.now)  # live: refused


def steady(n: int, rounds: int, per_round: int) -> dict[str, Any]:
    streams = {"old ExpiringSet": _Stream(n / WINDOW, old=True)}
    streams["compact index"] = _Stream(n / WINDOW, old=False)
    for stream in streams.values():
        for _ in range(2 * n):  # two windows: full, and reclaiming as it goes
            stream.add()
    candidates = [
        Candidate(f"add, {name}", stream.add, per_round) for name, stream in streams.items()
    ]
    candidates += [
        Candidate(f"replay, {name}", stream.replay, per_round // 4)
        for name, stream in streams.items()
    ]
    stats = measure(candidates, rounds)
    base = stats["add, old ExpiringSet"].median_ns
    rows = [
        (
            name,
            str(st.calls),
            f"{st.median_ns / 1e3:.2f}",
            f"{st.p10_ns / 1e3:.2f}",
            f"{st.p90_ns / 1e3:.2f}",
            f"{st.median_ns / base:.2f}x",
        )
        for name, st in stats.items()
    ]
    headers = ("candidate", "calls", "median us", "p10 us", "p90 us", "x old add")
    print(table(headers, rows, f"one replay-store add, {n:,} live jtis, steady state"))
    print()
    return {name: _summary(st, base) for name, st in stats.items()}


def growth(n: int) -> dict[str, Any]:
    """``n`` new jtis into empty stores, each add timed on its own, in alternating chunks."""
    samples: dict[str, list[int]] = {"old ExpiringSet": [], "compact index": []}
    streams = {name: _Stream(1e9, old=name.startswith("old")) for name in samples}
    clock, chunk = time.perf_counter_ns, 10_000
    for _ in range(0, n, chunk):
        for name, stream in streams.items():
            out, add = samples[name], stream.add
            for _ in range(chunk):
                started = clock()
                add()
                out.append(clock() - started)
    result: dict[str, Any] = {}
    for name, values in samples.items():
        values.sort()
        result[name] = {
            "mean_us": sum(values) / len(values) / 1e3,
            "p999_us": values[len(values) * 999 // 1000] / 1e3,
            "max_ms": values[-1] / 1e6,
        }
    old, new = result["old ExpiringSet"], result["compact index"]
    print(
        f"growth, {n:,} new jtis into an empty store: old {old['mean_us']:.2f} us/add "
        f"(worst {old['max_ms']:.1f} ms), compact {new['mean_us']:.2f} us/add, growing shards "
        f"included (p99.9 {new['p999_us']:.0f} us, worst {new['max_ms']:.1f} ms: one shard)"
    )
    print()
    return result


def _summary(st: Stats, base_ns: float) -> dict[str, float]:
    return {
        "median_us": st.median_ns / 1e3,
        "p90_us": st.p90_ns / 1e3,
        "calls": st.calls,
        "ratio_vs_old_add": st.median_ns / base_ns,
    }
