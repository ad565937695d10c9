"""pkjwt's TokenClient against a real, independent authorization server: npm oidc-provider.

client_credentials with private_key_jwt: inline JWKS for RS256/PS256/ES256/EdDSA keys, a
loopback jwks_uri, issuer discovery (the rfc7523bis shape, no profile), the legacy shape with
an explicit token URL, async, scope, HttpxAuth, and a JWT access token whose signature is
checked with jwcrypto (a JOSE library pkjwt does not use). All traffic stays on 127.0.0.1.
"""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest
from jwcrypto import jwk as jc_jwk
from jwcrypto import jwt as jc_jwt

from peers import skip_unless
from pkjwt import HttpxAuth, Key, TokenClient, generate_key
from pkjwt.decode import decode_compact

sys.path.insert(0, str(Path(__file__).resolve().parent))
import nodepeers

pytestmark = [
    pytest.mark.interop,
    skip_unless("node", "npm"),
]

ALGS = ["RS256", "PS256", "ES256", "EdDSA"]
EXPLICIT_TYP = "client-authentication+jwt"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def _jwks(*keys: Key) -> dict[str, Any]:
    return {"keys": [k.public_jwk() for k in keys]}


@pytest.fixture(scope="module")
def keys() -> dict[str, Key]:
    out = {alg: generate_key(alg, kid=f"inline-{alg.lower()}", size=2048) for alg in ALGS[:2]}
    out.update({alg: generate_key(alg, kid=f"inline-{alg.lower()}") for alg in ALGS[2:]})
    out["uri"] = generate_key("ES256", kid="uri-es256")
    return out


@pytest.fixture(scope="module")
def jwks_uri(keys: dict[str, Key]) -> Iterator[str]:
    with nodepeers.serve_static_jwks(_jwks(keys["uri"])) as url:
        yield url


@pytest.fixture(scope="module")
def provider(keys: dict[str, Key], jwks_uri: str) -> Iterator[dict[str, Any]]:
    clients: list[dict[str, Any]] = [
        {
            "client_id": f"inline-{alg.lower()}",
            "jwks": _jwks(keys[alg]),
            "scope": "api:read api:write",
        }
        for alg in ALGS
    ]
    clients.append({"client_id": "uri-es256", "jwks_uri": jwks_uri, "scope": "api:read"})
    with nodepeers.run_oidc_provider(clients) as info:
        yield info


class _Recorder:
    """An httpx request hook that keeps the token requests' forms and decoded assertions."""

    def __init__(self) -> None:
        self.forms: list[dict[str, list[str]]] = []

    def __call__(self, request: httpx.Request) -> None:
        if request.method == "POST":
            self.forms.append(parse_qs(request.content.decode()))

    def assertion(self, i: int = -1):
        return decode_compact(self.forms[i]["client_assertion"][0])


def _client(http: httpx.Client | None = None, **kwargs: Any) -> TokenClient:
    return TokenClient(http_client=http, **kwargs)


def _provider_log(info: dict[str, Any]) -> str:
    return Path(info["stderr_path"]).read_text(errors="replace")


@pytest.mark.parametrize("alg", ALGS)
def test_inline_jwks_each_alg(provider, keys, alg):
    recorder = _Recorder()
    with httpx.Client(event_hooks={"request": [recorder]}) as http:
        client = _client(
            http,
            token_url=provider["token_endpoint"],
            client_id=f"inline-{alg.lower()}",
            key=keys[alg],
        )
        token = client.get_token()
    assert token.access_token, _provider_log(provider)
    assert token.token_type.lower() == "bearer"
    assert 0 < token.lifetime <= 600
    [form] = recorder.forms
    header = recorder.assertion().header
    assert header["alg"] == alg
    assert header["kid"] == f"inline-{alg.lower()}"
    assert recorder.assertion().claims["aud"] == provider["token_endpoint"]
    assert "client_id" not in form


def test_loopback_jwks_uri(provider, keys):
    client = TokenClient(
        token_url=provider["token_endpoint"], client_id="uri-es256", key=keys["uri"]
    )
    with client:
        token = client.get_token()
    assert token.access_token, _provider_log(provider)


def test_issuer_discovery_rfc7523bis_shape_accepted(provider, keys):
    recorder = _Recorder()
    with httpx.Client(event_hooks={"request": [recorder]}) as http:
        client = _client(
            http, issuer=provider["issuer"], client_id="inline-ps256", key=keys["PS256"]
        )
        token = client.get_token()
        assert client.token_url == provider["token_endpoint"]
    assert token.access_token, _provider_log(provider)
    # one token request: the rfc7523bis shape was accepted, no fallback needed
    assert len(recorder.forms) == 1
    jwt = recorder.assertion()
    assert jwt.claims["aud"] == provider["issuer"]
    assert jwt.header["typ"] == EXPLICIT_TYP


