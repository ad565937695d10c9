"""Launchers for the Node.js interop peers in ``tests/interop/node``.

* ``provider.mjs`` -- a real ``oidc-provider`` authorization server (the
  server side pkjwt talks to).
* ``client.mjs`` -- ``openid-client`` obtaining a client-credentials token with
  ``private_key_jwt`` (a client pkjwt did not write, for testing servers).

Standard library only. All traffic stays on 127.0.0.1.
"""

from __future__ import annotations

import contextlib
import http.server
import json
import os
import queue
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

__all__ = [
    "NODE_DIR",
    "NodePeerError",
    "ensure_node_modules",
    "node_available",
    "run_oidc_provider",
    "run_openid_client",
    "serve_static_jwks",
]

NODE_DIR: Path = Path(__file__).resolve().parent / "node"

STARTUP_TIMEOUT = 30.0
STOP_TIMEOUT = 5.0
CLIENT_TIMEOUT = 60.0
NPM_TIMEOUT = 600.0

_install_lock = threading.Lock()


class NodePeerError(RuntimeError):
    """A Node.js interop peer could not be installed, started or run."""


def node_available() -> bool:
    """Return True when both ``node`` and ``npm`` are on PATH."""
    return shutil.which("node") is not None and shutil.which("npm") is not None


