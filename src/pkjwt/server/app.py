"""The ASGI app: token, metadata, JWKS, introspection, revocation, echo, health, OpenAPI.

``create_app(config)`` builds a Starlette app once. Bad input never produces a 500: every
handler turns surprises into ``server_error`` with nothing but the code in the body.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import tempfile
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ..rules import Finding
from .auth import AuthFailure, AuthResult, ClientAuthenticator, safe_description
from .config import ServerConfig
from .issuing import TokenIssuer
from .jwks_fetch import JwksFetcher
from .openapi import openapi_document
from .replay import ReplayStore, open_replay_store
from .token_endpoint import Reply, TokenEndpoint, TokenFastPath, error_reply, parse_form

__all__ = ["RecordedRequest", "ServerState", "create_app", "with_fast_path"]

log = logging.getLogger("pkjwt.server")

TOKEN_PATH = "/oauth2/token"
_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    """What the server saw and decided, for tests (``pkjwt.testing``)."""

    at: float
    endpoint: str
    status: int
    error: str | None
    description: str | None
    client_id: str | None
    header: Mapping[str, Any] = field(default_factory=dict)
    claims: Mapping[str, Any] = field(default_factory=dict)
    findings: tuple[Finding, ...] = ()
    form: Mapping[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status == 200


class ServerState:
    def __init__(
        self,
        config: ServerConfig,
        *,
        issuer: str,
        replay: ReplayStore,
        clock: Callable[[], float],
        record: int,
    ) -> None:
        self.config = config
        self.issuer = issuer
        self.token_endpoint = issuer + TOKEN_PATH
        self.clock = clock
        self.replay = replay
        self.fetcher = JwksFetcher(
            allow_private=config.allow_private_jwks_uri,
            timeout=config.jwks_timeout,
            max_bytes=config.jwks_max_bytes,
            cache_bounds=config.jwks_cache_seconds,
        )
        self.auth = ClientAuthenticator(
            config,
            issuer=issuer,
            token_endpoint=self.token_endpoint,
            replay=replay,
            fetcher=self.fetcher,
            clock=clock,
        )
        self.issuer_tokens = TokenIssuer(
            issuer=issuer,
            lifetime=config.token_lifetime,
            token_format=config.token_format,
            signing_alg=config.signing_alg,
            clock=clock,
        )
        self.requests: deque[RecordedRequest] = deque(maxlen=max(record, 1))
        self.recording = record > 0
        #: one INFO line per decided request (``pkjwt serve``'s default log level); decided
        #: once, so a server at --log-level warning pays nothing per request
        self.logging = log.isEnabledFor(logging.INFO)
        self.observed = self.recording or self.logging

    def record(
        self,
        endpoint: str,
        status: int,
        body: Mapping[str, Any] | None,
        result: AuthResult | None,
        form: Mapping[str, str],
    ) -> None:
        jwt = result.jwt if result else None
        report = result.report if result else None
        client_id = result.client.client_id if result and result.client else None
        if client_id is None and jwt is not None and isinstance(jwt.claims.get("sub"), str):
            client_id = jwt.claims["sub"]
        if self.logging:
            # what was decided and why: never the assertion, a token or a secret
            outcome = (
                safe_description(f"{body.get('error')}: {body.get('error_description')}", 300)
                if body
                else "issued"
            )
            who = safe_description(client_id, 80).replace(" ", "?") if client_id else "-"
            log.info("%s %d client=%s %s", endpoint, status, who, outcome)
        if not self.recording:
            return
        safe_form = {
            k: (v if k not in ("client_assertion", "client_secret") else "<redacted>")
            for k, v in form.items()
        }
        self.requests.append(
            RecordedRequest(
                at=self.clock(),
                endpoint=endpoint,
                status=status,
                error=(body or {}).get("error"),
                description=(body or {}).get("error_description"),
                client_id=client_id,
                header=dict(jwt.header) if jwt else {},
                claims=dict(jwt.claims) if jwt else {},
                findings=report.findings if report else (),
                form=safe_form,
            )
        )


def _json(body: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> Response:
    return Response(
        json.dumps(body, separators=(",", ":")),
        status_code=status,
        media_type="application/json",
        headers=dict(headers or {}),
    )


def _response(reply: Reply) -> Response:
    return Response(reply.body, reply.status, dict(reply.headers))


def create_app(
    config: ServerConfig,
    *,
    issuer: str | None = None,
    replay: ReplayStore | None = None,
    clock: Callable[[], float] = time.time,
    record: int = 1000,
    state_dir: Path | None = None,
) -> Starlette:
    """Build the server. ``issuer`` defaults to the config's; ``record`` bounds the request log."""
    iss = (issuer or config.issuer or "http://127.0.0.1:8080").rstrip("/")
    # the default file falls back to one per issuer when another server holds the shared one:
    # assertions name their issuer in aud, so only the same issuer can see a replay
    store = (
        replay
        if replay is not None
        else open_replay_store(
            config.replay_store,
            default_dir=state_dir or Path(tempfile.gettempdir()) / "pkjwt",
            default_name=f"replay-{hashlib.sha256(iss.encode()).hexdigest()[:16]}.sqlite3",
        )
    )
    state = ServerState(config, issuer=iss, replay=store, clock=clock, record=record)
    nhs = config.profile.name == "nhs"

    endpoint = TokenEndpoint(state)

    async def token(request: Request) -> Response:
        # served apps answer this route in the fast path (with_fast_path); this is for the
        # bare app (an in-process ASGI transport)
        body = await request.body()
        return _response(await endpoint.handle(request.method, request.headers, body))

    def _metadata() -> dict[str, Any]:
        profile = config.profile
        algs = sorted(a for a in profile.algs if a != "Ed25519")
        methods = ["private_key_jwt"]
        if not nhs and any(c.client_secret for c in config.clients):
            methods += ["client_secret_basic", "client_secret_post"]
        return {
            "issuer": iss,
            "token_endpoint": state.token_endpoint,
            "jwks_uri": iss + "/jwks",
            "introspection_endpoint": iss + "/introspect",
            "revocation_endpoint": iss + "/revoke",
            "grant_types_supported": ["client_credentials"],
            "response_types_supported": ["token"],
            "token_endpoint_auth_methods_supported": methods,
            "token_endpoint_auth_signing_alg_values_supported": algs,
            "introspection_endpoint_auth_methods_supported": methods,
            "revocation_endpoint_auth_methods_supported": methods,
            "scopes_supported": sorted({s for c in config.clients for s in c.scopes}),
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": [config.signing_alg],
            "pkjwt_profile": profile.name,
        }

    async def metadata(request: Request) -> Response:
        return _json(_metadata())

    async def jwks_endpoint(request: Request) -> Response:
        return _json(state.issuer_tokens.public_jwks(), headers={"Cache-Control": "max-age=300"})

    async def _authenticated_form(
        request: Request, endpoint_name: str
    ) -> tuple[dict[str, str], Response | None, str | None]:
        """The form and the authenticated client id, or the error response."""
        parsed = parse_form(await request.body())
        if isinstance(parsed, str):
            failure = AuthFailure(400, "invalid_request", f"R1 {parsed}", "R1")
            return {}, _response(error_reply(failure)), None
        result = await state.auth.authenticate(parsed, request.headers)
        if result.failure is not None:
            reply = endpoint.reject(result.failure, parsed, result, endpoint_name)
            return parsed, _response(reply), None
        return parsed, None, result.client.client_id if result.client else None

    async def introspect(request: Request) -> Response:
        try:
            form, failed, _who = await _authenticated_form(request, "introspect")
            if failed is not None:
                return failed
            record = state.issuer_tokens.lookup(form.get("token", ""))
            if record is None:
                return _json({"active": False}, headers=_NO_STORE)
            body: dict[str, Any] = {
                "active": True,
                "client_id": record.client_id,
                "sub": record.client_id,
                "token_type": "Bearer",
                "exp": record.expires_at,
                "iat": record.issued_at,
                "iss": iss,
                "jti": record.jti,
            }
            if record.scope:
                body["scope"] = record.scope
            if record.audience:
                body["aud"] = record.audience
            return _json(body, headers=_NO_STORE)
        except Exception:
            log.exception("introspection failed")
            return _json({"error": "server_error"}, 500)

    async def revoke(request: Request) -> Response:
        try:
            form, failed, who = await _authenticated_form(request, "revoke")
            if failed is not None:
                return failed
            # RFC 7009 2.1: only the client the token was issued to may revoke it
            state.issuer_tokens.revoke(form.get("token", ""), client_id=who)
            return Response(status_code=200)
        except Exception:
            log.exception("revocation failed")
            return _json({"error": "server_error"}, 500)

    async def echo(request: Request) -> Response:
        auth = request.headers.get("authorization", "")
        scheme, _, value = auth.partition(" ")
        record = state.issuer_tokens.lookup(value.strip()) if scheme.lower() == "bearer" else None
        if record is None:
            if not auth:  # RFC 6750 3.1: no credentials, so no error code, only the challenge
                return _json({}, 401, {"WWW-Authenticate": 'Bearer realm="pkjwt"'})
            return _json(
                {"error": "invalid_token"},
                401,
                {"WWW-Authenticate": 'Bearer realm="pkjwt", error="invalid_token"'},
            )
        body = await request.body()
        return _json(
            {
                "message": "hello from the protected echo API",
                "client_id": record.client_id,
                "scope": record.scope,
                "method": request.method,
                "path": request.url.path,
                "body_bytes": len(body),
            }
        )

    async def health(request: Request) -> Response:
        return _json({"status": "ok", "profile": config.profile.name, "issuer": iss})

    async def openapi(request: Request) -> Response:
        return _json(openapi_document(iss, nhs=nhs))

    routes = [
        Route(TOKEN_PATH, token, methods=["GET", "POST", "PUT", "DELETE", "PATCH"]),
        Route("/.well-known/oauth-authorization-server", metadata, methods=["GET"]),
        Route("/.well-known/openid-configuration", metadata, methods=["GET"]),
        Route("/jwks", jwks_endpoint, methods=["GET"]),
        Route("/introspect", introspect, methods=["POST"]),
        Route("/revoke", revoke, methods=["POST"]),
        Route("/echo", echo, methods=["GET", "POST"]),
        Route("/health", health, methods=["GET"]),
        Route("/openapi.json", openapi, methods=["GET"]),
    ]

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        await state.fetcher.aclose()
        if replay is None:
            store.close()

    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.pkjwt = state
    app.state.token_endpoint = endpoint
    return app


def with_fast_path(app: Starlette) -> TokenFastPath:
    """The app as served: the token route answered before the framework (outside even its
    error middleware, which would wrap every ``send``); everything else goes to ``app``."""
    endpoint: TokenEndpoint = app.state.token_endpoint
    return TokenFastPath(app, path=TOKEN_PATH, endpoint=endpoint)
