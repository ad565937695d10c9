"""pkjwt.assertion: what each profile sends, and what it refuses to build."""

from __future__ import annotations

import asyncio
import base64
import json
import re
import uuid
from pathlib import Path
from typing import Any

import pytest

from pkjwt import (
    AssertionBuildError,
    AssertionFactory,
    ConfigError,
    Key,
    KeyLoadError,
    KeySet,
    LocalSigner,
    PkjwtError,
    RuleContext,
    check,
    decode_compact,
    get_profile,
    make_assertion,
)

from .helpers import CLIENT_ID, ISSUER, NOW, TOKEN_URL

UUID4 = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")


def raw_header(token: str) -> str:
    seg = token.split(".")[0]
    return base64.urlsafe_b64decode(seg + "=" * (-len(seg) % 4)).decode()


def raw_claims(token: str) -> str:
    seg = token.split(".")[1]
    return base64.urlsafe_b64decode(seg + "=" * (-len(seg) % 4)).decode()


def verify(token: str, key: Key, profile: str, **ctx: Any) -> None:
    """The assertion passes every rule of its profile, signature included."""
    report = check(
        token,
        RuleContext(profile=get_profile(profile), now=NOW, keys=KeySet((key.public(),)), **ctx),
    )
    assert report.ok, [f.as_dict() for f in report.failures]
    assert any(f.code == "signature.valid" and f.verdict.value == "pass" for f in report.findings)


# -- nhs ----------------------------------------------------------------------------------------


def test_nhs_header_is_exactly_the_canonical_one(rs512_key: Key) -> None:
    factory = AssertionFactory(rs512_key, client_id=CLIENT_ID, token_url=TOKEN_URL)
    token = factory.make(now=NOW)
    assert raw_header(token) == '{"alg":"RS512","typ":"JWT","kid":"test-1"}'
    header = json.loads(raw_header(token))
    assert header == {"alg": "RS512", "typ": "JWT", "kid": "test-1"}
    assert list(header) == ["alg", "typ", "kid"]


def test_nhs_claims(rs512_key: Key) -> None:
    factory = AssertionFactory(rs512_key, client_id=CLIENT_ID, token_url=TOKEN_URL, profile="nhs")
    token = factory.make(now=NOW)
    claims = json.loads(raw_claims(token))
    assert set(claims) == {"iss", "sub", "aud", "jti", "exp"}
    assert claims["iss"] == claims["sub"] == CLIENT_ID
    assert claims["aud"] == TOKEN_URL
    assert claims["exp"] == NOW + 240  # survives a client clock up to 70 s fast
    assert isinstance(claims["exp"], int)
    assert UUID4.match(claims["jti"])
    assert uuid.UUID(claims["jti"]).version == 4
    verify(token, rs512_key, "nhs", token_endpoint=TOKEN_URL, client_id=CLIENT_ID)


def test_nhs_default_profile_and_fixed_clock(rs512_key: Key) -> None:
    factory = AssertionFactory(
        rs512_key, client_id=CLIENT_ID, token_url=TOKEN_URL, clock=lambda: NOW + 0.9
    )
    assert factory.profile.name == "nhs"
    claims = decode_compact(factory.make()).claims
    assert claims["exp"] == NOW + 240  # whole seconds
    assert decode_compact(factory.make(now=NOW + 100)).claims["exp"] == NOW + 340


def test_nhs_picks_rs512_for_an_unpinned_rsa_key(rsa_key: Key) -> None:
    token = make_assertion(rsa_key, client_id=CLIENT_ID, token_url=TOKEN_URL)
    assert decode_compact(token).header["alg"] == "RS512"
    assert decode_compact(token).header["kid"] == "rsa-1"


def test_fresh_jti_every_call(rs512_key: Key) -> None:
    factory = AssertionFactory(rs512_key, client_id=CLIENT_ID, token_url=TOKEN_URL)
    jtis = [decode_compact(factory.make(now=NOW)).claims["jti"] for _ in range(20)]
    assert len(set(jtis)) == 20
    assert all(UUID4.match(j) for j in jtis)


def test_jti_factory_is_used(rs512_key: Key) -> None:
    factory = AssertionFactory(
        rs512_key, client_id=CLIENT_ID, token_url=TOKEN_URL, jti_factory=lambda: "fixed-jti"
    )
    assert factory.claims(now=NOW)["jti"] == "fixed-jti"


