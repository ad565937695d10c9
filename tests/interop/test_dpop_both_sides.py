"""DPoP end to end (issue 15): pkjwt's client against ``pkjwt serve`` (fapi2 turns DPoP on by
default; nonce mode too), and requests-oauth2client's DPoP client, which we did not write,
against ``pkjwt serve``: bound tokens issued and accepted at ``/echo`` with their proofs."""

from __future__ import annotations

import httpx
import pytest
import requests
from requests_oauth2client import OAuth2Client, PrivateKeyJwt
from requests_oauth2client.dpop import DPoPToken

import pkjwt
from pkjwt.keys import generate_key, jwks
from pkjwt.testing import local_auth_server

pytestmark = pytest.mark.interop


@pytest.mark.parametrize("nonce", [False, True])
def test_pkjwt_client_and_server_with_fapi2(nonce: bool) -> None:
    with local_auth_server("fapi2", extra={"dpop_nonce": nonce}) as server:
        client = server.token_client()  # fapi2: DPoP on without asking
        assert client.dpop is not None
        token = client.get_token()
        assert token.token_type == "DPoP"
        with httpx.Client(auth=pkjwt.HttpxAuth(client)) as http:
            answer = http.get(server.issuer + "/echo")
            assert answer.status_code == 200, answer.text
            assert answer.json()["token_type"] == "DPoP"
            assert http.get(server.issuer + "/echo?again=1").status_code == 200
        refused = httpx.get(server.issuer + "/echo", headers={"Authorization": f"Bearer {token}"})
        assert refused.status_code == 401  # a bound token is no bearer token
        errors = [r.error for r in server.requests if r.endpoint == "token"]
        assert errors == (["use_dpop_nonce", None] if nonce else [None])


@pytest.mark.parametrize("nonce", [False, True])
def test_requests_oauth2client_dpop_against_pkjwt_serve(nonce: bool) -> None:
    key = generate_key("ES256", kid="ro2c-1")
    clients = [{"client_id": "ro2c", "jwks": jwks([key.public()]), "require_dpop": True}]
    extra = {"dpop_nonce": nonce, "token_format": "jwt"}
    with local_auth_server("rfc7523bis", clients=clients, extra=extra) as server:
        private = dict(key.jose.as_dict(private=True), kid=key.kid, alg="ES256")
        oauth = OAuth2Client(
            token_endpoint=server.token_url,
            auth=PrivateKeyJwt("ro2c", private, alg="ES256", aud=server.issuer),
            dpop_bound_access_tokens=True,
            testing=True,  # plain http on loopback (its https check is off only for tests)
        )
        token = oauth.client_credentials()
        assert isinstance(token, DPoPToken)
        import jwt as pyjwt

        claims = pyjwt.decode(token.access_token, options={"verify_signature": False})
        assert claims["cnf"]["jkt"] == token.dpop_key.private_key.public_jwk().thumbprint()
        answer = requests.get(server.issuer + "/echo", auth=token, timeout=10)
        assert answer.status_code == 200, answer.text
        assert answer.json()["token_type"] == "DPoP"
        seen = [r for r in server.requests if r.endpoint == "token"]
        assert seen[-1].ok
