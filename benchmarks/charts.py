"""``python -m benchmarks.charts RESULTS.json [--out DIR]``: charts from benchmark results.

Reads the JSON that ``python -m benchmarks --json PATH`` writes (``--charts DIR`` there calls
this at the end of a run) and draws, for the benchmarks the file holds:

* ``latency-across-expiry.svg`` (``client``): p99 request latency in steady state and across
  token expiry, pkjwt and Authlib side by side;
* ``server-throughput.svg`` (``server``, or the server run inside ``fleet``): tokens per
  second and p99 of ``pkjwt serve`` against oidc-provider;
* ``replay-memory.svg`` (``memory``): bytes per remembered jti and per live token, now and
  with the old structures.

Needs matplotlib (the ``docs`` dependency group: ``uv sync --group docs``). The SVGs carry no
date, so the same results draw the same files.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

Chart = Callable[[dict[str, Any], Path], Path | None]


def _pyplot() -> Any:
    try:
        import matplotlib
    except ImportError:
        raise SystemExit(
            "charts need matplotlib: uv sync --frozen --all-extras --group docs"
        ) from None
    matplotlib.use("Agg")
    matplotlib.rcParams.update({"svg.hashsalt": "pkjwt", "font.size": 10})
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, format="svg", metadata={"Date": None})
    _pyplot().close(fig)
    return path


def _source(results: dict[str, Any]) -> str:
    env = results.get("environment", {})
    return f"{results.get('mode', '?')} run, {env.get('timestamp', '?')[:10]}"


def latency(results: dict[str, Any], out: Path) -> Path | None:
    """p99 latency, steady and across expiry (the ``boundary`` requests), per client."""
    data = results["benchmarks"].get("client", {}).get("latency")
    if not data:
        return None
    plt = _pyplot()
    clients = list(data["clients"])
    steady = [data["clients"][c]["groups"]["steady"]["p99_ms"] for c in clients]
    boundary = [data["clients"][c]["groups"]["boundary"]["p99_ms"] for c in clients]
    fig, ax = plt.subplots(figsize=(7, 3.6))
    xs = range(len(clients))
    ax.bar([x - 0.2 for x in xs], steady, 0.4, label="steady state", color="#7a9cc6")
    ax.bar([x + 0.2 for x in xs], boundary, 0.4, label="across token expiry", color="#d9822b")
    for x, value in zip(xs, boundary, strict=True):
        ax.annotate(f"{value:,.0f} ms", (x + 0.2, value), ha="center", va="bottom", fontsize=9)
    ax.set_xticks(list(xs), clients)
    ax.set_yscale("log")
    ax.set_ylabel("p99 request latency (ms, log scale)")
    ax.set_title(f"API requests while tokens expire every 2 s ({_source(results)})")
    ax.legend(loc="upper left")
    return _save(fig, out / "latency-across-expiry.svg")


def _server_run(results: dict[str, Any]) -> dict[str, Any] | None:
    benchmarks = results["benchmarks"]
    if "server" in benchmarks:
        run: dict[str, Any] = benchmarks["server"]
        return run
    inner = benchmarks.get("fleet", {}).get("serve", {}).get("server_benchmark")
    return dict(inner) if inner else None


def server(results: dict[str, Any], out: Path) -> Path | None:
    """Tokens per second and p99 latency of each server under the same load."""
    run = _server_run(results)
    if not run:
        return None
    plt = _pyplot()
    names = [s["name"] for s in run["servers"]]
    rate = [s["tokens_per_s_median"] for s in run["servers"]]
    p99 = [s["p99_ms_median"] for s in run["servers"]]
    colours = ["#d9822b" if n.startswith("pkjwt") else "#7a9cc6" for n in names]
    fig, (left, right) = plt.subplots(1, 2, figsize=(8, 3.4))
    left.barh(names, rate, color=colours)
    left.set_xlabel("tokens per second (median of rounds)")
    right.barh(names, p99, color=colours)
    right.set_xlabel("p99 latency (ms)")
    right.set_yticks(range(len(names)), [""] * len(names))
    for ax, values, fmt in ((left, rate, "{:,.0f}"), (right, p99, "{:.0f} ms")):
        ax.invert_yaxis()
        for y, value in enumerate(values):
            ax.annotate(fmt.format(value), (value, y), va="center", fontsize=9)
        ax.margins(x=0.25)
    fig.suptitle(
        f"Token endpoint, 32 connections, unique ES256 assertions ({_source(results)})",
        fontsize=10,
    )
    return _save(fig, out / "server-throughput.svg")


def memory(results: dict[str, Any], out: Path) -> Path | None:
    """Bytes per remembered jti and per live token: the compact index against the old dict."""
    data = results["benchmarks"].get("memory")
    if not data:
        return None
    plt = _pyplot()
    f = data["figures"]
    labels = ["per remembered jti", "per live opaque token"]
    now = [f["jti_rss_bytes"], f["token_rss_bytes"]]
    before = [f["jti_old_rss_bytes"], f["token_old_rss_bytes"]]
    fig, ax = plt.subplots(figsize=(7, 3.2))
    ys = range(len(labels))
    ax.barh([y + 0.2 for y in ys], before, 0.4, label="before (dict of strings)", color="#7a9cc6")
    ax.barh([y - 0.2 for y in ys], now, 0.4, label="now (compact index)", color="#d9822b")
    for y, value in zip(ys, now, strict=True):
        ax.annotate(f" {value:.0f} B", (value, y - 0.2), va="center", fontsize=9)
    for y, value in zip(ys, before, strict=True):
        ax.annotate(f" {value:.0f} B", (value, y + 0.2), va="center", fontsize=9)
    ax.set_yticks(list(ys), labels)
    ax.invert_yaxis()
    ax.set_xlabel("bytes of RSS")
    ax.margins(x=0.15)
    jtis = data.get("params", {}).get("jtis", 0)
    ax.set_title(f"Replay memory at {jtis / 1e6:.0f} M jtis ({_source(results)})", fontsize=10)
    ax.legend(loc="upper right")
    return _save(fig, out / "replay-memory.svg")


CHARTS: tuple[Chart, ...] = (latency, server, memory)


def write_all(results: dict[str, Any], out: Path) -> list[Path]:
    """Every chart the results have data for, written to ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    return [path for chart in CHARTS if (path := chart(results, out)) is not None]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.charts", description=__doc__)
    parser.add_argument("results", help="a JSON file written by python -m benchmarks --json")
    parser.add_argument("--out", default="docs/images/benchmarks", help="folder for the SVGs")
    args = parser.parse_args(argv)
    results = json.loads(Path(args.results).read_text("utf-8"))
    written = write_all(results, Path(args.out))
    for path in written:
        print(f"wrote {path}")
    if not written:
        print("no benchmark in that file has a chart", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
