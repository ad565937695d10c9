"""What goes over the wire: method, content type, form and the NHS-profile assertion."""

from __future__ import annotations

import uuid

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding

from pkjwt.decode import decode_compact

from .conftest import CLIENT_ID

JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


def test_nhs_request_shape(server, make_client, clock, nhs_key):
    client = make_client()
    token = client.get_token()

    assert token.access_token == server.issued[0]
    [req] = server.token_requests
    assert req.method == "POST"
    assert req.path == "/oauth2/token"
    # compared as a literal string by the NHS platform: no "; charset="
    assert req.headers["content-type"] == "application/x-www-form-urlencoded"
    assert set(req.form) == {"grant_type", "client_assertion_type", "client_assertion"}
    assert req.form["grant_type"] == ["client_credentials"]
    assert req.form["client_assertion_type"] == [JWT_BEARER]
    assert len(req.form["client_assertion"]) == 1

    # header exactly as NHSDigital's own code builds it
    assert req.jwt_header == {"alg": "RS512", "typ": "JWT", "kid": "test-1"}
    claims = req.claims
    assert set(claims) == {"iss", "sub", "aud", "jti", "exp"}
    assert claims["iss"] == claims["sub"] == CLIENT_ID
    assert claims["aud"] == server.token_url
    assert isinstance(claims["exp"], int)
    assert claims["exp"] - clock() == 240
    assert str(uuid.UUID(claims["jti"])) == claims["jti"]
    assert uuid.UUID(claims["jti"]).version == 4


def test_nhs_assertion_signature_verifies_rs512(server, make_client, nhs_key):
    make_client().get_token()
    [req] = server.token_requests
    jwt = decode_compact(req.raw_assertion)
    public = nhs_key.jose.public_key
    # raises InvalidSignature if the assertion is not RS512 over header.payload
    public.verify(jwt.signature, jwt.signing_input, padding.PKCS1v15(), hashes.SHA512())


def test_nhs_sends_no_client_id_or_scope_unless_configured(server, make_client):
    make_client().get_token()
    [req] = server.token_requests
    assert "client_id" not in req.form
    assert "scope" not in req.form
    assert "resource" not in req.form


def test_scope_and_resource_sent_when_configured(server, make_client):
    client = make_client(scope=["read:a", "write:b"], resource=["urn:api:one", "urn:api:two"])
    client.get_token()
    [req] = server.token_requests
    assert req.form["scope"] == ["read:a write:b"]
    assert req.form["resource"] == ["urn:api:one", "urn:api:two"]
    assert "client_id" not in req.form


def test_scope_string_sent_verbatim(server, make_client):
    make_client(scope="system/Patient.read", resource="https://fhir.example/r4").get_token()
    [req] = server.token_requests
    assert req.form["scope"] == ["system/Patient.read"]
    assert req.form["resource"] == ["https://fhir.example/r4"]
