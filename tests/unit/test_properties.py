"""Property tests: every assertion pkjwt makes passes its own profile's rules, and every
single-field mutation of a valid NHS assertion fails the one rule it breaks."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pkjwt import AssertionFactory, Key, KeySet, RuleContext, Verdict, check, get_profile, load_key
from pkjwt.decode import decode_compact
from pkjwt.forge import sign

from .helpers import NOW

client_ids = st.text(min_size=1, max_size=40)
urls = st.one_of(
    st.sampled_from(
        [
            "https://sandbox.api.service.nhs.uk/oauth2/token",
            "https://int.api.service.nhs.uk/oauth2/token",
            "https://api.service.nhs.uk/oauth2/token",
            "https://internal-dev.api.service.nhs.uk/oauth2-mock/token",
        ]
    ),
    st.from_regex(
        r"https://[a-z][a-z0-9-]{0,15}(\.[a-z]{2,6}){1,2}(/[A-Za-z0-9_~.-]{1,12}){0,3}",
        fullmatch=True,
    ),
)

#: (profile, fixture name of a key valid for it)
PROFILE_KEYS = [
    ("nhs", "rs512_key"),
    ("nhs", "rsa_key"),
    ("legacy", "rsa_key"),
    ("legacy", "ec384_key"),
    ("legacy", "ed_key"),
    ("rfc7523bis", "rsa_key"),
    ("rfc7523bis", "ec256_key"),
    ("rfc7523bis", "ec521_key"),
    ("rfc7523bis", "ed_key"),
    ("fapi2", "rsa_key"),
    ("fapi2", "ec256_key"),
    ("fapi2", "ed_key"),
]

SETTINGS = settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


@pytest.mark.parametrize(("profile", "fixture"), PROFILE_KEYS)
@SETTINGS
@given(
    client_id=client_ids,
    url=urls,
    other_url=urls,
    lifetime_fraction=st.floats(min_value=0.01, max_value=1.0),
    offset=st.integers(min_value=0, max_value=10**6),
)
def test_every_assertion_passes_its_own_profile(
    request: pytest.FixtureRequest,
    profile: str,
    fixture: str,
    client_id: str,
    url: str,
    other_url: str,
    lifetime_fraction: float,
    offset: int,
) -> None:
    key: Key = request.getfixturevalue(fixture)
    prof = get_profile(profile)
    lifetime = max(1, int(prof.max_lifetime * lifetime_fraction))
    now = NOW + offset
    if prof.name in ("nhs", "legacy"):
        factory = AssertionFactory(
            key, client_id=client_id, profile=profile, token_url=url, lifetime=lifetime
        )
        ctx_urls = {"token_endpoint": url, "issuer": other_url if other_url != url else None}
    else:
        factory = AssertionFactory(
            key, client_id=client_id, profile=profile, issuer=url, lifetime=lifetime
        )
        ctx_urls = {"issuer": url, "token_endpoint": other_url if other_url != url else None}
    token = factory.make(now=now)
    seen: list[str] = []
    ctx = RuleContext(
        profile=prof,
        now=now,
        client_id=client_id,
        client_registered=True,
        keys=KeySet((key.public(),)),
        replay=lambda _c, jti, _u: seen.append(jti) is None,
        **ctx_urls,
    )
    report = check(token, ctx)
    assert report.ok, [f.as_dict() for f in report.failures]
    assert all(f.ok for f in report.findings)
    passed = {f.rule for f in report.findings if f.verdict is Verdict.PASS}
    # nothing important was skipped: the signature, the audience and the replay were checked
    assert {"R7", "R8", "R9", "R11", "R12", "R13", "R14", "R15", "R17", "R18", "R19"} <= passed
    assert len(seen) == 1
    header = decode_compact(token).header
    assert header["alg"] == factory.alg
    if prof.preferred_alg and prof.preferred_alg in key.algs:
        assert header["alg"] == prof.preferred_alg


# -- mutations of a valid NHS assertion ------------------------------------------------------

Mutation = Callable[[dict[str, Any], dict[str, Any], int], None]


def _drop(where: str, name: str) -> Mutation:
    def mutate(header: dict[str, Any], claims: dict[str, Any], now: int) -> None:
        del (header if where == "header" else claims)[name]

    return mutate


def _set(where: str, name: str, value: Callable[[dict[str, Any], int], Any]) -> Mutation:
    def mutate(header: dict[str, Any], claims: dict[str, Any], now: int) -> None:
        target = header if where == "header" else claims
        target[name] = value(claims, now)

    return mutate


def _rename_jti(header: dict[str, Any], claims: dict[str, Any], now: int) -> None:
    claims["jit"] = claims.pop("jti")


MUTATIONS: list[tuple[str, Mutation, str, str]] = [
    ("drop typ", _drop("header", "typ"), "R12", "typ.missing"),
    ("typ at+jwt", _set("header", "typ", lambda c, n: "at+jwt"), "R12", "typ.wrong"),
    ("drop kid", _drop("header", "kid"), "R9", "kid.missing"),
    ("alg RS256", _set("header", "alg", lambda c, n: "RS256"), "R8", "alg.not_allowed"),
    ("alg PS512", _set("header", "alg", lambda c, n: "PS512"), "R8", "alg.not_allowed"),
    ("drop iss", _drop("claims", "iss"), "R13", "iss.missing"),
    ("drop sub", _drop("claims", "sub"), "R13", "sub.missing"),
    ("drop aud", _drop("claims", "aud"), "R14", "aud.missing"),
    ("drop jti", _drop("claims", "jti"), "R18", "jti.missing"),
    ("drop exp", _drop("claims", "exp"), "R15", "exp.missing"),
    ("aud other", _set("claims", "aud", lambda c, n: c["aud"] + "x"), "R14", "aud.wrong"),
    ("aud slash", _set("claims", "aud", lambda c, n: c["aud"] + "/"), "R14", "aud.wrong"),
    ("aud array", _set("claims", "aud", lambda c, n: [c["aud"]]), "R14", "aud.wrong"),
    ("iss != sub", _set("claims", "iss", lambda c, n: c["sub"] + "-x"), "R13", "iss_sub.mismatch"),
    ("exp string", _set("claims", "exp", lambda c, n: str(c["exp"])), "R15", "exp.type"),
    ("exp in ms", _set("claims", "exp", lambda c, n: c["exp"] * 1000), "R17", "exp.too_far"),
    ("empty jti", _set("claims", "jti", lambda c, n: ""), "R18", "jti.missing"),
    ("empty kid", _set("header", "kid", lambda c, n: ""), "R9", "kid.missing"),
    ("exp too far", _set("claims", "exp", lambda c, n: n + 600), "R17", "exp.too_far"),
    ("exp past", _set("claims", "exp", lambda c, n: n - 60), "R15", "exp.expired"),
    ("jti -> jit", _rename_jti, "R18", "jti.missing"),
    ("jti number", _set("claims", "jti", lambda c, n: 42), "R18", "jti.type"),
]


@pytest.fixture(scope="module")
def nhs_signing_key(rsa_key: Key) -> Key:
    """Unpinned RSA key under kid test-1: it can re-sign with any RSA alg after a mutation."""
    return load_key(rsa_key, kid="test-1")


@pytest.mark.parametrize(
    ("mutate", "rule", "code"),
    [pytest.param(m, r, c, id=name) for name, m, r, c in MUTATIONS],
)
@settings(
    max_examples=8,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(client_id=client_ids, url=urls)
def test_every_single_field_mutation_of_nhs_fails(
    nhs_signing_key: Key,
    mutate: Mutation,
    rule: str,
    code: str,
    client_id: str,
    url: str,
) -> None:
    factory = AssertionFactory(nhs_signing_key, client_id=client_id, token_url=url)
    assert factory.alg == "RS512"
    jwt = decode_compact(factory.make(now=NOW))
    keys = KeySet((nhs_signing_key.public(),))
    calls: list[str] = []
    ctx = RuleContext(
        profile=get_profile("nhs"),
        now=NOW,
        token_endpoint=url,
        client_id=client_id,
        keys=keys,
        replay=lambda _c, jti, _u: calls.append(jti) is None,
    )
    # the unmutated assertion, re-signed the same way, is acceptable
    assert check(sign(nhs_signing_key, dict(jwt.header), dict(jwt.claims)), ctx).ok
    calls.clear()

    header, claims = dict(jwt.header), dict(jwt.claims)
    mutate(header, claims, NOW)
    token = sign(nhs_signing_key, header, claims, alg=header.get("alg", "RS512"))
    report = check(token, ctx)
    assert not report.ok
    assert {(f.rule, f.code) for f in report.failures} == {(rule, code)}
    failure = report.first_failure
    assert failure is not None
    assert failure.hint
    assert calls == []  # the jti is never recorded for a failed assertion
    if code == "jti.missing" and "jit" in claims:
        assert "jit" in failure.hint
