"""pkjwt.rules.check on hand-built assertions: one test per failure code."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pkjwt import PROFILES, Key, KeySet, Report, RuleContext, Verdict, check, get_profile
from pkjwt.decode import DecodeError, b64url, decode_compact
from pkjwt.forge import hmac_sign, segment, sign, signing_input, unsigned
from pkjwt.keys import load_jwks
from pkjwt.rules import Finding

from .helpers import (
    AS_TOKEN_URL,
    CLIENT_ID,
    ISSUER,
    NOW,
    TOKEN_URL,
    bis_claims,
    bis_header,
    nhs_claims,
    nhs_header,
)


def nhs_ctx(keys: KeySet | None, **kw: Any) -> RuleContext:
    return RuleContext(
        profile=get_profile("nhs"), now=NOW, token_endpoint=TOKEN_URL, keys=keys, **kw
    )


def bis_ctx(keys: KeySet | None, profile: str = "rfc7523bis", **kw: Any) -> RuleContext:
    kw.setdefault("issuer", ISSUER)
    kw.setdefault("token_endpoint", AS_TOKEN_URL)
    return RuleContext(profile=get_profile(profile), now=NOW, keys=keys, **kw)


def failing(report: Report) -> set[tuple[str, str]]:
    return {(f.rule, f.code) for f in report.failures}


def only_failure(report: Report) -> tuple[str, str]:
    fails = failing(report)
    assert len(fails) == 1, fails
    return next(iter(fails))


@pytest.fixture(scope="module")
def bis_keys(ec256_key: Key, rsa_key: Key) -> KeySet:
    return KeySet((ec256_key.public(), rsa_key.public()))


# -- baselines ---------------------------------------------------------------------------------


def test_valid_nhs_assertion_passes_every_rule(rsa_key: Key, nhs_keyset: KeySet) -> None:
    token = sign(rsa_key, nhs_header(), nhs_claims())
    report = check(token, nhs_ctx(nhs_keyset))
    assert report.ok
    assert report.failures == []
    assert report.first_failure is None
    assert [f.rule for f in report.findings] == [
        "R5", "R6", "R7", "R8", "R9", "R11", "R12", "R13", "R14", "R15", "R16", "R17", "R18",
        "R19",
    ]  # fmt: skip
    verdicts = {f.rule: f.verdict for f in report.findings}
    assert verdicts["R11"] is Verdict.PASS
    assert verdicts["R7"] is Verdict.SKIP  # no registry
    assert verdicts["R19"] is Verdict.SKIP  # no replay store
    assert report.header == nhs_header()
    assert report.claims == nhs_claims()


def test_valid_rfc7523bis_assertion_passes(ec256_key: Key, bis_keys: KeySet) -> None:
    token = sign(ec256_key, bis_header("ec256-1", "ES256"), bis_claims())
    report = check(token, bis_ctx(bis_keys))
    assert report.ok
    # pass findings are built by a shortcut constructor: they must be whole Findings
    passes = [f for f in report.findings if f.verdict is Verdict.PASS]
    assert len(passes) >= 10
    for f in passes:
        assert type(f) is Finding
        assert all((f.expected, f.got, f.source))
        assert (f.hint, f.error) == ("", "invalid_client")
        assert f == Finding(*f)


def test_without_keys_signature_is_skipped(rsa_key: Key) -> None:
    token = sign(rsa_key, nhs_header(), nhs_claims())
    report = check(token, nhs_ctx(None))
    assert report.ok
    skipped = {f.rule for f in report.findings if f.verdict is Verdict.SKIP}
    assert {"R9", "R11"} <= skipped


def test_finding_as_dict(rsa_key: Key) -> None:
    token = sign(rsa_key, nhs_header(), nhs_claims(exp=NOW - 100))
    report = check(token, nhs_ctx(None))
    failure = report.first_failure
    assert failure is not None
    d = failure.as_dict()
    assert d["rule"] == "R15"
    assert d["verdict"] == "fail"
    assert d["code"] == "exp.expired"
    assert d["error"] == "invalid_client"
    assert d["hint"]
    assert d["source"]
    json.dumps(d)


# -- R8: alg ----------------------------------------------------------------------------------


def test_alg_none(nhs_keyset: KeySet) -> None:
    for alg in ("none", "None", "NONE"):
        token = unsigned(nhs_header(alg=alg), nhs_claims())
        report = check(token, nhs_ctx(nhs_keyset))
        assert report.failed("alg.none")
        assert not report.ok
        assert not any(f.rule == "R11" and f.verdict is Verdict.PASS for f in report.findings)


def test_alg_hmac(nhs_keyset: KeySet) -> None:
    token = hmac_sign(b"client-secret", nhs_header(alg="HS256"), nhs_claims())
    report = check(token, nhs_ctx(nhs_keyset))
    assert report.failed("alg.hmac")
    assert not report.ok


def test_alg_confusion_with_public_key_as_hmac_secret(rsa_key: Key, bis_keys: KeySet) -> None:
    """The classic attack: HMAC the token with the server's copy of the public key."""
    secret = rsa_key.public_pem()
    header = bis_header("rsa-1", "HS256")
    report = check(hmac_sign(secret, header, bis_claims()), bis_ctx(bis_keys))
    assert report.failed("alg.hmac")
    assert not report.ok
    assert not any(f.rule == "R11" and f.verdict is Verdict.PASS for f in report.findings)
    # the same HMAC under an RS256 label is simply a bad signature
    header = bis_header("rsa-1", "RS256")
    report = check(hmac_sign(secret, header, bis_claims()), bis_ctx(bis_keys))
    assert only_failure(report) == ("R11", "signature.invalid")


