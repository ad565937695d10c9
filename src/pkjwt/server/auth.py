"""Client authentication at the server: request checks R1-R4, then the rule table (R5-R19).

One function, :meth:`ClientAuthenticator.authenticate`, serves the token, introspection and
revocation endpoints. It never raises for bad input: it returns the client or an
:class:`AuthFailure` that says which rule failed, what was expected and what came.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

from ..decode import DecodedJWT, DecodeError, decode_compact
from ..profiles import JWT_BEARER, Profile
from ..rules import RULE_TITLES, Finding, Report, RuleContext, Verdict, check
from .config import ClientConfig, ServerConfig
from .jwks_fetch import JwksFetcher, JwksFetchError
from .replay import ReplayStore

__all__ = ["AuthFailure", "AuthResult", "ClientAuthenticator", "safe_description"]

_ALLOWED = {chr(c) for c in (0x20, 0x21, *range(0x23, 0x5C), *range(0x5D, 0x7F))}


def safe_description(text: str, limit: int = 400) -> str:
    """Only the characters RFC 6749 5.2 allows in ``error_description``."""
    cleaned = "".join(ch if ch in _ALLOWED else ("'" if ch == '"' else "?") for ch in text)
    return cleaned[:limit]


@dataclass(frozen=True, slots=True)
class AuthFailure:
    status: int
    error: str
    description: str
    rule: str = ""
    code: str = ""
    basic: bool = False


@dataclass(slots=True)
class AuthResult:
    client: ClientConfig | None = None
    failure: AuthFailure | None = None
    method: str = ""
    jwt: DecodedJWT | None = None
    report: Report | None = None
    findings: list[Finding] = field(default_factory=list)


def describe(f: Finding) -> str:
    title = RULE_TITLES.get(f.rule, "")
    return safe_description(f"{f.rule} {title}: expected {f.expected}; got {f.got}")


class ClientAuthenticator:
    def __init__(
        self,
        config: ServerConfig,
        *,
        issuer: str,
        token_endpoint: str,
        replay: ReplayStore,
        fetcher: JwksFetcher,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.profile: Profile = config.profile
        self.issuer = issuer
        self.token_endpoint = token_endpoint
        self.replay = replay
        self.fetcher = fetcher
        self.clock = clock
        self._clients = {c.client_id: c for c in config.clients}

    def client(self, client_id: str) -> ClientConfig | None:
        return self._clients.get(client_id)

    # -- the shared front: which mechanism, is it well-formed (R2, R4) ---------------------------
    @staticmethod
    def _basic(headers: Mapping[str, str]) -> tuple[str, str] | bool | None:
        value = headers.get("authorization")
        if not value:
            return None
        scheme, _, rest = value.partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            decoded = base64.b64decode(rest.strip(), validate=True).decode("utf-8")
        except (binascii.Error, ValueError):  # ValueError: non-ASCII input, bad UTF-8
            return False
        user, sep, password = decoded.partition(":")
        if not sep:
            return False
        return unquote(user), unquote(password)

    async def authenticate(
        self, params: Mapping[str, str], headers: Mapping[str, str], *, replay: bool = True
    ) -> AuthResult:
        basic = self._basic(headers)
        has_assertion = "client_assertion" in params or "client_assertion_type" in params
        has_post = "client_secret" in params
        mechanisms = sum((has_assertion, has_post, basic is not None))
        if mechanisms > 1:
            return AuthResult(
                failure=AuthFailure(
                    400,
                    "invalid_request",
                    "R2 exactly one client authentication mechanism: got several "
                    "(assertion, Basic, client_secret)",
                    "R2",
                    "auth.multiple",
                )
            )
        if mechanisms == 0:
            return AuthResult(
                failure=AuthFailure(
                    401,
                    "invalid_client",
                    "R4 client authentication required: no client_assertion",
                    "R4",
                    "auth.none",
                )
            )
        if basic is not None:
            if basic is False:
                return AuthResult(
                    failure=AuthFailure(
                        401,
                        "invalid_client",
                        "malformed HTTP Basic credentials",
                        "R2",
                        "auth.basic",
                        basic=True,
                    )
                )
            assert isinstance(basic, tuple)
            return self._secret(basic[0], basic[1], "client_secret_basic", basic=True)
        if has_post:
            return self._secret(
                params.get("client_id", ""), params["client_secret"], "client_secret_post"
            )
        if params.get("client_assertion_type") != JWT_BEARER:
            return AuthResult(
                failure=AuthFailure(
                    400,
                    "invalid_request",
                    safe_description(
                        f"R4 client_assertion_type: expected {JWT_BEARER}; got "
                        f"{params.get('client_assertion_type', '(absent)')[:100]}"
                    ),
                    "R4",
                    "request.assertion_type",
                )
            )
        assertion = params.get("client_assertion")
        if not assertion:
            return AuthResult(
                failure=AuthFailure(
                    400,
                    "invalid_request",
                    "R4 client_assertion: expected a JWT; got (absent)",
                    "R4",
                    "request.assertion_missing",
                )
            )
        return await self._assertion(assertion, params.get("client_id"), replay=replay)

    def _secret(self, client_id: str, secret: str, method: str, basic: bool = False) -> AuthResult:
        client = self._clients.get(client_id)
        expected = client.client_secret if client else None
        # compare even for unknown clients so timing does not reveal which ids exist
        ok = hmac.compare_digest(
            (expected or "\x00unknown").encode(), secret.encode("utf-8", "surrogatepass")
        )
        if client is None or expected is None or not ok:
            status = 401 if basic else 400
            return AuthResult(
                failure=AuthFailure(
                    status,
                    "invalid_client",
                    "client authentication failed (unknown client or wrong secret)",
                    "R7",
                    "client.secret",
                    basic=basic,
                )
            )
        return AuthResult(client=client, method=method)

    # -- private_key_jwt ---------------------------------------------------------------------
    def _decode(self, assertion: str) -> DecodedJWT | AuthFailure:
        try:
            return decode_compact(assertion, max_bytes=self.profile.max_assertion_bytes)
        except DecodeError as exc:
            title = RULE_TITLES.get(exc.rule, "")
            return AuthFailure(
                400,
                "invalid_client",
                safe_description(f"{exc.rule} {title}: {exc.message}"),
                exc.rule,
                exc.code,
            )

    async def _keys(self, client: ClientConfig, kid: Any) -> tuple[Any, AuthFailure | None]:
        if client.keys is not None:
            return client.keys, None
        if client.jwks_uri is None:
            return None, AuthFailure(
                400,
                "invalid_client",
                "R9 the client has no registered keys",
                "R9",
                "jwks.unregistered",
            )
        try:
            keys = await self.fetcher.get(client.jwks_uri)
        except JwksFetchError as exc:
            return None, AuthFailure(
                400,
                "invalid_client",
                safe_description(f"R10 jwks_uri fetch failed: {exc}"),
                "R10",
                "jwks.fetch",
            )
        return keys, None

    def _context(
        self, client: ClientConfig | None, body_client_id: str | None, keys: Any, replay: bool
    ) -> RuleContext:
        return RuleContext(
            profile=self.profile,
            now=self.clock(),
            issuer=self.issuer,
            token_endpoint=self.token_endpoint,
            client_id=body_client_id,
            client_registered=client is not None and "private_key_jwt" in client.auth_methods,
            keys=keys,
            client_alg=client.alg if client else None,
            require_explicit_typ=self.config.require_explicit_typ,
            replay=self.replay.add if replay else None,
        )

    async def evaluate(
        self, assertion: str, body_client_id: str | None, *, replay: bool
    ) -> AuthResult:
        """Decode and run every rule (the NHS mode picks its own first failure from these)."""
        jwt = self._decode(assertion)
        if isinstance(jwt, AuthFailure):
            return AuthResult(failure=jwt)
        sub = jwt.claims.get("sub")
        client = self._clients.get(sub) if isinstance(sub, str) else None
        keys = client.keys if client is not None else None
        if client is not None and keys is None:  # not registered inline: fetch (or fail)
            keys, failure = await self._keys(client, jwt.header.get("kid"))
            if failure is not None:
                return AuthResult(client=client, failure=failure, jwt=jwt)
        ctx = self._context(client, body_client_id, keys, replay)
        report = check(jwt, ctx)
        kid = jwt.header.get("kid")
        if (
            client is not None
            and client.jwks_uri
            and isinstance(kid, str)
            and report.failed("kid.unknown")
        ):
            try:
                keys = await self.fetcher.get(client.jwks_uri, refresh_for_kid=kid)
            except JwksFetchError:
                keys = None
            if keys is not None and keys.get(kid) is not None:
                report = check(jwt, self._context(client, body_client_id, keys, replay))
        return AuthResult(client=client, jwt=jwt, report=report, method="private_key_jwt")

    async def _assertion(
        self, assertion: str, body_client_id: str | None, *, replay: bool
    ) -> AuthResult:
        result = await self.evaluate(assertion, body_client_id, replay=replay)
        if result.failure is not None or result.report is None:
            return result
        failure = result.report.first_failure
        if failure is not None:
            result.failure = AuthFailure(
                400, "invalid_client", describe(failure), failure.rule, failure.code
            )
            return result
        if result.client is None:  # unreachable: R7 fails first; kept as a guard
            result.failure = AuthFailure(
                400, "invalid_client", "R7 unknown client", "R7", "client.unknown"
            )
        return result


def skipped(report: Report) -> list[str]:
    return [f.rule for f in report.findings if f.verdict is Verdict.SKIP]
