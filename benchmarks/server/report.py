"""Medians over rounds, the per-round and summary tables, and the targets."""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import Any

from ..common import table
from .processes import OIDC, PKJWT, PKJWT_MEMORY, PKJWT_REDIS
from .rounds import CONTENDED_PCT, RoundResult, contention

TARGET_THROUGHPUT = 1.5
ANCHOR = "oidc-provider ~2,800 tokens/s, p99 65 ms (one Node process, 32 connections)"


@dataclass
class Summary:
    name: str
    note: str
    rounds: list[RoundResult]

    def _median(self, attr: str) -> float:
        return float(statistics.median(getattr(r.run, attr) for r in self.rounds))

    @property
    def tokens_per_s(self) -> float:
        return self._median("tokens_per_s")

    @property
    def p50_ms(self) -> float:
        return self._median("p50_ms")

    @property
    def p99_ms(self) -> float:
        return self._median("p99_ms")

    @property
    def p90_ms(self) -> float:
        return float(statistics.median(r.run.latency_ms["p90"] for r in self.rounds))

    @property
    def max_ms(self) -> float:
        return max(r.run.latency_ms["max"] for r in self.rounds)

    @property
    def errors(self) -> int:
        return sum(r.run.errors for r in self.rounds)

    @property
    def requests(self) -> int:
        return sum(r.run.requests for r in self.rounds)

    @property
    def exhausted(self) -> int:
        return sum(r.run.exhausted for r in self.rounds)

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "note": self.note,
            "tokens_per_s_median": self.tokens_per_s,
            "p50_ms_median": self.p50_ms,
            "p90_ms_median": self.p90_ms,
            "p99_ms_median": self.p99_ms,
            "max_ms": self.max_ms,
            "errors_total": self.errors,
            "requests_total": self.requests,
            "exhausted_total": self.exhausted,
            "rounds": [r.as_dict() for r in self.rounds],
        }


def format_report(summaries: dict[str, Summary], baseline: str | None) -> str:
    base = summaries.get(baseline) if baseline else None
    headers = ["server", "tokens/s", "p50 ms", "p90 ms", "p99 ms", "max ms", "errors", "requests"]
    if base is not None:
        headers += [f"tok/s x {baseline}", f"p99 x {baseline}"]
    rows = []
    for s in summaries.values():
        row = [
            s.name,
            f"{s.tokens_per_s:,.0f}",
            f"{s.p50_ms:.2f}",
            f"{s.p90_ms:.2f}",
            f"{s.p99_ms:.2f}",
            f"{s.max_ms:.1f}",
            str(s.errors),
            f"{s.requests:,}",
        ]
        if base is not None:
            row += [f"{s.tokens_per_s / base.tokens_per_s:.2f}x", f"{s.p99_ms / base.p99_ms:.2f}x"]
        rows.append(row)
    out = [table(headers, rows), ""]
    width = max(len(s.name) for s in summaries.values())
    out.extend(f"  {s.name.ljust(width)}  {s.note}" for s in summaries.values())
    return "\n".join(out)


def format_rounds(summaries: dict[str, Summary]) -> str:
    headers = ["round", "server", "tokens/s", "p50 ms", "p99 ms", "non-200", "sock err", "pool"]
    headers += ["warmup tok/s", "server CPU", "others on it", "wrk CPU", "busy before"]
    rows = []
    every = sorted(
        (r for s in summaries.values() for r in s.rounds), key=lambda r: (r.round, r.server)
    )
    for r in every:
        rows.append(
            [
                str(r.round),
                r.server,
                f"{r.run.tokens_per_s:,.0f}",
                f"{r.run.p50_ms:.2f}",
                f"{r.run.p99_ms:.2f}",
                str(r.run.non200),
                str(sum(r.run.socket_errors.values())),
                f"{r.run.pool:,}" + (f" (ran dry x{r.run.exhausted})" if r.run.exhausted else ""),
                f"{r.warmup.tokens_per_s:,.0f}",
                "-" if r.server_cpu_pct is None else f"{r.server_cpu_pct:.0f}%",
                "-" if r.others_on_server_cpu_pct is None else f"{r.others_on_server_cpu_pct:.0f}%",
                "-" if r.wrk_cpu_pct is None else f"{r.wrk_cpu_pct:.0f}%",
                "-"
                if r.busy_before_pct is None
                else f"{r.busy_before_pct:.0f}%"
                + (f" (waited {r.waited_s:.0f} s)" if r.waited_s >= 1 else ""),
            ]
        )
    return table(headers, rows)


