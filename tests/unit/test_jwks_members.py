"""A JWKS holding members pkjwt cannot use (issue 9, items 3 and 8): RFC 7517 5 has them
ignored, not the whole set refused, and a kid that names one is told why."""

from __future__ import annotations

from typing import Any

import pytest

from pkjwt import KeyLoadError, RuleContext, check, forge, generate_key, get_profile, load_jwks

NOW = 1_700_000_000
GOOD = generate_key("ES256", kid="good")
RSA_1024_N = "w" * 171  # about 1,024 bits of modulus, base64url


def _member(**fields: Any) -> dict[str, Any]:
    return fields


ODD = [
    _member(kty="OKP", crv="X25519", x="hSDwCYkwp1R0i33ctD73Wg2_Og0mOBr066SpjqqbTmo", kid="x25519"),
    _member(kty="AKP", alg="ML-DSA-44", pub="AAAA", kid="pq"),
    _member(kty="RSA", n=RSA_1024_N, e="AQAB", kid="rsa1024"),
    {**GOOD.public().public_jwk(), "kid": "enc", "use": "enc"},
    {**GOOD.public().public_jwk(), "kid": "signonly", "key_ops": ["sign"]},
]


def test_unusable_members_are_ignored_with_their_reason() -> None:
    keys = load_jwks({"keys": [GOOD.public().public_jwk(), *ODD]})
    assert keys.kids == ["good"]
    reasons = dict(keys.ignored)
    assert set(reasons) == {"x25519", "pq", "rsa1024", "enc", "signonly"}
    assert "X25519" in reasons["x25519"]
    assert "AKP" in reasons["pq"]
    assert "2048" in reasons["rsa1024"]
    assert "not for signatures" in reasons["enc"]
    assert "does not allow verify" in reasons["signonly"]


def test_a_set_with_nothing_usable_says_why() -> None:
    with pytest.raises(KeyLoadError) as err:
        load_jwks({"keys": ODD})
    assert "no key that can verify" in err.value.message
    assert "signonly" in err.value.message


@pytest.mark.parametrize("kid", ["signonly", "enc", "rsa1024"])
def test_a_kid_naming_an_ignored_member_is_told_why(kid: str) -> None:
    keys = load_jwks({"keys": [GOOD.public().public_jwk(), *ODD]})
    token = forge.sign(
        GOOD,
        {"alg": "ES256", "kid": kid, "typ": "JWT"},
        {"iss": "c", "sub": "c", "aud": "https://as/t", "jti": "j", "exp": NOW + 60},
    )
    ctx = RuleContext(profile=get_profile("legacy"), now=NOW, token_endpoint="https://as/t",
                      keys=keys)  # fmt: skip
    report = check(token, ctx)
    failure = report.first_failure
    assert failure is not None
    assert (failure.rule, failure.code) == ("R9", "key.unusable")
    assert kid in failure.got
