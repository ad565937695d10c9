"""Client authentication methods as objects (pkjwt.client_auth), stepped without a network."""

from __future__ import annotations

import base64
import hashlib
from typing import Any

import pytest

from pkjwt.assertion import AssertionFactory
from pkjwt.client_auth import (
    AssertionAuth,
    AuthContext,
    ClientSecretBasic,
    ClientSecretJwt,
    ClientSecretPost,
    Credentials,
    PrivateKeyJwt,
    client_auth_for,
)
from pkjwt.decode import decode_compact
from pkjwt.errors import ConfigError, KeyLoadError
from pkjwt.flow import Sign, advance
from pkjwt.keys import Key
from pkjwt.profiles import JWT_BEARER, get_profile
from pkjwt.signing import LocalSigner

from .helpers import CLIENT_ID, NOW, TOKEN_URL

SECRET = "s3cr:et/with+odd&chars"


def _ctx(profile: str = "nhs", **extra: Any) -> AuthContext:
    prof = get_profile(profile)
    return AuthContext(CLIENT_ID, prof, token_url=TOKEN_URL, clock=lambda: NOW, **extra)


def _run(flow: Any) -> tuple[list[Any], Credentials]:
    """Step a credentials flow, signing locally; the actions it yielded and its result."""
    actions: list[Any] = []
    action, result = advance(flow)
    while action is not None:
        actions.append(action)
        assert isinstance(action, Sign)
        action, result = advance(flow, action.signer.sign(action.data))
    assert isinstance(result, Credentials)
    return actions, result


def test_default_is_private_key_jwt_with_a_key_else_basic(rs512_key: Key) -> None:
    assert isinstance(client_auth_for(key=rs512_key), PrivateKeyJwt)
    assert isinstance(client_auth_for(client_secret=SECRET), ClientSecretBasic)
    for name, cls in [
        ("client_secret_jwt", ClientSecretJwt),
        ("client_secret_post", ClientSecretPost),
    ]:
        method = client_auth_for(name, client_secret=SECRET)
        assert isinstance(method, cls)
        assert method.name == name


def test_constructor_errors_fail_fast(rs512_key: Key) -> None:
    with pytest.raises(ConfigError, match=r"private_key_jwt needs key="):
        client_auth_for("private_key_jwt", client_secret=SECRET)
    with pytest.raises(ConfigError, match=r"client_secret_post needs client_secret="):
        client_auth_for("client_secret_post")
    with pytest.raises(ConfigError, match="unknown auth_method"):
        client_auth_for("none", client_secret=SECRET)
    with pytest.raises(KeyLoadError, match="is a public key"):
        PrivateKeyJwt(rs512_key.public())


def test_identities_name_the_credential_without_revealing_it(rs512_key: Key) -> None:
    key_auth = PrivateKeyJwt(rs512_key)
    assert key_auth.identity == f"key:{rs512_key.thumbprint()}:{rs512_key.kid}:{rs512_key.alg}"
    signer = LocalSigner(rs512_key)
    assert PrivateKeyJwt(signer).identity == f"signer:{signer.kid}:{signer.alg}"
    digest = hashlib.sha256(SECRET.encode()).hexdigest()[:16]
    for method in (ClientSecretBasic(SECRET), ClientSecretPost(SECRET), ClientSecretJwt(SECRET)):
        assert method.identity == f"secret:{digest}"
        assert SECRET not in repr(method)


def test_private_key_jwt_signs_once_per_request(rs512_key: Key) -> None:
    auth = PrivateKeyJwt(rs512_key)
    actions, creds = _run(auth.credentials(_ctx()))
    assert len(actions) == 1
    form = dict(creds.form)
    assert form["client_assertion_type"] == JWT_BEARER
    jwt = decode_compact(form["client_assertion"])
    assert jwt.claims["aud"] == TOKEN_URL
    assert jwt.claims["exp"] == NOW + get_profile("nhs").lifetime
    assert jwt.header["kid"] == rs512_key.kid
    # the factory is built once per profile and audience
    assert auth.factory(_ctx()) is auth.factory(_ctx())
    assert auth.factory(_ctx("legacy")) is not auth.factory(_ctx())
    _, again = _run(auth.credentials(_ctx()))
    assert decode_compact(dict(again.form)["client_assertion"]).claims["jti"] != jwt.claims["jti"]
    assert SECRET not in repr(creds)
    assert "client_assertion" not in repr(creds)


def test_client_secret_jwt_is_hs256_without_kid() -> None:
    auth = ClientSecretJwt(SECRET)
    assert isinstance(auth, AssertionAuth)
    assert auth.public_keys() is None
    _, creds = _run(auth.credentials(_ctx("legacy")))
    jwt = decode_compact(dict(creds.form)["client_assertion"])
    assert jwt.header["alg"] == "HS256"
    assert "kid" not in jwt.header


def test_secret_methods_yield_no_action() -> None:
    actions, basic = _run(ClientSecretBasic(SECRET).credentials(_ctx()))
    assert actions == []
    scheme, _, value = basic.headers["Authorization"].partition(" ")
    assert scheme == "Basic"
    assert base64.b64decode(value).decode().endswith(":s3cr%3Aet%2Fwith%2Bodd%26chars")
    actions, post = _run(ClientSecretPost(SECRET).credentials(_ctx()))
    assert actions == []
    assert dict(post.form) == {"client_id": CLIENT_ID, "client_secret": SECRET}
    assert not isinstance(ClientSecretPost(SECRET), AssertionAuth)


def test_signing_input_and_finish_make_the_compact_jws(rs512_key: Key) -> None:
    factory = AssertionFactory(rs512_key, client_id=CLIENT_ID, token_url=TOKEN_URL)
    data = factory.signing_input(NOW)
    jws = factory.finish(data, factory.signer.sign(data))
    decoded = decode_compact(jws)
    assert decoded.signing_input == data
    assert decoded.claims["exp"] == NOW + factory.lifetime
