"""Responses and the other endpoints: headers, error_description charset, metadata, JWKS,
introspection, revocation, echo, health, OpenAPI, JWT access tokens, grant policy, secrets."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from jwcrypto import jwk as jwcrypto_jwk
from jwcrypto import jwt as jwcrypto_jwt
from starlette.routing import Route

from pkjwt.forge import segment, sign
from pkjwt.keys import Key, jwks

from .conftest import ALLOWED_DESCRIPTION, DROP, Srv, error_of, start

PRIVATE_MEMBERS = {"d", "p", "q", "dp", "dq", "qi", "oth", "k"}


def _basic(user: str, password: str) -> dict[str, str]:
    raw = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {raw}"}


def _token_for(srv: Srv, **extra: Any) -> str:
    response = srv.token(**extra)
    assert response.status_code == 200, response.text
    return str(response.json()["access_token"])


# -- token responses -------------------------------------------------------------------------------


def test_success_headers(generic: Srv) -> None:
    response = generic.token()
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["date"]
    assert response.headers["content-type"].startswith("application/json")


def test_error_headers(bis: Srv) -> None:
    response = bis.token(bis.assertion(aud="https://elsewhere.example"))
    assert response.status_code == 400
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["date"]
    assert "www-authenticate" not in response.headers  # 400, not a challenge


_NASTY = 'q"uo\\te\u00e9\u2603\U0001f600\n\t\x7f\x00'


@pytest.mark.parametrize(
    "mutate",
    [
        pytest.param(lambda s: s.assertion(iss=_NASTY), id="iss"),
        pytest.param(lambda s: s.assertion(sub=_NASTY), id="sub"),
        pytest.param(lambda s: s.assertion(aud=_NASTY), id="aud"),
        pytest.param(lambda s: s.assertion(aud=[_NASTY, {"k": _NASTY}]), id="aud-array"),
        pytest.param(lambda s: s.assertion(exp=_NASTY), id="exp"),
        pytest.param(lambda s: s.assertion(jti=["x" + _NASTY]), id="jti"),
        pytest.param(lambda s: s.assertion(header={"typ": _NASTY}), id="typ"),
        pytest.param(lambda s: s.assertion(header={"kid": _NASTY}), id="kid"),
        pytest.param(lambda s: s.assertion(header={"alg": _NASTY}), id="alg"),
    ],
)
def test_error_description_charset(bis: Srv, mutate: Any) -> None:
    response = bis.token(mutate(bis))
    status, error, description = error_of(response)
    assert status == 400, response.text
    assert error == "invalid_client"
    assert description
    assert set(description) <= ALLOWED_DESCRIPTION, description


@pytest.mark.parametrize("field", ["grant_type", "client_assertion_type"])
def test_error_description_charset_from_form(bis: Srv, field: str) -> None:
    response = bis.token(**{field: _NASTY.replace("\x00", "")})
    _status, _error, description = error_of(response)
    assert set(description) <= ALLOWED_DESCRIPTION, description


def test_error_description_charset_when_body_client_id_differs(bis: Srv) -> None:
    response = bis.token(client_id=_NASTY.replace("\x00", ""))
    _status, _error, description = error_of(response)
    assert description.startswith("R7")
    assert set(description) <= ALLOWED_DESCRIPTION, description


# -- metadata and JWKS -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path", ["/.well-known/oauth-authorization-server", "/.well-known/openid-configuration"]
)
def test_metadata(generic: Srv, path: str) -> None:
    response = generic.http.get(generic.issuer + path)
    assert response.status_code == 200
    meta = response.json()
    assert meta["issuer"] == generic.issuer
    assert meta["token_endpoint"] == generic.token_url
    assert "private_key_jwt" in meta["token_endpoint_auth_methods_supported"]
    algs = meta["token_endpoint_auth_signing_alg_values_supported"]
    assert algs
    assert all(a.lower() != "none" for a in algs)
    assert not any(a.startswith("HS") for a in algs)
    if generic.profile == "fapi2":
        assert set(algs) <= {"PS256", "ES256", "EdDSA", "Ed25519"}
    else:
        assert {"RS256", "ES256", "PS256"} <= set(algs)
    assert "client_credentials" in meta["grant_types_supported"]
    assert meta["jwks_uri"] == generic.issuer + "/jwks"


def test_metadata_nhs(nhs: Srv) -> None:
    meta = nhs.http.get(nhs.issuer + "/.well-known/oauth-authorization-server").json()
    assert meta["token_endpoint_auth_signing_alg_values_supported"] == ["RS512"]
    assert "none" not in json.dumps(meta["token_endpoint_auth_methods_supported"])


def test_jwks_has_only_public_members(bis: Srv) -> None:
    response = bis.http.get(bis.issuer + "/jwks")
    assert response.status_code == 200
    keys = response.json()["keys"]
    assert keys
    for key in keys:
        assert not (PRIVATE_MEMBERS & key.keys()), key
        assert key["kid"]


# -- introspection, revocation, echo --------------------------------------------------------------


def test_introspection_active(bis: Srv) -> None:
    token = _token_for(bis, scope="api:read")
    response = bis.post({"token": token, **_assertion_auth(bis)}, path="/introspect")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["active"] is True
    assert body["client_id"] == bis.client_id
    assert body["scope"] == "api:read"
    assert body["exp"] > time.time()
    assert response.headers["cache-control"] == "no-store"


def _assertion_auth(srv: Srv) -> dict[str, str]:
    form = srv.form()
    form.pop("grant_type")
    return form


def test_introspection_with_basic(bis: Srv) -> None:
    token = _token_for(bis)
    response = bis.post(
        {"token": token}, path="/introspect", headers=_basic("secret-client", "s3cr3t")
    )
    assert response.status_code == 200, response.text
    assert response.json()["active"] is True


@pytest.mark.parametrize("token", ["garbage", "", "a.b.c", "x" * 5000])
def test_introspection_of_garbage(bis: Srv, token: str) -> None:
    response = bis.post({"token": token, **_assertion_auth(bis)}, path="/introspect")
    assert response.status_code == 200, response.text
    assert response.json() == {"active": False}


@pytest.mark.parametrize("path", ["/introspect", "/revoke"])
def test_introspection_and_revocation_need_client_auth(bis: Srv, path: str) -> None:
    token = _token_for(bis)
    response = bis.post({"token": token}, path=path)
    assert response.status_code in (400, 401), response.text
    assert response.json()["error"] == "invalid_client"
    wrong = bis.post({"token": token}, path=path, headers=_basic("secret-client", "nope"))
    assert wrong.status_code == 401
    assert wrong.headers["www-authenticate"].lower().startswith("basic")
    # and the token was neither revealed nor revoked
    echo = bis.http.get(bis.issuer + "/echo", headers={"Authorization": f"Bearer {token}"})
    assert echo.status_code == 200


def test_revocation(bis: Srv) -> None:
    token = _token_for(bis)
    auth = {"Authorization": f"Bearer {token}"}
    assert bis.http.get(bis.issuer + "/echo", headers=auth).status_code == 200
    revoked = bis.post({"token": token, **_assertion_auth(bis)}, path="/revoke")
    assert revoked.status_code == 200, revoked.text
    introspected = bis.post({"token": token, **_assertion_auth(bis)}, path="/introspect")
    assert introspected.json() == {"active": False}
    echo = bis.http.get(bis.issuer + "/echo", headers=auth)
    assert echo.status_code == 401
    assert echo.headers["www-authenticate"].startswith("Bearer")


def test_revocation_of_unknown_token_is_200(bis: Srv) -> None:
    """RFC 7009 2.2: invalid tokens do not cause an error response."""
    response = bis.post({"token": "never-issued", **_assertion_auth(bis)}, path="/revoke")
    assert response.status_code == 200


def test_revocation_only_by_the_client_the_token_was_issued_to(bis: Srv) -> None:
    """RFC 7009 2.1: the server "verifies whether the token was issued to the client making the
    revocation request" and refuses otherwise. Another client cannot revoke this token."""
    token = _token_for(bis)
    bis.post({"token": token}, path="/revoke", headers=_basic("secret-client", "s3cr3t"))
    echo = bis.http.get(bis.issuer + "/echo", headers={"Authorization": f"Bearer {token}"})
    assert echo.status_code == 200, "secret-client revoked test-client's token"


