"""pkjwt's client against a second authorization server we did not write: Authlib's own
RFC 7523 ``private_key_jwt`` client authentication in a Flask app (``authlib_server.py``).

The legacy shape with a token URL for RSA and EC keys, each token used on an Authlib-protected
route; issuer discovery whose rfc7523bis assertion Authlib (token URL only) refuses, the
fallback to legacy and its memory in a shared FileStore; FAPI 2.0 picking PS256 from the
server's list for an unpinned RSA key; ``pkjwt token`` and its ``--explain --jwks`` against a
mismatched registration; and Authlib's replay check. All traffic stays on 127.0.0.1.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner
from cryptography.hazmat.primitives.asymmetric import rsa

from pkjwt import FileStore, InvalidClient, Key, TokenClient, generate_key, jwks, load_key
from pkjwt.cli.main import cli

sys.path.insert(0, str(Path(__file__).resolve().parent))
from authlib_server import (
    TOKEN_LIFETIME,
    AuthlibPeer,
    RegisteredClient,
    run_authlib_server,
)

pytestmark = pytest.mark.interop

ALGS = ["RS256", "RS512", "PS256", "ES256"]
EXPLICIT_TYP = "client-authentication+jwt"
JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


def _kid(alg: str) -> str:
    return f"authlib-{alg.lower()}"


def _client_id(alg: str) -> str:
    return f"client-{alg.lower()}"


@pytest.fixture(scope="module")
def keys() -> dict[str, Key]:
    out = {alg: generate_key(alg, kid=_kid(alg), size=2048) for alg in ALGS if alg != "ES256"}
    out["ES256"] = generate_key("ES256", kid=_kid("ES256"))
    # FAPI: a cryptography RSA key loaded without an alg, so it may sign any RS*/PS*
    out["fapi"] = load_key(rsa.generate_private_key(65537, 2048), kid="fapi-rsa")
    # registered under RS256's kid by the "mismatch" client: not the key the client holds
    out["other"] = generate_key("RS256", kid=_kid("RS256"), size=2048)
    return out


@pytest.fixture(scope="module")
def registrations(keys: dict[str, Key]) -> list[RegisteredClient]:
    clients = [RegisteredClient(_client_id(alg), jwks(keys[alg]), scope="api:read") for alg in ALGS]
    clients.append(RegisteredClient("fapi-rsa", jwks(keys["fapi"]), scope="api:read"))
    clients.append(RegisteredClient("mismatch-rs256", jwks(keys["other"])))
    return clients


@pytest.fixture
def peer(registrations: list[RegisteredClient]) -> Iterator[AuthlibPeer]:
    """Authlib as deployed with the token URL as its only audience."""
    with run_authlib_server(registrations) as running:
        yield running


def _assert_works(peer: AuthlibPeer, access_token: str, client_id: str) -> None:
    """The token is one Authlib issued, and its protected route accepts it."""
    assert access_token in peer.tokens
    answer = peer.whoami(access_token)
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"client_id": client_id}


# -- the legacy shape with a token URL -----------------------------------------------------------


@pytest.mark.parametrize("alg", ALGS)
def test_legacy_profile_with_token_url_each_alg(peer, keys, alg):
    client = TokenClient(
        token_url=peer.token_endpoint, client_id=_client_id(alg), key=keys[alg], profile="legacy"
    )
    with client:
        token = client.get_token()
    [seen] = peer.token_requests
    assert seen.status == 200, seen.answer
    assert seen.header["alg"] == alg
    assert seen.header["kid"] == _kid(alg)
    assert seen.claims["aud"] == peer.token_endpoint
    assert seen.claims["iss"] == seen.claims["sub"] == _client_id(alg)
    assert seen.form["client_assertion_type"] == JWT_BEARER
    assert token.token_type.lower() == "bearer"
    assert 0 < token.lifetime <= TOKEN_LIFETIME
    _assert_works(peer, token.access_token, _client_id(alg))


def test_a_wrong_token_is_refused_by_the_protected_route(peer):
    assert peer.whoami("not-a-token-authlib-issued").status_code == 401


# -- issuer discovery: rfc7523bis first, legacy once, remembered ----------------------------------


def test_discovery_falls_back_to_legacy_once_and_the_store_remembers(peer, keys, tmp_path):
    store = FileStore(tmp_path / "cache")
    first = TokenClient(
        issuer=peer.issuer, client_id=_client_id("ES256"), key=keys["ES256"], store=store
    )
    with first:
        token = first.get_token()
        assert first.token_url == peer.token_endpoint  # discovered
    refused, accepted = peer.token_requests
    # rfc7523bis: aud = issuer, explicit typ; Authlib (token URL only) says invalid_client
    assert refused.claims["aud"] == peer.issuer
    assert refused.header["typ"] == EXPLICIT_TYP
    assert refused.status == 400
    assert refused.answer["error"] == "invalid_client"
    # then legacy, once: aud = token URL
    assert accepted.claims["aud"] == peer.token_endpoint
    assert accepted.header["typ"] == "JWT"
    assert accepted.status == 200
    _assert_works(peer, token.access_token, _client_id("ES256"))

    # another client sharing the store (another scope: its own cache entry) sends legacy first
    second = TokenClient(
        issuer=peer.issuer,
        client_id=_client_id("ES256"),
        key=keys["ES256"],
        scope="api:read",
        store=store,
    )
    with second:
        again = second.get_token()
    assert len(peer.token_requests) == 3  # exactly one more request
    only = peer.token_requests[2]
    assert only.claims["aud"] == peer.token_endpoint
    assert only.status == 200
    assert again.scope == "api:read"
    assert again.access_token != token.access_token
    _assert_works(peer, again.access_token, _client_id("ES256"))


def test_discovery_sends_rfc7523bis_once_when_authlib_takes_the_issuer(registrations, keys):
    """The same server configured as Authlib's docs suggest (token URL and issuer): no
    fallback, one request with aud = issuer."""
    with run_authlib_server(registrations, accept_issuer_audience=True) as peer:
        client = TokenClient(issuer=peer.issuer, client_id=_client_id("RS256"), key=keys["RS256"])
        with client:
            token = client.get_token()
        [seen] = peer.token_requests
        assert seen.status == 200, seen.answer
        assert seen.claims["aud"] == peer.issuer
        assert seen.header["typ"] == EXPLICIT_TYP
        _assert_works(peer, token.access_token, _client_id("RS256"))


# -- FAPI 2.0: the alg is profile ∩ server ∩ key -------------------------------------------------


@pytest.fixture
def fapi_peer(registrations: list[RegisteredClient]) -> Iterator[AuthlibPeer]:
    with run_authlib_server(
        registrations, algorithms=["RS256", "PS256"], accept_issuer_audience=True
    ) as running:
        yield running


def test_fapi2_unpinned_rsa_key_signs_ps256_from_the_servers_list(fapi_peer, keys):
    assert "alg" not in keys["fapi"].public_jwk()  # unpinned: RS* and PS* both possible
    client = TokenClient(
        issuer=fapi_peer.issuer, client_id="fapi-rsa", key=keys["fapi"], profile="fapi2"
    )
    with client:
        token = client.get_token()
    [seen] = fapi_peer.token_requests
    assert seen.status == 200, seen.answer
    assert seen.header["alg"] == "PS256"  # not RS256: FAPI 2.0 forbids it
    assert seen.header["typ"] == EXPLICIT_TYP
    assert seen.claims["aud"] == fapi_peer.issuer
    _assert_works(fapi_peer, token.access_token, "fapi-rsa")


def test_fapi2_aud_is_the_issuer_the_server_publishes(fapi_peer, keys):
    """Found by this peer: issuer= with a trailing slash the metadata does not have used to go
    into aud as typed; Authlib compares aud exactly (RFC 8414 3.3: the published one counts)."""
    client = TokenClient(
        issuer=fapi_peer.issuer + "/", client_id="fapi-rsa", key=keys["fapi"], profile="fapi2"
    )
    with client:
        token = client.get_token()
    [seen] = fapi_peer.token_requests
    assert seen.claims["aud"] == fapi_peer.issuer
    _assert_works(fapi_peer, token.access_token, "fapi-rsa")


# -- the CLI -------------------------------------------------------------------------------------


@pytest.fixture
def cli_env(tmp_path, monkeypatch, keys) -> dict[str, Any]:
    for name in [n for n in os.environ if n.startswith("PKJWT_")]:
        monkeypatch.delenv(name)
    key = tmp_path / "rs256.pem"
    key.write_bytes(keys["RS256"].private_pem())
    key.chmod(0o600)
    return {
        "env": {
            "PKJWT_CACHE_DIR": str(tmp_path / "cache"),
            "PKJWT_CONFIG": str(tmp_path / "no-config.toml"),
        },
        "key": str(key),
        "tmp": tmp_path,
    }


def _pkjwt_token(cli_env: dict[str, Any], peer: AuthlibPeer, client_id: str, *more: str):
    args = ["token", "--token-url", peer.token_endpoint, "--client-id", client_id,
            "--key", cli_env["key"], "--kid", _kid("RS256"), "--profile", "legacy",
            "--no-cache", *more]  # fmt: skip
    return CliRunner().invoke(cli, args, env=cli_env["env"], catch_exceptions=False)


def test_cli_token_prints_a_token_authlib_issued(peer, cli_env):
    result = _pkjwt_token(cli_env, peer, _client_id("RS256"))
    assert result.exit_code == 0, result.stderr
    printed = result.stdout.strip()
    assert list(peer.tokens) == [printed]
    _assert_works(peer, printed, _client_id("RS256"))


def test_cli_explain_says_the_registered_key_differs(peer, cli_env, keys):
    registered = cli_env["tmp"] / "registered-jwks.json"
    registered.write_text(json.dumps(peer.clients["mismatch-rs256"].jwks))
    result = _pkjwt_token(cli_env, peer, "mismatch-rs256", "--explain", "--jwks", str(registered))
    assert result.exit_code == 2
    assert "is not this private key's public half" in result.stderr
    # Authlib refused the signature once; pkjwt did not retry an invalid_client
    [seen] = peer.token_requests
    assert seen.status == 400
    assert seen.answer["error"] == "invalid_client"
    assert seen.header["kid"] == _kid("RS256")
    assert not peer.tokens


# -- what the peer itself checks -----------------------------------------------------------------


def test_authlib_refuses_a_replayed_assertion(peer, keys):
    client = TokenClient(
        token_url=peer.token_endpoint,
        client_id=_client_id("RS256"),
        key=keys["RS256"],
        profile="legacy",
    )
    with client:
        assertion = client.make_assertion()
    form = {
        "grant_type": "client_credentials",
        "client_assertion_type": JWT_BEARER,
        "client_assertion": assertion,
    }
    first = httpx.post(peer.token_endpoint, data=form, timeout=10)
    replayed = httpx.post(peer.token_endpoint, data=form, timeout=10)
    assert first.status_code == 200, first.text
    _assert_works(peer, first.json()["access_token"], _client_id("RS256"))
    assert replayed.status_code == 400
    assert replayed.json()["error"] == "invalid_client"
    assert replayed.json()["error_description"] == "JWT ID is used before."
    assert len(peer.used_jtis) == 1


def test_stock_authlib_refuses_ps256_so_the_peer_passes_its_advertised_algs(registrations, keys):
    """Authlib's verifier calls joserfc without algorithms: only HS256/RS256/ES256 pass. The
    peer's ``algorithms=`` exists because of this; without it PS256 is invalid_client."""
    with run_authlib_server(registrations, stock_algorithms=True) as peer:
        ps256 = TokenClient(
            token_url=peer.token_endpoint,
            client_id=_client_id("PS256"),
            key=keys["PS256"],
            profile="legacy",
        )
        with ps256, pytest.raises(InvalidClient):
            ps256.get_token()
        assert "PS256" in peer.token_requests[0].answer["error_description"]
        assert peer.metadata["token_endpoint_auth_signing_alg_values_supported"] == [
            "RS256",
            "ES256",
        ]
        rs256 = TokenClient(
            token_url=peer.token_endpoint,
            client_id=_client_id("RS256"),
            key=keys["RS256"],
            profile="legacy",
        )
        with rs256:
            assert rs256.get_token().access_token in peer.tokens
