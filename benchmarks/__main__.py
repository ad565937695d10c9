"""``python -m benchmarks [name ...] [--json PATH] [--charts DIR] [--quick]``.

Runs the ``bench_*`` modules of this package (all of them, or those named: ``assertion`` and
``bench_assertion`` both select ``bench_assertion.py``). A module exposes
``run(quick: bool) -> dict`` (preferred: the results go into the combined JSON) or
``main(argv) -> int``.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .common import environment, write_json

PREFIX = "bench_"


def discover() -> list[str]:
    """Short names (without ``bench_``) of the benchmark modules, sorted."""
    here = [str(Path(__file__).resolve().parent)]
    return sorted(
        m.name.removeprefix(PREFIX)
        for m in pkgutil.iter_modules(here)
        if m.name.startswith(PREFIX) and not m.ispkg
    )


def main(argv: Sequence[str] | None = None) -> int:
    available = discover()
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="pkjwt benchmarks (informational, not CI-gating). "
        f"Available: {', '.join(available) or 'none'}.",
    )
    parser.add_argument("names", nargs="*", metavar="name", help="benchmarks to run (default all)")
    parser.add_argument("--json", metavar="PATH", help="write all results to PATH as JSON")
    parser.add_argument(
        "--charts", metavar="DIR", help="draw charts of the results into DIR (needs matplotlib)"
    )
    parser.add_argument("--quick", action="store_true", help="fewer iterations (smoke run)")
    parser.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    args = parser.parse_args(argv)

    if args.list:
        print("\n".join(available))
        return 0
    selected: list[str] = []
    for raw in args.names or available:
        name = raw.removeprefix(PREFIX).removesuffix(".py")
        if name not in available:
            parser.error(f"unknown benchmark {raw!r}; available: {', '.join(available)}")
        if name not in selected:
            selected.append(name)

    results: dict[str, Any] = {}
    t0 = time.perf_counter()
    for name in selected:
        module = importlib.import_module(f"{__package__}.{PREFIX}{name}")
        run = getattr(module, "run", None)
        if callable(run):
            results[name] = run(quick=args.quick)
        else:
            entry = getattr(module, "main", None)
            if not callable(entry):
                print(f"{PREFIX}{name}: has neither run() nor main(); skipped", file=sys.stderr)
                continue
            code = entry(["--quick"] if args.quick else [])
            results[name] = {"exit_code": code}
    print(f"all benchmarks done in {time.perf_counter() - t0:.1f} s")

    payload = {
        "mode": "quick" if args.quick else "full",
        "environment": environment(),
        "benchmarks": results,
    }
    if args.json:
        print(f"results written to {write_json(args.json, payload)}")
    if args.charts:
        from .charts import write_all

        for path in write_all(payload, Path(args.charts)):
            print(f"chart written to {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