def test_echo(bis: Srv) -> None:
    token = _token_for(bis, scope="api:read")
    response = bis.http.post(
        bis.issuer + "/echo", headers={"Authorization": f"Bearer {token}"}, content=b"hello"
    )
    assert response.status_code == 200
    body = response.json()
    assert body["client_id"] == bis.client_id
    assert body["scope"] == "api:read"
    assert body["body_bytes"] == 5


@pytest.mark.parametrize(
    "authorization", [None, "Bearer", "Bearer nope", "Basic dGVzdDp0ZXN0", "bearer x y"]
)
def test_echo_without_valid_token(bis: Srv, authorization: str | None) -> None:
    headers = {"Authorization": authorization} if authorization else {}
    response = bis.http.get(bis.issuer + "/echo", headers=headers)
    assert response.status_code == 401
    challenge = response.headers["www-authenticate"]
    assert challenge.startswith("Bearer")
    # RFC 6750 3.1: no credentials at all get a challenge without an error code
    assert ("error=" in challenge) == (authorization is not None)


def test_health(generic: Srv) -> None:
    response = generic.http.get(generic.issuer + "/health")
    assert response.status_code == 200
    assert response.json()["status"] == "ok"
    assert response.json()["profile"] == generic.profile


# -- OpenAPI is kept true --------------------------------------------------------------------------


