"""The rule catalogue: every rule's id, title, source and OAuth error, in one place.

Three readers, one table (shared/spec/assertion-rules.md): the local server builds its failures
from it, the doctor prints its titles and sources, and the conformance runner names the rule
each attack targets. Nothing else spells a rule's title or source: a new rule is one row here
plus its check in :mod:`pkjwt.rules` (R5-R19) or in the server's request reading (R1-R4, R20).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["CATALOGUE", "RuleInfo", "rule"]


@dataclass(frozen=True, slots=True)
class RuleInfo:
    """One rule. ``error`` and ``status`` are what a standard server answers when it fails
    (a few conditions answer another code: R3's unsupported grant, R20's scope and target)."""

    id: str
    title: str
    source: str
    error: str = "invalid_client"
    status: int = 400


_DPOP = "invalid_dpop_proof"
_NONCE = "use_dpop_nonce"

CATALOGUE: dict[str, RuleInfo] = {
    r.id: r
    for r in (
        RuleInfo(
            "R1",
            "POST, form-encoded body, no parameter repeated",
            "RFC 6749 3.2",
            "invalid_request",
        ),
        RuleInfo(
            "R2",
            "exactly one client authentication mechanism",
            "RFC 6749 2.3",
            "invalid_request",
        ),
        RuleInfo("R3", "grant_type present and supported", "RFC 6749 4.4, 5.2", "invalid_request"),
        RuleInfo(
            "R4",
            "client_assertion_type jwt-bearer and a client_assertion",
            "RFC 7521 4.2, RFC 7523 2.2",
            "invalid_request",
        ),
        RuleInfo("R5", "a single compact JWS of bounded size", "RFC 7523 2.2"),
        RuleInfo("R6", "header and payload are strict JSON objects", "RFC 7515 4, RFC 7519 4"),
        RuleInfo("R7", "sub names a registered client", "RFC 7521 4.2, RFC 7523 3"),
        RuleInfo("R8", "alg allowed", "RFC 8725 3.1-3.2"),
        RuleInfo(
            "R9", "key from the registration, selected by kid", "OIDC Core 10.1, RFC 8725 3.1, 3.10"
        ),
        RuleInfo(
            "R10",
            "jwks_uri fetched safely, one refetch for an unknown kid",
            "OIDC Core 10.1.1, RFC 8725bis 3.10",
        ),
        RuleInfo("R11", "signature verifies", "RFC 7523 3, RFC 7518 3.4"),
        RuleInfo("R12", "typ acceptable", "rfc7523bis 4, RFC 8725 3.11-3.12"),
        RuleInfo("R13", "iss = sub = client_id", "RFC 7523 3, OIDC Core 9"),
        RuleInfo(
            "R14",
            "aud is the right audience",
            "rfc7523bis 4, OIDC Core 9 errata 3, FAPI2 5.3.2.1-8",
        ),
        RuleInfo("R15", "exp present and in the future", "RFC 7523 3, RFC 7519 4.1.4"),
        RuleInfo("R16", "iat/nbf not in the future", "RFC 7519 4.1.5, FAPI2 5.3.2.1-13"),
        RuleInfo("R17", "lifetime within the cap", "RFC 7523 3, 5"),
        RuleInfo("R18", "jti present", "OIDC Core 9"),
        RuleInfo("R19", "jti not replayed", "RFC 7523 3, OIDC Core 9"),
        RuleInfo(
            "R20",
            "grant, scope and resource allowed for the client",
            "RFC 6749 4.4, 5.2; RFC 8707",
            "unauthorized_client",
        ),
        # DPoP proofs (RFC 9449): at the token endpoint 400 invalid_dpop_proof; at a resource
        # 401 with WWW-Authenticate: DPoP (D11, D12 only apply there)
        RuleInfo("D1", "exactly one DPoP header, a compact JWS", "RFC 9449 4.3 (1-2)", _DPOP),
        RuleInfo("D2", "typ dpop+jwt", "RFC 9449 4.2, 4.3 (4)", _DPOP),
        RuleInfo("D3", "an asymmetric alg the server supports", "RFC 9449 4.3 (5)", _DPOP),
        RuleInfo("D4", "jwk: a public key, no private members", "RFC 9449 4.3 (7)", _DPOP),
        RuleInfo("D5", "signature by the jwk's key", "RFC 9449 4.3 (6)", _DPOP),
        RuleInfo("D6", "htm matches the request method", "RFC 9449 4.3 (8)", _DPOP),
        RuleInfo("D7", "htu matches the request URL", "RFC 9449 4.3 (9)", _DPOP),
        RuleInfo("D8", "iat within the acceptance window", "RFC 9449 4.3 (11), 11.1", _DPOP),
        RuleInfo("D9", "jti present and not seen before", "RFC 9449 4.3 (12), 11.1", _DPOP),
        RuleInfo("D10", "the server's nonce, when it requires one", "RFC 9449 8, 9", _NONCE),
        RuleInfo("D11", "ath: the hash of the access token", "RFC 9449 4.3 (10), 7.1", _DPOP, 401),
        RuleInfo("D12", "proof key = the token's cnf.jkt", "RFC 9449 6, 7.1", _DPOP, 401),
    )
}


def rule(rule_id: str) -> RuleInfo:
    """The catalogue entry for ``rule_id`` (a KeyError for an unknown id is a bug, not input)."""
    return CATALOGUE[rule_id]
