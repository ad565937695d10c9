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
import gc
import json
import math
import os
import platform
import resource
import select
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import IO, Any
from urllib.parse import quote

import pkjwt
from pkjwt.keys import Key, generate_key, jwks

from .common import environment, write_json
from .loadgen import LoadResult, WrkMissingError, run_wrk, write_bodies, wrk_version

NAME = "server"
CLIENT_ID = "bench-client-0123456789abcdef"
KID = "bench-es256-1"
CONNECTIONS = 32
WRK_THREADS = 1
ASSERTION_LIFETIME = 300
TARGET_THROUGHPUT = 1.5
PKJWT = "pkjwt-sqlite"
PKJWT_MEMORY = "pkjwt-memory"
OIDC = "oidc-provider"
ANCHOR = "oidc-provider ~2,800 tokens/s, p99 65 ms (one Node process, 32 connections)"

HERE = Path(__file__).resolve().parent
NODE_SCRIPT = HERE / "node" / "provider_bench.mjs"
NODE_MODULES = HERE.parent / "tests" / "interop" / "node" / "node_modules"
NODEPEERS = HERE.parent / "tests" / "interop" / "nodepeers.py"

JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
BODY_PREFIX = (
    "grant_type=client_credentials&client_assertion_type="
    + quote(JWT_BEARER, safe="")
    + "&client_assertion="
)
#: first guess of the fastest server's rate, to size the warmup pools (a warmup that runs dry
#: only repeats assertions, which is harmless there); timed pools are sized from the rates seen
RATE_GUESS = 5000.0
STARTUP_TIMEOUT = 60.0
#: before a timed run, wait for the machine's other processes to use less than this % of it
QUIET_BUSY_PCT = 10.0
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


# -- the interpreter the pkjwt servers run on ----------------------------------------------------
REPO = HERE.parent
VENVS = REPO / ".benchmarks"
_DESCRIBE = (
    "import json, sys, sysconfig; print(json.dumps({'version': sys.version.split()[0], "
    "'executable': sys.executable, 'base': sys.base_prefix, "
    "'configure': sysconfig.get_config_var('CONFIG_ARGS') or ''}))"
)


@dataclass(frozen=True, slots=True)
class Interpreter:
    """A Python that can run ``pkjwt serve`` from this checkout."""

    path: str
    version: str
    base: str
    optimized: bool | None  # built with --enable-optimizations (PGO); None: cannot tell

    @property
    def label(self) -> str:
        build = {True: "PGO build", False: "built without PGO", None: "build flags unknown"}
        return f"CPython {self.version} from {self.base} ({build[self.optimized]})"

    @classmethod
    def describe(cls, path: str) -> Interpreter:
        proc = subprocess.run([path, "-c", _DESCRIBE], capture_output=True, text=True, check=True)
        info = json.loads(proc.stdout)
        configure = info["configure"]
        optimized: bool | None = "--enable-optimizations" in configure
        if (
            not optimized
            and info["base"] in ("/usr", "/usr/local")
            and "--prefix=/usr" in configure
        ):
            optimized = None  # distribution builds (Debian's is PGO+LTO) pass flags elsewhere
        return cls(info["executable"], info["version"], info["base"], optimized)


def _uv() -> list[str]:
    uv = shutil.which("uv")
    return [uv] if uv else [sys.executable, "-m", "uv"]


def server_interpreter(python: str | None) -> Interpreter:
    """This interpreter, or a venv on ``python`` with this checkout installed (made once, with
    uv, under ``.benchmarks/``): the same code, on another CPython build."""
    if python is None:
        return Interpreter.describe(sys.executable)
    given = Interpreter.describe(python)
    venv = VENVS / f"venv-{Path(given.base).name or 'python'}-{given.version}"
    venv_python = venv / "bin" / "python"
    check = (
        subprocess.run(
            [str(venv_python), "-c", "import pkjwt, uvloop, httptools; print(pkjwt.__file__)"],
            capture_output=True,
            text=True,
            check=False,
        )
        if venv_python.exists()
        else None
    )
    if check is None or check.returncode != 0 or not check.stdout.startswith(str(REPO)):
        print(f"   preparing {venv} (uv venv + this checkout, once)...", flush=True)
        subprocess.run([*_uv(), "venv", "-q", "-p", python, str(venv)], check=True)
        subprocess.run(
            [*_uv(), "pip", "install", "-q", "--python", str(venv_python), "-e", str(REPO)],
            check=True,
        )
    return Interpreter.describe(str(venv_python))


