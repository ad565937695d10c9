"""DPoP at the server (RFC 9449): proofs at the token endpoint, bound tokens at the API.

At the token endpoint a request that carries a ``DPoP`` header (or comes from a client that
must: ``require_dpop``, or a profile that requires sender-constrained tokens) has its proof
judged by :func:`pkjwt.dpop.check_proof` (rules D1-D10), its ``jti`` recorded in the same
replay store as assertions' (keyed by the proof key, so two keys never collide), and the token
is then bound to the proof key's thumbprint (``cnf.jkt``). At ``/echo`` a bound token is only
accepted as ``Authorization: DPoP`` with a proof for that request, that key and that token
(D11, D12); a bound token presented as a bearer token is refused.

With ``dpop_nonce = true`` the server requires its own nonce in every proof (RFC 9449 8 and
9): a proof without it is answered ``use_dpop_nonce`` with the nonce in ``DPoP-Nonce``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from ..dpop import DPOP_ALGS, NonceIssuer, ProofCheck, check_proof
from ..rules import Finding, Verdict
from .config import ClientConfig, ServerConfig
from .failures import Failure, fail, from_finding
from .http import Reply, json_reply
from .replay import ReplayGuard

__all__ = ["DPoPGate", "TokenBinding"]

#: seconds a proof's ``iat`` may be ahead of the server's clock
SKEW = 30.0


@dataclass(frozen=True, slots=True)
class TokenBinding:
    """What the token endpoint learnt: the proof key's thumbprint (None: a bearer token), or
    the failure that refuses the request, and the nonce to hand back."""

    jkt: str | None = None
    failure: Failure | None = None
    nonce: str | None = None


_NO_DPOP = TokenBinding()


def _values(raw: str | None) -> list[str] | None:
    """The DPoP header's values: repeated headers arrive joined by commas (a compact JWS
    never holds one), so two proofs are seen as two, not as one malformed."""
    if raw is None:
        return None
    return [v.strip() for v in raw.split(",")]


class DPoPGate:
    """The server's DPoP policy, built once from its config."""

    def __init__(
        self, config: ServerConfig, *, replay: ReplayGuard, clock: Callable[[], float]
    ) -> None:
        self.enabled = config.dpop
        self.max_age = float(config.dpop_max_age)
        self.nonces = (
            NonceIssuer(lifetime=config.dpop_nonce_lifetime, clock=clock)
            if config.dpop_nonce
            else None
        )
        self._profile_requires = config.profile.require_dpop
        self._replay = replay
        self._clock = clock

    @property
    def algs(self) -> tuple[str, ...]:
        return DPOP_ALGS

    def required(self, client: ClientConfig) -> bool:
        return self.enabled and (client.require_dpop or self._profile_requires)

    def _check(
        self,
        proofs: list[str] | None,
        method: str,
        urls: Sequence[str],
        *,
        access_token: str | None = None,
        bound_jkt: str | None = None,
    ) -> ProofCheck:
        return check_proof(
            proofs,
            method=method,
            url=urls,
            now=self._clock(),
            max_age=self.max_age,
            skew=SKEW,
            nonce=self.nonces,
            access_token=access_token,
            bound_jkt=bound_jkt,
        )

    async def _fresh(self, check: ProofCheck) -> Finding | None:
        """Record the proof's jti; the D9 failure when it was seen before."""
        assert check.jkt is not None
        assert check.jti is not None
        until = (check.iat or self._clock()) + self.max_age + SKEW
        if await self._replay.add(f"dpop:{check.jkt}", check.jti, until):
            return None
        return Finding(
            "D9",
            Verdict.FAIL,
            "dpop.replay",
            "a jti not used before",
            "a replayed proof",
            "RFC 9449 11.1",
            "make a new proof (new jti) for every request",
            "invalid_dpop_proof",
        )

    async def at_token_endpoint(
        self, headers: Mapping[str, str], urls: Sequence[str], client: ClientConfig
    ) -> TokenBinding:
        """Judge the token request's proof: the binding to issue, or why not."""
        if not self.enabled:
            return _NO_DPOP
        nonce = self.nonces.current() if self.nonces is not None else None
        proofs = _values(headers.get("dpop"))
        if proofs is None:
            if self.required(client):
                description = "D1 this client must send a DPoP proof (RFC 9449)"
                return TokenBinding(None, fail("D1", "dpop.required", description), nonce)
            return _NO_DPOP
        check = self._check(proofs, "POST", urls)
        failure = check.first_failure or await self._fresh(check)
        if failure is not None:
            return TokenBinding(None, from_finding(failure), nonce)
        return TokenBinding(check.jkt, None, nonce)

    async def at_resource(
        self,
        headers: Mapping[str, str],
        method: str,
        urls: Sequence[str],
        token: str,
        bound_jkt: str,
    ) -> tuple[Reply, str, str] | None:
        """A bound token at the API: None when its proof holds, else the 401 to answer with
        the rule and error that refused it."""
        check = self._check(
            _values(headers.get("dpop")), method, urls, access_token=token, bound_jkt=bound_jkt
        )
        finding = check.first_failure or await self._fresh(check)
        if finding is None:
            return None
        reply = self.challenge(finding.error, from_finding(finding).description)
        return reply, finding.rule, finding.error

    def challenge(self, error: str, description: str) -> Reply:
        """A 401 with the ``WWW-Authenticate: DPoP`` challenge (RFC 9449 7.1), and this
        server's nonce when it asks for one."""
        algs = " ".join(DPOP_ALGS)
        headers = [("WWW-Authenticate", f'DPoP error="{error}", algs="{algs}"')]
        if self.nonces is not None:
            headers.append(("DPoP-Nonce", self.nonces.current()))
        return json_reply({"error": error, "error_description": description}, 401, tuple(headers))


def with_nonce(reply: Reply, nonce: str | None) -> Reply:
    """``reply`` carrying the server's current nonce (RFC 9449 8.2: any response may)."""
    if nonce is None:
        return reply
    return Reply(reply.status, (*reply.headers, ("dpop-nonce", nonce)), reply.body)
