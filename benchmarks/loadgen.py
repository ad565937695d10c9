"""Closed-loop HTTP load generator for the server benchmark: ``wrk`` plus a Lua script.

Why wrk: it is C with LuaJIT, so one wrk thread pinned to one core drives tens of thousands of
keep-alive requests per second, far above what either token server under test manages on the
other core; the generator is never the bottleneck. (A Python generator on one core tops out near
the servers' own rate and would measure itself.) Debian ships it: ``apt-get install wrk``.

Every request must carry a *unique* client assertion (both servers reject a repeated ``jti``),
so the request bodies are written beforehand, one per line, to a file. The Lua script
(:data:`LUA_SCRIPT`) gives thread *i* of *T* the lines ``i, i+T, i+2T, ...``, pre-formats every
request once in ``init`` (so nothing is built per request), and sends each body exactly once.
If a thread runs out it starts again from its first body (those repeats are answered 400,
replay) and counts them as ``exhausted``: a run with ``exhausted > 0`` needs a bigger pool.

Only ``200`` answers count as tokens. The script counts them itself in ``response()``; other
statuses are counted by code. wrk's own latency histogram (microsecond resolution, per request,
from the first byte written to the last byte read) gives the percentiles.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["LUA_SCRIPT", "LoadResult", "WrkMissingError", "run_wrk", "write_bodies", "wrk_version"]

MARKER = "WRKJSON "

LUA_SCRIPT = r"""
-- pkjwt benchmarks: send each pre-built body once (see benchmarks/loadgen.py)
local threads = {}
local nthreads = 0

function setup(thread)
  thread:set("tid", nthreads)
  nthreads = nthreads + 1
  table.insert(threads, thread)
end