@pytest.mark.parametrize(("alg", "fixture"), [("RS256", "rsa_key"), ("ES512", "ec521_key")])
def test_alg_not_allowed_under_nhs(request: pytest.FixtureRequest, alg: str, fixture: str) -> None:
    key: Key = request.getfixturevalue(fixture)
    token = sign(key, nhs_header(alg=alg), nhs_claims())
    report = check(token, nhs_ctx(None))
    assert only_failure(report) == ("R8", "alg.not_allowed")
    finding = report.first_failure
    assert finding is not None
    assert "RS512" in finding.hint
    if alg == "ES512":
        assert "RSA" in finding.hint


def test_alg_missing(rsa_key: Key) -> None:
    token = sign(rsa_key, {"typ": "JWT", "kid": "test-1"}, nhs_claims(), alg="RS512")
    assert check(token, nhs_ctx(None)).failed("alg.missing")


def test_alg_registered_mismatch(rsa_key: Key, bis_keys: KeySet) -> None:
    token = sign(rsa_key, bis_header("rsa-1", "PS256"), bis_claims())
    report = check(token, bis_ctx(bis_keys, client_alg="RS256"))
    assert only_failure(report) == ("R8", "alg.registered_mismatch")


# -- R9: key -----------------------------------------------------------------------------------


def test_kid_missing_under_nhs(rsa_key: Key, nhs_keyset: KeySet) -> None:
    header = {"alg": "RS512", "typ": "JWT"}
    for keys in (nhs_keyset, None):
        report = check(sign(rsa_key, header, nhs_claims()), nhs_ctx(keys))
        assert only_failure(report) == ("R9", "kid.missing")
        assert report.first_failure is not None
        assert report.first_failure.hint


def test_kid_optional_with_single_key_under_rfc7523bis(ec256_key: Key) -> None:
    header = {"alg": "ES256", "typ": "client-authentication+jwt"}
    keys = KeySet((ec256_key.public(),))
    assert check(sign(ec256_key, header, bis_claims()), bis_ctx(keys)).ok


def test_kid_required_when_jwks_has_several_keys(ec256_key: Key, bis_keys: KeySet) -> None:
    header = {"alg": "ES256", "typ": "client-authentication+jwt"}
    report = check(sign(ec256_key, header, bis_claims()), bis_ctx(bis_keys))
    assert only_failure(report) == ("R9", "kid.missing")


def test_kid_unknown(rsa_key: Key, nhs_keyset: KeySet) -> None:
    token = sign(rsa_key, nhs_header(kid="int-2"), nhs_claims())
    report = check(token, nhs_ctx(nhs_keyset))
    assert only_failure(report) == ("R9", "kid.unknown")
    assert report.first_failure is not None
    assert "test-1" in report.first_failure.expected


def test_kid_not_a_string(rsa_key: Key, nhs_keyset: KeySet) -> None:
    token = sign(rsa_key, {**nhs_header(), "kid": 7}, nhs_claims())
    assert check(token, nhs_ctx(nhs_keyset)).failed("kid.type")


@pytest.mark.parametrize("name", ["jwk", "jku", "x5u"])
def test_untrusted_key_headers(ec256_key: Key, bis_keys: KeySet, name: str) -> None:
    value: Any = ec256_key.public_jwk() if name == "jwk" else "https://attacker.example/jwks"
    token = sign(ec256_key, {**bis_header("ec256-1", "ES256"), name: value}, bis_claims())
    report = check(token, bis_ctx(bis_keys))
    assert only_failure(report) == ("R9", "key.untrusted_header")


@pytest.mark.parametrize("name", ["jwk", "jku", "x5u"])
def test_key_headers_are_ignored_under_nhs(
    rsa_key: Key, nhs_keyset: KeySet, ec256_key: Key, name: str
) -> None:
    """The NHS platform reads keys only from the app's JWKS URL: a key header is never used,
    and never refused either (the registered key still has to verify the signature)."""
    value: Any = ec256_key.public_jwk() if name == "jwk" else "https://attacker.example/jwks"
    token = sign(rsa_key, {**nhs_header(), name: value}, nhs_claims())
    assert check(token, nhs_ctx(nhs_keyset)).ok


def test_embedded_jwk_is_not_used_for_verification(ec256_key: Key, bis_keys: KeySet) -> None:
    """An attacker's own key in the jwk header must not make its signature acceptable."""
    from pkjwt import generate_key

    attacker = generate_key("ES256", kid="ec256-1")
    header = {**bis_header("ec256-1", "ES256"), "jwk": attacker.public_jwk()}
    report = check(sign(attacker, header, bis_claims()), bis_ctx(bis_keys))
    assert not report.ok
    assert report.failed("key.untrusted_header")


def test_key_type_mismatch(ec256_key: Key, bis_keys: KeySet) -> None:
    # ES256 header, but the kid names the RSA key
    token = sign(ec256_key, bis_header("rsa-1", "ES256"), bis_claims())
    assert check(token, bis_ctx(bis_keys)).failed("key.type_mismatch")


def test_alg_pinned_by_the_registered_jwk_is_named_as_such(rsa_key: Key) -> None:
    # the JWKS says alg RS512 (pkjwt keygen writes it); the client signed RS256 with the key
    pinned = load_jwks({"keys": [{**rsa_key.public_jwk(), "kid": "k", "alg": "RS512"}]})
    token = sign(rsa_key, bis_header("k", "RS256"), bis_claims())
    failure = check(token, bis_ctx(pinned)).first_failure
    assert failure is not None
    assert failure.code == "key.type_mismatch"
    assert failure.expected == "alg RS512 (the registered JWK's alg)"
    assert "--alg RS512" in failure.hint