@pytest.mark.parametrize("which", ["bis", "nhs"])
def test_openapi_matches_the_routes(request: pytest.FixtureRequest, which: str) -> None:
    srv: Srv = request.getfixturevalue(which)
    doc = srv.http.get(srv.issuer + "/openapi.json").json()
    app = srv.las.running.app
    routes = {r.path: r for r in app.routes if isinstance(r, Route)}
    assert set(routes) == set(doc["paths"]), set(routes) ^ set(doc["paths"])
    for path, operations in doc["paths"].items():
        methods = routes[path].methods or set()
        for verb in operations:
            assert verb.upper() in methods, (path, verb)
        # every method the route really serves (405 answers aside) is documented
        served = {m.lower() for m in methods} - {"head"}
        if path == "/oauth2/token":
            served = {"post"}
        assert served == set(operations), (path, served, set(operations))
    assert doc["servers"][0]["url"] == srv.issuer


# -- JWT access tokens (RFC 9068) ------------------------------------------------------------------


@pytest.fixture(scope="module")
def jwt_server(es256_key: Key) -> Iterator[Srv]:
    with start("rfc7523bis", key=es256_key, token_format="jwt") as srv:
        yield srv


def test_jwt_access_token(jwt_server: Srv) -> None:
    srv = jwt_server
    token = _token_for(srv, scope="api:read")
    header = json.loads(base64.urlsafe_b64decode(token.split(".")[0] + "=="))
    assert header["typ"] == "at+jwt"
    keyset = jwcrypto_jwk.JWKSet.from_json(srv.http.get(srv.issuer + "/jwks").text)
    verified = jwcrypto_jwt.JWT(jwt=token, key=keyset, expected_type="JWS")
    claims = json.loads(verified.claims)
    assert claims["iss"] == srv.issuer
    assert claims["sub"] == srv.client_id
    assert claims["client_id"] == srv.client_id
    assert claims["aud"]
    assert claims["exp"] > time.time()
    assert claims["scope"] == "api:read"
    assert claims["jti"]
    echo = srv.http.get(srv.issuer + "/echo", headers={"Authorization": f"Bearer {token}"})
    assert echo.status_code == 200


def test_jwt_access_token_tampered_is_rejected_by_echo(jwt_server: Srv) -> None:
    token = _token_for(jwt_server)
    head, payload, sig = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    claims["scope"] = "admin"
    forged = f"{head}.{segment(json.dumps(claims))}.{sig}"
    echo = jwt_server.http.get(
        jwt_server.issuer + "/echo", headers={"Authorization": f"Bearer {forged}"}
    )
    assert echo.status_code == 401


# -- grant policy (R20) ----------------------------------------------------------------------------


def test_scope_policy(bis: Srv) -> None:
    assert bis.token(scope="api:read api:write").status_code == 200
    response = bis.token(scope="api:read admin")
    status, error, description = error_of(response)
    assert (status, error) == (400, "invalid_scope")
    assert "admin" in description
    assert description.startswith("R20")


def test_resource_policy(bis: Srv) -> None:
    resource_client = "resource-client"
    ok = bis.token(
        bis.assertion(iss=resource_client, sub=resource_client), resource="https://api.example/"
    )
    assert ok.status_code == 200, ok.text
    response = bis.token(
        bis.assertion(iss=resource_client, sub=resource_client), resource="https://other.example/"
    )
    assert error_of(response)[:2] == (400, "invalid_target")
    response = bis.token(resource="https://api.example/")  # test-client registered none
    assert error_of(response)[:2] == (400, "invalid_target")


def test_several_resources_are_one_request(bis: Srv) -> None:
    """RFC 8707 2: a token request may name several resources; each must be allowed."""
    resource_client = "resource-client"
    form = bis.form(bis.assertion(iss=resource_client, sub=resource_client))
    pairs = [
        *form.items(),
        ("resource", "https://api.example/"),
        ("resource", "https://api.example/"),
    ]
    ok = bis.post(content=urlencode(pairs))
    assert ok.status_code == 200, ok.text
    form = bis.form(bis.assertion(iss=resource_client, sub=resource_client))
    pairs = [
        *form.items(),
        ("resource", "https://api.example/"),
        ("resource", "https://x.example/"),
    ]
    assert error_of(bis.post(content=urlencode(pairs)))[:2] == (400, "invalid_target")
    # any other parameter still may not repeat (R1)
    pairs = [*bis.form().items(), ("scope", "api:read"), ("scope", "api:read")]
    status, error, description = error_of(bis.post(content=urlencode(pairs)))
    assert (status, error) == (400, "invalid_request")
    assert "scope repeated" in description