function init(args)
  local path = args[1]
  local total_threads = tonumber(args[2])
  local content_type = args[3] or "application/x-www-form-urlencoded"
  pool = {}
  local i = 0
  for line in io.lines(path) do
    if line ~= "" then
      if i % total_threads == tid then
        local headers = {["Content-Type"] = content_type, ["Accept"] = "application/json"}
        pool[#pool + 1] = wrk.format("POST", wrk.path, headers, line)
      end
      i = i + 1
    end
  end
  n = #pool
  idx = 0
  exhausted = 0
  ok = 0
  other = 0
  codes = {}
end

function request()
  idx = idx + 1
  if idx > n then
    idx = 1
    exhausted = exhausted + 1
  elseif exhausted > 0 then
    exhausted = exhausted + 1
  end
  return pool[idx]
end

function response(status, headers, body)
  if status == 200 then
    ok = ok + 1
  else
    other = other + 1
    codes[status] = (codes[status] or 0) + 1
  end
end

local function codes_string(t)
  local parts = {}
  for code, count in pairs(t) do
    parts[#parts + 1] = string.format('"%d":%d', code, count)
  end
  return "{" .. table.concat(parts, ",") .. "}"
end

function done(summary, latency, requests)
  local ok_total, other_total, exhausted_total, pool_total = 0, 0, 0, 0
  local merged = {}
  for _, t in ipairs(threads) do
    ok_total = ok_total + t:get("ok")
    other_total = other_total + t:get("other")
    exhausted_total = exhausted_total + t:get("exhausted")
    pool_total = pool_total + t:get("n")
    for code, count in pairs(t:get("codes")) do
      merged[code] = (merged[code] or 0) + count
    end
  end
  local e = summary.errors
  local pct = {}
  for _, p in ipairs({50, 75, 90, 99, 99.9}) do
    pct[#pct + 1] = string.format('"%s":%d', tostring(p), latency:percentile(p))
  end
  io.write(string.format(
    '%s{"duration_us":%d,"requests":%d,"bytes":%d,"ok":%d,"non200":%d,"status_codes":%s,' ..
    '"exhausted":%d,"pool":%d,"socket_errors":{"connect":%d,"read":%d,"write":%d,' ..
    '"timeout":%d},"wrk_status_errors":%d,"latency_us":{"min":%d,"mean":%f,"max":%d,' ..
    '"stdev":%f,"percentiles":{%s}}}\n',
    "__MARKER__", summary.duration, summary.requests, summary.bytes, ok_total, other_total,
    codes_string(merged), exhausted_total, pool_total, e.connect, e.read, e.write, e.timeout,
    e.status, latency.min, latency.mean, latency.max, latency.stdev, table.concat(pct, ",")))
end
""".replace("__MARKER__", MARKER)


class WrkMissingError(RuntimeError):
    """``wrk`` is not installed."""


@dataclass(slots=True)
class LoadResult:
    """One wrk run, reduced to what the benchmark reports."""

    duration_s: float
    requests: int
    ok: int
    non200: int
    status_codes: dict[str, int]
    socket_errors: dict[str, int]
    exhausted: int
    pool: int
    latency_ms: dict[str, float]
    connections: int
    threads: int
    raw: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def tokens_per_s(self) -> float:
        """200 answers per second of the run."""
        return self.ok / self.duration_s if self.duration_s > 0 else 0.0

    @property
    def errors(self) -> int:
        """Everything that is not a token: non-200 answers plus socket errors."""
        return self.non200 + sum(self.socket_errors.values())

    @property
    def p50_ms(self) -> float:
        return self.latency_ms["p50"]

    @property
    def p99_ms(self) -> float:
        return self.latency_ms["p99"]

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out.pop("raw")
        out["tokens_per_s"] = self.tokens_per_s
        out["errors"] = self.errors
        return out


def wrk_version() -> str:
    exe = shutil.which("wrk")
    if exe is None:
        raise WrkMissingError("wrk is not installed (Debian: apt-get install -y wrk)")
    proc = subprocess.run([exe, "--version"], capture_output=True, text=True, check=False)
    first = (proc.stdout or proc.stderr).strip().splitlines()
    return first[0] if first else "wrk (unknown version)"


def write_bodies(path: str | Path, bodies: Iterable[str]) -> int:
    """Write request bodies one per line (they must not contain newlines); return the count."""
    count = 0
    with open(path, "w", encoding="ascii", newline="\n") as fh:
        for body in bodies:
            if "\n" in body or "\r" in body:
                raise ValueError("a request body contains a newline")
            fh.write(body)
            fh.write("\n")
            count += 1
    return count


def _ms(us: float) -> float:
    return float(us) / 1000.0


def run_wrk(
    url: str,
    bodies_path: str | Path,
    *,
    duration: float,
    connections: int = 32,
    threads: int = 1,
    cpus: Sequence[int] | None = None,
    timeout_s: float = 10.0,
) -> LoadResult:
    """Run wrk against ``url`` for ``duration`` seconds, each body in ``bodies_path`` once.

    ``cpus`` pins wrk (``taskset -c``). Raises :class:`WrkMissingError` without wrk and
    ``RuntimeError`` when wrk fails or prints no result.
    """
    exe = shutil.which("wrk")
    if exe is None:
        raise WrkMissingError("wrk is not installed (Debian: apt-get install -y wrk)")
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as fh:
        fh.write(LUA_SCRIPT)
        script = fh.name
    cmd = [
        exe,
        f"-t{threads}",
        f"-c{connections}",
        f"-d{max(1, round(duration))}s",
        f"--timeout={timeout_s:g}s",
        "-s",
        script,
        url,
        "--",
        str(bodies_path),
        str(threads),
    ]
    if cpus:
        taskset = shutil.which("taskset")
        if taskset is not None:
            cmd = [taskset, "-c", ",".join(str(c) for c in cpus), *cmd]
    try:
        proc = subprocess.run(
            cmd, capture_output=True, text=True, check=False, timeout=duration + 120
        )
    finally:
        Path(script).unlink(missing_ok=True)
    line = next(
        (ln for ln in proc.stdout.splitlines() if ln.startswith(MARKER)),
        None,
    )
    if proc.returncode != 0 or line is None:
        raise RuntimeError(
            f"wrk failed (exit {proc.returncode}):\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}"
        )
    raw: dict[str, Any] = json.loads(line[len(MARKER) :])
    lat = raw["latency_us"]
    pct = lat["percentiles"]
    latency = {
        "min": _ms(lat["min"]),
        "mean": _ms(lat["mean"]),
        "p50": _ms(pct["50"]),
        "p75": _ms(pct["75"]),
        "p90": _ms(pct["90"]),
        "p99": _ms(pct["99"]),
        "p99.9": _ms(pct["99.9"]),
        "max": _ms(lat["max"]),
    }
    return LoadResult(
        duration_s=raw["duration_us"] / 1e6,
        requests=int(raw["requests"]),
        ok=int(raw["ok"]),
        non200=int(raw["non200"]),
        status_codes={str(k): int(v) for k, v in raw["status_codes"].items()},
        socket_errors={k: int(v) for k, v in raw["socket_errors"].items()},
        exhausted=int(raw["exhausted"]),
        pool=int(raw["pool"]),
        latency_ms=latency,
        connections=connections,
        threads=threads,
        raw=raw,
    )
