"""The ASGI app: routes, one handler for surprises, and the token route's fast path.

``create_app(config)`` builds the app exactly as ``pkjwt serve`` serves it, so tests that call
it in-process run the same stack as production. Bad input never produces a traceback: every
route's surprises pass through :func:`~.endpoints.surprise_reply`.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import signal
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from .._private import default_state_dir
from ..errors import missing_extra
from ..keys import Key

try:
    from starlette.applications import Starlette
    from starlette.middleware import Middleware
    from starlette.routing import Route
except ImportError as exc:  # a client-only install
    raise missing_extra("server", "the local authorization server", exc) from None

from . import endpoints, inspector
from .config import ServerConfig
from .endpoints import TokenEndpoint, surprise_reply
from .http import read_body, send_reply
from .metrics import Metrics, ObservedRoutes
from .recording import RecordedRequest
from .replay import ReplayStore, open_replay_store
from .state import TOKEN_PATH, ServerState

__all__ = ["TOKEN_PATH", "PkjwtApp", "RecordedRequest", "ServerState", "create_app"]


class _Surprises:
    """ASGI middleware: an exception a route did not expect becomes one JSON answer, unless
    the response had already started (then there is nothing left to say)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracked(message: Any) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracked)
        except Exception as exc:
            if started:
                raise
            await send_reply(send, surprise_reply(exc, scope.get("path", "?")))


class PkjwtApp(Starlette):
    """The framework app with one shortcut: ``<token path>`` is answered before the framework
    builds its request and response objects or its middleware wraps every ``send`` (the one
    route under load; measured as a fifth of a token request's cost). ``state.pkjwt`` is the
    :class:`~.state.ServerState`. The shortcut is timed and counted here, when ``metrics``
    is on; the framework's routes by :class:`~.metrics.ObservedRoutes`."""

    token_path: str
    token_endpoint: TokenEndpoint
    metrics: Metrics | None = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"] == self.token_path:
            await self._token(scope, receive, send)
            return
        await super().__call__(scope, receive, send)

    async def _token(self, scope: Any, receive: Any, send: Any) -> None:
        metrics = self.metrics
        started = time.perf_counter() if metrics is not None else 0.0
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        if "dpop" in headers:  # a repeated DPoP header must be seen as two proofs (D1)
            headers["dpop"] = ",".join(
                v.decode("latin-1") for k, v in scope["headers"] if k == b"dpop"
            )
        body = await read_body(receive, headers)
        if body is None:  # the client went away: nothing was answered, nothing to count
            return
        decision = await self.token_endpoint.decide(scope["method"], headers, body)
        await send_reply(send, decision.reply)
        if metrics is not None:
            elapsed = time.perf_counter() - started
            status = decision.reply.status
            metrics.observe("token", status, decision.rule, decision.error, elapsed)


def _routes(*, metrics: bool, inspect: bool) -> list[Route]:
    routes = [
        Route(TOKEN_PATH, endpoints.token, methods=["GET", "POST", "PUT", "DELETE", "PATCH"]),
        Route("/.well-known/oauth-authorization-server", endpoints.metadata, methods=["GET"]),
        Route("/.well-known/openid-configuration", endpoints.metadata, methods=["GET"]),
        Route("/jwks", endpoints.jwks, methods=["GET"]),
        Route("/introspect", endpoints.introspect, methods=["POST"]),
        Route("/revoke", endpoints.revoke, methods=["POST"]),
        Route("/echo", endpoints.echo, methods=["GET", "POST"]),
        Route("/health", endpoints.health, methods=["GET"]),
        Route("/openapi.json", endpoints.openapi, methods=["GET"]),
    ]
    if metrics:
        routes.append(Route("/metrics", endpoints.metrics, methods=["GET"]))
    if inspect:
        routes.append(Route(inspector.PATH, inspector.page, methods=["GET"]))
    return routes


def _on_sighup(reload: Callable[[], object]) -> None:
    """SIGHUP re-reads the clients' jwks_files (as daemons re-read their config), run on the
    loop between requests. Only a server on the main thread can take signals: one run by
    ``pkjwt.testing`` in a thread of a test process leaves them to the process."""
    with contextlib.suppress(ValueError, RuntimeError, NotImplementedError, AttributeError):
        asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, reload)


def open_configured_store(
    config: ServerConfig, issuer: str, state_dir: Path | None = None
) -> ReplayStore:
    """The replay store the config names, for a server with this ``issuer``."""
    # the default file falls back to one per issuer when another server holds the shared one:
    # assertions name their issuer in aud, so only the same issuer can see a replay
    return open_replay_store(
        config.replay_store,
        default_dir=state_dir or default_state_dir(),
        default_name=f"replay-{hashlib.sha256(issuer.encode()).hexdigest()[:16]}.sqlite3",
    )


def create_app(
    config: ServerConfig,
    *,
    issuer: str | None = None,
    replay: ReplayStore | None = None,
    clock: Callable[[], float] = time.time,
    record: int = 1000,
    state_dir: Path | None = None,
    signing_key: Key | None = None,
    metrics: bool | None = None,
    inspect: bool = False,
) -> PkjwtApp:
    """Build the server. ``issuer`` defaults to the config's; ``record`` bounds the request log;
    a ``replay`` store passed in is used as is (and left open at shutdown). ``metrics``
    (default: the config's) serves ``/metrics``; ``inspect`` serves the inspector page
    (:mod:`.inspector`) over the last ``record`` requests, each kept at a bounded size."""
    iss = (issuer or config.issuer or "http://127.0.0.1:8080").rstrip("/")
    store = replay if replay is not None else open_configured_store(config, iss, state_dir)
    state = ServerState(
        config,
        issuer=iss,
        replay=store,
        clock=clock,
        record=record,
        signing_key=signing_key,
        metrics=config.metrics if metrics is None else metrics,
        bounded_record=inspect,
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        _on_sighup(state.jwks_files.reload_all)
        yield
        await state.aclose()
        if replay is None:
            store.close()

    middleware = [Middleware(_Surprises)]
    if state.metrics is not None:  # outside _Surprises: it counts the answer a surprise got
        middleware.insert(0, Middleware(ObservedRoutes, metrics=state.metrics))
    app = PkjwtApp(
        routes=_routes(metrics=state.metrics is not None, inspect=inspect),
        middleware=middleware,
        lifespan=lifespan,
    )
    app.state.pkjwt = state
    app.metrics = state.metrics
    if inspect:
        app.state.inspector = inspector.Inspector(
            state.log,
            dialect=state.dialect,
            profile=config.profile.name,
            issuer=iss,
            keep=record,
        )
    app.token_path = TOKEN_PATH
    app.token_endpoint = app.state.token_endpoint = TokenEndpoint(state)
    return app
