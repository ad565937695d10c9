"""pkjwt.doctor: the known mistakes, each named by a failing finding with a fix."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pkjwt import AssertionFactory, Key, KeySet, Report, diagnose, jwks
from pkjwt.doctor import guess_profile
from pkjwt.forge import hmac_sign, sign, unsigned

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


def _claims_without(name: str, **extra: Any) -> dict[str, Any]:
    claims = nhs_claims()
    del claims[name]
    claims.update(extra)
    return claims


def _nhs(key: Key, header: dict[str, Any], claims: dict[str, Any]) -> str:
    return sign(key, header, claims)


# (name, token builder, profile, code); builders get the rsa/ec keys
MISTAKES: list[tuple[str, Any, str, str]] = [
    (
        "jit for jti",
        lambda r, e: _nhs(r, nhs_header(), _claims_without("jti", jit="abc")),
        "nhs",
        "jti.missing",
    ),
    (
        "missing sub",
        lambda r, e: _nhs(r, nhs_header(), _claims_without("sub")),
        "nhs",
        "sub.missing",
    ),
    (
        "exp as a string",
        lambda r, e: _nhs(r, nhs_header(), nhs_claims(exp=str(NOW + 300))),
        "nhs",
        "exp.type",
    ),
    (
        "exp more than 5 min ahead",
        lambda r, e: _nhs(r, nhs_header(), nhs_claims(exp=NOW + 3600)),
        "nhs",
        "exp.too_far",
    ),
    (
        "no typ",
        lambda r, e: _nhs(r, {"alg": "RS512", "kid": "test-1"}, nhs_claims()),
        "nhs",
        "typ.missing",
    ),
    (
        "ES512 under nhs",
        lambda r, e: sign(e, nhs_header(alg="ES512"), nhs_claims()),
        "nhs",
        "alg.not_allowed",
    ),
    (
        "RS256 under nhs",
        lambda r, e: _nhs(r, nhs_header(alg="RS256"), nhs_claims()),
        "nhs",
        "alg.not_allowed",
    ),
    (
        "aud is the issuer under nhs",
        lambda r, e: _nhs(r, nhs_header(), nhs_claims(aud=ISSUER)),
        "nhs",
        "aud.wrong",
    ),
    (
        "aud is the token URL under rfc7523bis",
        lambda r, e: sign(r, bis_header("test-1", "PS256"), bis_claims(aud=AS_TOKEN_URL)),
        "rfc7523bis",
        "aud.token_endpoint",
    ),
    (
        "aud is something else under rfc7523bis",
        lambda r, e: sign(r, bis_header("test-1", "PS256"), bis_claims(aud="https://x")),
        "rfc7523bis",
        "aud.wrong",
    ),
    (
        "HS256",
        lambda r, e: hmac_sign(b"secret", nhs_header(alg="HS256"), nhs_claims()),
        "nhs",
        "alg.hmac",
    ),
    (
        "alg none",
        lambda r, e: unsigned(nhs_header(alg="none"), nhs_claims()),
        "nhs",
        "alg.none",
    ),
]


@pytest.mark.parametrize(
    ("build", "profile", "code"), [pytest.param(b, p, c, id=n) for n, b, p, c in MISTAKES]
)
@pytest.mark.parametrize("with_jwks", [False, True], ids=["no-jwks", "jwks"])
def test_known_mistakes_are_named_with_a_fix(
    rsa_key: Key, ec521_key: Key, nhs_keyset: KeySet, build: Any, profile: str, code: str,
    with_jwks: bool,
) -> None:  # fmt: skip
    token = build(rsa_key, ec521_key)
    report = diagnose(
        token,
        profile=profile,
        token_url=TOKEN_URL if profile == "nhs" else AS_TOKEN_URL,
        issuer=ISSUER,
        jwks=nhs_keyset if with_jwks else None,
        now=NOW,
    )
    assert not report.ok
    named = [f for f in report.failures if f.code == code]
    assert named, [f.code for f in report.failures]
    assert named[0].hint.strip()
    if code == "jti.missing":
        assert "jit" in named[0].hint
    if code in ("alg.not_allowed",):
        assert "RS512" in named[0].hint


def test_hints_for_every_failure_of_a_bad_assertion(rsa_key: Key) -> None:
    """The demo's classic-mistakes assertion: every failure explains itself."""
    header = {"alg": "RS512", "kid": "test-1"}
    claims = {"iss": CLIENT_ID, "aud": TOKEN_URL, "jit": "1", "exp": str(NOW + 3600)}
    report = diagnose(sign(rsa_key, header, claims), profile="nhs", token_url=TOKEN_URL, now=NOW)
    codes = {f.code for f in report.failures}
    assert {"typ.missing", "sub.missing", "exp.type", "jti.missing"} <= codes
    assert all(f.hint for f in report.failures)