# -- R11: signature -----------------------------------------------------------------------------


def test_tampered_payload(rsa_key: Key, nhs_keyset: KeySet) -> None:
    token = sign(rsa_key, nhs_header(), nhs_claims())
    h, _p, s = token.split(".")
    forged = f"{h}.{segment(nhs_claims(sub='someone-else', iss='someone-else'))}.{s}"
    report = check(forged, nhs_ctx(nhs_keyset))
    assert only_failure(report) == ("R11", "signature.invalid")


def test_signature_from_another_key(ec256_key: Key) -> None:
    from pkjwt import generate_key

    other = generate_key("ES256", kid="ec256-1")
    token = sign(other, bis_header("ec256-1", "ES256"), bis_claims())
    report = check(token, bis_ctx(KeySet((ec256_key.public(),))))
    assert only_failure(report) == ("R11", "signature.invalid")
    assert report.first_failure is not None
    assert "R||S" in report.first_failure.hint


def test_der_ecdsa_signature_rejected(ec256_key: Key) -> None:
    """ECDSA in JWS is raw R||S; a DER signature (what cryptography returns) must fail."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec

    header, claims = bis_header("ec256-1", "ES256"), bis_claims()
    native: Any = ec256_key.jose.private_key
    der = native.sign(signing_input(header, claims).encode(), ec.ECDSA(hashes.SHA256()))
    report = check(unsigned(header, claims, der), bis_ctx(KeySet((ec256_key.public(),))))
    assert report.failed("signature.invalid")


# -- R12: typ -----------------------------------------------------------------------------------


def test_typ_missing_under_nhs(rsa_key: Key, nhs_keyset: KeySet) -> None:
    token = sign(rsa_key, {"alg": "RS512", "kid": "test-1"}, nhs_claims())
    report = check(token, nhs_ctx(nhs_keyset))
    assert only_failure(report) == ("R12", "typ.missing")


@pytest.mark.parametrize("typ", ["JWT", "jwt", "Jwt"])
def test_typ_jwt_case_insensitive_under_nhs(rsa_key: Key, nhs_keyset: KeySet, typ: str) -> None:
    token = sign(rsa_key, {**nhs_header(), "typ": typ}, nhs_claims())
    assert check(token, nhs_ctx(nhs_keyset)).ok


@pytest.mark.parametrize("typ", ["client-authentication+jwt", "at+jwt", 1])
def test_typ_wrong_under_nhs(rsa_key: Key, nhs_keyset: KeySet, typ: Any) -> None:
    token = sign(rsa_key, {**nhs_header(), "typ": typ}, nhs_claims())
    assert only_failure(check(token, nhs_ctx(nhs_keyset))) == ("R12", "typ.wrong")


@pytest.mark.parametrize("typ", ["at+jwt", "dpop+jwt", "JOSE", "application/at+jwt"])
def test_typ_wrong_under_rfc7523bis(ec256_key: Key, bis_keys: KeySet, typ: str) -> None:
    token = sign(ec256_key, {**bis_header("ec256-1", "ES256"), "typ": typ}, bis_claims())
    assert only_failure(check(token, bis_ctx(bis_keys))) == ("R12", "typ.wrong")


@pytest.mark.parametrize(
    "typ",
    [
        "client-authentication+jwt",
        "application/client-authentication+jwt",
        "Client-Authentication+JWT",
        "JWT",
        None,
    ],
)
def test_typ_accepted_under_rfc7523bis(ec256_key: Key, bis_keys: KeySet, typ: str | None) -> None:
    header = bis_header("ec256-1", "ES256")
    if typ is None:
        del header["typ"]
    else:
        header["typ"] = typ
    assert check(sign(ec256_key, header, bis_claims()), bis_ctx(bis_keys)).ok


def test_explicit_typ_required_by_server_option(ec256_key: Key, bis_keys: KeySet) -> None:
    header = {**bis_header("ec256-1", "ES256"), "typ": "JWT"}
    token = sign(ec256_key, header, bis_claims())
    report = check(token, bis_ctx(bis_keys, require_explicit_typ=True))
    assert only_failure(report) == ("R12", "typ.explicit_required")
    good = sign(ec256_key, bis_header("ec256-1", "ES256"), bis_claims())
    assert check(good, bis_ctx(bis_keys, require_explicit_typ=True)).ok


# -- R13: iss / sub ------------------------------------------------------------------------------


def _nhs_without(name: str) -> dict[str, Any]:
    claims = nhs_claims()
    del claims[name]
    return claims


def test_iss_missing(rsa_key: Key, nhs_keyset: KeySet) -> None:
    token = sign(rsa_key, nhs_header(), _nhs_without("iss"))
    assert only_failure(check(token, nhs_ctx(nhs_keyset))) == ("R13", "iss.missing")


def test_sub_missing(rsa_key: Key, nhs_keyset: KeySet) -> None:
    token = sign(rsa_key, nhs_header(), _nhs_without("sub"))
    report = check(token, nhs_ctx(nhs_keyset))
    assert only_failure(report) == ("R13", "sub.missing")
    assert report.first_failure is not None
    assert "sub" in report.first_failure.hint


@pytest.mark.parametrize(("iss", "sub"), [("", ""), (7, 7), (CLIENT_ID, "")])
def test_iss_sub_empty_or_not_strings(rsa_key: Key, nhs_keyset: KeySet, iss: Any, sub: Any) -> None:
    token = sign(rsa_key, nhs_header(), nhs_claims(iss=iss, sub=sub))
    report = check(token, nhs_ctx(nhs_keyset))
    assert report.failed("iss.missing") or report.failed("sub.missing")


def test_iss_sub_mismatch(rsa_key: Key, nhs_keyset: KeySet) -> None:
    token = sign(rsa_key, nhs_header(), nhs_claims(sub=CLIENT_ID + "x"))
    assert only_failure(check(token, nhs_ctx(nhs_keyset))) == ("R13", "iss_sub.mismatch")


def test_iss_wrong_client(rsa_key: Key, nhs_keyset: KeySet) -> None:
    token = sign(rsa_key, nhs_header(), nhs_claims(iss="other", sub="other"))
    report = check(token, nhs_ctx(nhs_keyset, client_id=CLIENT_ID))
    assert report.failed("client.body_mismatch")
    assert report.failed("iss.wrong")


def test_client_unknown(rsa_key: Key, nhs_keyset: KeySet) -> None:
    token = sign(rsa_key, nhs_header(), nhs_claims())
    report = check(token, nhs_ctx(nhs_keyset, client_registered=False))
    assert only_failure(report) == ("R7", "client.unknown")
    assert check(token, nhs_ctx(nhs_keyset, client_registered=True)).ok


# -- R14: aud ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "aud",
    [ISSUER, TOKEN_URL + "/", "https://api.service.nhs.uk/oauth2/token", [TOKEN_URL], ""],
)
def test_aud_wrong_under_nhs(rsa_key: Key, nhs_keyset: KeySet, aud: Any) -> None:
    token = sign(rsa_key, nhs_header(), nhs_claims(aud=aud))
    report = check(token, nhs_ctx(nhs_keyset, issuer=ISSUER))
    assert only_failure(report) == ("R14", "aud.wrong")


def test_aud_missing(rsa_key: Key, nhs_keyset: KeySet) -> None:
    token = sign(rsa_key, nhs_header(), _nhs_without("aud"))
    assert only_failure(check(token, nhs_ctx(nhs_keyset))) == ("R14", "aud.missing")


def test_aud_array_under_rfc7523bis(ec256_key: Key, bis_keys: KeySet) -> None:
    token = sign(ec256_key, bis_header("ec256-1", "ES256"), bis_claims(aud=[ISSUER]))
    report = check(token, bis_ctx(bis_keys))
    assert only_failure(report) == ("R14", "aud.array")


def test_aud_token_endpoint_under_rfc7523bis(ec256_key: Key, bis_keys: KeySet) -> None:
    for aud in (AS_TOKEN_URL, [AS_TOKEN_URL]):
        token = sign(ec256_key, bis_header("ec256-1", "ES256"), bis_claims(aud=aud))
        report = check(token, bis_ctx(bis_keys))
        assert only_failure(report) == ("R14", "aud.token_endpoint")


@pytest.mark.parametrize(
    "aud", ["https://evil.example.com", [ISSUER, "https://evil.example.com"], ISSUER + "/"]
)
def test_aud_wrong_under_rfc7523bis(ec256_key: Key, bis_keys: KeySet, aud: Any) -> None:
    token = sign(ec256_key, bis_header("ec256-1", "ES256"), bis_claims(aud=aud))
    assert only_failure(check(token, bis_ctx(bis_keys))) == ("R14", "aud.wrong")


@pytest.mark.parametrize(
    "aud", [ISSUER, AS_TOKEN_URL, [AS_TOKEN_URL], [ISSUER], [ISSUER, AS_TOKEN_URL]]
)
def test_legacy_accepts_issuer_token_url_and_arrays(
    ec256_key: Key, bis_keys: KeySet, aud: Any
) -> None:
    header = {"alg": "ES256", "typ": "JWT", "kid": "ec256-1"}
    token = sign(ec256_key, header, bis_claims(aud=aud))
    assert check(token, bis_ctx(bis_keys, profile="legacy")).ok


@pytest.mark.parametrize("aud", ["https://evil.example.com", ["https://evil"], [], 5])
def test_legacy_rejects_foreign_aud(ec256_key: Key, bis_keys: KeySet, aud: Any) -> None:
    token = sign(ec256_key, bis_header("ec256-1", "ES256"), bis_claims(aud=aud))
    assert check(token, bis_ctx(bis_keys, profile="legacy")).failed("aud.wrong")


def test_issuer_string_or_array_policy(ec256_key: Key, bis_keys: KeySet) -> None:
    from pkjwt.profiles import AudiencePolicy

    prof = get_profile("rfc7523bis").with_overrides(
        audience_policy=AudiencePolicy.ISSUER_STRING_OR_ARRAY
    )
    ctx = RuleContext(profile=prof, now=NOW, issuer=ISSUER, token_endpoint=AS_TOKEN_URL)
    for aud, ok in ((ISSUER, True), ([ISSUER], True), (AS_TOKEN_URL, False)):
        token = sign(ec256_key, bis_header("ec256-1", "ES256"), bis_claims(aud=aud))
        assert check(token, ctx).ok is ok


# -- R15/R16/R17: time ---------------------------------------------------------------------------


def test_exp_missing(rsa_key: Key, nhs_keyset: KeySet) -> None:
    token = sign(rsa_key, nhs_header(), _nhs_without("exp"))
    report = check(token, nhs_ctx(nhs_keyset))
    assert only_failure(report) == ("R15", "exp.missing")


@pytest.mark.parametrize("exp", [str(NOW + 300), None, True, [NOW + 300]])
def test_exp_type(rsa_key: Key, nhs_keyset: KeySet, exp: Any) -> None:
    token = sign(rsa_key, nhs_header(), nhs_claims(exp=exp))
    report = check(token, nhs_ctx(nhs_keyset))
    assert only_failure(report) == ("R15", "exp.type")


def test_exp_float_is_a_number(rsa_key: Key, nhs_keyset: KeySet, ec256_key: Key) -> None:
    # the NHS platform tests `typeof exp == "number"`: a float passes there too
    token = sign(rsa_key, nhs_header(), nhs_claims(exp=NOW + 299.5))
    assert check(token, nhs_ctx(nhs_keyset)).ok
    other = sign(ec256_key, bis_header("ec256-1", "ES256"), bis_claims(exp=NOW + 59.5))
    assert check(other, bis_ctx(KeySet((ec256_key.public(),)))).ok


@pytest.mark.parametrize("exp", [NOW - 11, NOW - 3600, 0, -1])
def test_exp_expired(rsa_key: Key, nhs_keyset: KeySet, exp: int) -> None:
    token = sign(rsa_key, nhs_header(), nhs_claims(exp=exp))
    assert only_failure(check(token, nhs_ctx(nhs_keyset))) == ("R15", "exp.expired")


def test_exp_within_skew_accepted(ec256_key: Key, bis_keys: KeySet) -> None:
    token = sign(ec256_key, bis_header("ec256-1", "ES256"), bis_claims(exp=NOW - 5))
    assert check(token, bis_ctx(bis_keys)).ok


def test_exp_has_no_allowance_under_nhs(rsa_key: Key, nhs_keyset: KeySet) -> None:
    """The platform checks `now > exp` with no allowance (its 10 s apply to nbf)."""
    token = sign(rsa_key, nhs_header(), nhs_claims(exp=NOW - 1))
    assert only_failure(check(token, nhs_ctx(nhs_keyset))) == ("R15", "exp.expired")


def test_exp_in_milliseconds_is_named(ec256_key: Key, bis_keys: KeySet) -> None:
    token = sign(ec256_key, bis_header("ec256-1", "ES256"), bis_claims(exp=NOW * 1000 + 60))
    report = check(token, bis_ctx(bis_keys))
    assert only_failure(report) == ("R17", "exp.too_far")
    assert report.first_failure is not None
    assert "milliseconds" in report.first_failure.hint


@pytest.mark.parametrize(
    ("exp_ahead", "ok"), [(300, True), (310, True), (311, False), (600, False)]
)
def test_exp_too_far_under_nhs(rsa_key: Key, nhs_keyset: KeySet, exp_ahead: int, ok: bool) -> None:
    token = sign(rsa_key, nhs_header(), nhs_claims(exp=NOW + exp_ahead))
    report = check(token, nhs_ctx(nhs_keyset))
    assert report.ok is ok
    if not ok:
        assert only_failure(report) == ("R17", "exp.too_far")
        assert report.first_failure is not None
        assert "5 minutes" in report.first_failure.hint


def test_exp_too_far_under_rfc7523bis(ec256_key: Key, bis_keys: KeySet) -> None:
    token = sign(ec256_key, bis_header("ec256-1", "ES256"), bis_claims(exp=NOW + 3600))
    assert only_failure(check(token, bis_ctx(bis_keys))) == ("R17", "exp.too_far")


@pytest.mark.parametrize("name", ["iat", "nbf"])
def test_iat_nbf_61s_ahead_rejected_under_fapi2(
    ec256_key: Key, bis_keys: KeySet, name: str
) -> None:
    claims = bis_claims(**{name: NOW + 61})
    token = sign(ec256_key, bis_header("ec256-1", "ES256"), claims)
    report = check(token, bis_ctx(bis_keys, profile="fapi2"))
    assert only_failure(report) == ("R16", f"{name}.future")


@pytest.mark.parametrize("profile", ["fapi2", "rfc7523bis", "legacy"])
@pytest.mark.parametrize("name", ["iat", "nbf"])
def test_iat_nbf_8s_ahead_accepted(
    ec256_key: Key, bis_keys: KeySet, profile: str, name: str
) -> None:
    header = bis_header("ec256-1", "ES256")
    claims = bis_claims(**{name: NOW + 8})
    aud = AS_TOKEN_URL if profile == "legacy" else ISSUER
    token = sign(ec256_key, header, {**claims, "aud": aud})
    assert check(token, bis_ctx(bis_keys, profile=profile)).ok


def test_iat_beyond_skew_rejected_under_rfc7523bis(ec256_key: Key, bis_keys: KeySet) -> None:
    token = sign(ec256_key, bis_header("ec256-1", "ES256"), bis_claims(iat=NOW + 31))
    assert only_failure(check(token, bis_ctx(bis_keys))) == ("R16", "iat.future")


def test_iat_type(ec256_key: Key, bis_keys: KeySet) -> None:
    token = sign(ec256_key, bis_header("ec256-1", "ES256"), bis_claims(iat="now"))
    assert only_failure(check(token, bis_ctx(bis_keys))) == ("R16", "iat.type")


@pytest.mark.parametrize("ahead", [11, 120, 3600])
def test_nhs_does_not_check_iat(rsa_key: Key, nhs_keyset: KeySet, ahead: int) -> None:
    """nhs-signed-jwt.md: iat/nbf are optional and unchecked; only nbf has a 10 s allowance."""
    token = sign(rsa_key, nhs_header(), nhs_claims(iat=NOW + ahead))
    report = check(token, nhs_ctx(nhs_keyset))
    assert report.ok, [f.code for f in report.failures]


def test_nhs_nbf_allowance_is_10s(rsa_key: Key, nhs_keyset: KeySet) -> None:
    ok = sign(rsa_key, nhs_header(), nhs_claims(nbf=NOW + 10))
    assert check(ok, nhs_ctx(nhs_keyset)).ok
    late = sign(rsa_key, nhs_header(), nhs_claims(nbf=NOW + 11))
    assert only_failure(check(late, nhs_ctx(nhs_keyset))) == ("R16", "nbf.future")


def test_iat_unchecked_for_nhs_when_absent(rsa_key: Key, nhs_keyset: KeySet) -> None:
    assert "iat" not in nhs_claims()
    assert check(sign(rsa_key, nhs_header(), nhs_claims()), nhs_ctx(nhs_keyset)).ok


# -- R18/R19: jti --------------------------------------------------------------------------------


def test_jti_missing_with_jit_typo(rsa_key: Key, nhs_keyset: KeySet) -> None:
    claims = _nhs_without("jti")
    claims["jit"] = "5f0c7c1e-1f6c-4d4b-9a77-3e0b5d1e2f10"
    report = check(sign(rsa_key, nhs_header(), claims), nhs_ctx(nhs_keyset))
    assert only_failure(report) == ("R18", "jti.missing")
    assert report.first_failure is not None
    assert "jit" in report.first_failure.hint


def test_jti_missing_plain(rsa_key: Key, nhs_keyset: KeySet) -> None:
    report = check(sign(rsa_key, nhs_header(), _nhs_without("jti")), nhs_ctx(nhs_keyset))
    assert only_failure(report) == ("R18", "jti.missing")
    assert report.first_failure is not None
    assert "jit" not in report.first_failure.hint


@pytest.mark.parametrize("jti", ["", None])
def test_jti_empty_is_missing(rsa_key: Key, nhs_keyset: KeySet, jti: Any) -> None:
    token = sign(rsa_key, nhs_header(), nhs_claims(jti=jti))
    assert only_failure(check(token, nhs_ctx(nhs_keyset))) == ("R18", "jti.missing")


@pytest.mark.parametrize("jti", [12345, ["a"]])
def test_jti_type(rsa_key: Key, nhs_keyset: KeySet, jti: Any) -> None:
    token = sign(rsa_key, nhs_header(), nhs_claims(jti=jti))
    assert only_failure(check(token, nhs_ctx(nhs_keyset))) == ("R18", "jti.type")


def test_jti_length(rsa_key: Key, nhs_keyset: KeySet) -> None:
    ok = sign(rsa_key, nhs_header(), nhs_claims(jti="j" * 256))
    assert check(ok, nhs_ctx(nhs_keyset)).ok
    long = sign(rsa_key, nhs_header(), nhs_claims(jti="j" * 257))
    assert only_failure(check(long, nhs_ctx(nhs_keyset))) == ("R18", "jti.length")


class ReplayStore:
    def __init__(self) -> None:
        self.seen: dict[tuple[str, str], float] = {}
        self.calls: list[tuple[str, str, float]] = []

    def __call__(self, client: str, jti: str, until: float) -> bool:
        self.calls.append((client, jti, until))
        if (client, jti) in self.seen:
            return False
        self.seen[(client, jti)] = until
        return True


def test_replay(rsa_key: Key, nhs_keyset: KeySet) -> None:
    store = ReplayStore()
    token = sign(rsa_key, nhs_header(), nhs_claims())
    first = check(token, nhs_ctx(nhs_keyset, replay=store))
    assert first.ok
    assert any(f.rule == "R19" and f.verdict is Verdict.PASS for f in first.findings)
    second = check(token, nhs_ctx(nhs_keyset, replay=store))
    assert only_failure(second) == ("R19", "jti.replay")
    assert second.first_failure is not None
    assert second.first_failure.hint
    # NHS remembers jti values for 30 days
    (client, jti, until) = store.calls[0]
    assert (client, jti) == (CLIENT_ID, nhs_claims()["jti"])
    assert until >= NOW + 30 * 24 * 3600
    # a fresh jti is fine
    fresh = sign(rsa_key, nhs_header(), nhs_claims(jti="another"))
    assert check(fresh, nhs_ctx(nhs_keyset, replay=store)).ok


def test_replay_expiry_is_exp_plus_skew_for_rfc7523bis(ec256_key: Key, bis_keys: KeySet) -> None:
    store = ReplayStore()
    token = sign(ec256_key, bis_header("ec256-1", "ES256"), bis_claims())
    assert check(token, bis_ctx(bis_keys, replay=store)).ok
    assert store.calls[0][2] >= NOW + 60 + 30


@pytest.mark.parametrize(
    "claims",
    [
        nhs_claims(exp=NOW - 100),
        nhs_claims(aud="https://wrong"),
        nhs_claims(sub="x"),
    ],
)
def test_replay_not_called_when_another_rule_fails(
    rsa_key: Key, nhs_keyset: KeySet, claims: dict[str, Any]
) -> None:
    store = ReplayStore()
    report = check(sign(rsa_key, nhs_header(), claims), nhs_ctx(nhs_keyset, replay=store))
    assert not report.ok
    assert store.calls == []
    assert not any(f.rule == "R19" for f in report.findings)


def test_replay_not_called_on_bad_signature(rsa_key: Key, nhs_keyset: KeySet) -> None:
    store = ReplayStore()
    token = sign(rsa_key, nhs_header(), nhs_claims())
    h, p, s = token.split(".")
    bad = f"{h}.{p}.{s[:-4]}AAAA"
    assert check(bad, nhs_ctx(nhs_keyset, replay=store)).failed("signature.invalid")
    assert store.calls == []


# -- R5/R6: decoding -----------------------------------------------------------------------------


def _single(report: Report) -> tuple[str, str]:
    assert not report.ok
    assert len(report.findings) == 1
    f = report.findings[0]
    return (f.rule, f.code)


def test_jwe_rejected() -> None:
    jwe = "eyJhbGciOiJSU0EtT0FFUCIsImVuYyI6IkEyNTZHQ00ifQ.a2V5.aXY.Y2lwaGVy.dGFn"
    assert _single(check(jwe, nhs_ctx(None))) == ("R5", "jws.jwe")


def test_huge_input_rejected_by_size() -> None:
    huge = "a" * (10 * 1024 * 1024)
    assert _single(check(huge, nhs_ctx(None))) == ("R5", "jws.size")
    huge_jws = "eyJhbGciOiJSUzUxMiJ9." + "A" * (10 * 1024 * 1024) + ".sig"
    assert _single(check(huge_jws.encode(), nhs_ctx(None))) == ("R5", "jws.size")


def test_just_over_the_cap(rsa_key: Key) -> None:
    cap = get_profile("nhs").max_assertion_bytes
    token = sign(rsa_key, nhs_header(), nhs_claims(pad="x" * (cap + 10)))
    assert _single(check(token, nhs_ctx(None))) == ("R5", "jws.size")


@pytest.mark.parametrize(
    "token",
    [
        "eyJhbGciOiJSUzUxMiJ9.eyJ$$$.c2ln",
        "eyJhbGciOiJSUzUxMiJ9.eyJ=.c2ln",
        "eyJhbGciOiJSUzUxMiJ9.e.c2ln",
        "héader.payload.sig",
        "eyJhbGciOiJSUzUxMiJ9.e30.sig+/",
    ],
)
def test_not_base64url(token: str) -> None:
    assert _single(check(token, nhs_ctx(None))) == ("R5", "jws.base64")


@pytest.mark.parametrize("token", ["", "   ", "not-a-jwt", "a.b", "a.b.c.d", "a.b.c.d.e.f"])
def test_not_compact(token: str) -> None:
    assert _single(check(token, nhs_ctx(None))) == ("R5", "jws.compact")


def test_json_serialization_gets_a_hint() -> None:
    token = json.dumps({"payload": "e30", "signatures": [{"protected": "e30", "signature": ""}]})
    report = check(token, nhs_ctx(None))
    assert _single(report) == ("R5", "jws.compact")
    assert "compact" in report.findings[0].hint


def _raw_token(header_json: str, claims_json: str) -> str:
    return unsigned(header_json, claims_json, b"sig")


@pytest.mark.parametrize(
    ("header", "claims", "code"),
    [
        ('{"alg":"RS512","alg":"none"}', '{"sub":"a"}', "json.header"),
        ('{"alg":"RS512"}', '{"sub":"a","sub":"b"}', "json.payload"),
        ('{"alg":"RS512"}', '{"exp":NaN}', "json.payload"),
        ('{"alg":"RS512"}', '{"exp":Infinity}', "json.payload"),
        ('{"alg":"RS512"}', '{"exp":-Infinity}', "json.payload"),
        ('{"alg":"RS512"}', '{"exp":1e999}', "json.payload"),
        ('{"alg":"RS512"}', "[1,2,3]", "json.payload"),
        ('{"alg":"RS512"}', '"a string"', "json.payload"),
        ('{"alg":"RS512"}', "12345", "json.payload"),
        ('{"alg":"RS512"}', "null", "json.payload"),
        ('["RS512"]', "{}", "json.header"),
        ('{"alg":"RS512"', "{}", "json.header"),
        ('{"alg":"RS512"}', "", "json.payload"),
    ],
)
def test_json_errors_are_r6(header: str, claims: str, code: str) -> None:
    assert _single(check(_raw_token(header, claims), nhs_ctx(None))) == ("R6", code)


def test_non_utf8_payload_is_r6() -> None:
    token = unsigned({"alg": "RS512"}, b"\xff\xfe{}", b"sig")
    assert _single(check(token, nhs_ctx(None))) == ("R6", "json.payload")


def test_crit_header_rejected(rsa_key: Key, nhs_keyset: KeySet) -> None:
    header = {**nhs_header(), "crit": ["exp"], "exp": 1}
    report = check(sign(rsa_key, header, nhs_claims()), nhs_ctx(nhs_keyset))
    assert [(f.rule, f.code, f.verdict) for f in report.findings] == [
        ("R5", "jws.compact", Verdict.PASS),
        ("R6", "jws.crit", Verdict.FAIL),
    ]
    assert report.header["crit"] == ["exp"]


def test_decode_compact_errors_carry_rule() -> None:
    with pytest.raises(DecodeError) as info:
        decode_compact("a.b.c.d.e")
    assert (info.value.rule, info.value.code) == ("R5", "jws.jwe")
    jwt = decode_compact(b"e30.e30.")
    assert jwt.header == {}
    assert jwt.claims == {}
    assert jwt.signature == b""
    assert jwt.signing_input == b"e30.e30"


def test_b64url_has_no_padding() -> None:
    assert b64url(b"\xfb\xff") == "-_8"
    assert b64url(b"") == ""
    assert b64url(b"a") == "YQ"


def test_check_accepts_bytes_and_decoded(rsa_key: Key, nhs_keyset: KeySet) -> None:
    token = sign(rsa_key, nhs_header(), nhs_claims())
    assert check(token.encode(), nhs_ctx(nhs_keyset)).ok
    assert check(decode_compact(token), nhs_ctx(nhs_keyset)).ok
    assert check(f"  {token}\n", nhs_ctx(nhs_keyset)).ok


# -- check() never raises ------------------------------------------------------------------------

# surrogates included on purpose: JSON can carry lone "\ud800" escapes
any_text = st.text(st.characters(exclude_categories=()), max_size=20)
big_ints = st.integers(min_value=-(2**1100), max_value=2**1100)
json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    big_ints,
    st.floats(allow_nan=False, allow_infinity=False),
    any_text,
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(any_text, inner, max_size=3),
    max_leaves=8,
)
header_names = st.sampled_from(["alg", "typ", "kid", "crit", "jwk", "jku", "x5u", "cty"])
claim_names = st.sampled_from(["iss", "sub", "aud", "exp", "iat", "nbf", "jti", "jit"])
alg_values = st.sampled_from(["RS512", "RS256", "ES256", "none", "HS256", "PS256", "EdDSA"])
headers = st.one_of(
    st.dictionaries(header_names | any_text, json_values, max_size=5),
    st.fixed_dictionaries(
        {"alg": alg_values | json_values, "kid": st.sampled_from(["test-1", "x"]) | json_values},
        optional={"typ": json_values, "crit": json_values},
    ),
)
claims_st = st.one_of(
    st.dictionaries(claim_names | any_text, json_values, max_size=8),
    st.fixed_dictionaries(
        {},
        optional={
            "iss": any_text | json_values,
            "sub": any_text | json_values,
            "aud": st.sampled_from([ISSUER, TOKEN_URL, [ISSUER]]) | json_values,
            "exp": big_ints | json_values,
            "iat": big_ints | json_values,
            "nbf": big_ints | json_values,
            "jti": any_text | json_values,
        },
    ),
)
contexts = st.builds(
    lambda name, issuer, url, cid, explicit: (name, issuer, url, cid, explicit),
    st.sampled_from(sorted(PROFILES)),
    st.none() | st.just(ISSUER) | any_text,
    st.none() | st.just(TOKEN_URL) | any_text,
    st.none() | st.just(CLIENT_ID) | any_text,
    st.booleans(),
)


def _ctx(spec: tuple[Any, ...], keys: KeySet) -> RuleContext:
    name, issuer, url, cid, explicit = spec
    return RuleContext(
        profile=get_profile(name),
        now=NOW + 0.25,  # a float, as time.time() gives
        issuer=issuer,
        token_endpoint=url,
        client_id=cid,
        keys=keys,
        require_explicit_typ=explicit,
        replay=lambda *_: True,
    )


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(token=st.text(max_size=300) | st.binary(max_size=300), spec=contexts)
def test_check_never_raises_on_random_input(token: str | bytes, spec: tuple[Any, ...]) -> None:
    report = check(token, _ctx(spec, KeySet(())))
    assert isinstance(report, Report)
    assert not report.ok


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    header=headers,
    claims=claims_st,
    sig=st.binary(max_size=64),
    spec=contexts,
)
def test_check_never_raises_on_random_claims(
    nhs_keyset: KeySet, header: dict[str, Any], claims: dict[str, Any], sig: bytes, spec: Any
) -> None:
    token = unsigned(header, claims, sig)
    report = check(token, _ctx(spec, nhs_keyset))
    assert isinstance(report, Report)
    for f in report.findings:
        assert f.verdict in (Verdict.PASS, Verdict.FAIL, Verdict.SKIP)
        json.dumps(f.as_dict())


@pytest.mark.parametrize(
    "claims",
    [
        {**nhs_claims(), "exp": 10**400},
        {**nhs_claims(), "exp": -(10**400)},
        {**nhs_claims(), "iat": 10**400},
        {**nhs_claims(), "nbf": -(10**400)},
    ],
    ids=["exp-huge", "exp-huge-negative", "iat-huge", "nbf-huge-negative"],
)
def test_check_never_raises_on_huge_integers(
    rsa_key: Key, nhs_keyset: KeySet, claims: dict[str, Any]
) -> None:
    """Real clocks are floats: ``exp - time.time()`` must not overflow for a huge ``exp``."""
    token = sign(rsa_key, nhs_header(), claims)
    ctx = RuleContext(
        profile=get_profile("nhs"), now=NOW + 0.25, token_endpoint=TOKEN_URL, keys=nhs_keyset
    )
    report = check(token, ctx)
    assert isinstance(report, Report)
    if claims["exp"] != nhs_claims()["exp"]:
        assert not report.ok


def test_check_never_raises_on_lone_surrogates(rsa_key: Key, nhs_keyset: KeySet) -> None:
    claims = {**nhs_claims(), "iss": "\ud800", "sub": "\ud800"}
    token = sign(rsa_key, nhs_header(), claims)
    report = check(token, nhs_ctx(nhs_keyset, client_id=CLIENT_ID))
    assert isinstance(report, Report)
    assert not report.ok  # iss/sub are not the client id


def test_legacy_refuses_an_aud_array_naming_another_server(
    ec256_key: Key, bis_keys: KeySet
) -> None:
    """Issue 11 (hardening): an assertion addressed to this server and another is valid at
    both, which is what the 2025 audience-injection attacks collect; it used to be accepted."""
    header = {"alg": "ES256", "typ": "JWT", "kid": "ec256-1"}
    token = sign(ec256_key, header, bis_claims(aud=["https://other", AS_TOKEN_URL]))
    assert only_failure(check(token, bis_ctx(bis_keys, profile="legacy"))) == ("R14", "aud.foreign")
