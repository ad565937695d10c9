"""Run the server: blocking (``pkjwt serve``) or in a background thread (tests, demo)."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import signal
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from ..errors import ConfigError, missing_extra

try:
    import uvicorn
except ImportError as exc:  # a client-only install
    raise missing_extra("server", "the local authorization server", exc) from None

from ..keys import generate_key
from .app import TOKEN_PATH, PkjwtApp, create_app, open_configured_store
from .config import ServerConfig
from .inspector import KEEP as INSPECTOR_KEEP
from .replay import describe_store, parse_replay_url
from .state import ServerState

__all__ = ["RunningServer", "bind", "run_in_thread", "serve_forever"]


def bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(2048)
    except (OSError, OverflowError) as exc:
        sock.close()
        why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ConfigError(
            f"cannot listen on {host}:{port}: {why}",
            hint="choose another --port (--port 0 takes any free one), or a local --host",
        ) from None
    sock.setblocking(False)
    return sock


def _issuer_for(sock: socket.socket, host: str) -> str:
    port = sock.getsockname()[1]
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}"


def _uvicorn_config(app: PkjwtApp, log_level: str) -> uvicorn.Config:
    config: ServerConfig = app.state.pkjwt.config
    options: dict[str, Any] = {
        "log_level": log_level,
        "access_log": False,
        # a loopback development server: no proxy in front whose headers to trust
        "proxy_headers": False,
        "date_header": False,  # the token endpoint sets its own Date
        "server_header": False,
        "lifespan": "on",
        "timeout_keep_alive": config.keep_alive_timeout,
    }
    with contextlib.suppress(ImportError):
        from .connections import limited_protocol  # needs httptools

        options["http"] = limited_protocol(
            request_timeout=config.request_timeout, max_connections=config.max_connections
        )
    with contextlib.suppress(ImportError):
        import uvloop  # noqa: F401

        options["loop"] = "uvloop"
    return uvicorn.Config(app, **options)


def serve_forever(
    config: ServerConfig,
    *,
    host: str = "127.0.0.1",
    port: int = 8080,
    log_level: str = "info",
    announce: Callable[[str, str], None] | None = None,
    workers: int = 1,
    metrics: bool | None = None,
    inspect: bool = False,
) -> None:
    """Serve until interrupted; ``announce`` gets the issuer and the replay store's description
    once the port is bound and the store is open. ``workers`` > 1 forks that many processes
    onto the one listening socket (see :func:`check_workers` for the store they need).
    ``metrics`` (default: the config's) serves ``/metrics``; ``inspect`` the inspector page."""
    # no request log unless the inspector shows it: the full log serves tests (pkjwt.testing)
    options: dict[str, Any] = {
        "metrics": metrics,
        "inspect": inspect,
        "record": INSPECTOR_KEEP if inspect else 0,
    }
    check_workers(config, workers)
    sock = bind(host, port)
    issuer = config.issuer or _issuer_for(sock, host)
    with contextlib.suppress(ImportError):
        from .connections import raise_open_file_limit

        # the connection cap, not the descriptor table, should be what runs out first
        raise_open_file_limit(config.max_connections + 256)
    if workers > 1:
        _serve_workers(config, sock, issuer, log_level, announce, workers, options)
        return
    app = create_app(config, issuer=issuer, **options)
    if announce is not None:
        announce(issuer, describe_store(app.state.pkjwt.replay))
    _run(app, sock, log_level)


def _run(app: PkjwtApp, sock: socket.socket, log_level: str) -> None:
    server = uvicorn.Server(_uvicorn_config(app, log_level))
    # everything alive now (modules, config) lives as long as the process: collect the start-up
    # garbage, then exempt the rest from the collector, or each full collection walks it again,
    # a pause of tens of milliseconds under load (measured; it showed as p99 latency)
    gc.collect()
    gc.freeze()
    server.run(sockets=[sock])


def check_workers(config: ServerConfig, workers: int) -> None:
    """Several processes must share one replay window, or a jti replayed to another worker
    would be accepted: SQLite committing before each answer, or Redis."""
    if workers == 1:
        return
    if not 1 <= workers <= 64:
        raise ConfigError(f"--workers must be 1 to 64, got {workers}")
    kind, _path, interval = parse_replay_url(config.replay_store)
    if kind == "memory" or (kind == "sqlite" and interval > 0):
        what = "memory://" if kind == "memory" else "a SQLite store that writes behind"
        raise ConfigError(
            f"--workers {workers} with {what}: each process would remember its own jtis, so a "
            "replay sent to another worker would be accepted",
            hint='share one replay window: replay_store = "sqlite:///PATH?commit_interval=0" '
            '(each jti committed before answering) or "redis://HOST:PORT/DB"',
        )


def _serve_workers(
    config: ServerConfig,
    sock: socket.socket,
    issuer: str,
    log_level: str,
    announce: Callable[[str, str], None] | None,
    workers: int,
    options: dict[str, Any],
) -> None:
    """Fork ``workers`` processes onto ``sock``; the parent only waits and stops them. The
    server's signing key is made here, before the fork, so every worker signs (and its JWKS
    publishes) the same one; each worker opens its own connection to the shared store."""
    signing_key = generate_key(config.signing_alg, size=2048)
    # opened once here first: a Redis that is not there, or a SQLite file that cannot be
    # created, is one clear error before any fork, and the workers do not race to make the
    # schema (two first opens of one SQLite file can find it locked)
    open_configured_store(config, issuer).close()
    if announce is not None:
        announce(issuer, f"{config.replay_store.split('?')[0]} shared by {workers} workers")
    children: list[int] = []
    for _ in range(workers):
        pid = os.fork()
        if pid == 0:  # a worker
            try:
                app = create_app(config, issuer=issuer, signing_key=signing_key, **options)
                _run(app, sock, log_level)
            finally:
                os._exit(0)
        children.append(pid)
    sock.close()

    def stop(signum: int, _frame: object) -> None:
        for child in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(child, signal.SIGTERM)

    def forward(signum: int, _frame: object) -> None:
        for child in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(child, signum)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGHUP, forward)  # each worker re-reads its jwks_files
    while children:
        try:
            pid, _status = os.wait()
        except ChildProcessError:
            break
        if pid in children:
            children.remove(pid)
            if children:  # one worker gone: stop the others rather than run short-handed
                stop(signal.SIGTERM, None)


