"""The client side of DPoP (RFC 9449) against the scripted loopback server, whose every proof
is judged by pkjwt.dpop.check_proof: a fresh proof per token request attempt, the nonce retry
(a new proof and a new assertion), nonces kept per origin, the cache key, bearer unchanged, and
HttpxAuth (sync and async) and RequestsAuth sending DPoP tokens with proofs to a resource that
may demand its own nonce."""

from __future__ import annotations

import logging

import httpx
import pytest
import requests

from pkjwt import HttpxAuth, Key, generate_key
from pkjwt.dpop import DPoPKey, access_token_hash, htu_of
from pkjwt.dpop_client import DPoPSession, dpop_for, is_nonce_challenge
from pkjwt.errors import OAuthError
from pkjwt.integrations.requests import RequestsAuth

from .conftest import ScriptedServer


@pytest.fixture
def dpop_key() -> DPoPKey:
    return DPoPKey()


def _proof_claims(rec):
    assert rec.dpop is not None, "no DPoP header"
    assert rec.dpop.ok, rec.dpop.first_failure
    return rec.dpop.claims


# -- the token request ---------------------------------------------------------------------------


def test_each_attempt_carries_a_fresh_proof(server, make_client, dpop_key):
    server.script = [server.error(503, "temporarily_unavailable")]
    client = make_client(dpop=dpop_key)
    token = client.get_token()
    first, second = server.token_requests
    claims = [_proof_claims(first), _proof_claims(second)]
    assert [c["htm"] for c in claims] == ["POST", "POST"]
    assert [c["htu"] for c in claims] == [server.token_url, server.token_url]
    assert claims[0]["jti"] != claims[1]["jti"]
    assert first.dpop.jkt == second.dpop.jkt == dpop_key.jkt == client.dpop.jkt
    assert first.dpop.header["jwk"] == dpop_key.public_jwk  # the public half only
    assert token.token_type == "DPoP"
    assert token.is_dpop
    assert token.authorization() == f"DPoP {token.access_token}"
    assert server.bound[token.access_token] == dpop_key.jkt


def test_proof_iat_follows_the_corrected_clock(server, make_client, clock):
    server.date_offset = 120  # the server's clock runs 2 minutes ahead of ours
    server.script = [server.error(401, "invalid_client")]  # retried once with the offset
    make_client(dpop=True).get_token()
    last = server.token_requests[-1]
    assert _proof_claims(last)["iat"] == pytest.approx(clock() + 120, abs=2)


def test_nonce_retry_sends_a_new_proof_and_a_new_assertion(server, make_client):
    server.token_nonce = "as-nonce-1"
    client = make_client(dpop=True)
    token = client.get_token()
    refused, accepted = server.token_requests
    assert "nonce" not in refused.dpop.claims
    assert _proof_claims(accepted)["nonce"] == "as-nonce-1"
    assert refused.dpop.jti != accepted.dpop.jti
    assert refused.claims["jti"] != accepted.claims["jti"]  # never a replayed assertion
    assert refused.raw_assertion != accepted.raw_assertion
    assert token.is_dpop


def test_the_nonce_is_kept_for_the_next_request(server, make_client):
    server.token_nonce = "as-nonce-1"
    client = make_client(dpop=True)
    client.get_token()
    client.invalidate()
    client.get_token()
    assert len(server.token_requests) == 3  # no second refusal: the nonce was known
    assert _proof_claims(server.token_requests[-1])["nonce"] == "as-nonce-1"


def test_a_nonce_from_a_success_is_kept_too(server, make_client):
    server.script = [server.ok(headers={"DPoP-Nonce": "from-success"})]
    client = make_client(dpop=True)
    client.get_token()
    client.get_token(force=True)
    first, second = server.token_requests
    assert "nonce" not in first.dpop.claims
    assert _proof_claims(second)["nonce"] == "from-success"


