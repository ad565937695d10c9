"""The servers under test, each a child process on 127.0.0.1 (pinned when CPUs are given)."""

from __future__ import annotations

import contextlib
import json
import os
import select
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import pkjwt
from pkjwt.keys import Key

from .assertions import BODY_PREFIX, CLIENT_ID, Assertions
from .interpreter import REPO, Interpreter

PKJWT = "pkjwt-sqlite"
PKJWT_MEMORY = "pkjwt-memory"
PKJWT_REDIS = "pkjwt-redis"
#: pkjwt-sqlite without its metrics (``--no-metrics``), and without metrics or the inspector
PKJWT_NO_METRICS = "pkjwt-nometrics"
PKJWT_BARE = "pkjwt-bare"
OIDC = "oidc-provider"
SERVERS = (PKJWT, PKJWT_MEMORY, OIDC)
#: what --servers may name: the default three, the Redis replay store (needs redis-server),
#: and pkjwt-sqlite with its observability switched off (``benchmarks.bench_metrics``)
KNOWN_SERVERS = (*SERVERS, PKJWT_REDIS, PKJWT_NO_METRICS, PKJWT_BARE)

NODE_SCRIPT = REPO / "benchmarks" / "node" / "provider_bench.mjs"
NODE_MODULES = REPO / "tests" / "interop" / "node" / "node_modules"
NODEPEERS = REPO / "tests" / "interop" / "nodepeers.py"
STARTUP_TIMEOUT = 60.0


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
        options: Sequence[str] = (),
    ) -> None:
        shown = f" {' '.join(options)}" if options else ""
        super().__init__(
            name,
            f"pkjwt serve{shown}, profile rfc7523bis (all rules), opaque, replay_store "
            f"{replay_store}; {python.label}",
            workdir,
            cpus,
        )
        self.replay_store = replay_store
        self.python = python
        self.options = tuple(options)

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
        cmd = [self.python.path, "-m", "pkjwt", "serve", "--config", str(cfg)]
        cmd += ["--port", str(self.port), "--log-level", "warning", *self.options]
        self._spawn(cmd)
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited at startup:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(self.issuer + "/health", timeout=1) as resp:
                    if resp.status == 200:
                        return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"{self.name} did not answer /health in {STARTUP_TIMEOUT:g} s")


def start_redis(
    data: Path, cpus: Sequence[int] | None, *, durable: bool = True
) -> tuple[subprocess.Popen[bytes], str]:
    """A redis-server of the benchmark's own on a free loopback port (``durable``: an
    append-only file synced every second), once it answers PING: its process and URL."""
    exe = shutil.which("redis-server")
    if exe is None:
        raise RuntimeError("redis-server is not installed (apt-get install redis-server)")
    port = free_port()
    data.mkdir(parents=True, exist_ok=True)
    persistence = ["--appendonly", "yes", "--appendfsync", "everysec"] if durable else []
    proc = subprocess.Popen(
        _pinned(
            [exe, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(data), "--save", "",
             *persistence],
            cpus,
        ),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5) as conn:
                conn.sendall(b"PING\r\n")
                if conn.recv(16).startswith(b"+PONG"):
                    return proc, f"redis://127.0.0.1:{port}/0"
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError("redis-server did not answer PING")


class PkjwtRedisServer(PkjwtServer):
    """``pkjwt serve`` on a Redis replay store: a redis-server of its own on a free loopback
    port, on the server's CPU (its work is the replay check, as SQLite's is in-process), with
    an append-only file synced every second (Redis's durable setting, as the SQLite store's
    write-behind is SQLite's)."""

    def __init__(self, workdir: Path, cpus: Sequence[int] | None, python: Interpreter) -> None:
        super().__init__(PKJWT_REDIS, "redis://", workdir, cpus, python)
        self.note = self.note.replace(
            "replay_store redis://", "replay_store redis:// (AOF, fsync every second)"
        )
        self.redis: subprocess.Popen[bytes] | None = None

    def start(self, client_jwks: dict[str, Any]) -> None:
        self.redis, self.replay_store = start_redis(self.workdir / "redis", self.cpus)
        super().start(client_jwks)

    def stop(self) -> None:
        super().stop()
        if self.redis is not None and self.redis.poll() is None:
            self.redis.terminate()
            self.redis.wait(timeout=10)


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


def node_versions() -> dict[str, str]:
    """oidc-provider's and node's versions, where they can be read."""
    out: dict[str, str] = {}
    with contextlib.suppress(OSError, ValueError, KeyError):
        pkg = json.loads((NODE_MODULES / "oidc-provider" / "package.json").read_text("utf-8"))
        out["oidc-provider"] = pkg["version"]
    node = shutil.which("node")
    if node:
        proc = subprocess.run([node, "--version"], capture_output=True, text=True, check=False)
        out["node"] = proc.stdout.strip()
    return out


def make_servers(
    names: Sequence[str], workdir: Path, cpus: Sequence[int] | None, python: Interpreter
) -> list[Server]:
    servers: list[Server] = []
    for name in names:
        if name == PKJWT:
            servers.append(PkjwtServer(PKJWT, "sqlite:///", workdir, cpus, python))
        elif name == PKJWT_MEMORY:
            servers.append(PkjwtServer(PKJWT_MEMORY, "memory://", workdir, cpus, python))
        elif name == PKJWT_NO_METRICS:
            servers.append(PkjwtServer(name, "sqlite:///", workdir, cpus, python, ["--no-metrics"]))
        elif name == PKJWT_BARE:
            options = ["--no-metrics", "--no-inspector"]
            servers.append(PkjwtServer(name, "sqlite:///", workdir, cpus, python, options))
        elif name == PKJWT_REDIS:
            servers.append(PkjwtRedisServer(workdir, cpus, python))
        elif name == OIDC:
            servers.append(NodeProvider(workdir, cpus))
        else:
            raise ValueError(f"unknown server {name!r}")
    return servers


@contextlib.contextmanager
def running(servers: list[Server]) -> Iterator[list[Server]]:
    """Stops every server on the way out (those not started are skipped)."""
    try:
        yield servers
    finally:
        for s in servers:
            s.stop()


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
