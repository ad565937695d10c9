"""Token-endpoint load: ``pkjwt serve`` against the npm ``oidc-provider``, same machine, same run.

What is measured: client_credentials token requests authenticated with ``private_key_jwt``,
every request carrying a *unique*, pre-signed ES256 client assertion (so the clients' signing
is not measured, and both servers' replay stores see a new ``jti`` each time). Tokens per
second counts ``200`` answers only; latency is per request, from wrk's histogram.

Servers (one process each, all started before the first round and kept for the whole run):

* ``pkjwt-sqlite``: ``pkjwt serve`` (uvicorn, uvloop/httptools when installed), profile
  ``rfc7523bis`` with every rule on, opaque tokens, the default SQLite replay store (a fresh
  file per run), one client with an inline ES256 JWKS and ``alg = "ES256"``. This is the one
  the targets are about.
* ``pkjwt-memory``: the same with ``replay_store = "memory://"``.
* ``oidc-provider``: ``benchmarks/node/provider_bench.mjs`` (oidc-provider 9.13.3 from
  ``tests/interop/node/node_modules``, ``NODE_ENV=production``): the same client (inline JWKS,
  ``token_endpoint_auth_signing_alg ES256``), clientCredentials on, opaque tokens, the default
  in-memory adapter (which holds its jti replay cache).

Assertions are pkjwt ``AssertionFactory(profile="rfc7523bis", issuer=<that server's issuer>,
lifetime=300)``: ``typ client-authentication+jwt``, ``aud`` = the issuer (pkjwt's strict rule;
oidc-provider accepts the issuer too), a fresh uuid4 ``jti``, ``exp`` = now + 300 s. They are
signed right before each run, so they stay valid throughout it.

Load: wrk (see :mod:`benchmarks.loadgen`), 1 thread, 32 keep-alive connections, closed loop.
With two or more CPUs, wrk is pinned to one CPU and the server under test to another
(``taskset``), identically for every server. Each round runs every server in turn (a 5 s
warmup, then the 10 s timed run; quick mode: 3 s and 3 s), with the starting server rotated
per round; the table shows the median over rounds of each figure (full mode: 5 rounds).

The machine may be shared (other test suites, other benchmarks). Before each warmup the
benchmark waits (up to 30 s) for the other processes to go quiet, and it measures, per run,
how much of the server's CPU the server itself got and how much went to other processes; a
run in which others took more than 10 % of the server's CPU (or whose pool of assertions ran
dry) is repeated up to twice and the cleanest attempt kept. The per-round table shows these
figures, so a disturbed number can be recognised.

Targets (from the issue): pkjwt-sqlite at least 1.5x oidc-provider's tokens/s, and a lower p99.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pkjwt.keys import generate_key, jwks

from .common import environment, print_versions, versions, write_json
from .loadgen import WrkMissingError, wrk_version
from .server.assertions import ASSERTION_LIFETIME, KID
from .server.cpu import cpu_model, placement
from .server.interpreter import server_interpreter
from .server.processes import (
    KNOWN_SERVERS,
    OIDC,
    PKJWT,
    SERVERS,
    NodeProvider,
    ensure_node_modules,
    make_servers,
    node_versions,
    running,
    verify,
)
from .server.report import (
    ANCHOR,
    TARGET_THROUGHPUT,
    Summary,
    contended_warning,
    format_report,
    format_rounds,
    targets,
)
from .server.rounds import CONNECTIONS, FULL, QUICK, WRK_THREADS, Mode, RoundResult, Rounds

NAME = "server"


def _versions() -> dict[str, str]:
    out = versions("pkjwt", "starlette", "uvicorn", "uvloop", "httptools", "cryptography")
    out.update(node_versions())
    with contextlib.suppress(WrkMissingError):
        out["wrk"] = wrk_version()
    return out


def run(
    quick: bool = False,
    *,
    mode: Mode | None = None,
    pin: bool = True,
    include: Sequence[str] = SERVERS,
    python: str | None = None,
) -> dict[str, Any]:
    """Run the benchmark, print its tables, return a JSON-serialisable result."""
    mode = mode or (QUICK if quick else FULL)
    label = "quick" if quick else "full"
    print(
        f"== {NAME}: token endpoint under load, unique pre-signed ES256 assertions "
        f"({label} mode: {mode.rounds} round(s) x {mode.duration} s per server, "
        f"{mode.warmup} s warmup, {CONNECTIONS} connections)"
    )
    found = _versions()
    print_versions(found)
    interpreter = server_interpreter(python)
    found["pkjwt server python"] = interpreter.label
    print(f"   pkjwt servers run on {interpreter.label}: {interpreter.path}")
    if interpreter.optimized is False:
        print(
            "   note: this CPython was built without --enable-optimizations (pyenv's default);"
            " distribution and Docker builds run pure-Python code faster. "
            "--server-python /usr/bin/python3 measures the same code on such a build."
        )
    try:
        wrk_version()
    except WrkMissingError as exc:
        print(f"   skipped: {exc}")
        print()
        return {"benchmark": NAME, "mode": label, "skipped": str(exc)}
    wrk_cpus, server_cpus = placement(pin)
    where = (
        f"wrk ({WRK_THREADS} thread) on CPU {wrk_cpus[0]}, each server on CPU {server_cpus[0]}"
        if wrk_cpus and server_cpus
        else "not pinned"
    )
    print(f"   {cpu_model()}, {os.cpu_count()} CPUs; {where}")

    names = list(include)
    if OIDC in names:
        why = ensure_node_modules()
        if why is not None:
            print(f"   {OIDC} skipped: {why}")
            names.remove(OIDC)

    key = generate_key("ES256", kid=KID)
    client_jwks = jwks([key.public()])
    workdir = Path(tempfile.mkdtemp(prefix="pkjwt-bench-server-"))
    servers = make_servers(names, workdir, server_cpus, interpreter)

    rounds: dict[str, list[RoundResult]] = {s.name: [] for s in servers}
    runner = Rounds(key, mode, workdir, wrk_cpus)
    verification: dict[str, list[str]] = {}
    t0 = time.perf_counter()
    try:
        with running(servers):
            for s in servers:
                s.start(client_jwks)
                verification[s.name] = verify(s, key)
                print(f"   started {s.name.ljust(13)} pid {s.pid} at {s.issuer}: ", end="")
                print("; ".join(verification[s.name]))
            print()
            for r in range(mode.rounds):
                order = servers[r % len(servers) :] + servers[: r % len(servers)]
                for s in order:
                    rounds[s.name].append(runner.best(s, r + 1))
            rejected = {
                s.name: [ln for ln in s.log_tail(50).splitlines() if ln.startswith("rejected")]
                for s in servers
                if isinstance(s, NodeProvider)
            }
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    elapsed = time.perf_counter() - t0

    summaries = {s.name: Summary(s.name, s.note, rounds[s.name]) for s in servers if rounds[s.name]}
    baseline = OIDC if OIDC in summaries else None
    print()
    print(format_rounds(summaries))
    warning = contended_warning(summaries)
    if warning:
        print(warning)
    print()
    print(
        f"median over {mode.rounds} round(s) of {mode.duration} s; tokens/s = 200 answers only; "
        "errors = non-200 + socket errors"
    )
    print(format_report(summaries, baseline))
    print()
    for name, lines in rejected.items():
        for ln in lines:
            print(f"   {name} stderr: {ln}")

    met: dict[str, Any] = {}
    if baseline is not None:
        met = targets(summaries, summaries[baseline], quick)
    print(f"   benchmark took {elapsed:.0f} s")
    print()

    return {
        "benchmark": NAME,
        "mode": label,
        "params": {
            "rounds": mode.rounds,
            "duration_s": mode.duration,
            "warmup_s": mode.warmup,
            "connections": CONNECTIONS,
            "wrk_threads": WRK_THREADS,
            "wrk_cpus": wrk_cpus,
            "server_cpus": server_cpus,
            "assertion": "ES256, rfc7523bis (typ client-authentication+jwt, aud = issuer), "
            f"unique jti, lifetime {ASSERTION_LIFETIME} s",
            "target_throughput_ratio": TARGET_THROUGHPUT,
        },
        "environment": environment({**found, "cpu": cpu_model()}),
        "verification": verification,
        "anchor": ANCHOR,
        "servers": [s.as_dict() for s in summaries.values()],
        "discarded_contended_runs": [r.as_dict() for r in runner.discarded],
        "targets": met,
        "meets_target": bool(
            met.get(PKJWT, {}).get("meets_throughput_target")
            and met.get(PKJWT, {}).get("meets_p99_target")
        ),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.bench_server", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--quick", action="store_true", help="1 round of 3 s (smoke run)")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    parser.add_argument("--rounds", type=int, help="rounds (default 5; quick 1)")
    parser.add_argument("--duration", type=int, help="seconds per timed run (default 10)")
    parser.add_argument("--warmup", type=int, help="seconds of warmup per run (default 5)")
    parser.add_argument("--no-pin", action="store_true", help="do not pin wrk and the servers")
    parser.add_argument(
        "--retries",
        type=int,
        help="repeat a run disturbed by other processes up to N times (default 2 full, 0 quick)",
    )
    parser.add_argument(
        "--wait-quiet",
        type=float,
        help="before each run wait up to S seconds for other processes to go idle "
        "(default 90 full, 0 quick)",
    )
    parser.add_argument(
        "--servers",
        default=",".join(SERVERS),
        help=f"comma-separated, from {','.join(KNOWN_SERVERS)} (pkjwt-redis needs redis-server)",
    )
    parser.add_argument(
        "--server-python",
        metavar="PATH",
        help="run the pkjwt servers on this CPython (a venv with this checkout is made under "
        ".benchmarks/ once); default: the interpreter running the benchmark",
    )
    args = parser.parse_args(argv)
    base = QUICK if args.quick else FULL
    mode = Mode(
        rounds=args.rounds or base.rounds,
        duration=args.duration or base.duration,
        warmup=args.warmup or base.warmup,
        wait_quiet=base.wait_quiet if args.wait_quiet is None else args.wait_quiet,
        retries=base.retries if args.retries is None else args.retries,
    )
    include = [s.strip() for s in args.servers.split(",") if s.strip()]
    result = run(
        quick=args.quick, mode=mode, pin=not args.no_pin, include=include, python=args.server_python
    )
    if args.json:
        path = write_json(args.json, {"benchmarks": {NAME: result}})
        print(f"results written to {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