def test_nhs_lifetime_shorter_is_allowed(rs512_key: Key) -> None:
    factory = AssertionFactory(rs512_key, client_id=CLIENT_ID, token_url=TOKEN_URL, lifetime=120)
    assert factory.claims(now=NOW)["exp"] == NOW + 120


# -- other profiles ------------------------------------------------------------------------------


def test_rfc7523bis(ec256_key: Key) -> None:
    factory = AssertionFactory(
        ec256_key, client_id=CLIENT_ID, issuer=ISSUER, profile="rfc7523bis", token_url=TOKEN_URL
    )
    token = factory.make(now=NOW)
    header = decode_compact(token).header
    claims = decode_compact(token).claims
    assert header == {"alg": "ES256", "typ": "client-authentication+jwt", "kid": "ec256-1"}
    assert claims["aud"] == ISSUER
    assert isinstance(claims["aud"], str)
    assert claims["iat"] == NOW
    assert claims["exp"] == claims["iat"] + 60
    assert set(claims) == {"iss", "sub", "aud", "jti", "iat", "exp"}
    verify(token, ec256_key, "rfc7523bis", issuer=ISSUER, token_endpoint=TOKEN_URL)


def test_legacy(ed_key: Key) -> None:
    token = AssertionFactory(
        ed_key, client_id=CLIENT_ID, token_url=TOKEN_URL, issuer=ISSUER, profile="legacy"
    ).make(now=NOW)
    jwt = decode_compact(token)
    assert jwt.header["typ"] == "JWT"
    assert jwt.claims["aud"] == TOKEN_URL
    assert jwt.claims["exp"] == jwt.claims["iat"] + 60 == NOW + 60
    verify(token, ed_key, "legacy", issuer=ISSUER, token_endpoint=TOKEN_URL)


def test_fapi2_picks_ps256_for_rsa(rsa_key: Key) -> None:
    factory = AssertionFactory(rsa_key, client_id=CLIENT_ID, issuer=ISSUER, profile="fapi2")
    assert factory.alg == "PS256"
    token = factory.make(now=NOW)
    assert decode_compact(token).header["alg"] == "PS256"
    verify(token, rsa_key, "fapi2", issuer=ISSUER)


@pytest.mark.parametrize(("fixture", "alg"), [("ec256_key", "ES256"), ("ed_key", "EdDSA")])
def test_fapi2_other_keys(request: pytest.FixtureRequest, fixture: str, alg: str) -> None:
    key: Key = request.getfixturevalue(fixture)
    factory = AssertionFactory(key, client_id=CLIENT_ID, issuer=ISSUER, profile="fapi2")
    assert factory.alg == alg


def test_fapi2_refuses_rs256(rsa_key: Key) -> None:
    with pytest.raises(AssertionBuildError, match="RS256"):
        AssertionFactory(rsa_key, client_id=CLIENT_ID, issuer=ISSUER, profile="fapi2", alg="RS256")


def test_fapi2_refuses_key_pinned_to_rs256(keys_by_alg: dict[str, Key]) -> None:
    with pytest.raises(AssertionBuildError):
        AssertionFactory(keys_by_alg["RS256"], client_id=CLIENT_ID, issuer=ISSUER, profile="fapi2")


@pytest.mark.parametrize("fixture", ["ec256_key", "ec521_key", "ed_key"])
def test_nhs_with_non_rsa_key_refused(request: pytest.FixtureRequest, fixture: str) -> None:
    key: Key = request.getfixturevalue(fixture)
    with pytest.raises(AssertionBuildError, match="RS512") as info:
        AssertionFactory(key, client_id=CLIENT_ID, token_url=TOKEN_URL, profile="nhs")
    assert info.value.hint
    assert "RS512" in info.value.hint


def test_nhs_with_explicit_es512_refused(ec521_key: Key) -> None:
    with pytest.raises(AssertionBuildError):
        AssertionFactory(ec521_key, client_id=CLIENT_ID, token_url=TOKEN_URL, alg="ES512")


