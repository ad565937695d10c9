"""Helpers shared by the benchmarks (stdlib only): interleaved timing, tables, versions, JSON.

Candidates are measured *interleaved*: every round runs each candidate's batch in turn
(A, B, C, D, A, B, C, D, ...), with the starting candidate rotated each round, so that machine
noise (frequency scaling, other processes, cache state left by the previous candidate) falls on
all of them alike. Each call is timed on its own with :func:`time.perf_counter_ns`; a
candidate's statistics are taken over all of its per-call samples from every round.

Candidates may have very different costs (a 1.5 ms signature next to a 250 ms PEM parse), so
each one sets its own number of calls per round.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

__all__ = [
    "Candidate",
    "Stats",
    "environment",
    "format_ms",
    "format_table",
    "format_us",
    "measure",
    "percentile",
    "print_verified",
    "print_versions",
    "standalone_main",
    "table",
    "versions",
    "write_json",
]


@dataclass(frozen=True, slots=True)
class Candidate:
    """One thing to time: ``fn`` is called with no arguments, its result is discarded."""

    name: str
    fn: Callable[[], object]
    #: timed calls per round (total calls = per_round * rounds)
    per_round: int
    #: untimed calls before the first round
    warmup: int = 1
    #: one line shown under the table
    note: str = ""


@dataclass(slots=True)
class Stats:
    """Per-call timings of one candidate (nanoseconds)."""

    name: str
    note: str
    samples_ns: list[int] = field(default_factory=list)
    round_medians_ns: list[float] = field(default_factory=list)

    @property
    def calls(self) -> int:
        return len(self.samples_ns)

    @property
    def median_ns(self) -> float:
        return float(statistics.median(self.samples_ns))

    @property
    def p10_ns(self) -> float:
        return percentile(self.samples_ns, 10)

    @property
    def p90_ns(self) -> float:
        return percentile(self.samples_ns, 90)

    def as_dict(self, baseline: Stats | None = None) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name,
            "note": self.note,
            "calls": self.calls,
            "median_ns": self.median_ns,
            "p10_ns": self.p10_ns,
            "p90_ns": self.p90_ns,
            "min_ns": min(self.samples_ns),
            "max_ns": max(self.samples_ns),
            "round_medians_ns": self.round_medians_ns,
        }
        if baseline is not None:
            out["ratio_vs_" + baseline.name] = self.median_ns / baseline.median_ns
        return out


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0..100) with linear interpolation between closest ranks."""
    if not values:
        raise ValueError("percentile of no values")
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100.0
    lo = int(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def measure(
    candidates: Sequence[Candidate],
    rounds: int,
    *,
    disable_gc: bool = True,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Stats]:
    """Time every candidate, interleaved over ``rounds`` rounds.

    Warmup calls run first (untimed). In round ``r`` the candidates run starting from index
    ``r % len(candidates)``; each runs ``per_round`` individually timed calls. The garbage
    collector is paused during timed calls (as :mod:`timeit` does) and run between rounds.
    """
    if rounds < 1:
        raise ValueError("rounds must be >= 1")
    names = [c.name for c in candidates]
    if len(set(names)) != len(names):
        raise ValueError("candidate names must be unique")
    for cand in candidates:
        for _ in range(cand.warmup):
            cand.fn()
    stats = {c.name: Stats(c.name, c.note) for c in candidates}
    clock = time.perf_counter_ns
    n = len(candidates)
    gc_was_enabled = gc.isenabled()
    try:
        for r in range(rounds):
            gc.collect()
            if disable_gc:
                gc.disable()
            for i in range(n):
                cand = candidates[(r + i) % n]
                fn = cand.fn
                batch: list[int] = []
                for _ in range(cand.per_round):
                    t0 = clock()
                    fn()
                    batch.append(clock() - t0)
                st = stats[cand.name]
                st.samples_ns.extend(batch)
                st.round_medians_ns.append(float(statistics.median(batch)))
            if gc_was_enabled:
                gc.enable()
            if progress is not None:
                progress(f"round {r + 1}/{rounds}")
    finally:
        if gc_was_enabled:
            gc.enable()
    return stats


def _table_ms(ns: float) -> str:
    ms = ns / 1e6
    if ms >= 100:
        return f"{ms:.1f}"
    if ms >= 10:
        return f"{ms:.2f}"
    return f"{ms:.3f}"


def format_us(ns: float) -> str:
    """Nanoseconds as microseconds: one decimal below 1,000 us, none above."""
    us = ns / 1e3
    return f"{us:.1f}" if us < 1000 else f"{us:.0f}"


def format_ms(seconds: float) -> str:
    """Seconds as milliseconds: two decimals below 10 ms, one above."""
    ms = seconds * 1e3
    return f"{ms:.2f}" if ms < 10 else f"{ms:.1f}"


def table(headers: Sequence[str], rows: Sequence[Sequence[str]], title: str = "") -> str:
    """A fixed-width table: the first column left-aligned, the others right-aligned."""
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]

    def line(cells: Sequence[str]) -> str:
        first = cells[0].ljust(widths[0])
        rest = (c.rjust(w) for c, w in zip(cells[1:], widths[1:], strict=True))
        return "  ".join((first, *rest))

    out = [title] if title else []
    out.append(line(headers))
    out.append("  ".join("-" * w for w in widths))
    out.extend(line(r) for r in rows)
    return "\n".join(out)