def test_an_empty_client_id_is_treated_as_omitted(bis: Srv) -> None:
    """RFC 6749 3.2: parameters sent without a value are treated as if omitted."""
    response = bis.token(client_id="")
    assert response.status_code == 200, response.text


@pytest.mark.parametrize("typ", ["application/jwt", "Application/JWT", "jwt"])
def test_typ_jwt_with_the_media_type_prefix(bis: Srv, typ: str) -> None:
    """RFC 7515 4.1.9: ``application/jwt`` is the same type as ``JWT``."""
    response = bis.token(bis.assertion(header={"typ": typ}))
    assert response.status_code == 200, response.text


def test_unauthorized_client(bis: Srv) -> None:
    response = bis.token(bis.assertion(iss="no-cc-client", sub="no-cc-client"))
    status, error, description = error_of(response)
    assert (status, error) == (400, "unauthorized_client"), response.text
    assert description.startswith("R20")


def test_unsupported_grant_type(bis: Srv) -> None:
    status, error, description = error_of(bis.token(grant_type="password"))
    assert (status, error) == (400, "unsupported_grant_type")
    assert description.startswith("R3")
    status, error, description = error_of(bis.token(grant_type=DROP))
    assert (status, error) == (400, "invalid_request")
    assert description.startswith("R3")


def test_no_refresh_token(bis: Srv) -> None:
    assert "refresh_token" not in bis.token(scope="api:read").json()


# -- client secrets --------------------------------------------------------------------------------


def test_client_secret_basic(bis: Srv) -> None:
    response = bis.post(
        {"grant_type": "client_credentials", "scope": "api:read"},
        headers=_basic("secret-client", "s3cr3t"),
    )
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"


def test_client_secret_basic_form_encoded_credentials(bis: Srv) -> None:
    """RFC 6749 2.3.1: client id and secret are form-urlencoded before Basic encoding."""
    response = bis.post(
        {"grant_type": "client_credentials"}, headers=_basic("secret%2Dclient", "s3cr3t")
    )
    assert response.status_code == 200, response.text


def test_client_secret_post(bis: Srv) -> None:
    response = bis.post(
        {
            "grant_type": "client_credentials",
            "client_id": "secret-client",
            "client_secret": "s3cr3t",
        }
    )
    assert response.status_code == 200, response.text


@pytest.mark.parametrize(
    ("user", "password"), [("secret-client", "wrong"), ("nobody", "s3cr3t"), ("test-client", "x")]
)
def test_client_secret_basic_wrong(bis: Srv, user: str, password: str) -> None:
    response = bis.post({"grant_type": "client_credentials"}, headers=_basic(user, password))
    status, error, _description = error_of(response)
    assert (status, error) == (401, "invalid_client")
    assert response.headers["www-authenticate"].lower().startswith("basic")
    assert response.headers["cache-control"] == "no-store"


def test_client_secret_post_wrong(bis: Srv) -> None:
    response = bis.post(
        {"grant_type": "client_credentials", "client_id": "secret-client", "client_secret": "no"}
    )
    status, error, _description = error_of(response)
    assert status in (400, 401)
    assert error == "invalid_client"
    if status == 401:
        assert "www-authenticate" in response.headers


def test_metadata_lists_secret_methods_when_a_client_has_one(bis: Srv) -> None:
    meta = bis.http.get(bis.issuer + "/.well-known/oauth-authorization-server").json()
    assert {"private_key_jwt", "client_secret_basic", "client_secret_post"} <= set(
        meta["token_endpoint_auth_methods_supported"]
    )


def test_secret_client_cannot_use_private_key_jwt(bis: Srv, es256_key: Key) -> None:
    assertion = sign(es256_key, bis.header(), bis.claims(iss="secret-client", sub="secret-client"))
    status, error, description = error_of(bis.token(assertion))
    assert (status, error) == (400, "invalid_client")
    # R7 ("a registered client allowed to use this method"); the server names R9 (no keys)
    assert description.startswith(("R7 ", "R9 ")), description


def test_asgi_app_directly(bis: Srv) -> None:
    """create_app works without a socket (ASGITransport)."""
    import asyncio

    from pkjwt.server.app import create_app
    from pkjwt.server.replay import MemoryReplayStore

    app = create_app(bis.state.config, issuer=bis.issuer, replay=MemoryReplayStore())

    async def go() -> tuple[int, int]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=bis.issuer) as client:
            ok = await client.post("/oauth2/token", data=bis.form())
            health = await client.get("/health")
            return ok.status_code, health.status_code

    assert asyncio.run(go()) == (200, 200)


def test_jwks_helper_roundtrip(es256_key: Key) -> None:
    assert jwks([es256_key.public()])["keys"][0]["kid"] == es256_key.kid