def test_the_nonce_retry_happens_once(server, make_client):
    server.script = [
        server.error(400, "use_dpop_nonce", headers={"DPoP-Nonce": "n1"}),
        server.error(400, "use_dpop_nonce", headers={"DPoP-Nonce": "n2"}),
    ]
    client = make_client(dpop=True)
    with pytest.raises(OAuthError) as info:
        client.get_token()
    assert info.value.error == "use_dpop_nonce"
    assert info.value.hint
    assert len(server.token_requests) == 2
    assert server.token_requests[1].dpop.claims["nonce"] == "n1"


def test_use_dpop_nonce_without_a_new_nonce_is_not_retried(server, make_client):
    server.script = [server.error(400, "use_dpop_nonce")]
    with pytest.raises(OAuthError):
        make_client(dpop=True).get_token()
    assert len(server.token_requests) == 1


def test_a_bearer_answer_is_kept_as_bearer_and_warned_once(server, make_client, caplog):
    server.script = [server.ok(), server.ok()]  # token_type Bearer whatever was asked
    client = make_client(dpop=True)
    with caplog.at_level(logging.WARNING, logger="pkjwt.client"):
        token = client.get_token()
        client.get_token(force=True)
    assert token.token_type == "Bearer"
    assert not token.is_dpop
    warnings = [r for r in caplog.records if "not bound" in r.getMessage()]
    assert len(warnings) == 1
    assert token.access_token not in caplog.text


# -- off, keys and the cache key -------------------------------------------------------------------


def test_dpop_off_changes_nothing(server, make_client):
    client = make_client()
    assert client.dpop is None
    token = client.get_token()
    assert token.token_type == "Bearer"
    [req] = server.token_requests
    assert "dpop" not in req.headers
    with httpx.Client(auth=HttpxAuth(client)) as http:
        assert http.get(server.api_url).status_code == 200
    [api] = server.api_requests
    assert api.headers["authorization"] == f"Bearer {token.access_token}"
    assert "dpop" not in api.headers
    assert make_client(dpop=False).cache_key == client.cache_key


def test_the_cache_key_names_the_dpop_key(make_client, dpop_key):
    plain = make_client().cache_key
    bound = make_client(dpop=dpop_key).cache_key
    same = make_client(dpop=dpop_key).cache_key
    other = make_client(dpop=True).cache_key
    assert bound != plain
    assert bound == same
    assert other not in (bound, plain)
    assert bound[: len(plain)] == plain
    assert dpop_key.jkt in bound[-1]


def test_dpop_takes_the_forms_of_a_key(tmp_path):
    key = generate_key("ES256")
    path = tmp_path / "dpop.pem"
    path.write_bytes(key.private_pem())
    path.chmod(0o600)
    jwk = key.jose.as_dict(private=True)
    forms = [key, key.private_pem().decode(), str(path), jwk, DPoPKey(key)]
    for form in forms:
        session = dpop_for(form)
        assert isinstance(session, DPoPSession)
        assert session.jkt == key.thumbprint()
    assert dpop_for(False) is None
    assert dpop_for(None) is None
    assert dpop_for(True).key.alg == "ES256"


def test_no_secret_in_reprs(make_client):
    key = generate_key("ES256")
    client = make_client(dpop=key)
    shown = repr(client.dpop) + repr(client.dpop.key)
    assert key.jose.as_dict(private=True)["d"] not in shown
    assert "ES256" in shown


# -- the resource ---------------------------------------------------------------------------------


def _api_proof(server, rec, token):
    check = rec.dpop
    assert check is not None
    assert check.ok, check.first_failure
    assert check.claims["ath"] == access_token_hash(token.access_token)
    assert check.claims["htu"] == htu_of(server.base_url + rec.path)
    assert rec.headers["authorization"] == f"DPoP {token.access_token}"
    return check.claims


