"""The endpoints: the token endpoint's pipeline, and the small ones around it.

A token request passes each stage once, in order:

1. read it (:mod:`.token_request`: R1 body and form, R3 grant, R2/R4 credentials);
2. authenticate the client (:mod:`.authentication`: decode, the rule table R5-R18, the replay
   check R19 when the dialect says the ``jti`` is due);
3. the grant policy (:mod:`.policy`: R20);
4. the dialect's answer to any failure (:mod:`.dialects`), or the token, issued
   (:mod:`.issuing`) and shaped by the dialect.

Every endpoint returns a :class:`~.http.Reply`; surprises become one answer in one place
(:func:`surprise_reply`): 503 ``temporarily_unavailable`` when the replay store cannot record,
else 500 ``server_error`` with nothing but the code in the body.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import Any, NamedTuple

from ..errors import ReplayStoreUnavailable, missing_extra

try:
    from starlette.requests import Request
    from starlette.responses import Response
except ImportError as exc:  # a client-only install
    raise missing_extra("server", "the local authorization server", exc) from None

from .authentication import AuthOutcome
from .dialects import STANDARD
from .dpop import with_nonce
from .failures import Failure, fail
from .http import JSON, MAX_BODY, NO_STORE, Form, Reply, json_reply, parse_form, read_body
from .metrics import CONTENT_TYPE, DECISION
from .openapi import observation_paths, openapi_document
from .policy import grant_policy
from .state import TOKEN_PATH, ServerState
from .token_request import read_credentials, read_form, read_grant

__all__ = [
    "Decision",
    "TokenEndpoint",
    "echo",
    "health",
    "introspect",
    "jwks",
    "metadata",
    "metrics",
    "openapi",
    "revoke",
    "surprise_reply",
    "token",
]

log = logging.getLogger("pkjwt.server")

_METHOD_NOT_ALLOWED = Reply(405, (("allow", "POST"),), b"")
_UNAVAILABLE = Reply(
    503,
    (*NO_STORE, ("retry-after", "1"), JSON),
    b'{"error":"temporarily_unavailable","error_description":"replay store '
    b'unavailable; retry with a new assertion"}',
)
_SERVER_ERROR = Reply(500, (*NO_STORE, JSON), b'{"error":"server_error"}')


def surprise_reply(exc: Exception, where: str) -> Reply:
    """The answer to an exception no endpoint expected (the one handler every route shares)."""
    return _surprise(exc, where).reply


class Decision(NamedTuple):
    """A token request's answer, and for the metrics the rule that refused it and the OAuth
    error sent (both "" when a token was issued)."""

    reply: Reply
    rule: str = ""
    error: str = ""


_DECIDED_UNAVAILABLE = Decision(_UNAVAILABLE, "R19", "temporarily_unavailable")
_DECIDED_ERROR = Decision(_SERVER_ERROR, "", "server_error")
_DECIDED_NOT_ALLOWED = Decision(_METHOD_NOT_ALLOWED, "R1", "")


def _surprise(exc: Exception, where: str) -> Decision:
    if isinstance(exc, ReplayStoreUnavailable):
        log.warning("%s: %s", where, exc.message)
        return _DECIDED_UNAVAILABLE
    log.error("%s failed", where, exc_info=exc)
    return _DECIDED_ERROR


class TokenEndpoint:
    """``POST /oauth2/token``, framework-free: (method, headers, body) in, a reply out.

    The served app calls :meth:`decide` before the framework sees the request (the one route
    under load); the framework's route for the same path calls it too, so there is one
    implementation either way."""

    def __init__(self, state: ServerState) -> None:
        self.state = state
        self.dialect = state.dialect

    async def handle(self, method: str, headers: Mapping[str, str], body: bytes) -> Reply:
        return (await self.decide(method, headers, body)).reply

    async def decide(self, method: str, headers: Mapping[str, str], body: bytes) -> Decision:
        if method != "POST":
            return _DECIDED_NOT_ALLOWED
        try:
            return await self._pipeline(headers, body)
        except Exception as exc:
            return _surprise(exc, "token endpoint")

    async def _pipeline(self, headers: Mapping[str, str], body: bytes) -> Decision:
        dialect = self.dialect
        form = read_form(headers, body, dialect)
        if isinstance(form, Failure):
            return self._refuse_request(form, {})
        failure = read_grant(form)
        if failure is not None:
            return self._refuse_request(failure, form)
        credentials = read_credentials(form, headers, dialect)
        if isinstance(credentials, Failure):
            return self._refuse_request(credentials, form)
        state = self.state
        outcome = await state.auth.authenticate(credentials, dialect)
        if outcome.failures:
            refused = self._refuse(outcome.failures, outcome, form)
            if refused is not None:
                return refused
        client = outcome.client
        if client is None:  # unreachable: authentication names R7 first; a guard only
            return self._refuse((outcome.failures or ()), outcome, form) or _DECIDED_ERROR
        policy = grant_policy(client, form, honours_scope=dialect.honours_scope)
        if policy is not None:
            return self._refuse((policy,), outcome, form) or _DECIDED_ERROR
        binding = await state.dpop.at_token_endpoint(headers, self._urls(headers), client)
        if binding.failure is not None:
            refused = self._refuse((binding.failure,), outcome, form) or _DECIDED_ERROR
            return refused._replace(reply=with_nonce(refused.reply, binding.nonce))
        scope = audience = None
        if dialect.honours_scope:
            scope = form.get("scope") or None
            resources = tuple(r for r in form.values_of("resource") if r)
            audience = resources[0] if len(resources) == 1 else (resources or None)
        lifetime = dialect.lifetime(form, state.config.token_lifetime)
        access, issued = state.tokens.issue(
            client.client_id, scope, audience, lifetime=lifetime, jkt=binding.jkt
        )
        if state.log.active:
            state.log.record("token", 200, None, None, outcome, form)
        return Decision(with_nonce(dialect.success(access, issued, lifetime), binding.nonce))

    def _urls(self, headers: Mapping[str, str]) -> tuple[str, ...]:
        """This endpoint's URL as the issuer names it and as the request's Host does (a
        proof's htu may use either)."""
        host = headers.get("host")
        own = self.state.token_endpoint
        return (own, f"http://{host}{TOKEN_PATH}") if host else (own,)

    def _refuse_request(self, failure: Failure, form: Mapping[str, str]) -> Decision:
        # every dialect answers a malformed request (only assertion findings may not count)
        return self._refuse((failure,), None, form) or _DECIDED_ERROR

    def _refuse(
        self, failures: tuple[Failure, ...], outcome: AuthOutcome | None, form: Mapping[str, str]
    ) -> Decision | None:
        answer = self.dialect.refusal(failures)
        if answer is None:  # the dialect does not count these failures (NHS: iat)
            return None
        log_ = self.state.log
        if log_.active:
            status = answer.reply.status
            log_.record(
                "token", status, answer.error, answer.description, outcome, form, answer.rule
            )
        return Decision(answer.reply, answer.rule, answer.error)


# -- the framework's routes ------------------------------------------------------------------------


def _state(request: Request) -> ServerState:
    state: ServerState = request.app.state.pkjwt
    return state


def _response(reply: Reply) -> Response:
    return Response(reply.body, reply.status, dict(reply.headers))


async def token(request: Request) -> Response:
    # the served app answers this path before the framework; this route serves the same
    # endpoint to anything that routes through the framework (its route table, OpenAPI)
    endpoint: TokenEndpoint = request.app.state.token_endpoint
    body = await read_body(request.receive, request.headers)
    if body is None:
        return Response(status_code=400)  # the client left; nobody reads this
    decision = await endpoint.decide(request.method, request.headers, body)
    request.scope[DECISION] = (decision.rule, decision.error)
    return _response(decision.reply)


def _metadata(state: ServerState) -> dict[str, Any]:
    config = state.config
    iss = state.issuer
    methods = ["private_key_jwt"]
    if state.dialect.secret_methods and any(c.client_secret for c in config.clients):
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
        "token_endpoint_auth_signing_alg_values_supported": sorted(
            a for a in config.profile.algs if a != "Ed25519"
        ),
        "introspection_endpoint_auth_methods_supported": methods,
        "revocation_endpoint_auth_methods_supported": methods,
        "scopes_supported": sorted({s for c in config.clients for s in c.scopes}),
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": [config.signing_alg],
        "pkjwt_profile": config.profile.name,
        **({"dpop_signing_alg_values_supported": list(state.dpop.algs)} if config.dpop else {}),
    }


