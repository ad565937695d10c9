"""client_secret_basic, client_secret_post and client_secret_jwt, on the wire."""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest

from pkjwt import TokenClient
from pkjwt.decode import b64url, decode_compact
from pkjwt.errors import ConfigError

SECRET = "s3cr:et/with+odd&chars"


def test_client_secret_basic_form_encodes_before_base64(server):
    client = TokenClient(token_url=server.token_url, client_id="app:1", client_secret=SECRET)
    client.get_token()
    [req] = server.token_requests
    scheme, _, value = req.headers["authorization"].partition(" ")
    assert scheme == "Basic"
    # RFC 6749 2.3.1: each part is form-urlencoded, then joined and base64-encoded
    assert base64.b64decode(value).decode() == "app%3A1:s3cr%3Aet%2Fwith%2Bodd%26chars"
    assert "client_secret" not in req.form
    assert "client_assertion" not in req.form


def test_client_secret_post_sends_id_and_secret_in_the_body(server):
    client = TokenClient(
        token_url=server.token_url,
        client_id="app-1",
        client_secret=SECRET,
        auth_method="client_secret_post",
    )
    client.get_token()
    [req] = server.token_requests
    assert req.form["client_id"] == ["app-1"]
    assert req.form["client_secret"] == [SECRET]
    assert "authorization" not in req.headers


def test_client_secret_jwt_is_an_hs256_assertion_keyed_by_the_secret(server):
    client = TokenClient(
        token_url=server.token_url,
        client_id="app-1",
        client_secret=SECRET,
        auth_method="client_secret_jwt",
        profile="legacy",
    )
    client.get_token()
    [req] = server.token_requests
    jwt = decode_compact(req.form["client_assertion"][0])
    assert jwt.header["alg"] == "HS256"
    assert "kid" not in jwt.header
    assert jwt.claims["iss"] == jwt.claims["sub"] == "app-1"
    assert jwt.claims["aud"] == server.token_url
    expected = hmac.new(SECRET.encode(), jwt.signing_input, hashlib.sha256).digest()
    assert b64url(jwt.signature) == b64url(expected)


@pytest.mark.parametrize("method", ["client_secret_basic", "client_secret_post"])
def test_secret_methods_need_a_secret(method):
    with pytest.raises(ConfigError, match="client_secret"):
        TokenClient(token_url="http://127.0.0.1:9/token", client_id="a", auth_method=method)