def test_diagnose_accepts_a_good_assertion(rs512_key: Key) -> None:
    token = AssertionFactory(rs512_key, client_id=CLIENT_ID, token_url=TOKEN_URL).make()
    for keys in (jwks(rs512_key), json.dumps(jwks(rs512_key)), KeySet((rs512_key.public(),))):
        report = diagnose(token, profile="nhs", token_url=TOKEN_URL, jwks=keys)  # real clock
        assert report.ok, [f.as_dict() for f in report.failures]
        assert any(
            f.code == "signature.valid" and f.verdict.value == "pass" for f in report.findings
        )


def test_diagnose_guesses_the_profile(rs512_key: Key, ec256_key: Key) -> None:
    nhs = AssertionFactory(rs512_key, client_id=CLIENT_ID, token_url=TOKEN_URL).make(now=NOW)
    report = diagnose(nhs, token_url=TOKEN_URL, now=NOW)
    assert report.ok
    # an EC assertion to an NHS URL is judged by the NHS rules
    bad = sign(ec256_key, {**nhs_header(alg="ES256")}, nhs_claims())
    assert diagnose(bad, token_url=TOKEN_URL, now=NOW).failed("alg.not_allowed")


@pytest.mark.parametrize(
    ("header", "claims", "name"),
    [
        ({"alg": "RS512"}, {"aud": TOKEN_URL}, "nhs"),
        ({"alg": "RS512"}, {"aud": ["https://sandbox.api.service.nhs.uk/oauth2/token"]}, "nhs"),
        ({"typ": "client-authentication+jwt"}, {"aud": ISSUER}, "rfc7523bis"),
        ({"typ": "JWT"}, {"aud": AS_TOKEN_URL}, "legacy"),
        ({"typ": "JWT"}, {"aud": AS_TOKEN_URL + "/"}, "legacy"),
        ({"typ": "JWT"}, {"aud": ISSUER}, "rfc7523bis"),
        ({}, {}, "rfc7523bis"),
    ],
)
def test_guess_profile(header: dict[str, Any], claims: dict[str, Any], name: str) -> None:
    token = unsigned(header, claims)
    assert guess_profile(token).name == name


def test_guess_profile_of_garbage() -> None:
    assert guess_profile("not-a-jwt").name == "rfc7523bis"


def test_diagnose_not_a_jwt() -> None:
    report = diagnose("not-a-jwt", now=NOW)
    assert not report.ok
    assert report.findings[0].rule == "R5"


def test_diagnose_uses_real_clock_by_default(rs512_key: Key) -> None:
    old = AssertionFactory(rs512_key, client_id=CLIENT_ID, token_url=TOKEN_URL).make(
        now=time.time() - 3600
    )
    assert diagnose(old, profile="nhs", token_url=TOKEN_URL).failed("exp.expired")


@settings(max_examples=200, deadline=None)
@given(token=st.text(max_size=200))
def test_diagnose_never_raises(token: str) -> None:
    assert isinstance(diagnose(token, now=NOW), Report)