async def metadata(request: Request) -> Response:
    return _response(json_reply(_metadata(_state(request))))


async def jwks(request: Request) -> Response:
    state = _state(request)
    return _response(
        json_reply(state.tokens.public_jwks(), headers={"Cache-Control": "max-age=300"})
    )


async def _authenticated(request: Request, endpoint: str) -> tuple[Form, Reply | None, str | None]:
    """Introspection and revocation: the form and the authenticated client id, or the error
    reply. These endpoints answer in the standard dialect whatever the profile."""
    state = _state(request)
    body = await read_body(request.receive, request.headers)
    parsed = parse_form(body) if body is not None and len(body) <= MAX_BODY else None
    failure: Failure | None = None
    outcome: AuthOutcome | None = None
    form = parsed if isinstance(parsed, Form) else Form()
    if parsed is None:
        failure = fail("R1", "request.too_large", "R1 request body too large")
    elif isinstance(parsed, str):
        failure = fail("R1", "request.form", f"R1 {parsed}")
    else:
        credentials = read_credentials(form, request.headers, STANDARD)
        if isinstance(credentials, Failure):
            failure = credentials
        else:
            outcome = await state.auth.authenticate(credentials, STANDARD)
            failure = outcome.failures[0] if outcome.failures else None
    if failure is not None:
        answer = STANDARD.refusal((failure,))
        assert answer is not None
        request.scope[DECISION] = (answer.rule, answer.error)
        if state.log.active:
            status = answer.reply.status
            state.log.record(
                endpoint, status, answer.error, answer.description, outcome, form, answer.rule
            )
        return form, answer.reply, None
    assert outcome is not None
    return form, None, outcome.client_id