def contended_warning(summaries: dict[str, Summary]) -> str | None:
    """A warning naming the kept runs other processes disturbed (None when there are none)."""
    contended = [
        f"{r.server} round {r.round} ({r.others_on_server_cpu_pct:.0f}%)"
        for s in summaries.values()
        for r in s.rounds
        if contention(r) > CONTENDED_PCT
    ]
    if not contended:
        return None
    return (
        "   WARNING: other processes used the server's CPU during: "
        + ", ".join(contended)
        + "; those figures understate the server"
    )


def _paired_ratios(a: Summary, b: Summary) -> dict[str, list[float]]:
    by_round = {r.round: r for r in b.rounds}
    tput, p99 = [], []
    for r in a.rounds:
        other = by_round.get(r.round)
        if other is None:
            continue
        tput.append(r.run.tokens_per_s / other.run.tokens_per_s)
        p99.append(r.run.p99_ms / other.run.p99_ms)
    return {"throughput": tput, "p99": p99}


def targets(summaries: dict[str, Summary], base: Summary, quick: bool) -> dict[str, Any]:
    """Print each pkjwt server's ratios to oidc-provider (``base``) against the targets."""
    out: dict[str, Any] = {}
    print(f"   anchor (shared/spec/anchors.md): {ANCHOR}")
    print(f"   measured here: {OIDC} {base.tokens_per_s:,.0f} tokens/s, p99 {base.p99_ms:.1f} ms")
    for name in (PKJWT, PKJWT_MEMORY, PKJWT_REDIS):
        if name not in summaries:
            continue
        mine = summaries[name]
        tput = mine.tokens_per_s / base.tokens_per_s
        p99 = mine.p99_ms / base.p99_ms
        paired = _paired_ratios(mine, base)
        clean = mine.errors == 0 and mine.exhausted == 0
        met_tput = tput >= TARGET_THROUGHPUT and clean
        met_p99 = mine.p99_ms < base.p99_ms and clean
        primary = name == PKJWT
        tag = "TARGET" if primary else "info  "
        spread = ""
        if len(paired["throughput"]) > 1:
            spread = (
                f" (per round {min(paired['throughput']):.2f}x..{max(paired['throughput']):.2f}x)"
            )
        caveat = " (quick run: indicative only)" if quick else ""
        print(
            f"{tag} {name} throughput = {tput:.2f}x {OIDC} (target >= "
            f"{TARGET_THROUGHPUT:.1f}x){spread}: {'met' if met_tput else 'NOT MET'}{caveat}"
        )
        print(
            f"{tag} {name} p99 = {mine.p99_ms:.2f} ms vs {base.p99_ms:.2f} ms "
            f"= {p99:.2f}x (target < 1.00x): {'met' if met_p99 else 'NOT MET'}{caveat}"
        )
        if not clean:
            print(
                f"       {name}: {mine.errors} errors, pool ran dry {mine.exhausted}x: "
                "the run does not count"
            )
        out[name] = {
            "throughput_ratio": tput,
            "p99_ratio": p99,
            "paired_throughput_ratios": paired["throughput"],
            "paired_p99_ratios": paired["p99"],
            "meets_throughput_target": met_tput,
            "meets_p99_target": met_p99,
            "primary": primary,
        }
    return out