# -- servers ---------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _pinned(cmd: list[str], cpus: Sequence[int] | None) -> list[str]:
    taskset = shutil.which("taskset")
    if cpus and taskset:
        return [taskset, "-c", ",".join(map(str, cpus)), *cmd]
    return cmd


def _post(url: str, body: str, timeout: float = 10.0) -> tuple[int, dict[str, Any]]:
    req = urllib.request.Request(
        url,
        data=body.encode("ascii"),
        headers={"Content-Type": "application/x-www-form-urlencoded", "Accept": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, json.loads(resp.read() or b"{}")
    except urllib.error.HTTPError as exc:
        try:
            payload = json.loads(exc.read() or b"{}")
        except ValueError:
            payload = {}
        return exc.code, payload


@dataclass
class Server:
    """One server under test, as a child process on 127.0.0.1."""

    name: str
    note: str
    workdir: Path
    cpus: Sequence[int] | None
    port: int = 0
    issuer: str = ""
    token_url: str = ""
    proc: subprocess.Popen[str] | None = None
    log_path: Path | None = None
    info: dict[str, Any] = field(default_factory=dict)

    def start(self, client_jwks: dict[str, Any]) -> None:
        raise NotImplementedError

    def _spawn(self, cmd: list[str], env: dict[str, str] | None = None) -> None:
        self.log_path = self.workdir / f"{self.name}.log"
        with self.log_path.open("w", encoding="utf-8") as err:
            self.proc = subprocess.Popen(
                _pinned(cmd, self.cpus),
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=err,
                text=True,
                encoding="utf-8",
                cwd=self.workdir,
                env=env,
            )

    def log_tail(self, lines: int = 20) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        text = self.log_path.read_text(encoding="utf-8", errors="replace")
        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        proc = self.proc
        if proc is None:
            return
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        for stream in (proc.stdin, proc.stdout):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None


class PkjwtServer(Server):
    def __init__(
        self,
        name: str,
        replay_store: str,
        workdir: Path,
        cpus: Sequence[int] | None,
        python: Interpreter,
    ) -> None:
        super().__init__(
            name,
            f"pkjwt serve, profile rfc7523bis (all rules), opaque, replay_store {replay_store}; "
            f"{python.label}",
            workdir,
            cpus,
        )
        self.replay_store = replay_store
        self.python = python

    def start(self, client_jwks: dict[str, Any]) -> None:
        self.port = free_port()
        self.issuer = f"http://127.0.0.1:{self.port}"
        self.token_url = self.issuer + "/oauth2/token"
        store = self.replay_store
        if store.startswith("sqlite"):
            store = "sqlite:///" + str(self.workdir / f"{self.name}-replay.sqlite3")
        cfg = self.workdir / f"{self.name}.toml"
        cfg.write_text(
            "\n".join(
                [
                    'profile = "rfc7523bis"',
                    'token_format = "opaque"',
                    f"replay_store = {json.dumps(store)}",
                    "",
                    "[[clients]]",
                    f"client_id = {json.dumps(CLIENT_ID)}",
                    'alg = "ES256"',
                    f"jwks = {json.dumps(json.dumps(client_jwks))}",
                    "",
                ]
            ),
            encoding="utf-8",
        )
        self.info = {"config": cfg.read_text(encoding="utf-8"), "replay_store": store}
        cmd = [self.python.path, "-m", "pkjwt", "serve", "--config", str(cfg)]
        cmd += ["--port", str(self.port), "--log-level", "warning"]
        self._spawn(cmd)
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited at startup:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(self.issuer + "/health", timeout=1) as resp:
                    if resp.status == 200:
                        self.info["health"] = json.loads(resp.read())
                        return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"{self.name} did not answer /health in {STARTUP_TIMEOUT:g} s")


class NodeProvider(Server):
    def __init__(self, workdir: Path, cpus: Sequence[int] | None) -> None:
        super().__init__(
            OIDC,
            "oidc-provider (Node), clientCredentials, opaque, in-memory adapter",
            workdir,
            cpus,
        )

    def start(self, client_jwks: dict[str, Any]) -> None:
        node = shutil.which("node")
        if node is None:
            raise RuntimeError("node is not installed")
        self.port = free_port()
        cfg = self.workdir / "oidc-provider.json"
        cfg.write_text(json.dumps({"client_id": CLIENT_ID, "jwks": client_jwks}), "utf-8")
        env = dict(os.environ, NODE_ENV="production")
        self._spawn([node, str(NODE_SCRIPT), str(cfg), str(self.port), "--watch-stdin"], env)
        assert self.proc is not None
        assert self.proc.stdout is not None
        line = _read_line(self.proc.stdout, STARTUP_TIMEOUT)
        if not line:
            raise RuntimeError(
                f"oidc-provider printed no ready line in {STARTUP_TIMEOUT:g} s "
                f"(exit code {self.proc.poll()}):\n{self.log_tail()}"
            )
        ready = json.loads(line)
        self.issuer = ready["issuer"]
        self.token_url = ready["token_endpoint"]
        self.info = {"ready": ready}


def _read_line(stream: IO[str], timeout: float) -> str | None:
    ready, _, _ = select.select([stream], [], [], timeout)
    if not ready:
        return None
    return stream.readline() or None


def ensure_node_modules() -> str | None:
    """None when oidc-provider can be loaded, else why not (installs it when npm is there)."""
    if shutil.which("node") is None:
        return "node is not installed (apt-get install nodejs npm)"
    if (NODE_MODULES / "oidc-provider" / "package.json").is_file():
        return None
    proc = subprocess.run(
        [sys.executable, str(NODEPEERS), "install"],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        return f"installing the Node fixtures failed: {proc.stderr.strip()[-500:]}"
    return None


# -- assertions ------------------------------------------------------------------------------
class Assertions:
    """Signs unique ES256 assertions for one server (aud = its issuer)."""

    def __init__(self, key: Key, issuer: str) -> None:
        self.factory = pkjwt.AssertionFactory(
            key,
            client_id=CLIENT_ID,
            profile="rfc7523bis",
            issuer=issuer,
            lifetime=ASSERTION_LIFETIME,
        )

    def body(self) -> str:
        return BODY_PREFIX + self.factory.make()

    def write_pool(self, path: Path, count: int) -> float:
        """Write ``count`` fresh bodies; return the seconds it took."""
        t0 = time.perf_counter()
        write_bodies(path, (self.body() for _ in range(count)))
        return time.perf_counter() - t0


def verify(server: Server, key: Key) -> list[str]:
    """One token, then the same assertion again (must be refused: replay store on)."""
    gen = Assertions(key, server.issuer)
    body = gen.body()
    status, payload = _post(server.token_url, body)
    if status != 200 or not payload.get("access_token") or payload.get("token_type") != "Bearer":
        raise RuntimeError(
            f"{server.name}: sanity request got {status} {payload}\n{server.log_tail()}"
        )
    checks = [f"200 token_type=Bearer expires_in={payload.get('expires_in')}"]
    status2, payload2 = _post(server.token_url, body)
    if status2 == 200:
        raise RuntimeError(f"{server.name}: a replayed assertion was accepted")
    checks.append(f"replay -> {status2} {payload2.get('error')}")
    if isinstance(server, PkjwtServer):
        wrong = pkjwt.AssertionFactory(
            key, client_id=CLIENT_ID, profile="legacy", token_url=server.token_url
        ).make()
        status3, payload3 = _post(server.token_url, BODY_PREFIX + wrong)
        if status3 == 200:
            raise RuntimeError(f"{server.name}: aud = token endpoint was accepted (rfc7523bis)")
        checks.append(f"aud=token endpoint -> {status3} {payload3.get('error')}")
    return checks


# -- one run ---------------------------------------------------------------------------------
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


def _proc_cpu_seconds(pid: int | None) -> float | None:
    """utime + stime of a process, all threads (Linux /proc), in seconds."""
    if pid is None:
        return None
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _cpu_ticks(cpu: int | None) -> tuple[int, int, int] | None:
    """(busy, hypervisor steal, total) jiffies of one CPU from /proc/stat."""
    if cpu is None:
        return None
    try:
        for line in Path("/proc/stat").read_text().splitlines():
            if line.startswith(f"cpu{cpu} "):
                v = [int(x) for x in line.split()[1:]]
                idle = v[3] + v[4]
                steal = v[7] if len(v) > 7 else 0
                total = sum(v[:8])
                return total - idle - steal, steal, total
    except (OSError, ValueError):
        return None
    return None


def _machine_busy_pct(sample_s: float = 1.0) -> float:
    """% of all CPUs busy (not idle, not iowait) over ``sample_s``, from /proc/stat."""

    def read() -> tuple[int, int] | None:
        try:
            v = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
        except (OSError, ValueError, IndexError):
            return None
        total = sum(v[:8])
        return total - v[3] - v[4], total

    a = read()
    time.sleep(sample_s)
    b = read()
    if a is None or b is None or b[1] == a[1]:
        return 0.0
    return 100 * (b[0] - a[0]) / (b[1] - a[1])


def wait_quiet(max_wait: float, threshold: float = QUIET_BUSY_PCT) -> tuple[float, float]:
    """Wait (at most ``max_wait`` s) until other processes leave the machine nearly idle.

    Our own servers are idle between runs, so whatever is busy then is someone else (a test
    suite, another benchmark). Returns (busy %, seconds waited).
    """
    t0 = time.monotonic()
    busy = _machine_busy_pct()
    while busy > threshold and time.monotonic() - t0 < max_wait:
        time.sleep(2.0)
        busy = _machine_busy_pct()
    return busy, time.monotonic() - t0


def _children_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _contention(r: RoundResult) -> float:
    return r.others_on_server_cpu_pct or 0.0


def _worse(a: RoundResult, b: RoundResult) -> bool:
    """Whether run ``a`` is less trustworthy than ``b`` (ran dry, or more contended)."""
    if bool(a.run.exhausted) != bool(b.run.exhausted):
        return bool(a.run.exhausted)
    return _contention(a) > _contention(b)


def _pool_size(rate: float, seconds: float) -> int:
    return math.ceil(rate * seconds * 1.6) + 2000


def one_round(
    server: Server,
    key: Key,
    mode: Mode,
    observed: float,
    workdir: Path,
    round_no: int,
    wrk_cpus: Sequence[int] | None,
) -> tuple[RoundResult, float]:
    busy_before, waited = (
        wait_quiet(mode.wait_quiet) if mode.wait_quiet > 0 else (_machine_busy_pct(0.5), 0.0)
    )
    gen = Assertions(key, server.issuer)
    warm_path = workdir / f"{server.name}-warm.txt"
    gen.write_pool(warm_path, _pool_size(max(observed, RATE_GUESS), mode.warmup))
    gc.collect()
    warm = run_wrk(
        server.token_url,
        warm_path,
        duration=mode.warmup,
        connections=CONNECTIONS,
        threads=WRK_THREADS,
        cpus=wrk_cpus,
    )
    # size the timed pool from the fastest rate seen so far (all requests if it ran dry)
    rate = warm.requests / warm.duration_s if warm.exhausted else warm.tokens_per_s
    rate = max(rate, observed, 500.0)
    run_path = workdir / f"{server.name}-run.txt"
    pool_s = gen.write_pool(run_path, _pool_size(rate, mode.duration))
    gc.collect()
    load_before = os.getloadavg()[0]
    server_cpu_no = server.cpus[0] if server.cpus else None
    ticks0 = _cpu_ticks(server_cpu_no)
    server_cpu0 = _proc_cpu_seconds(server.pid)
    wrk_cpu0 = _children_cpu_seconds()
    result = run_wrk(
        server.token_url,
        run_path,
        duration=mode.duration,
        connections=CONNECTIONS,
        threads=WRK_THREADS,
        cpus=wrk_cpus,
    )
    wrk_cpu = 100 * (_children_cpu_seconds() - wrk_cpu0) / result.duration_s
    server_cpu1 = _proc_cpu_seconds(server.pid)
    server_cpu = (
        100 * (server_cpu1 - server_cpu0) / result.duration_s
        if server_cpu0 is not None and server_cpu1 is not None
        else None
    )
    loadavg = (load_before, os.getloadavg()[0])
    ticks1 = _cpu_ticks(server_cpu_no)
    others: float | None = None
    if ticks0 is not None and ticks1 is not None and server_cpu is not None:
        hz = os.sysconf("SC_CLK_TCK")
        busy_pct = 100 * (ticks1[0] - ticks0[0]) / hz / result.duration_s
        steal_pct = 100 * (ticks1[1] - ticks0[1]) / hz / result.duration_s
        # what ran on the server's CPU besides the server, plus what the hypervisor took
        others = max(0.0, busy_pct - server_cpu) + steal_pct
    warm_path.unlink(missing_ok=True)
    run_path.unlink(missing_ok=True)
    if server.proc is not None and server.proc.poll() is not None:
        raise RuntimeError(f"{server.name} died during the run:\n{server.log_tail()}")
    return (
        RoundResult(
            server.name,
            round_no,
            warm,
            result,
            pool_s,
            server_cpu,
            wrk_cpu,
            loadavg,
            others,
            busy_before,
            waited,
        ),
        max(rate, result.tokens_per_s),
    )


# -- report ----------------------------------------------------------------------------------
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


def _table(rows: Sequence[Sequence[str]], headers: Sequence[str]) -> list[str]:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]

    def line(cells: Sequence[str]) -> str:
        first = cells[0].ljust(widths[0])
        rest = (c.rjust(w) for c, w in zip(cells[1:], widths[1:], strict=True))
        return "  ".join((first, *rest))

    return [line(headers), "  ".join("-" * w for w in widths), *(line(r) for r in rows)]


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
    out = _table(rows, headers)
    out.append("")
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
    return "\n".join(_table(rows, headers))


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


def _versions() -> dict[str, str]:
    out: dict[str, str] = {}
    for dist in ("pkjwt", "starlette", "uvicorn", "uvloop", "httptools", "cryptography"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = "not installed"
    with contextlib.suppress(OSError, ValueError, KeyError):
        pkg = json.loads((NODE_MODULES / "oidc-provider" / "package.json").read_text("utf-8"))
        out["oidc-provider"] = pkg["version"]
    node = shutil.which("node")
    if node:
        proc = subprocess.run([node, "--version"], capture_output=True, text=True, check=False)
        out["node"] = proc.stdout.strip()
    with contextlib.suppress(WrkMissingError):
        out["wrk"] = wrk_version()
    return out


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def _placement(pin: bool) -> tuple[list[int] | None, list[int] | None]:
    """(wrk CPUs, server CPUs)."""
    if not pin or shutil.which("taskset") is None:
        return None, None
    try:
        cpus = sorted(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return None, None
    if len(cpus) < 2:
        return None, None
    return [cpus[0]], [cpus[1]]


@contextlib.contextmanager
def _servers(servers: list[Server]) -> Iterator[list[Server]]:
    try:
        yield servers
    finally:
        for s in servers:
            s.stop()


def run(
    quick: bool = False,
    *,
    mode: Mode | None = None,
    pin: bool = True,
    include: Sequence[str] = (PKJWT, PKJWT_MEMORY, OIDC),
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
    versions = _versions()
    print("   " + ", ".join(f"{k} {v}" for k, v in versions.items()))
    interpreter = server_interpreter(python)
    versions["pkjwt server python"] = interpreter.label
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
    wrk_cpus, server_cpus = _placement(pin)
    placement = (
        f"wrk ({WRK_THREADS} thread) on CPU {wrk_cpus[0]}, each server on CPU {server_cpus[0]}"
        if wrk_cpus and server_cpus
        else "not pinned"
    )
    print(f"   {_cpu_model()}, {os.cpu_count()} CPUs; {placement}")

    names = list(include)
    if OIDC in names:
        why = ensure_node_modules()
        if why is not None:
            print(f"   {OIDC} skipped: {why}")
            names.remove(OIDC)

    key = generate_key("ES256", kid=KID)
    client_jwks = jwks([key.public()])
    workdir = Path(tempfile.mkdtemp(prefix="pkjwt-bench-server-"))
    servers: list[Server] = []
    for name in names:
        if name == PKJWT:
            servers.append(PkjwtServer(PKJWT, "sqlite:///", workdir, server_cpus, interpreter))
        elif name == PKJWT_MEMORY:
            servers.append(
                PkjwtServer(PKJWT_MEMORY, "memory://", workdir, server_cpus, interpreter)
            )
        elif name == OIDC:
            servers.append(NodeProvider(workdir, server_cpus))
        else:
            raise ValueError(f"unknown server {name!r}")

    rounds: dict[str, list[RoundResult]] = {s.name: [] for s in servers}
    discarded: list[RoundResult] = []
    verification: dict[str, list[str]] = {}
    t0 = time.perf_counter()
    try:
        with _servers(servers):
            for s in servers:
                s.start(client_jwks)
                verification[s.name] = verify(s, key)
                print(f"   started {s.name.ljust(13)} pid {s.pid} at {s.issuer}: ", end="")
                print("; ".join(verification[s.name]))
            print()
            rate = 0.0
            for r in range(mode.rounds):
                order = servers[r % len(servers) :] + servers[: r % len(servers)]
                for s in order:
                    best: RoundResult | None = None
                    for attempt in range(1 + mode.retries):
                        result, seen = one_round(s, key, mode, rate, workdir, r + 1, wrk_cpus)
                        rate = max(rate, seen)
                        run_ = result.run
                        others = result.others_on_server_cpu_pct
                        print(
                            f"   round {r + 1}/{mode.rounds} {s.name.ljust(13)} "
                            f"{run_.tokens_per_s:8,.0f} tokens/s  p50 {run_.p50_ms:6.2f} ms  "
                            f"p99 {run_.p99_ms:6.2f} ms  errors {run_.errors}"
                            + (f"  POOL RAN DRY x{run_.exhausted}" if run_.exhausted else "")
                            + (f"  (others used {others:.0f}% of its CPU)" if others else "")
                        )
                        if best is None or _worse(best, result):
                            if best is not None:
                                discarded.append(best)
                            best = result
                        else:
                            discarded.append(result)
                        if _contention(best) <= CONTENDED_PCT and not best.run.exhausted:
                            break
                        if attempt < mode.retries:
                            why = "its pool ran dry" if best.run.exhausted else "contended"
                            print(f"   ... {why}; running {s.name} round {r + 1} again")
                    assert best is not None
                    rounds[s.name].append(best)
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
    contended = [
        f"{r.server} round {r.round} ({r.others_on_server_cpu_pct:.0f}%)"
        for s in summaries.values()
        for r in s.rounds
        if _contention(r) > CONTENDED_PCT
    ]
    if contended:
        print(
            "   WARNING: other processes used the server's CPU during: "
            + ", ".join(contended)
            + "; those figures understate the server"
        )
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

    targets: dict[str, Any] = {}
    if baseline is not None:
        base = summaries[baseline]
        print(f"   anchor (shared/spec/anchors.md): {ANCHOR}")
        print(
            f"   measured here: {OIDC} {base.tokens_per_s:,.0f} tokens/s, p99 {base.p99_ms:.1f} ms"
        )
        for name in (PKJWT, PKJWT_MEMORY):
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
                    f" (per round {min(paired['throughput']):.2f}x"
                    f"..{max(paired['throughput']):.2f}x)"
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
            targets[name] = {
                "throughput_ratio": tput,
                "p99_ratio": p99,
                "paired_throughput_ratios": paired["throughput"],
                "paired_p99_ratios": paired["p99"],
                "meets_throughput_target": met_tput,
                "meets_p99_target": met_p99,
                "primary": primary,
            }
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
        "environment": environment({**versions, "cpu": _cpu_model()}),
        "verification": verification,
        "anchor": ANCHOR,
        "servers": [s.as_dict() for s in summaries.values()],
        "discarded_contended_runs": [r.as_dict() for r in discarded],
        "targets": targets,
        "meets_target": bool(
            targets.get(PKJWT, {}).get("meets_throughput_target")
            and targets.get(PKJWT, {}).get("meets_p99_target")
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
        default=",".join((PKJWT, PKJWT_MEMORY, OIDC)),
        help="comma-separated subset of pkjwt-sqlite,pkjwt-memory,oidc-provider",
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
