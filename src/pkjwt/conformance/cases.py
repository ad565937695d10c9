"""The attack catalogue: what ``pkjwt conformance`` sends, what a server should answer, and why.

Each :class:`Case` names the rule of :mod:`pkjwt.catalogue` it attacks (so the doctor, the
local server and the runner never disagree on a rule's id, title or source), how it changes a
valid request, and, per profile, whether the server must accept or refuse it and how much a
wrong answer weighs:

* ``MUST``: a standard or the platform requires it (RFC 7523, RFC 8725, FAPI 2.0, the NHS
  platform's own checks); a failure is a security or interoperability defect;
* ``SHOULD``: best current practice (rfc7523bis, explicit typing): weaker than it should be;
* ``hardening``: what a careful server adds (a lifetime cap, iat in the future).

Every case starts from a fresh, valid assertion (a new ``jti``) built for the profile, and
changes one thing. A case that does not apply to a profile says so (``None``).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from .. import forge
from ..catalogue import RuleInfo, rule
from ..dpop import DPoPKey
from ..keys import Key, generate_key
from ..profiles import JWT_BEARER, AudienceKind, Profile

__all__ = ["CASES", "DROP", "Attempt", "Case", "CaseContext", "Expect", "Severity", "Skip"]


class Severity(StrEnum):
    MUST = "MUST"
    SHOULD = "SHOULD"
    HARDENING = "hardening"


@dataclass(frozen=True, slots=True)
class Expect:
    """What a conforming server answers: ``accept`` (a token), or a refusal."""

    accept: bool
    severity: Severity

    @property
    def label(self) -> str:
        return "accept" if self.accept else "refuse"


@dataclass(frozen=True, slots=True)
class Attempt:
    """One token request: the form, the extra headers, and an optional request to send first
    (a replay sends the same assertion twice; the answer to the second one is judged)."""

    form: Mapping[str, str]
    headers: Mapping[str, str] = field(default_factory=dict)
    first: Mapping[str, str] | None = None


@dataclass
class CaseContext:
    """What a case builds from: the client, its key, the server, the profile and a clock."""

    client_id: str
    key: Key
    alg: str
    issuer: str | None
    token_url: str
    profile: Profile
    now: Callable[[], float] = time.time
    #: the server's DPoP nonce, once it has asked for one (use_dpop_nonce)
    dpop_nonce: str | None = None
    _stranger: Key | None = None
    _dpop: DPoPKey | None = None

    @property
    def dpop_key(self) -> DPoPKey:
        """The key the DPoP cases prove possession of (ES256, made once per run)."""
        if self._dpop is None:
            self._dpop = DPoPKey(self.dpop_signing_key)
        return self._dpop

    @property
    def dpop_signing_key(self) -> Key:
        if self._dpop_key is None:
            self._dpop_key = generate_key("ES256")
        return self._dpop_key

    _dpop_key: Key | None = None

    @property
    def stranger(self) -> Key:
        """Another key of the same kind, under the same kid: a signature from the wrong key."""
        if self._stranger is None:
            size = 2048 if self.key.kty == "RSA" else None
            self._stranger = generate_key(self.alg, kid=self.key.kid, size=size)
        return self._stranger

    def audience(self) -> str:
        if self.profile.audience is AudienceKind.ISSUER and self.issuer:
            return self.issuer
        return self.token_url

    def header(self, **changes: Any) -> dict[str, Any]:
        header: dict[str, Any] = {"alg": self.alg, "kid": self.key.kid}
        if self.profile.typ:
            header["typ"] = self.profile.typ
        return _apply(header, changes)

    def claims(self, **changes: Any) -> dict[str, Any]:
        now = int(self.now())
        claims: dict[str, Any] = {
            "iss": self.client_id,
            "sub": self.client_id,
            "aud": self.audience(),
            "jti": str(uuid.uuid4()),
            "exp": now + min(self.profile.lifetime, 60),
        }
        if self.profile.send_iat:
            claims["iat"] = now
        return _apply(claims, changes)

    def assertion(
        self, header: Mapping[str, Any] | None = None, key: Key | None = None, **claims: Any
    ) -> str:
        return forge.sign(key or self.key, self.header(**(header or {})), self.claims(**claims))

    def form(self, assertion: str | None = None, **changes: Any) -> dict[str, str]:
        form = {
            "grant_type": "client_credentials",
            "client_assertion_type": JWT_BEARER,
            "client_assertion": assertion if assertion is not None else self.assertion(),
        }
        return _apply(form, changes)


#: as a change: remove the member
DROP: Any = object()


def _apply(base: dict[str, Any], changes: Mapping[str, Any]) -> dict[str, Any]:
    for name, value in changes.items():
        if value is DROP:
            base.pop(name, None)
        else:
            base[name] = value
    return base


Expectation = Callable[[Profile], Expect | None]


@dataclass(frozen=True, slots=True)
class Case:
    """One attack (or one tolerance check) and what should come of it."""

    id: str
    title: str
    rule_id: str
    build: Callable[[CaseContext], Attempt]
    expect: Expectation
    #: where the expectation comes from, when not the rule's own source
    source_note: str = ""

    @property
    def rule(self) -> RuleInfo:
        return rule(self.rule_id)

    @property
    def source(self) -> str:
        return self.source_note or self.rule.source


# -- expectations --------------------------------------------------------------------------------


def _refuse(severity: Severity) -> Expectation:
    return lambda profile: Expect(False, severity)


def _accept(severity: Severity) -> Expectation:
    return lambda profile: Expect(True, severity)


def _fapi(profile: Profile) -> bool:
    """FAPI 2.0 is the profile that bounds iat/nbf ahead (5.3.2.1-13): where its "shall"s make
    a best practice a MUST."""
    return profile.max_future_iat is not None


def _strict_aud(strict: Severity, lenient: Severity) -> Expectation:
    """Refused where aud must be the issuer alone (FAPI 2.0: MUST; rfc7523bis: weaker); the
    legacy and NHS profiles send and take the token URL."""

    def expect(profile: Profile) -> Expect | None:
        if profile.audience is not AudienceKind.ISSUER:
            return None
        return Expect(False, strict if _fapi(profile) else lenient)

    return expect


def _unless_nhs(expectation: Expectation) -> Expectation:
    return lambda profile: None if profile.dialect == "nhs" else expectation(profile)


def _only_nhs(expectation: Expectation) -> Expectation:
    return lambda profile: expectation(profile) if profile.dialect == "nhs" else None


def _now(ctx: CaseContext) -> int:
    return int(ctx.now())


class Skip(Exception):
    """The case cannot be built for this client (RS256 needs an RSA key)."""


def _tamper(assertion: str) -> str:
    head, _, signature = assertion.rpartition(".")
    flipped = "A" if signature[-8] != "A" else "B"
    return f"{head}.{signature[:-8]}{flipped}{signature[-7:]}"


def _duplicate_sub(c: CaseContext) -> str:
    import json

    claims = c.claims()
    text = json.dumps(claims, separators=(",", ":"))
    text = text[:-1] + ',"sub":"someone-else"}'
    return forge.sign(c.key, c.header(), text)


def _rs256(c: CaseContext) -> Attempt:
    if c.key.kty != "RSA":
        raise Skip("needs an RSA key to sign RS256")
    return Attempt(c.form(forge.sign(c.key, c.header(alg="RS256"), c.claims(), alg="RS256")))


def _replay(c: CaseContext) -> Attempt:
    form = c.form()
    return Attempt(form, first=form)


# -- the catalogue -------------------------------------------------------------------------------

M, S, H = Severity.MUST, Severity.SHOULD, Severity.HARDENING

CASES: tuple[Case, ...] = (
    Case("baseline", "a valid assertion", "R7", lambda c: Attempt(c.form()), _accept(M)),
    Case(
        "no-assertion",
        "no client_assertion at all",
        "R4",
        lambda c: Attempt({"grant_type": "client_credentials"}),
        _refuse(M),
    ),
    Case(
        "assertion-type-missing",
        "client_assertion_type missing",
        "R4",
        lambda c: Attempt(c.form(client_assertion_type=DROP)),
        _refuse(M),
    ),
    Case(
        "assertion-type-wrong",
        "client_assertion_type of another kind (saml2-bearer)",
        "R4",
        lambda c: Attempt(
            c.form(client_assertion_type="urn:ietf:params:oauth:client-assertion-type:saml2-bearer")
        ),
        _refuse(M),
    ),
    Case(
        "sub-missing",
        "sub missing",
        "R13",
        lambda c: Attempt(c.form(c.assertion(sub=DROP))),
        _refuse(M),
    ),
    Case(
        "sub-wrong",
        "sub naming another client",
        "R13",
        lambda c: Attempt(c.form(c.assertion(sub="someone-else"))),
        _refuse(M),
    ),
    Case(
        "iss-missing",
        "iss missing",
        "R13",
        lambda c: Attempt(c.form(c.assertion(iss=DROP))),
        _refuse(M),
    ),
    Case(
        "iss-wrong",
        "iss naming another client",
        "R13",
        lambda c: Attempt(c.form(c.assertion(iss="someone-else"))),
        _refuse(M),
    ),
    Case(
        "aud-missing",
        "aud missing",
        "R14",
        lambda c: Attempt(c.form(c.assertion(aud=DROP))),
        _refuse(M),
    ),
    Case(
        "aud-unrelated",
        "aud an unrelated URL",
        "R14",
        lambda c: Attempt(c.form(c.assertion(aud="https://unrelated.example/oauth2/token"))),
        _refuse(M),
    ),
    Case(
        "aud-token-endpoint",
        "aud = the token endpoint (not the issuer)",
        "R14",
        lambda c: Attempt(c.form(c.assertion(aud=c.token_url))),
        _strict_aud(M, S),
        "rfc7523bis 4 (audience injection, CVE-2025-27370); FAPI2 5.3.2.1-8",
    ),
    Case(
        "aud-issuer-array",
        "aud = [issuer] (an array, not a string)",
        "R14",
        lambda c: Attempt(c.form(c.assertion(aud=[c.issuer or c.token_url]))),
        _strict_aud(M, H),
        "OIDC Core 9 errata 3; FAPI2 5.3.2.1-8",
    ),
    Case(
        "aud-foreign-member",
        "aud = [issuer, another server]",
        "R14",
        lambda c: Attempt(
            c.form(c.assertion(aud=[c.audience(), "https://attacker.example/oauth2/token"]))
        ),
        _unless_nhs(lambda p: Expect(False, M if _fapi(p) else H)),
        "audience injection (Hosseyni et al. 2025): an assertion valid for two servers",
    ),
    Case(
        "exp-past",
        "exp 5 minutes in the past",
        "R15",
        lambda c: Attempt(c.form(c.assertion(iat=_now(c) - 600, exp=_now(c) - 300))),
        _refuse(M),
    ),
    Case(
        "exp-year",
        "exp a year ahead",
        "R17",
        lambda c: Attempt(c.form(c.assertion(exp=_now(c) + 365 * 24 * 3600))),
        lambda p: Expect(False, M if p.dialect == "nhs" else H),
        "RFC 7523 3 (may reject an unreasonably far exp); the NHS platform: at most 5 minutes",
    ),
    Case(
        "iat-hour-ahead",
        "iat an hour ahead",
        "R16",
        lambda c: Attempt(c.form(c.assertion(iat=_now(c) + 3600, exp=_now(c) + 3660))),
        _unless_nhs(lambda p: Expect(False, M if _fapi(p) else H)),
        "FAPI2 5.3.2.1-13 (reject iat beyond 60 s ahead); RFC 7519 4.1.6",
    ),
    Case(
        "nbf-90s-ahead",
        "nbf 90 s ahead",
        "R16",
        lambda c: Attempt(c.form(c.assertion(nbf=_now(c) + 90, exp=_now(c) + 150))),
        _refuse(M),
        "RFC 7519 4.1.5 (not before); the OpenID conformance suite's negative list",
    ),
    Case(
        "iat-8s-ahead",
        "iat and nbf 8 s ahead (a client clock slightly fast: tolerated)",
        "R16",
        lambda c: Attempt(c.form(c.assertion(iat=_now(c) + 8, nbf=_now(c) + 8))),
        _accept(M),
        "the OpenID conformance suite: 8 s ahead must still be accepted",
    ),
    Case(
        "typ-at-jwt",
        "typ at+jwt (an access token passed off as an assertion)",
        "R12",
        lambda c: Attempt(c.form(c.assertion(header={"typ": "at+jwt"}))),
        lambda p: Expect(False, M if p.dialect == "nhs" else S),
        "RFC 8725 3.11 (explicit typing against cross-JWT confusion)",
    ),
    Case(
        "typ-dpop-jwt",
        "typ dpop+jwt (a DPoP proof passed off as an assertion)",
        "R12",
        lambda c: Attempt(c.form(c.assertion(header={"typ": "dpop+jwt"}))),
        lambda p: Expect(False, M if p.dialect == "nhs" else S),
        "RFC 8725 3.11; RFC 9449 4.2",
    ),
    Case(
        "alg-none",
        "alg none, no signature",
        "R8",
        lambda c: Attempt(c.form(forge.unsigned(c.header(alg="none"), c.claims()))),
        _refuse(M),
    ),
    Case(
        "alg-hs256-public-key",
        "HS256 keyed with the client's public key (algorithm confusion)",
        "R8",
        lambda c: Attempt(
            c.form(forge.hmac_sign(c.key.public_pem(), c.header(alg="HS256"), c.claims()))
        ),
        _refuse(M),
    ),
    Case(
        "rs256-under-fapi",
        "RS256 where FAPI 2.0 allows PS256/ES256/EdDSA only",
        "R8",
        _rs256,
        lambda p: Expect(False, M) if _fapi(p) and "RS256" not in p.algs else None,
        "FAPI2 5.4",
    ),
    Case(
        "signature-bad",
        "the signature's last bytes changed",
        "R11",
        lambda c: Attempt(c.form(_tamper(c.assertion()))),
        _refuse(M),
    ),
    Case(
        "signature-other-key",
        "signed by another key under the registered kid",
        "R11",
        lambda c: Attempt(c.form(c.assertion(key=c.stranger))),
        _refuse(M),
    ),
    Case(
        "kid-unknown",
        "a kid the client never registered",
        "R9",
        lambda c: Attempt(
            c.form(c.assertion(header={"kid": "not-registered-" + uuid.uuid4().hex[:8]}))
        ),
        _refuse(M),
    ),
    Case(
        "jwk-header",
        "the attacker's key in a jwk header, signed with it",
        "R9",
        lambda c: Attempt(
            c.form(c.assertion(key=c.stranger, header={"jwk": c.stranger.public_jwk()}))
        ),
        _refuse(M),
        "RFC 8725 3.10; OIDC Core 10.1",
    ),
    Case(
        "jku-header",
        "a jku header naming the attacker's key set, signed with its key",
        "R9",
        lambda c: Attempt(
            c.form(c.assertion(key=c.stranger, header={"jku": "https://attacker.example/jwks"}))
        ),
        _refuse(M),
        "RFC 8725 3.10",
    ),
    Case(
        "x5u-header",
        "an x5u header naming the attacker's certificate, signed with its key",
        "R9",
        lambda c: Attempt(
            c.form(c.assertion(key=c.stranger, header={"x5u": "https://attacker.example/cert"}))
        ),
        _refuse(M),
        "RFC 8725 3.10",
    ),
    Case(
        "duplicate-members",
        "a duplicate sub member (the second one another client's)",
        "R6",
        lambda c: Attempt(c.form(_duplicate_sub(c))),
        _refuse(H),
        "RFC 7515 4 / RFC 7519 4 (a parser may take either: refuse what is ambiguous)",
    ),
    Case(
        "replay",
        "the same assertion sent twice",
        "R19",
        _replay,
        _refuse(M),
    ),
    Case(
        "nhs-typ-missing",
        "no typ header (the platform requires JWT)",
        "R12",
        lambda c: Attempt(c.form(c.assertion(header={"typ": DROP}))),
        _only_nhs(_refuse(M)),
        "the NHS platform: typ must be JWT",
    ),
    Case(
        "nhs-kid-missing",
        "no kid header",
        "R9",
        lambda c: Attempt(c.form(c.assertion(header={"kid": DROP}))),
        _only_nhs(_refuse(M)),
        "the NHS platform: kid is required",
    ),
    Case(
        "nhs-exp-6-minutes",
        "exp 6 minutes ahead (the platform allows 5)",
        "R17",
        lambda c: Attempt(c.form(c.assertion(exp=_now(c) + 360))),
        _only_nhs(_refuse(M)),
        "the NHS platform: exp at most 5 minutes (310 s) ahead",
    ),
    Case(
        "nhs-exp-string",
        "exp as a JSON string",
        "R15",
        lambda c: Attempt(c.form(c.assertion(exp=str(_now(c) + 60)))),
        _only_nhs(_refuse(M)),
        "the NHS platform: exp must be a number",
    ),
)
