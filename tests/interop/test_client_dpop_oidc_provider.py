"""pkjwt's DPoP client (RFC 9449) against a real authorization server: npm oidc-provider.

client_credentials with private_key_jwt and a DPoP proof, with oidc-provider's DPoP as it
ships (no nonces) and in nonce mode (``features.dPoP: {nonceSecret, requireNonce}``: the first
proof is refused with use_dpop_nonce and pkjwt retries once with the nonce, a new proof and a
new assertion). The token is checked to be bound to pkjwt's key twice over: a JWT access
token's ``cnf.jkt`` (its signature verified with jwcrypto), and oidc-provider's introspection
of an opaque one. A loopback resource that verifies proofs with jwcrypto takes HttpxAuth's
``Authorization: DPoP`` and answers its first request with a nonce challenge. All traffic
stays on 127.0.0.1.
"""

from __future__ import annotations

import base64
import hashlib
import json
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest
from jwcrypto import jwk as jc_jwk
from jwcrypto import jws as jc_jws
from jwcrypto import jwt as jc_jwt

from peers import skip_unless
from pkjwt import HttpxAuth, Key, TokenClient, generate_key
from pkjwt.decode import decode_compact
from pkjwt.dpop import DPoPKey

sys.path.insert(0, str(Path(__file__).resolve().parent))
import nodepeers

pytestmark = [pytest.mark.interop, skip_unless("node", "npm")]

CLIENT_ID = "dpop-client"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
def client_key() -> Key:
    return generate_key("ES256", kid="dpop-client-es256")


def _clients(key: Key) -> list[dict[str, Any]]:
    return [{"client_id": CLIENT_ID, "jwks": {"keys": [key.public_jwk()]}, "scope": "api:read"}]


@pytest.fixture(scope="module")
def jwt_provider(client_key: Key) -> Iterator[dict[str, Any]]:
    with nodepeers.run_oidc_provider(_clients(client_key), token_format="jwt") as info:
        info["keyset"] = jc_jwk.JWKSet.from_json(httpx.get(info["jwks_uri"], timeout=10).text)
        yield info


@pytest.fixture(scope="module")
def nonce_provider(client_key: Key) -> Iterator[dict[str, Any]]:
    with nodepeers.run_oidc_provider(
        _clients(client_key), token_format="jwt", dpop={"require_nonce": True}
    ) as info:
        info["keyset"] = jc_jwk.JWKSet.from_json(httpx.get(info["jwks_uri"], timeout=10).text)
        yield info


@pytest.fixture(scope="module")
def opaque_provider(client_key: Key) -> Iterator[dict[str, Any]]:
    with nodepeers.run_oidc_provider(_clients(client_key), dpop={"require_nonce": True}) as info:
        yield info


class _Recorder:
    """An httpx request hook that keeps each token request's DPoP proof and form."""

    def __init__(self) -> None:
        self.proofs: list[dict[str, Any]] = []
        self.forms: list[dict[str, list[str]]] = []

    def __call__(self, request: httpx.Request) -> None:
        if request.method == "POST":
            self.proofs.append(decode_compact(request.headers["DPoP"]).claims)
            self.forms.append(parse_qs(request.content.decode()))

    def assertion_jti(self, i: int) -> str:
        return decode_compact(self.forms[i]["client_assertion"][0]).claims["jti"]


def _log(info: dict[str, Any]) -> str:
    return Path(info["stderr_path"]).read_text(errors="replace")


def _verified_claims(info: dict[str, Any], access_token: str) -> dict[str, Any]:
    checked = jc_jwt.JWT(
        jwt=access_token, key=info["keyset"], check_claims={"iss": info["issuer"], "exp": None}
    )
    return json.loads(checked.claims)


def _fetch(info: dict[str, Any], key: Key, dpop: DPoPKey) -> tuple[Any, _Recorder]:
    recorder = _Recorder()
    with httpx.Client(event_hooks={"request": [recorder]}) as http:
        client = TokenClient(
            token_url=info["token_endpoint"],
            client_id=CLIENT_ID,
            key=key,
            dpop=dpop,
            http_client=http,
        )
        token = client.get_token()
    return token, recorder


def test_dpop_bound_jwt_access_token(jwt_provider, client_key):
    dpop = DPoPKey()
    token, recorder = _fetch(jwt_provider, client_key, dpop)
    assert token.token_type == "DPoP", _log(jwt_provider)
    claims = _verified_claims(jwt_provider, token.access_token)
    assert claims["cnf"] == {"jkt": dpop.jkt}
    [proof] = recorder.proofs
    assert proof["htm"] == "POST"
    assert proof["htu"] == jwt_provider["token_endpoint"]
    assert "nonce" not in proof


