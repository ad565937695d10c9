"""What observing ``pkjwt serve`` costs (issue 14): tokens/s with ``/metrics`` collection on vs
off (target: within 5 %), and with the inspector's request log on vs off.

The server benchmark (:mod:`benchmarks.bench_server`: wrk, 32 connections, unique pre-signed
ES256 assertions, every rule on, the SQLite replay store, wrk and the server pinned to their
own CPUs, rounds rotating the starting server) with three ``pkjwt serve`` processes:

* ``pkjwt-sqlite``: as served by default on loopback: metrics on, inspector on (the last 200
  requests kept, each at a bounded size);
* ``pkjwt-nometrics``: the same with ``--no-metrics``;
* ``pkjwt-bare``: ``--no-metrics --no-inspector`` (what ``serve`` did before issue 14).

Reports the ratios of the medians and per round; it never gates.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from typing import Any

from .common import standalone_main
from .server.processes import PKJWT, PKJWT_BARE, PKJWT_NO_METRICS

NAME = "metrics"
TARGET = 0.95


def _ratios(result: dict[str, Any], mine: str, base: str) -> tuple[float, list[float]]:
    by_name = {s["name"]: s for s in result["servers"]}
    a, b = by_name[mine], by_name[base]
    rounds = {r["round"]: r["run"]["tokens_per_s"] for r in b["rounds"]}
    per_round = [
        r["run"]["tokens_per_s"] / rounds[r["round"]] for r in a["rounds"] if r["round"] in rounds
    ]
    return a["tokens_per_s_median"] / b["tokens_per_s_median"], per_round


def run(quick: bool = False) -> dict[str, Any]:
    from . import bench_server

    print(f"== {NAME}: pkjwt serve with /metrics and the inspector on vs off")
    result = bench_server.run(quick=quick, include=(PKJWT, PKJWT_NO_METRICS, PKJWT_BARE))
    if "skipped" in result:
        return {"benchmark": NAME, "skipped": result["skipped"]}
    out: dict[str, Any] = {"benchmark": NAME, "mode": result["mode"], "target": TARGET}
    for label, mine, base in (
        ("metrics on / off", PKJWT, PKJWT_NO_METRICS),
        ("inspector on / off", PKJWT_NO_METRICS, PKJWT_BARE),
        ("both on / both off", PKJWT, PKJWT_BARE),
    ):
        ratio, per_round = _ratios(result, mine, base)
        spread = ""
        if len(per_round) > 1:
            spread = (
                f" (per round {min(per_round):.3f}x..{max(per_round):.3f}x, "
                f"median {statistics.median(per_round):.3f}x)"
            )
        verdict = ""
        if mine == PKJWT and base == PKJWT_NO_METRICS:
            verdict = f"; target >= {TARGET:.2f}x: {'met' if ratio >= TARGET else 'NOT MET'}"
        print(f"   tokens/s, {label} ({mine} / {base}) = {ratio:.3f}x{spread}{verdict}")
        out[label] = {"ratio": ratio, "per_round": per_round}
    print()
    out["server_benchmark"] = result
    return out


def main(argv: Sequence[str] | None = None) -> int:
    return standalone_main("python -m benchmarks.bench_metrics", __doc__, NAME, run, argv)


if __name__ == "__main__":
    raise SystemExit(main())
