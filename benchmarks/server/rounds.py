"""One round against one server: wait for a quiet machine, sign a pool of fresh assertions,
a wrk warmup, another pool, the timed wrk run (with its CPU use measured); repeated while the
run was contended or its pool ran dry."""

from __future__ import annotations

import gc
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pkjwt.keys import Key

from ..loadgen import LoadResult, run_wrk
from .assertions import Assertions
from .cpu import CpuMeter, machine_busy_pct, wait_quiet
from .processes import Server

CONNECTIONS = 32
WRK_THREADS = 1
#: first guess of the fastest server's rate, to size the warmup pools (a warmup that runs dry
#: only repeats assertions, which is harmless there); timed pools are sized from the rates seen
RATE_GUESS = 5000.0
#: a run during which other processes took more than this % of the server's CPU is contended
CONTENDED_PCT = 10.0


@dataclass(frozen=True, slots=True)
class Mode:
    rounds: int
    duration: int
    warmup: int
    #: seconds to wait at most, before each warmup, for a quiet machine (0: do not wait)
    wait_quiet: float = 0.0
    #: times a contended run is repeated (the least contended attempt is kept)
    retries: int = 0


FULL = Mode(rounds=5, duration=10, warmup=5, wait_quiet=30.0, retries=2)
#: a smoke run: Node's JIT is not fully warm after 3 s, so quick ratios are indicative only
QUICK = Mode(rounds=1, duration=3, warmup=3)


@dataclass
class RoundResult:
    server: str
    round: int
    warmup: LoadResult
    run: LoadResult
    pool_seconds: float
    #: CPU the server process (all its threads) and wrk used during the timed run, in % of
    #: one CPU: well under 100 % for the server means it was starved (or waiting), not busy
    server_cpu_pct: float | None = None
    wrk_cpu_pct: float | None = None
    loadavg: tuple[float, float] | None = None
    #: % of the server's CPU used by other processes (and the hypervisor) during the run:
    #: more than a few % means the machine was not quiet and the server was starved
    others_on_server_cpu_pct: float | None = None
    #: % of the machine busy (other processes) just before the warmup, and how long we
    #: waited for it to become quiet
    busy_before_pct: float | None = None
    waited_s: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "server": self.server,
            "round": self.round,
            "pool_signing_s": self.pool_seconds,
            "server_cpu_pct": self.server_cpu_pct,
            "wrk_cpu_pct": self.wrk_cpu_pct,
            "loadavg_1min_before_after": self.loadavg,
            "others_on_server_cpu_pct": self.others_on_server_cpu_pct,
            "machine_busy_before_pct": self.busy_before_pct,
            "waited_for_quiet_s": self.waited_s,
            "warmup": self.warmup.as_dict(),
            "run": self.run.as_dict(),
        }


def contention(r: RoundResult) -> float:
    return r.others_on_server_cpu_pct or 0.0


def _worse(a: RoundResult, b: RoundResult) -> bool:
    """Whether run ``a`` is less trustworthy than ``b`` (ran dry, or more contended)."""
    if bool(a.run.exhausted) != bool(b.run.exhausted):
        return bool(a.run.exhausted)
    return contention(a) > contention(b)


def _pool_size(rate: float, seconds: float) -> int:
    return math.ceil(rate * seconds * 1.6) + 2000


def _wrk(server: Server, bodies: Path, seconds: int, cpus: Sequence[int] | None) -> LoadResult:
    return run_wrk(
        server.token_url,
        bodies,
        duration=seconds,
        connections=CONNECTIONS,
        threads=WRK_THREADS,
        cpus=cpus,
    )


class Rounds:
    """Runs rounds against the servers with one key, mode and CPU placement; remembers the
    fastest rate seen (it sizes the pools of later runs) and the runs it did not keep."""

    def __init__(self, key: Key, mode: Mode, workdir: Path, wrk_cpus: Sequence[int] | None) -> None:
        self.key = key
        self.mode = mode
        self.workdir = workdir
        self.wrk_cpus = wrk_cpus
        self.rate = 0.0
        self.discarded: list[RoundResult] = []

    def one(self, server: Server, round_no: int) -> RoundResult:
        mode, observed, workdir, wrk_cpus = self.mode, self.rate, self.workdir, self.wrk_cpus
        busy_before, waited = (
            wait_quiet(mode.wait_quiet) if mode.wait_quiet > 0 else (machine_busy_pct(0.5), 0.0)
        )
        gen = Assertions(self.key, server.issuer)
        warm_path = workdir / f"{server.name}-warm.txt"
        gen.write_pool(warm_path, _pool_size(max(observed, RATE_GUESS), mode.warmup))
        gc.collect()
        warm = _wrk(server, warm_path, mode.warmup, wrk_cpus)
        # size the timed pool from the fastest rate seen so far (all requests if it ran dry)
        rate = warm.requests / warm.duration_s if warm.exhausted else warm.tokens_per_s
        rate = max(rate, observed, 500.0)
        run_path = workdir / f"{server.name}-run.txt"
        pool_s = gen.write_pool(run_path, _pool_size(rate, mode.duration))
        gc.collect()
        meter = CpuMeter(server.pid, server.cpus[0] if server.cpus else None)
        meter.start()
        result = _wrk(server, run_path, mode.duration, wrk_cpus)
        cpu = meter.stop(result.duration_s)
        warm_path.unlink(missing_ok=True)
        run_path.unlink(missing_ok=True)
        if server.proc is not None and server.proc.poll() is not None:
            raise RuntimeError(f"{server.name} died during the run:\n{server.log_tail()}")
        self.rate = max(self.rate, rate, result.tokens_per_s)
        return RoundResult(
            server.name,
            round_no,
            warm,
            result,
            pool_s,
            cpu.server_pct,
            cpu.wrk_pct,
            cpu.loadavg,
            cpu.others_pct,
            busy_before,
            waited,
        )

    def best(self, server: Server, round_no: int) -> RoundResult:
        """:meth:`one`, run again (up to ``mode.retries`` times) while it was contended or its
        pool ran dry; returns the most trustworthy attempt (the others go to ``discarded``)."""
        mode = self.mode
        best: RoundResult | None = None
        for attempt in range(1 + mode.retries):
            result = self.one(server, round_no)
            run_ = result.run
            others = result.others_on_server_cpu_pct
            print(
                f"   round {round_no}/{mode.rounds} {server.name.ljust(13)} "
                f"{run_.tokens_per_s:8,.0f} tokens/s  p50 {run_.p50_ms:6.2f} ms  "
                f"p99 {run_.p99_ms:6.2f} ms  errors {run_.errors}"
                + (f"  POOL RAN DRY x{run_.exhausted}" if run_.exhausted else "")
                + (f"  (others used {others:.0f}% of its CPU)" if others else "")
            )
            if best is None or _worse(best, result):
                if best is not None:
                    self.discarded.append(best)
                best = result
            else:
                self.discarded.append(result)
            if contention(best) <= CONTENDED_PCT and not best.run.exhausted:
                break
            if attempt < mode.retries:
                why = "its pool ran dry" if best.run.exhausted else "contended"
                print(f"   ... {why}; running {server.name} round {round_no} again")
        assert best is not None
        return best