def test_httpx_auth_sends_dpop_and_a_proof_per_request(server, make_client):
    client = make_client(dpop=True)
    with httpx.Client(auth=HttpxAuth(client)) as http:
        first = http.get(server.api_url + "?q=1#frag")
        second = http.post(server.api_url, content=b"x")
    assert first.status_code == second.status_code == 200
    token = client.get_token()
    a, b = server.api_requests
    claims = [_api_proof(server, a, token), _api_proof(server, b, token)]
    assert [c["htm"] for c in claims] == ["GET", "POST"]
    assert claims[0]["htu"] == server.api_url  # no query, no fragment
    assert claims[0]["jti"] != claims[1]["jti"]
    assert len(server.token_requests) == 1


@pytest.mark.anyio
async def test_async_httpx_auth_sends_dpop(server, make_client):
    client = make_client(dpop=True)
    async with httpx.AsyncClient(auth=HttpxAuth(client)) as http:
        response = await http.get(server.api_url)
    assert response.status_code == 200
    [rec] = server.api_requests
    _api_proof(server, rec, await client.aget_token())


def test_httpx2_auth_sends_dpop_and_answers_the_nonce_challenge(server, make_client):
    httpx2 = pytest.importorskip("httpx2")
    from pkjwt.integrations.httpx2 import Httpx2Auth

    server.api_nonce = "rs-nonce-x2"
    client = make_client(dpop=True)
    with httpx2.Client(auth=Httpx2Auth(client)) as http:
        assert http.get(server.api_url).status_code == 200
    refused, accepted = server.api_requests
    assert "nonce" not in refused.dpop.claims
    assert _api_proof(server, accepted, client.get_token())["nonce"] == "rs-nonce-x2"


def test_httpx_auth_answers_the_resource_nonce_challenge(server, make_client):
    server.api_nonce = "rs-nonce-1"
    client = make_client(dpop=True)
    with httpx.Client(auth=HttpxAuth(client)) as http:
        first = http.get(server.api_url)
        again = http.get(server.api_url)
    assert first.status_code == again.status_code == 200
    refused, accepted, straight = server.api_requests
    assert "nonce" not in refused.dpop.claims
    assert accepted.dpop.claims["nonce"] == straight.dpop.claims["nonce"] == "rs-nonce-1"
    assert refused.dpop.jti != accepted.dpop.jti
    assert len(server.token_requests) == 1  # a nonce challenge is not a token problem


@pytest.mark.anyio
async def test_async_httpx_auth_answers_the_resource_nonce_challenge(server, make_client):
    server.api_nonce = "rs-nonce-2"
    client = make_client(dpop=True)
    async with httpx.AsyncClient(auth=HttpxAuth(client)) as http:
        response = await http.get(server.api_url)
    assert response.status_code == 200
    assert [r.dpop.claims.get("nonce") for r in server.api_requests] == [None, "rs-nonce-2"]


def test_httpx_auth_renews_a_refused_dpop_token_once(server, make_client):
    client = make_client(dpop=True)
    stale = client.get_token()
    server.revoked.add(stale.access_token)
    with httpx.Client(auth=HttpxAuth(client)) as http:
        response = http.get(server.api_url)
    assert response.status_code == 200
    fresh = client.get_token()
    assert fresh.access_token != stale.access_token
    refused, accepted = server.api_requests
    _api_proof(server, accepted, fresh)
    assert refused.dpop.jti != accepted.dpop.jti


def test_nonces_are_kept_per_origin(server, make_client, clock):
    api = ScriptedServer(clock).start()
    try:
        server.token_nonce = "token-endpoint-nonce"
        client = make_client(dpop=True)
        token = client.get_token()
        api.api_nonce = "api-nonce"
        api._state.issued.append(token.access_token)  # the API trusts the token server
        api._state.bound[token.access_token] = client.dpop.jkt
        with httpx.Client(auth=HttpxAuth(client)) as http:
            assert http.get(api.api_url).status_code == 200
            assert http.get(api.api_url).status_code == 200
        sent = [r.dpop.claims.get("nonce") for r in api.api_requests]
        assert sent == [None, "api-nonce", "api-nonce"]  # never the token endpoint's
        client.invalidate()
        client.get_token()
        assert server.token_requests[-1].dpop.claims["nonce"] == "token-endpoint-nonce"
    finally:
        api.stop()