def test_explicit_audience_overrides(rs512_key: Key) -> None:
    claims = AssertionFactory(
        rs512_key,
        client_id=CLIENT_ID,
        profile="nhs",
        audience="https://int.api.service.nhs.uk/oauth2-mock/token",
    ).claims(now=NOW)
    assert claims["aud"] == "https://int.api.service.nhs.uk/oauth2-mock/token"


# -- refusals ------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["aud", "iss", "sub", "jti", "exp", "iat", "nbf"])
def test_extra_claims_cannot_override_reserved(rs512_key: Key, name: str) -> None:
    with pytest.raises(AssertionBuildError, match=name):
        AssertionFactory(
            rs512_key, client_id=CLIENT_ID, token_url=TOKEN_URL, extra_claims={name: "x"}
        )


@pytest.mark.parametrize("name", ["typ", "alg", "kid", "jwk", "jku", "x5u", "crit"])
def test_extra_headers_cannot_override_reserved(rs512_key: Key, name: str) -> None:
    with pytest.raises(AssertionBuildError, match=name):
        AssertionFactory(
            rs512_key, client_id=CLIENT_ID, token_url=TOKEN_URL, extra_headers={name: "x"}
        )


def test_extra_claims_and_headers_appear(rs512_key: Key) -> None:
    token = AssertionFactory(
        rs512_key,
        client_id=CLIENT_ID,
        token_url=TOKEN_URL,
        extra_claims={"tenant": "t1", "scope_hint": ["a", "b"]},
        extra_headers={"x-trace": "abc"},
    ).make(now=NOW)
    jwt = decode_compact(token)
    assert jwt.claims["tenant"] == "t1"
    assert jwt.claims["scope_hint"] == ["a", "b"]
    assert jwt.header["x-trace"] == "abc"
    # the profile's header is still intact
    assert jwt.header["typ"] == "JWT"
    assert jwt.header["alg"] == "RS512"
    verify(token, rs512_key, "nhs", token_endpoint=TOKEN_URL)


def test_nhs_without_token_url(rs512_key: Key) -> None:
    with pytest.raises(AssertionBuildError, match="token") as info:
        AssertionFactory(rs512_key, client_id=CLIENT_ID, profile="nhs", issuer=ISSUER)
    assert info.value.hint


def test_rfc7523bis_without_issuer(ec256_key: Key) -> None:
    with pytest.raises(AssertionBuildError, match="issuer") as info:
        AssertionFactory(ec256_key, client_id=CLIENT_ID, profile="rfc7523bis", token_url=TOKEN_URL)
    assert info.value.hint


@pytest.mark.parametrize(("profile", "too_long"), [("nhs", 311), ("rfc7523bis", 301), ("nhs", 0)])
def test_lifetime_outside_profile_limit(rs512_key: Key, profile: str, too_long: int) -> None:
    with pytest.raises(AssertionBuildError, match="lifetime"):
        AssertionFactory(
            rs512_key,
            client_id=CLIENT_ID,
            token_url=TOKEN_URL,
            issuer=ISSUER,
            profile=profile,
            lifetime=too_long,
        )


@pytest.mark.parametrize("client_id", ["", None, 123])
def test_client_id_must_be_non_empty_string(rs512_key: Key, client_id: Any) -> None:
    with pytest.raises(AssertionBuildError):
        AssertionFactory(rs512_key, client_id=client_id, token_url=TOKEN_URL)


def test_unknown_profile(rs512_key: Key) -> None:
    with pytest.raises(ConfigError, match="profile"):
        AssertionFactory(rs512_key, client_id=CLIENT_ID, token_url=TOKEN_URL, profile="oidc")


def test_key_source_as_pem_path(tmp_path: Path, rs512_key: Key) -> None:
    path = tmp_path / "k.pem"
    path.write_bytes(rs512_key.private_pem())
    path.chmod(0o600)
    token = make_assertion(str(path), client_id=CLIENT_ID, token_url=TOKEN_URL)
    # kid defaults to the thumbprint when the key comes from a file
    assert decode_compact(token).header["kid"] == rs512_key.thumbprint()


# -- custom signers ------------------------------------------------------------------------------


class WrappedSigner:
    """A stand-in for a KMS: has alg, kid and sign, but is not a pkjwt object."""

    def __init__(self, inner: LocalSigner) -> None:
        self._inner = inner
        self.calls = 0

    @property
    def alg(self) -> str:
        return self._inner.alg

    @property
    def kid(self) -> str:
        return "kms-key-1"

    def sign(self, data: bytes) -> bytes:
        self.calls += 1
        return self._inner.sign(data)