@dataclass
class RunningServer:
    issuer: str
    app: PkjwtApp
    server: uvicorn.Server
    thread: threading.Thread
    #: where it listens (the issuer may be a configured name that does not resolve)
    base_url: str = ""

    @property
    def token_url(self) -> str:
        return self.issuer + TOKEN_PATH

    @property
    def state(self) -> ServerState:
        state: ServerState = self.app.state.pkjwt
        return state

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


@contextlib.contextmanager
def run_in_thread(
    config: ServerConfig, *, host: str = "127.0.0.1", port: int = 0, **app_options: Any
) -> Iterator[RunningServer]:
    """Start the server on a free loopback port in a thread; stop it on exit."""
    sock = bind(host, port)
    issuer = config.issuer or _issuer_for(sock, host)
    try:
        app = create_app(config, issuer=issuer, **app_options)
    except BaseException:
        sock.close()
        raise
    uv_config = _uvicorn_config(app, "warning")
    uv_config.loop = "asyncio"
    server = uvicorn.Server(uv_config)

    def target() -> None:
        asyncio.run(server.serve(sockets=[sock]))

    thread = threading.Thread(target=target, name="pkjwt-serve", daemon=True)
    thread.start()
    running = RunningServer(issuer, app, server, thread, _issuer_for(sock, host))
    try:
        for _ in range(500):
            if server.started or not thread.is_alive():
                break
            threading.Event().wait(0.01)
        if not server.started:
            raise RuntimeError("the pkjwt server did not start")
        yield running
    finally:
        running.stop()
        sock.close()
