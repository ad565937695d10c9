"""The token endpoint, framework-free: (method, headers, body) in, a :class:`Reply` out.

Both the Starlette route and the ASGI fast path (which skips the framework for the one hot
route) call :meth:`TokenEndpoint.handle`, so there is one implementation of R1-R20 handling.
"""

from __future__ import annotations

import email.utils
import functools
import json
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, unquote_plus

from ..errors import ReplayStoreUnavailable
from ..profiles import JWT_BEARER
from .auth import AuthFailure, AuthResult, safe_description
from .config import ClientConfig
from .nhs_mode import nhs_authenticate, nhs_error_body

if TYPE_CHECKING:
    from .app import ServerState

__all__ = [
    "MAX_BODY",
    "MAX_FORM_FIELDS",
    "Reply",
    "TokenEndpoint",
    "error_reply",
    "http_date",
    "parse_form",
]

log = logging.getLogger("pkjwt.server")

MAX_BODY = 64 * 1024
_FORM = "application/x-www-form-urlencoded"
_CC = "expected client_credentials"
_NO_STORE = (("cache-control", "no-store"), ("pragma", "no-cache"))
_JSON = ("content-type", "application/json")
_date_cache: tuple[int, str] = (0, "")


def http_date() -> str:
    """The ``Date`` header value, formatted once per second."""
    global _date_cache
    now = int(time.time())
    if _date_cache[0] != now:
        _date_cache = (now, email.utils.formatdate(now, usegmt=True))
    return _date_cache[1]


@dataclass(frozen=True, slots=True)
class Reply:
    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes


_COMPACT = json.JSONEncoder(separators=(",", ":"))  # json.dumps would build one per call


def _dumps(obj: Any) -> bytes:
    return _COMPACT.encode(obj).encode()


def error_reply(failure: AuthFailure) -> Reply:
    headers = [*_NO_STORE, ("date", http_date()), _JSON]
    status = failure.status
    if status == 401 and failure.basic:
        headers.append(("www-authenticate", 'Basic realm="pkjwt"'))
    elif status == 401:
        # a 401 must carry a challenge; assertion failures answer 400 (RFC 6749 5.2)
        status = 400
    body = {"error": failure.error, "error_description": safe_description(failure.description)}
    return Reply(status, tuple(headers), _dumps(body))


#: more fields than any token request needs; a larger form is refused before it is split
MAX_FORM_FIELDS = 64


#: the one encoded value nearly every request carries, decoded once
_COMMON_ENCODED = {quote(JWT_BEARER, safe=""): JWT_BEARER}


def parse_form(body: bytes) -> dict[str, str] | str:
    """The form as a dict, or the reason it is not acceptable (R1).

    ``parse_qsl(keep_blank_values=True)`` semantics, with the unquoting skipped for the
    parts that hold nothing to unquote (a base64url assertion never does).
    """
    try:
        text = body.decode("ascii")
    except UnicodeDecodeError:
        return "the body must be form-encoded ASCII"
    if text.count("&") >= MAX_FORM_FIELDS:
        return "too many form fields"
    form: dict[str, str] = {}
    for part in text.split("&"):
        if not part:
            continue
        name, _, value = part.partition("=")
        if "%" in name or "+" in name:
            name = unquote_plus(name)
        if "%" in value or "+" in value:
            value = _COMMON_ENCODED.get(value) or unquote_plus(value)
        if name in form:
            return f"parameter {name[:40]} repeated"
        form[name] = value
    return form


def _invalid(description: str, rule: str) -> AuthFailure:
    return AuthFailure(400, "invalid_request", description, rule)


def grant_policy(client: ClientConfig, form: Mapping[str, str]) -> AuthFailure | None:
    """Rule R20: grant, scope and resource allowed for this client."""
    if "client_credentials" not in client.grant_types:
        return AuthFailure(
            400, "unauthorized_client", "R20 client is not allowed client_credentials", "R20"
        )
    scope = form.get("scope")
    if scope:
        unknown = [s for s in scope.split() if s not in client.scopes]
        if unknown:
            return AuthFailure(
                400, "invalid_scope", f"R20 scope not allowed: {' '.join(unknown)[:100]}", "R20"
            )
    resource = form.get("resource")
    if resource and resource not in client.resources:
        return AuthFailure(400, "invalid_target", "R20 resource not allowed for this client", "R20")
    return None