def _require(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        raise NodePeerError(
            f"{tool!r} was not found on PATH; the Node.js interop fixtures need "
            "Node.js >= 20.19 with npm (e.g. `apt-get install nodejs npm`)"
        )
    return path


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    """Serialise installs across processes (e.g. pytest-xdist workers)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - non-POSIX
        yield
        return
    with path.open("a") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def _installed_ok() -> bool:
    """True when every dependency pinned in package.json is installed as pinned."""
    try:
        manifest = json.loads((NODE_DIR / "package.json").read_text(encoding="utf-8"))
        for name, version in manifest.get("dependencies", {}).items():
            installed = NODE_DIR / "node_modules" / name / "package.json"
            if json.loads(installed.read_text(encoding="utf-8")).get("version") != version:
                return False
    except (OSError, ValueError):
        return False
    return True


def ensure_node_modules() -> None:
    """Install the Node dependencies into ``NODE_DIR/node_modules`` if needed.

    Needed means node_modules is missing or a dependency pinned in
    package.json is absent or at another version.

    Runs ``npm ci`` when ``package-lock.json`` exists, ``npm install``
    otherwise. Raises :class:`NodePeerError` if node/npm are missing or the
    install fails.
    """
    _require("node")
    npm = _require("npm")
    if _installed_ok():
        return
    lock_path = Path(tempfile.gettempdir()) / "pkjwt-interop-npm.lock"
    with _install_lock, _file_lock(lock_path):
        if _installed_ok():
            return
        verb = "ci" if (NODE_DIR / "package-lock.json").is_file() else "install"
        cmd = [npm, verb, "--no-audit", "--no-fund", "--loglevel=error"]
        try:
            proc = subprocess.run(
                cmd,
                cwd=NODE_DIR,
                capture_output=True,
                text=True,
                timeout=NPM_TIMEOUT,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise NodePeerError(f"`npm {verb}` in {NODE_DIR} timed out") from exc
        if proc.returncode != 0:
            raise NodePeerError(
                f"`npm {verb}` in {NODE_DIR} failed with exit code "
                f"{proc.returncode}:\n{proc.stdout}\n{proc.stderr}"
            )


def _write_json_temp(data: dict[str, Any], prefix: str) -> Path:
    fd, name = tempfile.mkstemp(prefix=prefix, suffix=".json")
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(data, fh)
    return Path(name)


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""


def _pump_stdout(stream: IO[str], lines: queue.Queue[str | None]) -> None:
    """Forward the first line, then keep draining so the pipe never fills."""
    first = True
    for line in stream:
        if first:
            lines.put(line)
            first = False
    if first:
        lines.put(None)


@contextlib.contextmanager
def run_oidc_provider(
    clients: list[dict[str, Any]],
    token_format: str = "opaque",
    *,
    resource: str | None = None,
    dpop: dict[str, Any] | None = None,
    startup_timeout: float = STARTUP_TIMEOUT,
) -> Iterator[dict[str, Any]]:
    """Run ``provider.mjs`` (oidc-provider) for the duration of the block.

    ``clients`` items are oidc-provider client metadata: ``client_id`` plus
    ``jwks`` (public JWKS) or ``jwks_uri``; optionally
    ``token_endpoint_auth_signing_alg`` and ``scope`` (space-separated).
    ``dpop`` (e.g. ``{"require_nonce": True}``) turns on DPoP with server nonces
    (oidc-provider has DPoP on without nonces by default).

    Yields the ready line as a dict -- ``issuer``, ``token_endpoint``,
    ``jwks_uri`` -- plus ``stderr_path``: the provider's log file, which has
    one line per rejected token request with oidc-provider's internal
    ``error_detail`` (e.g. why a client assertion was refused). The log file
    is deleted when the block exits.

    The provider is stopped (SIGTERM, SIGKILL after 5 s) when the block exits;
    it also exits by itself if this process dies (it watches its stdin).
    """
    if token_format not in ("opaque", "jwt"):
        raise ValueError(f"token_format must be 'opaque' or 'jwt', got {token_format!r}")
    ensure_node_modules()
    node = _require("node")

    config: dict[str, Any] = {"clients": clients, "token_format": token_format}
    if resource is not None:
        config["resource"] = resource
    if dpop is not None:
        config["dpop"] = dpop
    cfg_path = _write_json_temp(config, "pkjwt-provider-")
    fd, err_name = tempfile.mkstemp(prefix="pkjwt-provider-", suffix=".log")
    os.close(fd)
    err_path = Path(err_name)

    with err_path.open("w", encoding="utf-8") as err_fh:
        proc = subprocess.Popen(
            [node, "provider.mjs", str(cfg_path), "--watch-stdin"],
            cwd=NODE_DIR,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=err_fh,
            text=True,
            encoding="utf-8",
        )
    pump: threading.Thread | None = None
    try:
        assert proc.stdout is not None
        lines: queue.Queue[str | None] = queue.Queue()
        pump = threading.Thread(target=_pump_stdout, args=(proc.stdout, lines), daemon=True)
        pump.start()
        try:
            line = lines.get(timeout=startup_timeout)
        except queue.Empty:
            raise NodePeerError(
                f"provider.mjs did not become ready within {startup_timeout:g} s; "
                f"stderr:\n{_read_text(err_path)}"
            ) from None
        if line is None:
            proc.wait(timeout=STOP_TIMEOUT)
            raise NodePeerError(
                f"provider.mjs exited with code {proc.returncode} before becoming "
                f"ready; stderr:\n{_read_text(err_path)}"
            )
        try:
            ready: dict[str, Any] = json.loads(line)
        except json.JSONDecodeError:
            raise NodePeerError(
                f"provider.mjs printed a non-JSON ready line {line!r}; "
                f"stderr:\n{_read_text(err_path)}"
            ) from None
        ready["stderr_path"] = str(err_path)
        yield ready
    finally:
        _stop(proc, pump)
        cfg_path.unlink(missing_ok=True)
        err_path.unlink(missing_ok=True)


def _stop(proc: subprocess.Popen[str], pump: threading.Thread | None) -> None:
    """SIGTERM, then SIGKILL after STOP_TIMEOUT; then release the pipes."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=STOP_TIMEOUT)
    if pump is not None:
        pump.join(timeout=STOP_TIMEOUT)  # EOF on stdout ends it
    for stream in (proc.stdin, proc.stdout):
        if stream is not None:
            with contextlib.suppress(OSError):
                stream.close()


def run_openid_client(
    issuer: str,
    client_id: str,
    private_jwk: dict[str, Any],
    scope: str | None = None,
    *,
    resource: str | None = None,
    discovery: str = "auto",
    timeout: float = CLIENT_TIMEOUT,
    dpop: bool = False,
    resource_url: str | None = None,
) -> tuple[int, dict[str, Any]]:
    """Get a client-credentials token with ``client.mjs`` (openid-client); with ``dpop`` a
    DPoP-bound one, and with ``resource_url`` the API's answer to a GET with it.

    ``private_jwk`` must include ``kid`` and ``alg``. ``discovery`` is
    ``"auto"`` (openid-configuration, then oauth-authorization-server),
    ``"oidc"`` or ``"oauth2"``.

    Returns ``(exit_code, body)``: ``(0, token_response)`` on success,
    ``(1, {"error", "error_description", "status"})`` on failure.
    """
    ensure_node_modules()
    node = _require("node")
    config: dict[str, Any] = {
        "issuer": issuer,
        "client_id": client_id,
        "private_jwk": private_jwk,
        "discovery": discovery,
    }
    if scope is not None:
        config["scope"] = scope
    if resource is not None:
        config["resource"] = resource
    if dpop:
        config["dpop"] = True
    if resource_url is not None:
        config["resource_url"] = resource_url
    cfg_path = _write_json_temp(config, "pkjwt-client-")
    try:
        try:
            proc = subprocess.run(
                [node, "client.mjs", str(cfg_path)],
                cwd=NODE_DIR,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                encoding="utf-8",
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise NodePeerError(f"client.mjs timed out after {timeout:g} s") from exc
    finally:
        cfg_path.unlink(missing_ok=True)
    lines = proc.stdout.strip().splitlines()
    try:
        body: dict[str, Any] = json.loads(lines[-1])
    except (IndexError, json.JSONDecodeError):
        raise NodePeerError(
            f"client.mjs exited with code {proc.returncode} without a JSON result; "
            f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
        ) from None
    return proc.returncode, body


class _JWKSHandler(http.server.BaseHTTPRequestHandler):
    body: bytes = b"{}"

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextlib.contextmanager
def serve_static_jwks(jwks: dict[str, Any], path: str = "/jwks.json") -> Iterator[str]:
    """Serve ``jwks`` over HTTP on 127.0.0.1 (free port); yield its URL.

    Every GET, whatever its path, answers with the JWKS.
    """
    handler = type("JWKSHandler", (_JWKSHandler,), {"body": json.dumps(jwks).encode()})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.daemon = True
    thread.start()
    try:
        port = server.server_address[1]
        yield f"http://127.0.0.1:{port}{path}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=STOP_TIMEOUT)


def _main(argv: list[str]) -> int:
    """``python nodepeers.py install``: install the Node deps and exit."""
    if argv[1:] == ["install"]:
        started = time.monotonic()
        ensure_node_modules()
        print(f"node_modules ready in {NODE_DIR} ({time.monotonic() - started:.1f} s)")
        return 0
    print("usage: python nodepeers.py install", file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(_main(sys.argv))