async def introspect(request: Request) -> Response:
    state = _state(request)
    form, refused, _who = await _authenticated(request, "introspect")
    if refused is not None:
        return _response(refused)
    record = state.tokens.lookup(form.get("token", ""))
    if record is None:
        return _response(json_reply({"active": False}, headers=NO_STORE))
    body: dict[str, Any] = {
        "active": True,
        "client_id": record.client_id,
        "sub": record.client_id,
        "token_type": record.token_type,
        "exp": record.expires_at,
        "iat": record.issued_at,
        "iss": state.issuer,
        "jti": record.jti,
    }
    if record.scope:
        body["scope"] = record.scope
    if record.audience:
        body["aud"] = record.audience
    if record.jkt:
        body["cnf"] = {"jkt": record.jkt}  # RFC 9449 6.2
    return _response(json_reply(body, headers=NO_STORE))


async def revoke(request: Request) -> Response:
    form, refused, who = await _authenticated(request, "revoke")
    if refused is not None:
        return _response(refused)
    # RFC 7009 2.1: only the client the token was issued to may revoke it
    _state(request).tokens.revoke(form.get("token", ""), client_id=who)
    return Response(status_code=200)


async def echo(request: Request) -> Response:
    """A protected test API: answers who the token was issued to. A DPoP-bound token needs
    ``Authorization: DPoP`` and a proof for this request (RFC 9449 7); a bearer token, Bearer."""
    state = _state(request)
    auth = request.headers.get("authorization", "")
    scheme, _, value = auth.partition(" ")
    kind = scheme.lower()
    record = state.tokens.lookup(value.strip()) if kind in ("bearer", "dpop") else None
    if record is None or (kind == "dpop") != bool(record.jkt):
        # no token, an unknown one, or a bound token sent as a bearer (or the reverse)
        if record is None and not auth:  # RFC 6750 3.1: no credentials, only the challenge
            return _response(json_reply({}, 401, {"WWW-Authenticate": 'Bearer realm="pkjwt"'}))
        if kind == "dpop" or (record is not None and record.jkt):
            request.scope[DECISION] = ("", "invalid_token")
            return _response(state.dpop.challenge("invalid_token", "a DPoP-bound token needs "
                                                  "Authorization: DPoP and a proof"))  # fmt: skip
        challenge = 'Bearer realm="pkjwt", error="invalid_token"'
        request.scope[DECISION] = ("", "invalid_token")
        return _response(
            json_reply({"error": "invalid_token"}, 401, {"WWW-Authenticate": challenge})
        )
    if record.jkt:
        urls = (str(request.url), state.issuer + request.url.path)
        proofs = (
            {"dpop": ",".join(request.headers.getlist("dpop"))} if "dpop" in request.headers else {}
        )
        refused = await state.dpop.at_resource(
            proofs, request.method, urls, value.strip(), record.jkt
        )
        if refused is not None:
            reply, request.scope[DECISION] = refused[0], refused[1:]
            return _response(reply)
    body = await read_body(request.receive, request.headers)
    if body is None or len(body) > MAX_BODY:
        return _response(json_reply({"error": "request body too large"}, 413))
    return _response(
        json_reply(
            {
                "message": "hello from the protected echo API",
                "client_id": record.client_id,
                "scope": record.scope,
                "token_type": record.token_type,
                "method": request.method,
                "path": request.url.path,
                "body_bytes": len(body),
            }
        )
    )


async def health(request: Request) -> Response:
    """Liveness and the replay store's state (503 while it fails: tokens cannot be issued)."""
    state = _state(request)
    guard = state.replay_guard
    body = {
        "status": "ok" if guard.healthy else "degraded",
        "profile": state.config.profile.name,
        "issuer": state.issuer,
        "replay_store": guard.health(),
        # which process answered: with --workers, each has its own
        "worker": os.getpid(),
    }
    return _response(json_reply(body, 200 if guard.healthy else 503))


async def openapi(request: Request) -> Response:
    state = _state(request)
    doc = openapi_document(state.issuer, expires_in_type=state.dialect.expires_in_type)
    doc["paths"].update(
        observation_paths(
            metrics=state.metrics is not None,
            inspector=getattr(request.app.state, "inspector", None) is not None,
        )
    )
    return _response(json_reply(doc))


async def metrics(request: Request) -> Response:
    """The Prometheus exposition of this process's counts (:mod:`.metrics`)."""
    counted = _state(request).metrics
    if counted is None:  # the route is only served with metrics on
        return Response(status_code=404)
    return Response(counted.render(), headers={"content-type": CONTENT_TYPE, **dict(NO_STORE)})