class TokenEndpoint:
    def __init__(self, state: ServerState) -> None:
        self.state = state
        self.nhs = state.config.profile.name == "nhs"

    def reject(
        self,
        failure: AuthFailure,
        form: Mapping[str, str] | None = None,
        result: AuthResult | None = None,
        endpoint: str = "token",
    ) -> Reply:
        if self.state.observed:
            body = {"error": failure.error, "error_description": failure.description}
            self.state.record(endpoint, failure.status, body, result, form or {})
        return error_reply(failure)

    async def handle(self, method: str, headers: Mapping[str, str], body: bytes) -> Reply:
        if method != "POST":
            return Reply(405, (("allow", "POST"),), b"")
        try:
            if self.nhs:
                return await self._nhs(headers, body)
            return await self._standard(headers, body)
        except ReplayStoreUnavailable as exc:
            log.warning("token endpoint: %s", exc.message)
            return Reply(
                503,
                (*_NO_STORE, ("retry-after", "1"), _JSON),
                b'{"error":"temporarily_unavailable","error_description":"replay store '
                b'unavailable; retry with a new assertion"}',
            )
        except Exception:
            log.exception("token endpoint failed")
            return Reply(500, (*_NO_STORE, _JSON), b'{"error":"server_error"}')

    async def _standard(self, headers: Mapping[str, str], body: bytes) -> Reply:
        if len(body) > MAX_BODY:
            return self.reject(_invalid("R1 request body too large", "R1"))
        mime = (headers.get("content-type") or "").split(";")[0].strip().lower()
        if mime != _FORM:
            got = mime or "(absent)"
            return self.reject(_invalid(f"R1 Content-Type: expected {_FORM}; got {got}", "R1"))
        form = parse_form(body)
        if isinstance(form, str):
            return self.reject(_invalid(f"R1 {form}", "R1"))
        grant = form.get("grant_type")
        if not grant:
            return self.reject(_invalid(f"R3 grant_type: {_CC}; got (absent)", "R3"), form)
        if grant != "client_credentials":
            failure = AuthFailure(
                400, "unsupported_grant_type", f"R3 grant_type: {_CC}; got {grant[:60]}", "R3"
            )
            return self.reject(failure, form)
        state = self.state
        result = await state.auth.authenticate(form, headers)
        if result.failure is not None:
            return self.reject(result.failure, form, result)
        client = result.client
        assert client is not None
        policy = grant_policy(client, form)
        if policy is not None:
            return self.reject(policy, form, result)
        scope = form.get("scope") or None
        access, _issued = state.issuer_tokens.issue(client.client_id, scope, form.get("resource"))
        payload: dict[str, Any] = {
            "access_token": access,
            "token_type": "Bearer",
            "expires_in": state.config.token_lifetime,
        }
        if scope:
            payload["scope"] = scope
        if state.observed:
            state.record("token", 200, None, result, form)
        return Reply(200, (*_NO_STORE, ("date", http_date()), _JSON), _dumps(payload))

    async def _nhs(self, headers: Mapping[str, str], body: bytes) -> Reply:
        state = self.state
        if len(body) > MAX_BODY:
            return self.reject(_invalid("R1 request body too large", "R1"))
        parsed = parse_form(body)
        form = parsed if isinstance(parsed, dict) else {}
        outcome = await nhs_authenticate(state.auth, form, headers.get("content-type"))
        reply_headers = (*_NO_STORE, ("date", http_date()), _JSON)
        if outcome.error is not None:
            row = outcome.error
            if state.observed:
                error = {"error": row.error, "error_description": row.description}
                state.record("token", row.status, error, outcome.result, form)
            return Reply(row.status, reply_headers, nhs_error_body(row))
        result = outcome.result
        assert result is not None
        assert result.client is not None
        access, issued = state.issuer_tokens.issue(result.client.client_id, None, None)
        if state.observed:
            state.record("token", 200, None, result, form)
        # the platform sends every value as a string, issued_at in milliseconds
        payload = {
            "access_token": access,
            "expires_in": str(state.config.token_lifetime),
            "token_type": "Bearer",
            "issued_at": str(issued.issued_at * 1000),
        }
        return Reply(200, reply_headers, _dumps(payload))


@functools.lru_cache(maxsize=256)
def _raw_header(header: tuple[str, str]) -> tuple[bytes, bytes]:
    # the same few headers on every reply (Date changes once a second): encode each once
    return header[0].encode("latin-1"), header[1].encode("latin-1")


class TokenFastPath:
    """ASGI middleware that answers ``POST <token path>`` without the framework's request and
    response objects (the one route under load); everything else passes through."""

    def __init__(self, app: Any, *, path: str, endpoint: TokenEndpoint) -> None:
        self.app = app
        self.path = path
        self.endpoint = endpoint

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["path"] != self.path:
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        chunks: list[bytes] = []
        kept = 0
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            # keep at most MAX_BODY + 1 bytes: enough for the endpoint to see "too large"
            if kept <= MAX_BODY:
                chunk = chunk[: MAX_BODY + 1 - kept]
                chunks.append(chunk)
                kept += len(chunk)
            more = message.get("more_body", False)
        reply = await self.endpoint.handle(scope["method"], headers, b"".join(chunks))
        raw = [_raw_header(h) for h in reply.headers]
        raw.append((b"content-length", str(len(reply.body)).encode()))
        await send({"type": "http.response.start", "status": reply.status, "headers": raw})
        await send({"type": "http.response.body", "body": reply.body})
