"""A small loopback token + API server for the client benchmarks (stdlib only).

* ``POST /token``: answers ``200 {"access_token": <random>, "token_type": "Bearer",
  "expires_in": N}`` after an optional delay (to imitate a real server). It counts token
  requests and logs when each arrived and was answered (epoch seconds, ``time.time()``: the
  same clock the benchmark uses, also across processes). The client assertion is decoded
  (header and claims, for the benchmark's verification line) but **not verified**: the
  benchmark measures clients, not the server. A form without ``client_assertion`` gets a
  ``400 invalid_client``.
* ``GET /api``: ``200 ok``; with ``require_bearer`` (the default) a request without an
  ``Authorization: Bearer ...`` header gets ``401``. Counted too.
* ``GET /_stats`` and ``POST /_control`` (JSON): read the counters and the token log; change
  ``expires_in`` / ``token_delay`` and optionally reset the counters.

By default the server runs in a **child process** (``python -m benchmarks.tokenserver``), so
its request handling does not compete with the measured client for the GIL; ``mode="thread"``
runs it in a daemon thread of this process instead. Either way it listens on
``127.0.0.1:<ephemeral port>`` and is used as a context manager::

    with TokenServer(expires_in=3600, token_delay=0.05) as server:
        httpx.post(server.token_url, data=...)
        server.token_requests          # -> 1
        server.configure(expires_in=2, reset=True)

HTTP/1.1 keep-alive is supported (every answer has a ``Content-Length``), and the listen
backlog is large, so a thousand concurrent client connections do not hit SYN retries.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import contextlib
import http.client
import json
import secrets
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

__all__ = ["TokenServer", "TokenServerState"]

_JSON = "application/json"


def _b64url_json(segment: str) -> Any:
    pad = "=" * (-len(segment) % 4)
    return json.loads(base64.urlsafe_b64decode(segment + pad))


def _decode_assertion(assertion: str) -> dict[str, Any] | None:
    """Header and claims of a compact JWS, unverified; None when it is not one."""
    parts = assertion.split(".")
    if len(parts) != 3:
        return None
    try:
        header, claims = _b64url_json(parts[0]), _b64url_json(parts[1])
    except (ValueError, binascii.Error):
        return None
    if not isinstance(header, dict) or not isinstance(claims, dict):
        return None
    return {"header": header, "claims": claims}


class TokenServerState:
    """Configuration and counters, shared by the handler threads (guarded by one lock)."""

    def __init__(
        self, *, expires_in: float = 3600, token_delay: float = 0.0, require_bearer: bool = True
    ) -> None:
        self.lock = threading.Lock()
        self.expires_in = expires_in
        self.token_delay = token_delay
        self.require_bearer = require_bearer
        self.token_requests = 0
        self.api_requests = 0
        self.api_unauthorized = 0
        #: (arrived, answered, expires_in) per token request, epoch seconds
        self.token_log: list[tuple[float, float, float]] = []
        self.last_assertion: dict[str, Any] | None = None

    def configure(
        self,
        *,
        expires_in: float | None = None,
        token_delay: float | None = None,
        require_bearer: bool | None = None,
        reset: bool = False,
    ) -> None:
        with self.lock:
            if expires_in is not None:
                self.expires_in = expires_in
            if token_delay is not None:
                self.token_delay = token_delay
            if require_bearer is not None:
                self.require_bearer = require_bearer
            if reset:
                self.token_requests = 0
                self.api_requests = 0
                self.api_unauthorized = 0
                self.token_log = []
                self.last_assertion = None

    def snapshot(self) -> dict[str, Any]:
        with self.lock:
            return {
                "expires_in": self.expires_in,
                "token_delay": self.token_delay,
                "require_bearer": self.require_bearer,
                "token_requests": self.token_requests,
                "api_requests": self.api_requests,
                "api_unauthorized": self.api_unauthorized,
                "token_log": list(self.token_log),
                "last_assertion": self.last_assertion,
            }


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive
    # headers and body go out in two writes: without TCP_NODELAY, Nagle + delayed ACK add
    # ~40 ms to every keep-alive answer
    disable_nagle_algorithm = True
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass  # quiet

    def _reply(self, status: int, body: bytes, ctype: str = "text/plain") -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def _body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def do_POST(self) -> None:
        state = self.server.state
        path = self.path.split("?", 1)[0]
        body = self._body()
        if path == "/token":
            arrived = time.time()
            form = parse_qs(body.decode("latin-1"))
            assertion = (form.get("client_assertion") or [""])[0]
            decoded = _decode_assertion(assertion) if assertion else None
            if decoded is None:
                self._reply(
                    400,
                    b'{"error":"invalid_client","error_description":"no client_assertion"}',
                    _JSON,
                )
                return
            with state.lock:
                state.token_requests += 1
                delay, expires_in = state.token_delay, state.expires_in
                state.last_assertion = decoded
            if delay > 0:
                time.sleep(delay)
            token = {
                "access_token": secrets.token_urlsafe(24),
                "token_type": "Bearer",
                "expires_in": expires_in,
            }
            answered = time.time()
            with state.lock:
                state.token_log.append((arrived, answered, float(expires_in)))
            self._reply(200, json.dumps(token).encode(), _JSON)
        elif path == "/_control":
            opts = json.loads(body or b"{}")
            state.configure(**opts)
            self._reply(200, json.dumps(state.snapshot()).encode(), _JSON)
        else:
            self._reply(404, b"not found")

    def do_GET(self) -> None:
        state = self.server.state
        path = self.path.split("?", 1)[0]
        if path == "/api":
            auth = self.headers.get("Authorization") or ""
            ok = auth[:7].lower() == "bearer " and len(auth) > 7
            with state.lock:
                state.api_requests += 1
                if not ok:
                    state.api_unauthorized += 1
                require = state.require_bearer
            if require and not ok:
                self._reply(401, b"no bearer token")
            else:
                self._reply(200, b"ok")
        elif path == "/_stats":
            self._reply(200, json.dumps(state.snapshot()).encode(), _JSON)
        else:
            self._reply(404, b"not found")


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 2048

    def __init__(self, state: TokenServerState, port: int = 0) -> None:
        super().__init__(("127.0.0.1", port), _Handler)
        self.state = state


class TokenServer:
    """The loopback server as a context manager (``mode="process"`` or ``"thread"``)."""

    def __init__(
        self,
        *,
        expires_in: float = 3600,
        token_delay: float = 0.0,
        require_bearer: bool = True,
        mode: str = "process",
    ) -> None:
        if mode not in ("process", "thread"):
            raise ValueError("mode must be 'process' or 'thread'")
        self.mode = mode
        self._initial = {
            "expires_in": expires_in,
            "token_delay": token_delay,
            "require_bearer": require_bearer,
        }
        self.port = 0
        self._proc: subprocess.Popen[str] | None = None
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- addresses ----------------------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def token_url(self) -> str:
        return f"{self.url}/token"

    @property
    def api_url(self) -> str:
        return f"{self.url}/api"

    # -- lifecycle ----------------------------------------------------------------------------
    def start(self) -> TokenServer:
        if self.mode == "thread":
            self._server = _Server(TokenServerState(**self._initial))  # type: ignore[arg-type]
            self.port = self._server.server_address[1]
            self._thread = threading.Thread(
                target=self._server.serve_forever, name="tokenserver", daemon=True
            )
            self._thread.start()
            return self
        root = Path(__file__).resolve().parent.parent
        cmd = [
            sys.executable,
            "-m",
            "benchmarks.tokenserver",
            "--expires-in",
            str(self._initial["expires_in"]),
            "--token-delay",
            str(self._initial["token_delay"]),
        ]
        if not self._initial["require_bearer"]:
            cmd.append("--no-require-bearer")
        self._proc = subprocess.Popen(
            cmd, cwd=root, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        assert self._proc.stdout is not None
        line = self._proc.stdout.readline()
        if not line.startswith("PORT "):
            self.stop()
            raise RuntimeError(f"token server did not start (said {line!r})")
        self.port = int(line.split()[1])
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._proc is not None:
            proc, self._proc = self._proc, None
            if proc.stdin is not None:
                proc.stdin.close()  # the child exits when its stdin closes
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.terminate()
                proc.wait(timeout=5)
            if proc.stdout is not None:
                proc.stdout.close()

    def __enter__(self) -> TokenServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- control ------------------------------------------------------------------------------
    def _call(self, method: str, path: str, payload: dict[str, Any] | None = None) -> Any:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            body = json.dumps(payload).encode() if payload is not None else None
            conn.request(method, path, body=body, headers={"Content-Type": _JSON})
            resp = conn.getresponse()
            return json.loads(resp.read())
        finally:
            conn.close()

    def configure(
        self,
        *,
        expires_in: float | None = None,
        token_delay: float | None = None,
        require_bearer: bool | None = None,
        reset: bool = False,
    ) -> None:
        """Change the behaviour for the next requests; ``reset`` zeroes the counters and log."""
        opts = {
            "expires_in": expires_in,
            "token_delay": token_delay,
            "require_bearer": require_bearer,
            "reset": reset,
        }
        if self._server is not None:
            self._server.state.configure(**opts)  # type: ignore[arg-type]
        else:
            self._call("POST", "/_control", opts)

    def reset(self) -> None:
        self.configure(reset=True)

    def stats(self) -> dict[str, Any]:
        """Counters, configuration, token log and the last assertion (decoded)."""
        if self._server is not None:
            return self._server.state.snapshot()
        result: dict[str, Any] = self._call("GET", "/_stats")
        return result

    @property
    def token_requests(self) -> int:
        return int(self.stats()["token_requests"])


def _serve(argv: Sequence[str] | None = None) -> int:
    """Child-process entry point: print ``PORT n``, serve until stdin closes."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.tokenserver")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--expires-in", type=float, default=3600)
    parser.add_argument("--token-delay", type=float, default=0.0)
    parser.add_argument("--no-require-bearer", action="store_true")
    args = parser.parse_args(argv)
    expires_in: float = int(args.expires_in) if args.expires_in.is_integer() else args.expires_in
    state = TokenServerState(
        expires_in=expires_in,
        token_delay=args.token_delay,
        require_bearer=not args.no_require_bearer,
    )
    server = _Server(state, args.port)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    print(f"PORT {server.server_address[1]}", flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        sys.stdin.read()  # returns at EOF: the parent closed our stdin or exited
    server.shutdown()
    server.server_close()
    return 0


if __name__ == "__main__":
    raise SystemExit(_serve())
