"""DPoP at ``pkjwt serve`` (issue 15, items 2 and 3): proofs judged at the token endpoint, bound
tokens issued (``token_type: DPoP``, ``cnf.jkt``) and accepted at ``/echo`` only with their
proofs; every negative proof refused with the right error and status. Requests are made by
hand with httpx so each proof can be exactly wrong; tokens are read back with PyJWT."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import jwt as pyjwt
import pytest

from pkjwt import AssertionFactory
from pkjwt.dpop import DPOP_TYP, DPoPKey
from pkjwt.forge import hmac_sign, sign
from pkjwt.keys import generate_key
from pkjwt.testing import LocalAuthServer, local_auth_server

FORM = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


@pytest.fixture(scope="module")
def server() -> Iterator[LocalAuthServer]:
    with local_auth_server("rfc7523bis", extra={"token_format": "jwt"}) as srv:
        yield srv


@pytest.fixture(scope="module")
def key() -> DPoPKey:
    return DPoPKey()


def assertion(server: LocalAuthServer, client_id: str | None = None) -> str:
    factory = AssertionFactory(
        server.key, client_id=client_id or server.client_id, profile="rfc7523bis",
        issuer=server.issuer,
    )  # fmt: skip
    return factory.make()


def token_request(
    server: LocalAuthServer, proof: str | list[str] | None, **form: str
) -> httpx.Response:
    headers: list[tuple[str, str]] = []
    for value in [proof] if isinstance(proof, str) else proof or []:
        headers.append(("DPoP", value))
    data = {
        "grant_type": "client_credentials",
        "client_assertion_type": FORM,
        "client_assertion": assertion(server),
        **form,
    }
    return httpx.post(server.token_url, data=data, headers=headers)


def test_a_proof_gets_a_bound_token(server, key):
    answer = token_request(server, key.sign_now("POST", server.token_url))
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["token_type"] == "DPoP"
    claims = pyjwt.decode(body["access_token"], options={"verify_signature": False})
    assert claims["cnf"] == {"jkt": key.jkt}
    meta = httpx.get(server.issuer + "/.well-known/oauth-authorization-server").json()
    assert "ES256" in meta["dpop_signing_alg_values_supported"]


def test_without_a_proof_the_token_is_a_bearer_token(server):
    answer = token_request(server, None)
    assert answer.json()["token_type"] == "Bearer"
    claims = pyjwt.decode(answer.json()["access_token"], options={"verify_signature": False})
    assert "cnf" not in claims


def _refusal(answer: httpx.Response) -> tuple[int, str, str]:
    body = answer.json()
    return answer.status_code, body["error"], body.get("error_description", "")


@pytest.mark.parametrize(
    ("make", "rule"),
    [
        (lambda k, url: k.sign_now("POST", url.replace("/oauth2/token", "/other")), "D7"),
        (lambda k, url: k.sign_now("GET", url), "D6"),
        (lambda k, url: k.sign_now("POST", url, now=time.time() - 3600), "D8"),
        (lambda k, url: k.sign_now("POST", url, now=time.time() + 3600), "D8"),
    ],
)
def test_proofs_for_another_request_or_time(server, key, make, rule):
    status, error, description = _refusal(token_request(server, make(key, server.token_url)))
    assert (status, error) == (400, "invalid_dpop_proof")
    assert description.startswith(rule)


def _forged(server: LocalAuthServer, header: dict[str, Any], signer: Any = None) -> str:
    claims = {"jti": str(time.time()), "htm": "POST", "htu": server.token_url,
              "iat": int(time.time())}  # fmt: skip
    if header.get("alg") == "HS256":
        return hmac_sign(b"k" * 32, header, claims)
    return sign(signer, header, claims)


def test_proofs_that_are_not_proofs(server):
    ec = generate_key("ES256")
    public = {k: v for k, v in ec.public_jwk().items() if k in ("kty", "crv", "x", "y")}
    private = dict(ec.jose.as_dict(private=True))
    other = generate_key("ES256")
    cases = {
        "D4": _forged(server, {"typ": DPOP_TYP, "alg": "ES256", "jwk": private}, ec),
        "D3": _forged(server, {"typ": DPOP_TYP, "alg": "HS256", "jwk": public}),
        "D2": _forged(server, {"typ": "JWT", "alg": "ES256", "jwk": public}, ec),
        "D5": _forged(server, {"typ": DPOP_TYP, "alg": "ES256", "jwk": public}, other),
    }
    for rule, proof in cases.items():
        status, error, description = _refusal(token_request(server, proof))
        assert (status, error) == (400, "invalid_dpop_proof"), rule
        assert description.startswith(rule), (rule, description)
        assert private["d"] not in description


def test_a_replayed_proof_and_two_proofs(server, key):
    proof = key.sign_now("POST", server.token_url)
    assert token_request(server, proof).status_code == 200
    status, error, description = _refusal(token_request(server, proof))
    assert (status, error) == (400, "invalid_dpop_proof")
    assert description.startswith("D9")
    two = [key.sign_now("POST", server.token_url), key.sign_now("POST", server.token_url)]
    status, error, description = _refusal(token_request(server, two))
    assert (status, error, description[:2]) == (400, "invalid_dpop_proof", "D1")


def _bound(server: LocalAuthServer, key: DPoPKey) -> str:
    answer = token_request(server, key.sign_now("POST", server.token_url))
    return str(answer.json()["access_token"])


def echo(server: LocalAuthServer, token: str, proof: str | None, scheme: str = "DPoP"):
    headers = {"Authorization": f"{scheme} {token}"}
    if proof is not None:
        headers["DPoP"] = proof
    return httpx.get(server.issuer + "/echo?x=1", headers=headers)


def test_a_bound_token_at_the_api(server, key):
    token = _bound(server, key)
    url = server.issuer + "/echo"
    ok = echo(server, token, key.sign_now("GET", url, access_token=token))
    assert ok.status_code == 200, ok.text
    assert ok.json()["token_type"] == "DPoP"

    def refused(answer: httpx.Response, error: str, rule: str | None = None) -> None:
        assert answer.status_code == 401
        challenge = answer.headers["www-authenticate"]
        assert challenge.startswith("DPoP ")
        assert f'error="{error}"' in challenge
        if rule:
            assert answer.json()["error_description"].startswith(rule)

    refused(echo(server, token, None), "invalid_dpop_proof", "D1")
    refused(echo(server, token, key.sign_now("GET", url)), "invalid_dpop_proof", "D11")
    refused(echo(server, token, key.sign_now("GET", url, access_token="other")),
            "invalid_dpop_proof", "D11")  # fmt: skip
    thief = DPoPKey()
    refused(echo(server, token, thief.sign_now("GET", url, access_token=token)),
            "invalid_dpop_proof", "D12")  # fmt: skip
    refused(echo(server, token, key.sign_now("POST", url, access_token=token)),
            "invalid_dpop_proof", "D6")  # fmt: skip
    refused(echo(server, token, None, scheme="Bearer"), "invalid_token")
    reused = key.sign_now("GET", url, access_token=token)
    assert echo(server, token, reused).status_code == 200
    refused(echo(server, token, reused), "invalid_dpop_proof", "D9")


def test_introspection_shows_the_binding(server, key):
    token = _bound(server, key)
    form = {"token": token, "client_assertion_type": FORM, "client_assertion": assertion(server)}
    body = httpx.post(server.issuer + "/introspect", data=form).json()
    assert body["active"]
    assert body["token_type"] == "DPoP"
    assert body["cnf"] == {"jkt": key.jkt}


def test_nonce_mode_and_the_retry_with_a_new_assertion(key):
    with local_auth_server("rfc7523bis", extra={"dpop_nonce": True}) as server:
        first = token_request(server, key.sign_now("POST", server.token_url))
        assert first.status_code == 400
        assert first.json()["error"] == "use_dpop_nonce"
        nonce = first.headers["dpop-nonce"]
        proof = key.sign_now("POST", server.token_url, nonce=nonce)
        second = token_request(server, proof)  # a new proof and a new assertion
        assert second.status_code == 200, second.text
        assert second.headers["dpop-nonce"]
        stale = key.sign_now("POST", server.token_url, nonce="not-the-servers")
        assert token_request(server, stale).json()["error"] == "use_dpop_nonce"


def test_a_client_that_must_use_dpop(key):
    client_key = generate_key("ES256", kid="strict-1")
    from pkjwt.keys import jwks

    strict = {"client_id": "strict", "jwks": jwks([client_key.public()]), "require_dpop": True}
    with local_auth_server("rfc7523bis", clients=[strict]) as server:
        factory = AssertionFactory(client_key, client_id="strict", profile="rfc7523bis",
                                   issuer=server.issuer)  # fmt: skip
        form = {"grant_type": "client_credentials", "client_assertion_type": FORM}
        answer = httpx.post(server.token_url, data={**form, "client_assertion": factory.make()})
        assert (answer.status_code, answer.json()["error"]) == (400, "invalid_dpop_proof")
        proof = key.sign_now("POST", server.token_url)
        answer = httpx.post(
            server.token_url,
            data={**form, "client_assertion": factory.make()},
            headers={"DPoP": proof},
        )
        assert answer.json()["token_type"] == "DPoP"


def test_the_nhs_dialect_ignores_dpop(key):
    with local_auth_server("nhs") as server:
        factory = AssertionFactory(server.key, client_id=server.client_id, profile="nhs",
                                   token_url=server.token_url)  # fmt: skip
        form = {"grant_type": "client_credentials", "client_assertion_type": FORM,
                "client_assertion": factory.make()}  # fmt: skip
        answer = httpx.post(server.token_url, data=form,
                            headers={"DPoP": key.sign_now("POST", server.token_url)})  # fmt: skip
        assert answer.json()["token_type"] == "Bearer"
        meta = httpx.get(server.issuer + "/.well-known/oauth-authorization-server").json()
        assert "dpop_signing_alg_values_supported" not in meta


def test_dpop_refusals_are_counted_by_rule_and_error(key):
    with local_auth_server("rfc7523bis") as server:
        stale = key.sign_now("POST", server.token_url, now=time.time() - 3600)
        assert token_request(server, stale).status_code == 400
        text = httpx.get(server.issuer + "/metrics").text
    line = next(
        line for line in text.splitlines()
        if line.startswith("pkjwt_server_requests_total") and 'rule="D8"' in line
    )  # fmt: skip
    assert 'error="invalid_dpop_proof"' in line
    assert line.endswith(" 1")
