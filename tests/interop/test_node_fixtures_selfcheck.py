"""Self-check of the Node.js interop fixtures, without pkjwt.

Client assertions are built by hand with PyJWT and posted with urllib, so a
failure here is a fixture problem, not a pkjwt problem.
"""

from __future__ import annotations

import base64
import json
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from peers import skip_unless

sys.path.insert(0, str(Path(__file__).resolve().parent))
import nodepeers

pytestmark = [
    pytest.mark.interop,
    skip_unless("node", "npm"),
]

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


class Key:
    """A private key with its public/private JWK forms."""

    def __init__(self, private_key: Any, alg: str, kid: str) -> None:
        self.private_key = private_key
        self.alg = alg
        self.kid = kid
        algo = RSAAlgorithm if alg.startswith(("RS", "PS")) else ECAlgorithm
        public = algo.to_jwk(private_key.public_key(), as_dict=True)
        private = algo.to_jwk(private_key, as_dict=True)
        self.public_jwk: dict[str, Any] = {**public, "kid": kid, "alg": alg, "use": "sig"}
        self.private_jwk: dict[str, Any] = {**private, "kid": kid, "alg": alg}

    @property
    def jwks(self) -> dict[str, Any]:
        return {"keys": [self.public_jwk]}


@pytest.fixture(scope="module")
def rsa_key() -> Key:
    return Key(rsa.generate_private_key(public_exponent=65537, key_size=2048), "RS256", "rsa-1")


@pytest.fixture(scope="module")
def ec_key() -> Key:
    return Key(ec.generate_private_key(ec.SECP256R1()), "ES256", "ec-1")


@pytest.fixture(scope="module")
def jwks_uri(ec_key: Key) -> Iterator[str]:
    with nodepeers.serve_static_jwks(ec_key.jwks) as url:
        yield url


@pytest.fixture(scope="module")
def provider(rsa_key: Key, ec_key: Key, jwks_uri: str) -> Iterator[dict[str, Any]]:
    clients: list[dict[str, Any]] = [
        {
            "client_id": "inline-rsa",
            "jwks": rsa_key.jwks,
            "token_endpoint_auth_signing_alg": "RS256",
            "scope": "api:read api:write",
        },
        {"client_id": "uri-ec", "jwks_uri": jwks_uri, "scope": "api:read"},
    ]
    with nodepeers.run_oidc_provider(clients) as info:
        yield info


def make_assertion(key: Key, client_id: str, aud: str) -> str:
    now = int(time.time())
    claims = {
        "iss": client_id,
        "sub": client_id,
        "aud": aud,
        "jti": str(uuid.uuid4()),
        "iat": now,
        "exp": now + 60,
    }
    return jwt.encode(claims, key.private_key, algorithm=key.alg, headers={"kid": key.kid})


def post_token(token_endpoint: str, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
    data = urllib.parse.urlencode(form).encode()
    request = urllib.request.Request(
        token_endpoint,
        data=data,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, json.loads(exc.read())


def client_credentials(
    info: dict[str, Any], key: Key, client_id: str, aud: str, scope: str | None = None
) -> tuple[int, dict[str, Any]]:
    form = {
        "grant_type": "client_credentials",
        "client_id": client_id,
        "client_assertion_type": ASSERTION_TYPE,
        "client_assertion": make_assertion(key, client_id, aud),
    }
    if scope is not None:
        form["scope"] = scope
    return post_token(info["token_endpoint"], form)


def test_ready_line(provider: dict[str, Any]) -> None:
    assert provider["issuer"].startswith("http://127.0.0.1:")
    assert provider["token_endpoint"] == provider["issuer"] + "/token"
    assert provider["jwks_uri"] == provider["issuer"] + "/jwks"
    with urllib.request.urlopen(
        provider["issuer"] + "/.well-known/openid-configuration", timeout=10
    ) as response:
        metadata = json.loads(response.read())
    assert metadata["token_endpoint"] == provider["token_endpoint"]
    assert "client_credentials" in metadata["grant_types_supported"]
    assert {"RS256", "PS512", "ES256", "ES512", "EdDSA"} <= set(
        metadata["token_endpoint_auth_signing_alg_values_supported"]
    )


def test_inline_jwks_rsa_aud_token_endpoint(provider: dict[str, Any], rsa_key: Key) -> None:
    status, body = client_credentials(
        provider, rsa_key, "inline-rsa", provider["token_endpoint"], scope="api:read"
    )
    assert status == 200, body
    assert body["access_token"]
    assert body["token_type"].lower() == "bearer"
    assert body["scope"] == "api:read"


def test_inline_jwks_rsa_aud_issuer(provider: dict[str, Any], rsa_key: Key) -> None:
    status, body = client_credentials(provider, rsa_key, "inline-rsa", provider["issuer"])
    assert status == 200, body
    assert body["access_token"]


def test_loopback_jwks_uri_ec(provider: dict[str, Any], ec_key: Key) -> None:
    status, body = client_credentials(provider, ec_key, "uri-ec", provider["issuer"])
    assert status == 200, body
    assert body["access_token"]


def test_wrong_key_is_invalid_client(provider: dict[str, Any], ec_key: Key) -> None:
    status, body = client_credentials(provider, ec_key, "inline-rsa", provider["issuer"])
    assert status == 401
    assert body["error"] == "invalid_client"
    # The reason is only in the provider log, not in the response body.
    log = Path(provider["stderr_path"]).read_text()
    assert "grant.error: invalid_client" in log


def test_scope_not_allowed_is_invalid_scope(provider: dict[str, Any], ec_key: Key) -> None:
    status, body = client_credentials(
        provider, ec_key, "uri-ec", provider["issuer"], scope="api:write"
    )
    assert status == 400
    assert body["error"] == "invalid_scope"


def test_openid_client_gets_token(provider: dict[str, Any], rsa_key: Key) -> None:
    code, body = nodepeers.run_openid_client(
        provider["issuer"], "inline-rsa", rsa_key.private_jwk, scope="api:write"
    )
    assert code == 0, body
    assert body["access_token"]
    assert body["scope"] == "api:write"


def test_openid_client_reports_error(provider: dict[str, Any], ec_key: Key) -> None:
    code, body = nodepeers.run_openid_client(provider["issuer"], "inline-rsa", ec_key.private_jwk)
    assert code == 1
    assert body["error"] == "invalid_client"
    assert body["status"] == 401


def test_jwt_access_token_format(rsa_key: Key) -> None:
    clients = [{"client_id": "jwt-client", "jwks": rsa_key.jwks, "scope": "api:read"}]
    with nodepeers.run_oidc_provider(clients, token_format="jwt") as info:
        status, body = client_credentials(
            info, rsa_key, "jwt-client", info["token_endpoint"], scope="api:read"
        )
    assert status == 200, body
    payload_b64 = body["access_token"].split(".")[1]
    payload = json.loads(base64.urlsafe_b64decode(payload_b64 + "=" * (-len(payload_b64) % 4)))
    assert payload["client_id"] == "jwt-client"
    assert payload["aud"] == "urn:pkjwt:interop:api"
    assert payload["iss"] == info["issuer"]
    assert payload["scope"] == "api:read"
