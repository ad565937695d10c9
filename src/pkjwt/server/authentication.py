"""Client authentication at the server: who is calling, proven how (rules R5-R19).

:meth:`ClientAuthenticator.authenticate` takes the credentials read from the request
(:mod:`pkjwt.server.token_request`) and returns an :class:`AuthOutcome`: the client, the
decoded assertion with every rule's finding, and the failures in rule order. It never raises
for bad input and never decides how a failure is worded: the dialect does. The one thing the
dialect decides here is when the ``jti`` is recorded (R19, the only side effect).
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

from ..decode import DecodedJWT, DecodeError, decode_compact
from ..federation import FederatedTrust
from ..keys import KeySet
from ..profiles import Profile
from ..rules import Report, RuleContext, Verdict, check, replay_entry, replay_verdict
from .config import ClientConfig, ServerConfig
from .dialects import Dialect
from .failures import Failure, fail, from_decode_error, from_finding, safe_description
from .jwks_fetch import JwksFetcher, JwksFetchError
from .jwks_files import JwksFiles
from .replay import ReplayGuard
from .token_request import AssertionCredentials, Credentials, SecretCredentials

__all__ = ["AuthOutcome", "ClientAuthenticator"]


def _rule_order(failure: Failure) -> int:
    return int(failure.rule[1:])


@dataclass(frozen=True, slots=True)
class AuthOutcome:
    """What authentication found. ``failures`` is empty when the client is authenticated."""

    client: ClientConfig | None = None
    failures: tuple[Failure, ...] = ()
    method: str = ""
    jwt: DecodedJWT | None = None
    report: Report | None = None

    @property
    def client_id(self) -> str | None:
        """The registered client, else the (untrusted) ``sub`` the assertion names."""
        if self.client is not None:
            return self.client.client_id
        sub = self.jwt.claims.get("sub") if self.jwt is not None else None
        return sub if isinstance(sub, str) else None


class ClientAuthenticator:
    """Authenticates clients against the configured registrations: secrets compared in
    constant time, assertions decoded once and judged by the rule table with the client's
    registered keys (inline, or fetched from its ``jwks_uri``: R10)."""

    def __init__(
        self,
        config: ServerConfig,
        *,
        issuer: str,
        token_endpoint: str,
        replay: ReplayGuard,
        fetcher: JwksFetcher,
        jwks_files: JwksFiles | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.profile: Profile = config.profile
        self.issuer = issuer
        self.token_endpoint = token_endpoint
        self.replay = replay
        self.fetcher = fetcher
        self.jwks_files = jwks_files or JwksFiles()
        self.clock = clock
        self._clients = {c.client_id: c for c in config.clients}

    def client(self, client_id: str) -> ClientConfig | None:
        return self._clients.get(client_id)

    async def authenticate(self, credentials: Credentials, dialect: Dialect) -> AuthOutcome:
        if isinstance(credentials, SecretCredentials):
            return self._secret(credentials)
        return await self._assertion(credentials, dialect)

    def _secret(self, credentials: SecretCredentials) -> AuthOutcome:
        client = self._clients.get(credentials.client_id)
        expected = client.client_secret if client else None
        # compare even for unknown clients so timing does not reveal which ids exist
        ok = hmac.compare_digest(
            (expected or "\x00unknown").encode(),
            credentials.secret.encode("utf-8", "surrogatepass"),
        )
        if client is None or expected is None or not ok:
            failure = fail(
                "R7",
                "client.secret",
                "client authentication failed (unknown client or wrong secret)",
                status=401 if credentials.basic else 400,
                basic=credentials.basic,
            )
            return AuthOutcome(failures=(failure,))
        return AuthOutcome(client=client, method=credentials.method)

    # -- private_key_jwt ---------------------------------------------------------------------
    async def _fetched_keys(self, jwks_uri: str | None) -> KeySet | Failure:
        if jwks_uri is None:
            return fail("R9", "jwks.unregistered", "R9 the client has no registered keys")
        try:
            return await self.fetcher.get(jwks_uri)
        except JwksFetchError as exc:
            return fail("R10", "jwks.fetch", safe_description(f"R10 jwks_uri fetch failed: {exc}"))

    def _context(
        self,
        client: ClientConfig | None,
        body_client_id: str | None,
        keys: KeySet | None,
        trust: FederatedTrust | None = None,
    ) -> RuleContext:
        if trust is not None:  # another issuer's identity token: judged by the trust
            return RuleContext(
                profile=trust.profile(self.profile),
                now=self.clock(),
                issuer=self.issuer,
                token_endpoint=self.token_endpoint,
                client_id=body_client_id,
                client_registered=True,
                client_known=True,
                keys=keys,
                federated=trust,
            )
        return RuleContext(
            profile=self.profile,
            now=self.clock(),
            issuer=self.issuer,
            token_endpoint=self.token_endpoint,
            client_id=body_client_id,
            client_registered=client is not None and "private_key_jwt" in client.auth_methods,
            client_known=client is not None,
            keys=keys,
            client_alg=client.alg if client else None,
            require_explicit_typ=self.config.require_explicit_typ,
        )

    def _federated(
        self, jwt: DecodedJWT, body_client_id: str | None
    ) -> tuple[ClientConfig, FederatedTrust] | None:
        """The client the body names and the trust that fits the token's issuer and subject
        (else one with its issuer, else its first: R13 then says what was expected)."""
        client = self._clients.get(body_client_id) if body_client_id else None
        if client is None or not client.federated:
            return None
        iss, sub = jwt.claims.get("iss"), jwt.claims.get("sub")
        trusts = client.federated
        exact = [t for t in trusts if t.issuer == iss and t.subject == sub]
        by_issuer = [t for t in trusts if t.issuer == iss]
        return client, (exact or by_issuer or list(trusts))[0]

    async def _assertion(self, credentials: AssertionCredentials, dialect: Dialect) -> AuthOutcome:
        try:
            jwt = decode_compact(credentials.assertion, max_bytes=self.profile.max_assertion_bytes)
        except DecodeError as exc:
            return AuthOutcome(failures=(from_decode_error(exc),))
        sub = jwt.claims.get("sub")
        client = self._clients.get(sub) if isinstance(sub, str) else None
        trust: FederatedTrust | None = None
        if client is None and (found := self._federated(jwt, credentials.client_id)):
            client, trust = found
        holder = trust or client  # whose keys verify the signature
        keys = holder.keys if holder is not None else None
        if holder is not None and holder.jwks_file is not None and keys is not None:
            keys = self.jwks_files.keys(holder.jwks_file, keys)  # re-read when it changed
        missing_keys: Failure | None = None
        if holder is not None and keys is None:  # inline keys need no await (the hot path)
            found_keys = await self._fetched_keys(holder.jwks_uri)
            if isinstance(found_keys, Failure):
                missing_keys = found_keys  # the claims are still judged: a dialect may answer
            else:
                keys = found_keys
        ctx = self._context(client, credentials.client_id, keys, trust)
        report = check(jwt, ctx, replay=False)
        kid = jwt.header.get("kid")
        # R10: an unknown kid with a jwks_uri gets one rate-limited refetch (a new key)
        if holder and holder.jwks_uri and isinstance(kid, str) and report.failed("kid.unknown"):
            report = await self._refetched(jwt, holder.jwks_uri, kid, ctx, report)
        failures = [from_finding(f) for f in report.findings if f.verdict is Verdict.FAIL]
        if missing_keys is not None:
            failures.append(missing_keys)
            failures.sort(key=_rule_order)  # R9/R10 among the others, in table order
        # an unknown sub records nothing (no store grows for a client that does not exist);
        # a known client's assertion whose signature did not verify, only until it expires;
        # a federated token is presented again and again until it expires, by design
        if client is not None and trust is None and dialect.may_record_jti(failures):
            verified = report.passed("signature.valid")
            fresh = await self.replay.add(*replay_entry(jwt, ctx, verified=verified))
            recorded = replay_verdict(jwt, fresh)
            report = Report((*report.findings, recorded), report.header, report.claims)
            if recorded.verdict is Verdict.FAIL:
                failures.append(from_finding(recorded))
        if not failures and client is None:  # unreachable: R7 fails first; kept as a guard
            failures.append(fail("R7", "client.unknown", "R7 unknown client"))
        return AuthOutcome(client, tuple(failures), "private_key_jwt", jwt, report)

    async def _refetched(
        self, jwt: DecodedJWT, jwks_uri: str, kid: str, ctx: RuleContext, report: Report
    ) -> Report:
        try:
            keys = await self.fetcher.get(jwks_uri, refresh_for_kid=kid)
        except JwksFetchError:
            return report
        if keys.get(kid) is None:
            return report
        return check(jwt, replace(ctx, keys=keys), replay=False)