def test_requests_auth_sends_dpop_and_answers_the_nonce_challenge(server, make_client):
    server.api_nonce = "rs-nonce-3"
    client = make_client(dpop=True)
    with requests.Session() as http:
        http.auth = RequestsAuth(client)
        first = http.get(server.api_url + "?page=2", timeout=10)
        second = http.delete(server.api_url, timeout=10)
    assert first.status_code == second.status_code == 200
    token = client.get_token()
    refused, accepted, deleted = server.api_requests
    assert "nonce" not in refused.dpop.claims
    assert _api_proof(server, accepted, token)["nonce"] == "rs-nonce-3"
    assert _api_proof(server, deleted, token)["htm"] == "DELETE"
    assert len({r.dpop.jti for r in server.api_requests}) == 3
    assert len(first.history) == 1


def test_requests_auth_renews_a_refused_dpop_token_once(server, make_client):
    client = make_client(dpop=True)
    stale = client.get_token()
    server.revoked.add(stale.access_token)
    response = requests.get(server.api_url, auth=RequestsAuth(client), timeout=10)
    assert response.status_code == 200
    _api_proof(server, server.api_requests[-1], client.get_token())
    assert len(server.api_requests) == 2


def test_requests_auth_bearer_unchanged(server, make_client):
    client = make_client()
    response = requests.get(server.api_url, auth=RequestsAuth(client), timeout=10)
    assert response.status_code == 200
    [rec] = server.api_requests
    assert rec.headers["authorization"].startswith("Bearer ")
    assert "dpop" not in rec.headers


def test_a_bearer_challenge_is_not_a_nonce_challenge():
    assert is_nonce_challenge(
        {"WWW-Authenticate": 'DPoP error="use_dpop_nonce", algs="ES256"', "DPoP-Nonce": "n"}
    )
    assert is_nonce_challenge(
        {"www-authenticate": 'Bearer realm="x", DPoP error="use_dpop_nonce"', "dpop-nonce": "n"}
    )
    assert not is_nonce_challenge({"WWW-Authenticate": 'DPoP error="use_dpop_nonce"'})
    assert not is_nonce_challenge(
        {"WWW-Authenticate": 'DPoP error="invalid_token"', "DPoP-Nonce": "n"}
    )
    assert not is_nonce_challenge({"WWW-Authenticate": 'Bearer error="x"', "DPoP-Nonce": "n"})


# -- async signers --------------------------------------------------------------------------------


class _AsyncOnlySigner:
    """An HSM/KMS stand-in: it signs only when awaited, and exposes its public key."""

    def __init__(self, key: Key) -> None:
        self._key = key
        self.alg = "ES256"
        self.kid = None
        self.awaited = 0

    def public_key(self) -> Key:
        return self._key.public()

    def sign(self, data: bytes) -> bytes:
        raise AssertionError("an async client must await asign, not block on sign")

    async def asign(self, data: bytes) -> bytes:
        self.awaited += 1
        from pkjwt.signing import LocalSigner

        return LocalSigner(self._key, "ES256").sign(data)


@pytest.mark.anyio
async def test_async_client_awaits_an_async_dpop_signer(server, make_client):
    key = generate_key("ES256")
    signer = _AsyncOnlySigner(key)
    server.token_nonce = "n-async"
    client = make_client(dpop=signer)
    assert client.dpop.jkt == key.thumbprint()
    token = await client.aget_token()
    assert token.is_dpop
    assert signer.awaited == 2  # the refused attempt's proof and the retry's
    assert server.token_requests[-1].dpop.jkt == key.thumbprint()
    async with httpx.AsyncClient(auth=HttpxAuth(client)) as http:
        assert (await http.get(server.api_url)).status_code == 200
    assert signer.awaited == 3
    _api_proof(server, server.api_requests[-1], token)
