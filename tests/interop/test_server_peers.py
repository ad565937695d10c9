"""Clients pkjwt did not write get tokens from ``pkjwt serve``: the npm openid-client library
(oauth4webapi under the hood) and Authlib's httpx client, both with private_key_jwt."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from peers import skip_unless
from pkjwt.keys import Key, generate_key, jwks
from pkjwt.testing import LocalAuthServer, local_auth_server

sys.path.insert(0, str(Path(__file__).resolve().parent))
import nodepeers

pytestmark = pytest.mark.interop

NODE_ALGS = ["RS256", "PS256", "ES256", "EdDSA"]

needs_node = skip_unless("node", "npm")


@pytest.fixture(scope="module")
def node_keys() -> dict[str, Key]:
    return {
        alg: generate_key(alg, kid=f"node-{alg.lower()}", size=2048 if alg[:2] in "RSPS" else None)
        for alg in NODE_ALGS
    }


def _private_jwk(key: Key) -> dict[str, Any]:
    jwk = dict(key.jose.as_dict(private=True))
    jwk["kid"] = key.kid
    jwk["alg"] = key.alg
    return jwk


@pytest.fixture(scope="module", params=["rfc7523bis", "legacy"])
def node_server(
    request: pytest.FixtureRequest, node_keys: dict[str, Key]
) -> Iterator[LocalAuthServer]:
    clients = [
        {"client_id": f"node-{alg}", "jwks": jwks([key.public()]), "scopes": ["api:read"]}
        for alg, key in node_keys.items()
    ]
    with local_auth_server(request.param, clients=clients) as server:
        yield server


@needs_node
@pytest.mark.parametrize("alg", NODE_ALGS)
def test_openid_client_gets_a_token(
    node_server: LocalAuthServer, node_keys: dict[str, Key], alg: str
) -> None:
    key = node_keys[alg]
    code, body = nodepeers.run_openid_client(
        node_server.issuer, f"node-{alg}", _private_jwk(key), scope="api:read"
    )
    assert code == 0, body
    assert body["access_token"]
    assert body["token_type"].lower() == "bearer"
    assert body["scope"] == "api:read"
    last = [r for r in node_server.requests if r.endpoint == "token"][-1]
    assert last.ok
    assert last.client_id == f"node-{alg}"
    assert last.header["alg"] == alg
    assert last.header["kid"] == key.kid
    # openid-client >= 6 sends the issuer as the audience (the 2025 fix)
    assert last.claims["aud"] == node_server.issuer


@needs_node
@pytest.mark.parametrize("nonce", [False, True])
def test_openid_client_gets_and_uses_a_dpop_bound_token(node_keys: dict[str, Key], nonce: bool):
    key = node_keys["ES256"]
    clients = [{"client_id": "node-dpop", "jwks": jwks([key.public()]), "require_dpop": True}]
    extra = {"dpop_nonce": nonce, "token_format": "jwt"}
    with local_auth_server("rfc7523bis", clients=clients, extra=extra) as server:
        code, body = nodepeers.run_openid_client(
            server.issuer, "node-dpop", _private_jwk(key), dpop=True,
            resource_url=server.issuer + "/echo",
        )  # fmt: skip
        assert code == 0, body
        assert body["token_type"].lower() == "dpop"  # openid-client lower-cases it
        import jwt as pyjwt

        claims = pyjwt.decode(body["access_token"], options={"verify_signature": False})
        assert claims["cnf"]["jkt"] == body["dpop_jkt"]  # bound to openid-client's key
        assert body["resource"]["status"] == 200, body["resource"]
        assert body["resource"]["body"]["token_type"] == "DPoP"
        proofs = [r for r in server.requests if r.endpoint == "token"]
        if nonce:  # openid-client retried once with the server's nonce, as RFC 9449 8 says
            assert [r.error for r in proofs] == ["use_dpop_nonce", None]


@needs_node
def test_openid_client_with_an_unregistered_key_is_refused(
    node_server: LocalAuthServer, node_keys: dict[str, Key]
) -> None:
    stranger = generate_key("ES256", kid=node_keys["ES256"].kid)
    code, body = nodepeers.run_openid_client(
        node_server.issuer, "node-ES256", _private_jwk(stranger)
    )
    assert code == 1
    assert body["error"] == "invalid_client"
    assert body["status"] == 400
    assert (body["error_description"] or "").startswith("R11")


# -- Authlib ---------------------------------------------------------------------------------------

AUTHLIB_CLIENT = "authlib-client"


@pytest.fixture(scope="module")
def authlib_key() -> Key:
    return generate_key("RS256", kid="authlib-1", size=2048)


def _authlib_fetch(server: LocalAuthServer, key: Key, alg: str = "RS256") -> dict[str, Any]:
    from authlib.integrations.httpx_client import OAuth2Client
    from authlib.oauth2.rfc7523 import PrivateKeyJWT

    pem = key.private_pem().decode()
    with OAuth2Client(
        AUTHLIB_CLIENT,
        client_secret=pem,
        token_endpoint_auth_method=PrivateKeyJWT(server.token_url, alg=alg),
    ) as client:
        token: dict[str, Any] = dict(
            client.fetch_token(server.token_url, grant_type="client_credentials")
        )
    return token


def _authlib_error(server: LocalAuthServer, key: Key) -> tuple[str, str]:
    from authlib.integrations.base_client.errors import OAuthError

    with pytest.raises(OAuthError) as info:
        _authlib_fetch(server, key)
    return str(info.value.error), str(info.value.description)


def _server(profile: str, keys: list[Key], **extra: Any) -> Any:
    return local_auth_server(
        profile,
        clients=[{"client_id": AUTHLIB_CLIENT, "jwks": jwks([k.public() for k in keys])}],
        extra=extra,
    )


def test_authlib_gets_a_token_from_the_legacy_profile(authlib_key: Key) -> None:
    """What Authlib sends by default: aud = the token endpoint, no kid, typ JWT, a 3600 s
    lifetime. The legacy profile accepts the audience and typ; the single registered key makes
    kid optional; only the lifetime cap had to be raised (max_assertion_lifetime = 3600)."""
    with _server("legacy", [authlib_key], max_assertion_lifetime=3600) as server:
        token = _authlib_fetch(server, authlib_key)
        assert token["access_token"]
        assert token["token_type"] == "Bearer"
        last = server.last_request
    assert last.ok
    assert "kid" not in last.header
    assert last.header["alg"] == "RS256"
    assert last.claims["aud"] == server.token_url
    assert last.claims["exp"] - last.claims["iat"] == 3600


def test_authlib_needs_the_raised_lifetime_cap(authlib_key: Key) -> None:
    with _server("legacy", [authlib_key]) as server:
        error, description = _authlib_error(server, authlib_key)
    assert error == "invalid_client"
    assert description.startswith("R17"), description


def test_authlib_needs_a_single_registered_key(authlib_key: Key) -> None:
    other = generate_key("RS256", kid="authlib-2", size=2048)
    with _server("legacy", [authlib_key, other], max_assertion_lifetime=3600) as server:
        error, description = _authlib_error(server, authlib_key)
    assert error == "invalid_client"
    assert description.startswith("R9"), description
    assert "kid" in description


@pytest.mark.parametrize("lifetime", [None, 3600])
def test_default_profile_rejects_authlibs_default_assertion(
    authlib_key: Key, lifetime: int | None
) -> None:
    """rfc7523bis (the default) wants aud = issuer; Authlib sends the token endpoint, the shape
    the 2025 audience-injection fixes retired. The explanation names the rule: R14 (aud is
    checked before R17, the 3600 s lifetime, so R14 answers even with the cap left at 300 s)."""
    extra = {"max_assertion_lifetime": lifetime} if lifetime else {}
    with _server("rfc7523bis", [authlib_key], **extra) as server:
        error, description = _authlib_error(server, authlib_key)
        last = server.last_request
    assert error == "invalid_client"
    assert description.startswith(("R14", "R17")), description
    assert description.startswith("R14")
    assert "issuer" in description or server.issuer in description
    assert not last.ok
