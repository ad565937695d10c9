"""The DPoP attacks (RFC 9449 at the token endpoint), planned when the server advertises
``dpop_signing_alg_values_supported``: a valid proof must get a token; each proof that is
wrong in one way (another URL or method, stale, replayed, a private key in its header, an HMAC,
the wrong type, another key's signature, two proofs) must be refused.

Every case sends a fresh, valid client assertion: only the proof is under attack. A server
that requires its nonce answers the first proof ``use_dpop_nonce``; the runner then carries
its nonce in every proof (:attr:`CaseContext.dpop_nonce`) and sends the case once more.
"""

from __future__ import annotations

import secrets
from typing import Any

from .. import forge
from ..dpop import DPOP_TYP
from ..keys import generate_key
from .cases import Attempt, Case, CaseContext, Expect, Severity

__all__ = ["DPOP_CASES"]

_MUST = Severity.MUST


def _proof(
    c: CaseContext,
    *,
    header: dict[str, Any] | None = None,
    signer: Any = None,
    hmac: bool = False,
    **changes: Any,
) -> str:
    """A proof for the token request, with ``changes`` to its claims and ``header`` members
    replaced; signed by the context's DPoP key unless ``signer`` (or an HMAC) says otherwise."""
    key = c.dpop_key
    claims: dict[str, Any] = {
        "jti": secrets.token_urlsafe(16),
        "htm": "POST",
        "htu": c.token_url,
        "iat": int(c.now()),
    }
    if c.dpop_nonce:
        claims["nonce"] = c.dpop_nonce
    claims.update(changes)
    head: dict[str, Any] = {"typ": DPOP_TYP, "alg": key.alg, "jwk": key.public_jwk}
    head.update(header or {})
    if hmac:
        return forge.hmac_sign(b"not-a-key" * 4, {**head, "alg": "HS256"}, claims)
    return forge.sign(signer or c.dpop_signing_key, head, claims)


def _with(c: CaseContext, proof: str) -> Attempt:
    return Attempt(c.form(), {"DPoP": proof})


def _private_jwk(c: CaseContext) -> Attempt:
    private = dict(c.dpop_signing_key.jose.as_dict(private=True))
    return _with(c, _proof(c, header={"jwk": private}))


def _replay(c: CaseContext) -> Attempt:
    proof = _proof(c)
    return Attempt(c.form(), {"DPoP": proof}, first=c.form())


def _two(c: CaseContext) -> Attempt:
    return _with(c, f"{_proof(c)}, {_proof(c)}")


def _refuse(profile: Any) -> Expect:
    return Expect(False, _MUST)


DPOP_CASES: tuple[Case, ...] = (
    Case("dpop-baseline", "a valid DPoP proof", "D1", lambda c: _with(c, _proof(c)),
         lambda p: Expect(True, _MUST)),
    Case("dpop-htu-wrong", "htu of another endpoint", "D7",
         lambda c: _with(c, _proof(c, htu=c.token_url.rstrip("/") + "/elsewhere")), _refuse),
    Case("dpop-htm-wrong", "htm GET for a POST", "D6", lambda c: _with(c, _proof(c, htm="GET")),
         _refuse),
    Case("dpop-iat-stale", "iat an hour ago", "D8",
         lambda c: _with(c, _proof(c, iat=int(c.now()) - 3600)), _refuse),
    Case("dpop-iat-future", "iat an hour ahead", "D8",
         lambda c: _with(c, _proof(c, iat=int(c.now()) + 3600)), _refuse),
    Case("dpop-replay", "the same proof twice", "D9", _replay, _refuse),
    Case("dpop-private-jwk", "a private key in the jwk header", "D4", _private_jwk, _refuse),
    Case("dpop-hs256", "an HMAC (HS256) proof", "D3", lambda c: _with(c, _proof(c, hmac=True)),
         _refuse),
    Case("dpop-typ-jwt", "typ JWT instead of dpop+jwt", "D2",
         lambda c: _with(c, _proof(c, header={"typ": "JWT"})), _refuse),
    Case("dpop-wrong-key", "signed by another key than the jwk's", "D5",
         lambda c: _with(c, _proof(c, signer=generate_key("ES256"))), _refuse),
    Case("dpop-two-proofs", "two DPoP headers", "D1", _two, _refuse),
)  # fmt: skip