def test_explicit_legacy_profile_with_token_url(provider, keys):
    recorder = _Recorder()
    with httpx.Client(event_hooks={"request": [recorder]}) as http:
        client = _client(
            http,
            token_url=provider["token_endpoint"],
            client_id="inline-rs256",
            key=keys["RS256"],
            profile="legacy",
        )
        token = client.get_token()
    assert token.access_token, _provider_log(provider)
    jwt = recorder.assertion()
    assert jwt.claims["aud"] == provider["token_endpoint"]
    assert jwt.header["typ"] == "JWT"


@pytest.mark.anyio
async def test_async_aget_token(provider, keys):
    client = TokenClient(issuer=provider["issuer"], client_id="inline-eddsa", key=keys["EdDSA"])
    try:
        token = await client.aget_token()
        again = await client.aget_token()
    finally:
        await client.aclose()
    assert token.access_token, _provider_log(provider)
    assert again is token


def test_scope(provider, keys):
    recorder = _Recorder()
    with httpx.Client(event_hooks={"request": [recorder]}) as http:
        client = _client(
            http,
            token_url=provider["token_endpoint"],
            client_id="inline-es256",
            key=keys["ES256"],
            scope="api:read",
        )
        token = client.get_token()
    assert token.scope == "api:read", _provider_log(provider)
    assert recorder.forms[0]["scope"] == ["api:read"]


def test_wrong_key_is_invalid_client(provider, keys):
    from pkjwt.errors import InvalidClient

    client = TokenClient(
        token_url=provider["token_endpoint"], client_id="inline-rs256", key=keys["ES256"]
    )
    with client, pytest.raises(InvalidClient) as info:
        client.get_token()
    assert info.value.status == 401
    assert info.value.hint


# -- JWT access tokens, checked with jwcrypto ----------------------------------------------------


@pytest.fixture(scope="module")
def jwt_provider(keys: dict[str, Key]) -> Iterator[dict[str, Any]]:
    clients = [{"client_id": "jwt-client", "jwks": _jwks(keys["RS256"]), "scope": "api:read"}]
    with nodepeers.run_oidc_provider(clients, token_format="jwt") as info:
        info["keyset"] = jc_jwk.JWKSet.from_json(httpx.get(info["jwks_uri"], timeout=10).text)
        yield info


def _verify(info: dict[str, Any], access_token: str) -> dict[str, Any]:
    """Verify signature, iss and exp with jwcrypto; return the claims."""
    checked = jc_jwt.JWT(
        jwt=access_token,
        key=info["keyset"],
        algs=["RS256"],
        check_claims={"iss": info["issuer"], "exp": None},
    )
    return json.loads(checked.claims)


def test_jwt_access_token_verifies_with_provider_jwks(jwt_provider, keys):
    client = TokenClient(
        issuer=jwt_provider["issuer"], client_id="jwt-client", key=keys["RS256"], scope="api:read"
    )
    with client:
        token = client.get_token()
    claims = _verify(jwt_provider, token.access_token)
    assert jwt_provider["jwks_uri"] == jwt_provider["issuer"] + "/jwks"
    assert claims["client_id"] == "jwt-client"
    assert claims["scope"] == "api:read"
    assert claims["aud"] == "urn:pkjwt:interop:api"
    assert token.expires_at == pytest.approx(claims["exp"], abs=5)


def test_jwt_access_token_tampered_fails_jwcrypto(jwt_provider, keys):
    client = TokenClient(issuer=jwt_provider["issuer"], client_id="jwt-client", key=keys["RS256"])
    with client:
        token = client.get_token()
    head, payload, sig = token.access_token.split(".")
    flipped = sig[:-2] + ("A" if sig[-2] != "A" else "B") + sig[-1]
    with pytest.raises(Exception):  # noqa: B017, PT011 - jwcrypto's own error types
        _verify(jwt_provider, f"{head}.{payload}.{flipped}")


@pytest.fixture
def protected_api(jwt_provider) -> Iterator[tuple[str, list[str]]]:
    """A loopback API that accepts only bearer JWTs that jwcrypto verifies."""
    seen: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            auth = self.headers.get("Authorization", "")
            seen.append(auth)
            scheme, _, token = auth.partition(" ")
            try:
                if scheme != "Bearer":
                    raise ValueError("not a bearer token")
                claims = _verify(jwt_provider, token)
                status, body = 200, {"client_id": claims["client_id"]}
            except Exception:
                status, body = 401, {"error": "invalid_token"}
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.daemon = True
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/resource", seen
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_httpx_auth_with_provider_token(jwt_provider, keys, protected_api):
    url, seen = protected_api
    client = TokenClient(issuer=jwt_provider["issuer"], client_id="jwt-client", key=keys["RS256"])
    with client, httpx.Client(auth=HttpxAuth(client)) as http:
        first = http.get(url)
        second = http.get(url)
    assert first.status_code == 200, first.text
    assert first.json() == {"client_id": "jwt-client"}
    assert second.status_code == 200
    assert seen[0] == seen[1] == f"Bearer {client.get_token().access_token}"