def test_nonce_mode_retries_once_with_a_new_proof_and_assertion(nonce_provider, client_key):
    dpop = DPoPKey()
    token, recorder = _fetch(nonce_provider, client_key, dpop)
    assert token.token_type == "DPoP", _log(nonce_provider)
    assert _verified_claims(nonce_provider, token.access_token)["cnf"]["jkt"] == dpop.jkt
    refused, accepted = recorder.proofs
    assert "nonce" not in refused
    assert accepted["nonce"]
    assert refused["jti"] != accepted["jti"]
    assert recorder.assertion_jti(0) != recorder.assertion_jti(1)


@pytest.mark.anyio
async def test_nonce_mode_async(nonce_provider, client_key):
    dpop = DPoPKey(generate_key("ES256"))
    client = TokenClient(
        issuer=nonce_provider["issuer"], client_id=CLIENT_ID, key=client_key, dpop=dpop
    )
    try:
        token = await client.aget_token()
    finally:
        await client.aclose()
    assert token.is_dpop, _log(nonce_provider)
    assert _verified_claims(nonce_provider, token.access_token)["cnf"]["jkt"] == dpop.jkt


def test_opaque_token_introspected_as_bound(opaque_provider, client_key):
    dpop = DPoPKey()
    client = TokenClient(
        issuer=opaque_provider["issuer"], client_id=CLIENT_ID, key=client_key, dpop=dpop
    )
    with client:
        token = client.get_token()
        assert token.token_type == "DPoP", _log(opaque_provider)
        introspection = client.server_metadata.raw["introspection_endpoint"]
        answer = httpx.post(
            introspection,
            data={
                "token": token.access_token,
                "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                "client_assertion": client.make_assertion(),
            },
            timeout=10,
        )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["active"] is True, _log(opaque_provider)
    assert body["token_type"] == "DPoP"
    assert body["cnf"] == {"jkt": dpop.jkt}


def test_bearer_when_dpop_is_off(jwt_provider, client_key):
    client = TokenClient(
        token_url=jwt_provider["token_endpoint"], client_id=CLIENT_ID, key=client_key
    )
    with client:
        token = client.get_token()
    assert token.token_type == "Bearer"
    assert "cnf" not in _verified_claims(jwt_provider, token.access_token)


# -- a resource that checks DPoP with jwcrypto ----------------------------------------------------


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _check_dpop(info: dict[str, Any], headers: Any, method: str, url: str, nonce: str) -> str:
    """RFC 9449 7.1 with jwcrypto: the bound token's signature and cnf.jkt, then the proof's
    signature by its embedded key, typ, htm, htu, ath, iat and nonce. '' when all hold."""
    scheme, _, token = headers.get("Authorization", "").partition(" ")
    if scheme != "DPoP":
        return "invalid_token"
    jkt = _verified_claims(info, token)["cnf"]["jkt"]
    proof = jc_jws.JWS()
    proof.deserialize(headers["DPoP"])
    header = proof.jose_header
    key = jc_jwk.JWK(**header["jwk"])
    proof.verify(key, alg=header["alg"])
    claims = json.loads(proof.payload)
    ath = _b64(hashlib.sha256(token.encode()).digest())
    if claims.get("nonce") != nonce:
        return "use_dpop_nonce"
    ok = (
        header["typ"] == "dpop+jwt"
        and key.thumbprint() == jkt
        and claims["htm"] == method
        and claims["htu"] == url
        and claims["ath"] == ath
        and abs(claims["iat"] - time.time()) < 60
    )
    return "" if ok else "invalid_dpop_proof"


@pytest.fixture
def dpop_resource(jwt_provider) -> Iterator[tuple[str, list[dict[str, Any]]]]:
    seen: list[dict[str, Any]] = []
    nonce = "rs-" + _b64(hashlib.sha256(str(time.time()).encode()).digest()[:12])

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            url = f"http://127.0.0.1:{self.server.server_address[1]}{self.path.split('?')[0]}"
            try:
                error = _check_dpop(jwt_provider, self.headers, "GET", url, nonce)
            except Exception as exc:  # a proof jwcrypto cannot verify
                error = f"invalid_dpop_proof ({type(exc).__name__})"
            seen.append({"error": error, "proof": self.headers.get("DPoP")})
            self.send_response(200 if not error else 401)
            if error:
                self.send_header("WWW-Authenticate", f'DPoP error="{error}", algs="ES256"')
                self.send_header("DPoP-Nonce", nonce)
            self.send_header("Content-Length", "0")
            self.end_headers()

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


def test_httpx_auth_dpop_at_a_jwcrypto_resource(jwt_provider, client_key, dpop_resource):
    url, seen = dpop_resource
    client = TokenClient(
        token_url=jwt_provider["token_endpoint"], client_id=CLIENT_ID, key=client_key, dpop=True
    )
    with client, httpx.Client(auth=HttpxAuth(client)) as http:
        first = http.get(url + "?x=1")
        second = http.get(url)
    assert first.status_code == 200, seen
    assert second.status_code == 200, seen
    assert [s["error"] for s in seen] == ["use_dpop_nonce", "", ""]
    assert len({s["proof"] for s in seen}) == 3
