"""The rule table: how a client assertion is judged (rules R5-R19 of assertion-rules.md).

One table, three readers: the local server enforces it, the doctor explains it, the
conformance runner attacks other servers with it. Each rule is a small function returning one
:class:`Finding` (pass, fail or skip). :func:`check` runs them in the table's order; a failed
R5/R6 ends the run (there is nothing left to read), and R19, the replay check, runs only when
everything else passed, because recording a ``jti`` is the one side effect.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, NamedTuple

from ._key_formats import jwk_certificates
from .catalogue import CATALOGUE, RuleInfo
from .certificates import check_chain, header_values
from .decode import DecodedJWT, DecodeError, decode_compact
from .errors import KeyLoadError
from .federation import FederatedTrust
from .keys import Key, KeySet
from .profiles import EXPLICIT_TYP, AudiencePolicy, Profile, TypPolicy

__all__ = [
    "RULES",
    "Finding",
    "Report",
    "Rule",
    "RuleContext",
    "Verdict",
    "check",
    "replay_entry",
    "replay_verdict",
]


class Verdict(StrEnum):
    """A rule's outcome: it passed, failed, or could not be judged (``SKIP``: e.g. no key given
    to check a signature against)."""

    PASS = "pass"
    FAIL = "fail"
    SKIP = "skip"


class Finding(NamedTuple):
    """One rule's verdict. ``code`` names the exact condition (``exp.expired``).

    A named tuple rather than a frozen dataclass: a dozen are made per checked assertion, and a
    tuple is built several times faster.
    """

    rule: str
    verdict: Verdict
    code: str
    expected: str = ""
    got: str = ""
    source: str = ""
    hint: str = ""
    error: str = "invalid_client"

    @property
    def ok(self) -> bool:
        """True unless the verdict is FAIL (a skipped rule is not a failure)."""
        return self.verdict is not Verdict.FAIL

    def as_dict(self) -> dict[str, Any]:
        """The finding as a JSON-ready dict (what ``pkjwt doctor --json`` prints)."""
        return {
            "rule": self.rule,
            "verdict": self.verdict.value,
            "code": self.code,
            "expected": self.expected,
            "got": self.got,
            "source": self.source,
            "hint": self.hint,
            "error": self.error,
        }


#: inserts (client_id, jti) if absent with the given expiry (epoch seconds); True when new
ReplayCheck = Callable[[str, str, float], bool]


@dataclass(frozen=True, slots=True)
class RuleContext:
    """What a check knows besides the assertion. ``None`` means "not known here": the rules
    that need it are skipped (the doctor without a JWKS cannot check a signature)."""

    profile: Profile
    now: float
    issuer: str | None = None
    token_endpoint: str | None = None
    #: the client the server expects (a body ``client_id``); checked against ``iss``/``sub``
    client_id: str | None = None
    #: whether ``sub`` names a registered client allowed private_key_jwt (None: not checked)
    client_registered: bool | None = None
    #: whether ``sub`` names a client at all, perhaps one registered for another method only
    #: (None: not known here; only consulted when ``client_registered`` is False)
    client_known: bool | None = None
    keys: KeySet | None = None
    #: the client's registered ``token_endpoint_auth_signing_alg``
    client_alg: str | None = None
    require_explicit_typ: bool = False
    replay: ReplayCheck | None = None
    #: the client presents another issuer's identity token under this trust (R7, R13, R14,
    #: R18 read it; the profile passed with it carries its algorithm, typ and lifetime limits)
    federated: FederatedTrust | None = None


@dataclass(slots=True)
class _State:
    jwt: DecodedJWT
    ctx: RuleContext
    key: Key | None = None


@dataclass(frozen=True, slots=True)
class Rule:
    """One check of the table: its catalogue entry and the function that runs it."""

    info: RuleInfo
    run: Callable[[_State], Finding]

    @property
    def id(self) -> str:
        return self.info.id

    @property
    def title(self) -> str:
        return self.info.title

    @property
    def source(self) -> str:
        return self.info.source


@dataclass(frozen=True, slots=True)
class Report:
    """Every finding, in table order. ``header``/``claims`` are the decoded (untrusted) parts."""

    findings: tuple[Finding, ...]
    header: dict[str, Any] = field(default_factory=dict)
    claims: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """True when no rule failed."""
        return all(f.ok for f in self.findings)

    @property
    def failures(self) -> list[Finding]:
        """The failed findings, in rule order."""
        return [f for f in self.findings if f.verdict is Verdict.FAIL]

    @property
    def first_failure(self) -> Finding | None:
        """The first failed finding (the one a server answers with), or None."""
        for f in self.findings:
            if f.verdict is Verdict.FAIL:
                return f
        return None

    def failed(self, code: str) -> bool:
        """Whether a finding with this ``code`` (``exp.expired``) failed."""
        return any(f.code == code and f.verdict is Verdict.FAIL for f in self.findings)

    def passed(self, code: str) -> bool:
        """Whether a finding with this ``code`` passed."""
        return any(f.code == code and f.verdict is Verdict.PASS for f in self.findings)


# -- helpers --------------------------------------------------------------------------------------


def _show(value: Any, limit: int = 80) -> str:
    """A bounded, printable rendering of an untrusted value for messages."""
    if value is _MISSING:
        return "(absent)"
    if isinstance(value, str) and len(value) <= limit and value.isascii() and value.isprintable():
        return value  # the common case, without a per-character pass
    text = repr(value) if not isinstance(value, str) else value
    text = "".join(ch if 32 <= ord(ch) < 127 else "?" for ch in text)
    return text if len(text) <= limit else text[: limit - 3] + "..."


_MISSING: Any = object()


def _json_type(value: Any) -> str:
    names = {str: "string", bool: "boolean", list: "array", dict: "object", type(None): "null"}
    return names.get(type(value), "number")


#: NumericDate values beyond this (year ~33,000) are nonsense, and too big for float arithmetic
_MAX_NUMERIC_DATE = 1e12


def _num(value: Any) -> bool:
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and -_MAX_NUMERIC_DATE < value < _MAX_NUMERIC_DATE
    )


def _milliseconds(value: Any) -> bool:
    """A NumericDate written in milliseconds (``Date.now()``, ``time.time_ns() // 10**6``): from
    2001 to 5138 in milliseconds, which as seconds would be the year 33,000 or later."""
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and _MAX_NUMERIC_DATE <= value < 1e14
    )


_finding = tuple.__new__  # Finding's generated __new__ is Python code; passes are the hot path
_NO_HINT_DEFAULT_ERROR = (Finding._field_defaults["hint"], Finding._field_defaults["error"])
#: each rule's source, from the catalogue (looked up per finding: a dozen per assertion)
_SOURCE = {rule_id: info.source for rule_id, info in CATALOGUE.items()}


def _pass(rule: str, code: str, expected: str = "", got: str = "") -> Finding:
    return _finding(
        Finding, (rule, Verdict.PASS, code, expected, got, _SOURCE[rule], *_NO_HINT_DEFAULT_ERROR)
    )


def _skip(rule: str, code: str, why: str) -> Finding:
    return Finding(rule, Verdict.SKIP, code, "", why, _SOURCE[rule])


def _fail(rule: str, code: str, expected: str, got: str, hint: str = "") -> Finding:
    return Finding(rule, Verdict.FAIL, code, expected, got, _SOURCE[rule], hint)


# -- R7: who is the client ------------------------------------------------------------------------


def _r7_client(s: _State) -> Finding:
    sub = s.jwt.claims.get("sub", _MISSING)
    ctx = s.ctx
    if ctx.federated is not None:  # the client is the body's client_id; sub is the workload
        return _pass(
            "R7", "client.federated", "a client trusting the token's issuer", str(ctx.client_id)
        )
    if ctx.client_id is not None and isinstance(sub, str) and sub != ctx.client_id:
        return _fail(
            "R7",
            "client.body_mismatch",
            f"sub = client_id {ctx.client_id!r}",
            _show(sub),
            "the client_id form parameter and the assertion's sub must name one client",
        )
    if ctx.client_registered is None:
        return _skip("R7", "client.registered", "no client registry here")
    if not ctx.client_registered and ctx.client_known:
        return _fail(
            "R7",
            "client.method",
            "a client registered for private_key_jwt",
            f"{_show(sub)}, registered without keys",
            "register a public key (jwks or jwks_uri) for this client",
        )
    if not ctx.client_registered:
        return _fail(
            "R7",
            "client.unknown",
            "sub naming a registered client",
            _show(sub),
            "iss and sub must both be your client_id (the NHS calls it the API key)",
        )
    return _pass("R7", "client.registered", "a registered client", _show(sub))


# -- R8: algorithm --------------------------------------------------------------------------------


def _r8_alg(s: _State) -> Finding:
    alg = s.jwt.header.get("alg", _MISSING)
    profile = s.ctx.profile
    allowed = ", ".join(sorted(profile.algs))
    if alg is _MISSING or not isinstance(alg, str):
        return _fail("R8", "alg.missing", f"alg one of {allowed}", _show(alg))
    if alg.lower() == "none":
        return _fail(
            "R8",
            "alg.none",
            f"alg one of {allowed}",
            alg,
            "an unsigned JWT proves nothing; sign it with your private key",
        )
    if alg.upper().startswith("HS"):
        return _fail(
            "R8",
            "alg.hmac",
            f"alg one of {allowed}",
            alg,
            "HMAC algorithms are client_secret_jwt, not private_key_jwt; sign with your "
            "private key (RSA/EC/Ed25519)",
        )
    if alg not in profile.algs:
        hint = f"the {profile.name} profile accepts {allowed}"
        if profile.preferred_alg:
            hint = f"the {profile.name} profile requires {profile.preferred_alg}"
            if alg.startswith("ES"):
                hint += " (an RSA key); an EC key cannot make this signature"
        return _fail("R8", "alg.not_allowed", f"alg one of {allowed}", alg, hint)
    if s.ctx.client_alg and alg != s.ctx.client_alg:
        return _fail(
            "R8",
            "alg.registered_mismatch",
            f"alg {s.ctx.client_alg} (registered)",
            alg,
            "sign with the algorithm registered for this client",
        )
    return _pass("R8", "alg.ok", f"alg one of {allowed}", alg)


# -- R9: which key --------------------------------------------------------------------------------


def _r9_key(s: _State) -> Finding:
    header = s.jwt.header
    profile = s.ctx.profile
    for name in profile.untrusted_key_headers:
        if name in header:
            return _fail(
                "R9",
                "key.untrusted_header",
                "keys only from the client's registration",
                f"header {name!r}",
                f"remove the {name} header: servers must never take the key from the JWT",
            )
    kid = header.get("kid", _MISSING)
    if kid is not _MISSING and not isinstance(kid, str):
        return _fail("R9", "kid.type", "kid a string", _show(kid))
    if profile.kid_required and (kid is _MISSING or not kid):  # an empty kid names no key
        return _fail(
            "R9",
            "kid.missing",
            "a kid header",
            "(absent)" if kid is _MISSING else "(empty)",
            "add the kid of your registered public key to the JWT header",
        )
    keys = s.ctx.keys
    if keys is None:
        return _skip("R9", "key.selected", "no JWKS given")
    if kid is _MISSING and len(keys.keys) > 1:
        return _fail(
            "R9",
            "kid.missing",
            "a kid header (the JWKS has several keys)",
            "(absent)",
            "add the kid of the signing key to the JWT header",
        )
    key = keys.get(None if kid is _MISSING else kid)
    unusable = keys.why_ignored(kid) if key is None and isinstance(kid, str) else None
    if unusable is not None:
        return _fail(
            "R9",
            "key.unusable",
            "a registered key that may verify signatures",
            f"kid {_show(kid)}: {_show(unusable, 120)}",
            "the registered JWK cannot verify a signature: publish it with use 'sig' (or no "
            "use) and key_ops including 'verify' (or none), as a supported key type",
        )
    if key is None:
        return _fail(
            "R9",
            "kid.unknown",
            "kid one of " + _show(", ".join(keys.kids)),
            _show(kid),
            "the kid must match a key in your registered JWKS; publish the key (and wait for "
            "the server's JWKS cache) before signing with it",
        )
    alg = header.get("alg")
    if alg not in key.algs:
        if key.alg_pinned:  # the JWK names its alg: the key could, the registration won't
            expected = f"alg {key.alg} (the registered JWK's alg)"
            hint = (
                f"key {key.kid!r} is registered for {key.alg} only: sign with {key.alg} "
                f"(pkjwt: --alg {key.alg}), or register the key without alg"
            )
        else:
            expected = f"an alg the key can do ({', '.join(key.algs)})"
            hint = f"key {key.kid!r} is {key.kty}; sign with {key.alg}"
        return _fail("R9", "key.type_mismatch", expected, _show(alg), hint)
    if key.kty == "RSA" and key.size < profile.min_rsa_bits:
        return _fail("R9", "key.too_small", f"RSA >= {profile.min_rsa_bits} bits", str(key.size))
    wrong = _certificate_finding(header, key)
    if wrong is not None:
        return wrong
    s.key = key
    return _pass("R9", "key.selected", "a registered key", f"kid {key.kid!r}")


def _certificate_finding(header: Mapping[str, Any], key: Key) -> Finding | None:
    wrong = certificate_mismatch(header, key)
    if wrong is None:
        return None
    name, expected, got = wrong
    return _fail(
        "R9",
        "key.certificate",
        expected,
        got,
        f"the {name} header must name the certificate of key {key.kid!r}: send the "
        "certificate issued for the signing key (or no certificate headers)",
    )


def certificate_mismatch(header: Mapping[str, Any], key: Key) -> tuple[str, str, str] | None:
    """Certificate headers that name something other than ``key``: ``x5c`` whose leaf holds
    another key, or ``x5t#S256``/``x5t`` that are not the thumbprints of the certificate the
    registered JWK carries (its ``x5c``); (header, expected, got), or None."""
    x5c = header.get("x5c")
    if x5c is not None:
        try:
            leaf = jwk_certificates(x5c, "x5c")[:1]
            check_chain(key, leaf, "x5c")
        except KeyLoadError:
            return "x5c", f"a chain whose first certificate holds key {key.kid!r}", "another"
    if not key.certificates:
        return None  # nothing registered to compare a thumbprint with
    for name in ("x5t#S256", "x5t"):
        if name in header:
            expected = header_values(key.certificates, (name,))[name]
            if header[name] != expected:
                return name, f"{name} {expected}", _show(header[name])
    return None


# -- R11: signature -------------------------------------------------------------------------------


def _r11_signature(s: _State) -> Finding:
    if s.key is None:
        return _skip("R11", "signature.valid", "no key selected")
    alg = str(s.jwt.header.get("alg"))
    if not s.key.verifies(s.jwt.signing_input, s.jwt.signature, alg):
        hint = "the JWT was not signed by the private half of the registered key"
        if alg.startswith("ES"):
            hint += "; ECDSA signatures must be raw R||S (64 bytes for ES256), not DER"
        return _fail("R11", "signature.invalid", "a valid signature", "invalid", hint)
    return _pass("R11", "signature.valid", "a valid signature", "valid")


# -- R12: typ -------------------------------------------------------------------------------------

_EXPLICIT = {EXPLICIT_TYP, "application/" + EXPLICIT_TYP}
#: RFC 7515 4.1.9: a media type may be written with or without "application/", any case
_PLAIN_JWT = {"jwt", "application/jwt"}


def _r12_typ(s: _State) -> Finding:
    typ = s.jwt.header.get("typ", _MISSING)
    policy = s.ctx.profile.typ_policy
    if policy is TypPolicy.EXPLICIT or s.ctx.require_explicit_typ:
        if isinstance(typ, str) and typ.lower() in _EXPLICIT:
            return _pass("R12", "typ.ok", EXPLICIT_TYP, typ)
        return _fail(
            "R12",
            "typ.explicit_required",
            EXPLICIT_TYP,
            _show(typ),
            f"this server requires explicit typing: set the header typ to {EXPLICIT_TYP}",
        )
    if policy is TypPolicy.JWT:
        if typ is _MISSING:
            return _fail(
                "R12",
                "typ.missing",
                "typ JWT",
                "(absent)",
                'add "typ": "JWT" to the header; some libraries drop it when you pass '
                "extra headers (jose-jwt does)",
            )
        if not isinstance(typ, str) or typ.upper() != "JWT":
            hint = 'use "typ": "JWT"'
            if isinstance(typ, str) and typ.lower() == "application/jwt":
                # the platform compares the value with "jwt" after lower-casing, nothing more
                hint += " (this server compares typ with JWT literally: application/jwt fails)"
            return _fail("R12", "typ.wrong", "typ JWT", _show(typ), hint)
        return _pass("R12", "typ.ok", "typ JWT", typ)
    if typ is _MISSING:
        return _pass("R12", "typ.ok", f"absent, JWT or {EXPLICIT_TYP}", "(absent)")
    if isinstance(typ, str) and (typ.lower() in _PLAIN_JWT or typ.lower() in _EXPLICIT):
        return _pass("R12", "typ.ok", f"absent, JWT or {EXPLICIT_TYP}", typ)
    return _fail(
        "R12",
        "typ.wrong",
        f"absent, JWT or {EXPLICIT_TYP}",
        _show(typ),
        "a token of another type (an access token, a DPoP proof) is not a client assertion",
    )


# -- R13: iss and sub -----------------------------------------------------------------------------


_MAX_CLIENT_ID = 256


def _r13_iss_sub(s: _State) -> Finding:
    claims = s.jwt.claims
    iss = claims.get("iss", _MISSING)
    sub = claims.get("sub", _MISSING)
    if s.ctx.federated is not None:
        return _federated_iss_sub(s.ctx.federated, iss, sub)
    expected = f"iss = sub = {s.ctx.client_id!r}" if s.ctx.client_id else "iss = sub = client_id"
    got = f"iss={_show(iss)} sub={_show(sub)}"
    if iss is _MISSING or not isinstance(iss, str) or not iss:
        return _fail("R13", "iss.missing", expected, got, "set iss to your client_id")
    if sub is _MISSING or not isinstance(sub, str) or not sub:
        return _fail(
            "R13",
            "sub.missing",
            expected,
            got,
            "set sub to your client_id as well (the NHS platform requires both iss and sub)",
        )
    if len(iss) > _MAX_CLIENT_ID or len(sub) > _MAX_CLIENT_ID:
        # no client id is this long; a bound keeps what an unauthenticated caller can make the
        # server remember (a jti is recorded per sub) small
        length = f"{max(len(iss), len(sub))} chars"
        return _fail("R13", "iss.length", f"iss/sub of at most {_MAX_CLIENT_ID} chars", length)
    if iss != sub:
        return _fail("R13", "iss_sub.mismatch", expected, got, "iss and sub must be equal")
    if s.ctx.client_id is not None and iss != s.ctx.client_id:
        return _fail("R13", "iss.wrong", expected, got, "iss and sub must be your client_id")
    return _pass("R13", "iss_sub.ok", expected, got)


def _federated_iss_sub(trust: FederatedTrust, iss: Any, sub: Any) -> Finding:
    expected = f"iss {trust.issuer!r}, sub {trust.subject!r} (the federated trust)"
    got = f"iss={_show(iss)} sub={_show(sub)}"
    if iss != trust.issuer:
        hint = "the token comes from another issuer than the client's federated trust names"
        return _fail("R13", "iss.federated", expected, got, hint)
    if sub != trust.subject:
        hint = "the token names another workload than the trust (check the subject's exact form)"
        return _fail("R13", "sub.federated", expected, got, hint)
    return _pass("R13", "iss_sub.federated", expected, got)


# -- R14: aud -------------------------------------------------------------------------------------


def _aud_token_endpoint(aud: Any, issuer: str | None, token_url: str | None) -> Finding:
    """The NHS platform's rule: exactly the token URL, character for character."""
    expected = f"aud = {token_url}" if token_url else "aud = the token endpoint URL"
    hint = "aud must be the exact token URL you POST to, character for character"
    if isinstance(aud, str) and issuer and aud == issuer:
        hint += " (you sent the issuer; this server wants the token URL)"
    if token_url is None:
        if isinstance(aud, str) and aud:
            return _skip("R14", "aud.value", "token URL not given; aud not compared")
        return _fail("R14", "aud.missing", expected, _show(aud), hint)
    if aud == token_url:
        return _pass("R14", "aud.ok", expected, aud)
    code = "aud.missing" if aud is _MISSING else "aud.wrong"
    return _fail("R14", code, expected, _show(aud), hint)


def _aud_strict(aud: Any, issuer: str | None, token_url: str | None) -> Finding:
    """rfc7523bis and FAPI 2.0: the issuer, as a string, and nothing else."""
    expected = f"aud = {issuer!r} (a string)"
    if aud == issuer:
        return _pass("R14", "aud.ok", expected, _show(aud))
    if isinstance(aud, list) and aud == [issuer]:
        return _fail(
            "R14",
            "aud.array",
            expected,
            _show(aud),
            "send the issuer as a plain string, not a one-element array (OIDC errata 3)",
        )
    if token_url and (aud == token_url or (isinstance(aud, list) and token_url in aud)):
        return _fail(
            "R14",
            "aud.token_endpoint",
            expected,
            _show(aud),
            "since the 2025 audience-injection fixes this server wants the issuer "
            "identifier in aud, not the token endpoint URL (use the rfc7523bis profile)",
        )
    return _fail(
        "R14",
        "aud.wrong",
        expected,
        _show(aud),
        "aud must be the authorization server's issuer identifier (from its metadata)",
    )


def _federated_aud(aud: Any, trust: FederatedTrust) -> Finding:
    expected = "aud naming " + " or ".join(trust.audiences)
    named = [aud] if isinstance(aud, str) else aud if isinstance(aud, list) else []
    if any(a in trust.audiences for a in named if isinstance(a, str)):
        return _pass("R14", "aud.federated", expected, _show(aud))
    hint = "ask the issuer for a token with the audience the trust names"
    code = "aud.missing" if aud is _MISSING else "aud.wrong"
    return _fail("R14", code, expected, _show(aud), hint)


def _r14_aud(s: _State) -> Finding:
    aud = s.jwt.claims.get("aud", _MISSING)
    ctx = s.ctx
    if ctx.federated is not None:
        return _federated_aud(aud, ctx.federated)
    policy = ctx.profile.audience_policy
    issuer, token_url = ctx.issuer, ctx.token_endpoint
    if policy is AudiencePolicy.TOKEN_ENDPOINT:
        return _aud_token_endpoint(aud, issuer, token_url)
    if issuer is None and token_url is None:
        if isinstance(aud, str | list) and aud:
            return _skip("R14", "aud.value", "issuer not given; aud not compared")
        return _fail("R14", "aud.missing", "aud = the issuer", _show(aud))
    if aud is _MISSING:
        return _fail("R14", "aud.missing", f"aud = {issuer}", "(absent)")
    if policy is AudiencePolicy.STRICT:
        return _aud_strict(aud, issuer, token_url)
    accepted = [a for a in (issuer, token_url) if a]
    expected = "aud = " + " or ".join(accepted)
    if policy is AudiencePolicy.ISSUER_STRING_OR_ARRAY:
        accepted = [issuer] if issuer else []
        expected = f"aud = {issuer} (string or one-element array)"
        if aud == issuer or (isinstance(aud, list) and aud == [issuer]):
            return _pass("R14", "aud.ok", expected, _show(aud))
    elif isinstance(aud, str) and aud in accepted:
        return _pass("R14", "aud.ok", expected, aud)
    elif isinstance(aud, list) and aud and all(isinstance(a, str) for a in aud):
        if all(a in accepted for a in aud):
            return _pass("R14", "aud.ok", expected, _show(aud))
        if any(a in accepted for a in aud):
            # an assertion addressed to this server and another one is valid at both: what
            # the 2025 audience-injection attacks collect and replay
            return _fail(
                "R14",
                "aud.foreign",
                expected + " (only)",
                _show(aud),
                "aud names another server too: an assertion must be addressed to this server alone",
            )
    return _fail(
        "R14",
        "aud.wrong",
        expected,
        _show(aud),
        "aud must be the server's issuer identifier (or, for older servers, the token URL)",
    )


# -- R15/R16/R17: time ----------------------------------------------------------------------------


def _r15_exp(s: _State) -> Finding:
    exp = s.jwt.claims.get("exp", _MISSING)
    profile = s.ctx.profile
    skew = profile.skew if profile.expiry_leeway is None else profile.expiry_leeway
    if exp is _MISSING:
        hint = "add exp (now + 60 s is plenty; at most 300 s)"
        if "expires" in s.jwt.claims or "expiry" in s.jwt.claims:
            hint = "the claim is called exp (seconds since the epoch)"
        return _fail("R15", "exp.missing", "exp, a number", "(absent)", hint)
    if _milliseconds(exp):  # in the future, and far too far: R17 says why
        return _pass("R15", "exp.ok", "exp in the future", "in milliseconds (see R17)")
    if not _num(exp):
        hint = "exp must be a JSON number of seconds, not a string: int(time.time()) + 300"
        got = f"{_show(exp)!r} (a JSON {_json_type(exp)})"
        return _fail("R15", "exp.type", "exp, a number", got, hint)
    if exp <= s.ctx.now - skew:
        ago = int(s.ctx.now - exp)
        return _fail(
            "R15",
            "exp.expired",
            f"exp after now (skew {skew} s)",
            f"expired {ago} s ago",
            "make a fresh assertion for every request; check your clock (NTP)",
        )
    return _pass("R15", "exp.ok", "exp in the future", f"in {int(exp - s.ctx.now)} s")


def _r16_iat_nbf(s: _State) -> Finding:
    profile = s.ctx.profile
    now = s.ctx.now
    # FAPI 2.0 accepts iat/nbf up to 10 s ahead and rejects beyond 60 s: its cap is the wider one
    limit = profile.max_future_iat if profile.max_future_iat is not None else profile.skew
    for name in ("iat", "nbf") if profile.check_iat else ("nbf",):
        value = s.jwt.claims.get(name, _MISSING)
        if value is _MISSING:
            continue
        if not _num(value):
            return _fail(
                "R16",
                f"{name}.type",
                f"{name}, a number",
                _show(value),
                f"{name} must be a JSON number of seconds since the epoch",
            )
        ahead = value - now
        if ahead > limit:
            return _fail(
                "R16",
                f"{name}.future",
                f"{name} not after now + {limit} s",
                f"{int(ahead)} s ahead",
                "your clock is ahead of the server's: sync it (NTP), or let pkjwt "
                "correct skew from the server's Date header",
            )
    return _pass("R16", "iat_nbf.ok", f"iat/nbf not after now + {limit} s", "ok")


def _r17_lifetime(s: _State) -> Finding:
    exp = s.jwt.claims.get("exp")
    cap = s.ctx.profile.max_lifetime
    if _milliseconds(exp):
        return _fail(
            "R17",
            "exp.too_far",
            f"exp - now <= {cap} s",
            f"{_show(exp)} (milliseconds?)",
            "exp is in milliseconds: NumericDate is seconds since the epoch, "
            "int(time.time()) + 300",
        )
    if not _num(exp):
        return _skip("R17", "exp.lifetime", "exp unusable (see R15)")
    assert isinstance(exp, int | float)
    ahead = exp - s.ctx.now
    if ahead > cap:
        hint = s.ctx.profile.lifetime_hint or (
            f"exp may be at most {cap} s after now; use now + 300 or less"
        )
        return _fail("R17", "exp.too_far", f"exp - now <= {cap} s", f"{int(ahead)} s", hint)
    return _pass("R17", "exp.lifetime", f"exp - now <= {cap} s", f"{int(ahead)} s")


# -- R18/R19: jti ---------------------------------------------------------------------------------


def _r18_jti(s: _State) -> Finding:
    jti = s.jwt.claims.get("jti", _MISSING)
    cap = s.ctx.profile.max_jti_length
    if s.ctx.federated is not None and (jti is _MISSING or jti is None):
        return _pass("R18", "jti.optional", "jti optional (a federated token)", "(absent)")
    if jti is _MISSING:
        hint = "add a unique jti to every assertion: str(uuid.uuid4())"
        if "jit" in s.jwt.claims:
            hint = "the claims hold 'jit': a typo for 'jti'"
        return _fail("R18", "jti.missing", "jti, a unique string", "(absent)", hint)
    if jti is None or jti == "":  # an empty jti is no jti (the NHS platform says "Missing")
        return _fail(
            "R18",
            "jti.missing",
            "jti, a unique string",
            "(empty)" if jti == "" else "null",
            "add a unique jti to every assertion: str(uuid.uuid4())",
        )
    if not isinstance(jti, str):
        return _fail(
            "R18",
            "jti.type",
            "jti, a non-empty string",
            _show(jti),
            "jti must be a unique string such as a GUID: str(uuid.uuid4())",
        )
    if len(jti) > cap:
        return _fail("R18", "jti.length", f"jti of at most {cap} chars", str(len(jti)))
    return _pass("R18", "jti.ok", "jti, a unique string", _show(jti, 40))


def replay_entry(
    jwt: DecodedJWT, ctx: RuleContext, *, verified: bool = True
) -> tuple[str, str, float]:
    """What R19 records: (client_id, jti, until). ``until`` is when the jti may be forgotten:
    past ``exp`` plus the skew, and never before the profile's jti memory ends. An assertion
    whose signature was not verified (recorded early, as the NHS platform does) is remembered
    only until it expires: past ``exp`` it fails as expired before its jti is looked at, and
    an unauthenticated caller cannot make the server remember anything for 30 days."""
    claims = jwt.claims
    profile = ctx.profile
    until = float(claims["exp"]) + profile.skew
    if verified:
        until = max(until, ctx.now + profile.jti_memory)
    return str(claims.get("sub")), str(claims["jti"]), until


def replay_verdict(jwt: DecodedJWT, fresh: bool) -> Finding:
    """R19's finding once the store has answered whether the jti was fresh."""
    if not fresh:
        return _fail(
            "R19",
            "jti.replay",
            "a jti not used before",
            _show(jwt.claims["jti"], 40),
            "never reuse an assertion: make a new one (new jti) for every token request",
        )
    return _pass("R19", "jti.fresh", "a jti not used before", "fresh")


def _r19_replay(s: _State) -> Finding:
    replay = s.ctx.replay
    if s.ctx.federated is not None:
        return _skip("R19", "jti.replay", "a federated token is presented until it expires")
    if replay is None:
        return _skip("R19", "jti.replay", "no replay store here")
    return replay_verdict(s.jwt, replay(*replay_entry(s.jwt, s.ctx)))


RULES: tuple[Rule, ...] = tuple(
    Rule(CATALOGUE[rule_id], run)
    for rule_id, run in (
        ("R7", _r7_client),
        ("R8", _r8_alg),
        ("R9", _r9_key),
        ("R11", _r11_signature),
        ("R12", _r12_typ),
        ("R13", _r13_iss_sub),
        ("R14", _r14_aud),
        ("R15", _r15_exp),
        ("R16", _r16_iat_nbf),
        ("R17", _r17_lifetime),
        ("R18", _r18_jti),
    )
)
REPLAY_RULE = Rule(CATALOGUE["R19"], _r19_replay)
#: every rule's title by id (the doctor prints them; R1-R20, from the catalogue)
RULE_TITLES: dict[str, str] = {rule_id: info.title for rule_id, info in CATALOGUE.items()}


def _structure(jwt: DecodedJWT) -> list[Finding]:
    findings = [_pass("R5", "jws.compact", "compact JWS", f"{jwt.size} bytes")]
    crit = jwt.header.get("crit", _MISSING)
    if crit is not _MISSING:
        findings.append(
            _fail(
                "R6",
                "jws.crit",
                "no crit header",
                _show(crit),
                "no critical extensions are understood; remove crit",
            )
        )
    else:
        findings.append(_pass("R6", "json.ok", "JSON objects", "ok"))
    return findings


def check(
    token: str | bytes | DecodedJWT,
    ctx: RuleContext,
    *,
    rules: Sequence[Rule] = RULES,
    replay: bool = True,
) -> Report:
    """Judge an assertion against the rule table; never raises on bad input.

    ``replay=False`` leaves R19 out of the report, for a caller that records the ``jti`` itself
    (:func:`replay_entry`, then :func:`replay_verdict`): the server, which decides when it is
    due (the NHS dialect records it even when a later check fails) and does not wait on a
    store on its event loop."""
    if isinstance(token, DecodedJWT):
        jwt = token
    else:
        try:
            jwt = decode_compact(token, max_bytes=ctx.profile.max_assertion_bytes)
        except DecodeError as exc:
            expected = "a compact JWS" if exc.rule == "R5" else "JSON objects"
            failure = _fail(exc.rule, exc.code, expected, exc.message, exc.hint or "")
            return Report((failure,))
    findings = _structure(jwt)
    if findings[-1].verdict is Verdict.FAIL:  # R6 (R5 passed, or decoding would have failed)
        return Report(tuple(findings), jwt.header, jwt.claims)
    state = _State(jwt, ctx)
    failed = False
    for rule in rules:
        finding = rule.run(state)
        findings.append(finding)
        failed = failed or finding.verdict is Verdict.FAIL
    if replay and not failed:
        findings.append(REPLAY_RULE.run(state))
    return Report(tuple(findings), jwt.header, jwt.claims)