class AsyncOnlySigner(WrappedSigner):
    """An async KMS: ``sign`` must not be used from amake."""

    def __init__(self, inner: LocalSigner) -> None:
        super().__init__(inner)
        self.async_calls = 0

    def sign(self, data: bytes) -> bytes:
        raise AssertionError("sync sign called on an async signer")

    async def asign(self, data: bytes) -> bytes:
        await asyncio.sleep(0)
        self.async_calls += 1
        return self._inner.sign(data)


def test_custom_signer(rs512_key: Key) -> None:
    signer = WrappedSigner(LocalSigner(rs512_key))
    factory = AssertionFactory(signer, client_id=CLIENT_ID, token_url=TOKEN_URL)
    token = factory.make(now=NOW)
    assert signer.calls == 1
    assert decode_compact(token).header == {"alg": "RS512", "typ": "JWT", "kid": "kms-key-1"}
    verify(token, load_key_with_kid(rs512_key, "kms-key-1"), "nhs", token_endpoint=TOKEN_URL)


def load_key_with_kid(key: Key, kid: str) -> Key:
    from pkjwt import load_key

    return load_key(key, kid=kid)


def test_async_signer_through_amake(ec256_key: Key) -> None:
    signer = AsyncOnlySigner(LocalSigner(ec256_key))
    factory = AssertionFactory(signer, client_id=CLIENT_ID, issuer=ISSUER, profile="rfc7523bis")
    token = asyncio.run(factory.amake(now=NOW))
    assert signer.async_calls == 1
    assert decode_compact(token).claims["exp"] == NOW + 60
    verify(token, load_key_with_kid(ec256_key, "kms-key-1"), "rfc7523bis", issuer=ISSUER)


def test_amake_with_sync_signer(ec256_key: Key) -> None:
    signer = WrappedSigner(LocalSigner(ec256_key))
    factory = AssertionFactory(signer, client_id=CLIENT_ID, issuer=ISSUER, profile="fapi2")
    token = asyncio.run(factory.amake(now=NOW))
    assert signer.calls == 1
    verify(token, load_key_with_kid(ec256_key, "kms-key-1"), "fapi2", issuer=ISSUER)


def test_amake_with_local_key(rs512_key: Key) -> None:
    factory = AssertionFactory(rs512_key, client_id=CLIENT_ID, token_url=TOKEN_URL)
    token = asyncio.run(factory.amake(now=NOW))
    verify(token, rs512_key, "nhs", token_endpoint=TOKEN_URL)


def test_custom_signer_alg_not_allowed_by_profile(ec256_key: Key) -> None:
    signer = WrappedSigner(LocalSigner(ec256_key))
    with pytest.raises(AssertionBuildError):
        AssertionFactory(signer, client_id=CLIENT_ID, token_url=TOKEN_URL, profile="nhs")


def test_custom_signer_cannot_be_told_another_alg(ec256_key: Key) -> None:
    """Asking a signer that makes ES256 signatures for PS256 must fail, not mislabel the JWT."""
    signer = WrappedSigner(LocalSigner(ec256_key))
    try:
        token = AssertionFactory(
            signer, client_id=CLIENT_ID, issuer=ISSUER, profile="rfc7523bis", alg="PS256"
        ).make(now=NOW)
    except PkjwtError:
        return
    alg = decode_compact(token).header["alg"]
    pytest.fail(f"accepted: the header says {alg} over an ES256 signature")


def test_repr_of_factory_hides_key(rs512_key: Key) -> None:
    factory = AssertionFactory(rs512_key, client_id=CLIENT_ID, token_url=TOKEN_URL)
    text = repr(factory)
    assert "nhs" in text
    assert CLIENT_ID in text
    d = str(rs512_key.jose.as_dict(private=True)["d"])
    assert d[:20] not in text
    assert "PRIVATE" not in text


def test_public_key_refused_by_factory(rs512_key: Key) -> None:
    with pytest.raises(KeyLoadError):
        make_assertion(rs512_key.public(), client_id=CLIENT_ID, token_url=TOKEN_URL)