def format_table(stats: Mapping[str, Stats], baseline: str, *, title: str = "") -> str:
    """A fixed-width table (median, p10, p90 per call in ms, and median ratio to ``baseline``)."""
    base = stats[baseline]
    headers = ("candidate", "calls", "median ms", "p10 ms", "p90 ms", f"x {baseline}")
    rows = [
        (
            st.name,
            str(st.calls),
            _table_ms(st.median_ns),
            _table_ms(st.p10_ns),
            _table_ms(st.p90_ns),
            f"{st.median_ns / base.median_ns:.2f}x",
        )
        for st in stats.values()
    ]
    out = [table(headers, rows, title)]
    notes = [(st.name, st.note) for st in stats.values() if st.note]
    if notes:
        out.append("")
        name_w = max(len(n) for n, _ in notes)
        out.extend(f"  {n.ljust(name_w)}  {note}" for n, note in notes)
    return "\n".join(out)


def versions(*dists: str) -> dict[str, str]:
    """The installed version of each distribution ("not installed" when it is not)."""
    out: dict[str, str] = {}
    for dist in dists:
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = "not installed"
    return out


def print_versions(found: Mapping[str, str]) -> None:
    print("   " + ", ".join(f"{k} {v}" for k, v in found.items()))


def print_verified(verification: Mapping[str, str]) -> None:
    """One line per candidate: what its one checked output looked like."""
    width = max(len(n) for n in verification)
    for name, verdict in verification.items():
        print(f"   verified {name.ljust(width)}  {verdict}")


def environment(extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Where the numbers came from (for the JSON output)."""
    env: dict[str, Any] = {
        "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
        "python": sys.version.split()[0],
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
    }
    if extra:
        env.update(extra)
    return env


def write_json(path: str | os.PathLike[str], payload: Mapping[str, Any]) -> Path:
    """Write ``payload`` as indented JSON, creating parent directories."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(payload, indent=2, sort_keys=False) + "\n", encoding="utf-8")
    return target


def standalone_main(
    prog: str,
    doc: str | None,
    name: str,
    run: Callable[..., dict[str, Any]],
    argv: Sequence[str] | None,
    quick_help: str = "fewer iterations (smoke run)",
) -> int:
    """``python -m benchmarks.bench_X [--quick] [--json PATH]`` for a module with ``run(quick)``."""
    parser = argparse.ArgumentParser(prog=prog, description=(doc or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help=quick_help)
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    args = parser.parse_args(argv)
    result = run(quick=args.quick)
    if args.json:
        path = write_json(args.json, {"benchmarks": {name: result}})
        print(f"results written to {path}")
    return 0
