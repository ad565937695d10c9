"""The NHS platform's own end-to-end tests, run against ``pkjwt serve`` in the NHS dialect.

Ported case by case from NHSDigital/identity-service-api ``e2e/tests/oauth/
test_client_credentials.py`` (class ``TestClientCredentialsJWT``) and its neighbours
(``test_product_scopes.py``: ``test_flow_removes_external_scopes``), with what they send and the
exact bodies they expect. Adapted to a local server: assertions are made with PyJWT as those
tests make them (``jwt.encode(claims, key, algorithm="RS512", headers={"kid": "test-1"})``, so
``typ: JWT`` comes from PyJWT), the app's JWKS is registered in the server's config instead of an
Apigee app attribute, and an app "with no jwks-resource-url" or "with an unreachable one" is a
registered client configured that way. Every error body carries a ``message_id``, which the
platform's tests delete before comparing; so do these.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import jwt as pyjwt
import pytest

from pkjwt.keys import Key, generate_key, jwks

from .conftest import JWT_BEARER, Srv, free_port, start

# the platform's tests sign their HS256 case with "test-secret", as these do
pytestmark = pytest.mark.filterwarnings("ignore:The HMAC key is")

P = "client_assertion JWT"
NO_KEY_APP = "app-without-jwks"
UNREACHABLE_APP = "app-with-unreachable-jwks"
OTHER_JWKS_APP = "app-with-another-jwks"
NO_SCOPES_APP = "app-without-app-level-scopes"


@pytest.fixture(scope="module")
def platform(rs512_key: Key) -> Iterator[Srv]:
    stranger = generate_key("RS512", kid="test-1", size=2048)
    clients = [
        {"client_id": NO_KEY_APP, "client_secret": "the app exists, with no public key"},
        {"client_id": UNREACHABLE_APP, "jwks_uri": f"https://127.0.0.1:{free_port()}/jwks"},
        {"client_id": OTHER_JWKS_APP, "jwks": jwks([stranger.public()])},
        {"client_id": NO_SCOPES_APP, "jwks": jwks([rs512_key.public()]), "grant_types": []},
    ]
    extra = {"allow_private_jwks_uri": True, "jwks_timeout": 1.0}
    with start("nhs", key=rs512_key, clients=clients, extra=extra) as srv:
        yield srv


def _claims(srv: Srv, **changes: Any) -> dict[str, Any]:
    claims = {
        "sub": srv.client_id,
        "iss": srv.client_id,
        "jti": str(uuid.uuid4()),
        "aud": srv.token_url,
        "exp": int(time.time()) + 300,
    }
    for name, value in changes.items():
        if value is _REMOVE:
            claims.pop(name, None)
        else:
            claims[name] = value
    return claims


_REMOVE: Any = object()


def _assertion(
    srv: Srv, claims: dict[str, Any], *, headers: dict[str, Any] | None = None, alg: str = "RS512"
) -> str:
    token: str = pyjwt.encode(
        claims,
        srv.key.private_pem(),
        algorithm=alg,
        headers={"kid": "test-1"} if headers is None else headers,
    )
    return token


def _hs256() -> str:
    token: str = pyjwt.encode({"some": "payload"}, "test-secret", algorithm="HS256")
    return token


def _post(srv: Srv, form: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    data = {k: v for k, v in form.items() if v is not _REMOVE}
    response = srv.http.post(srv.token_url, data=data)  # requests-style form, as the tests do
    body = response.json()
    if response.status_code != 200:
        assert "message_id" in body, body
        del body["message_id"]
    return response.status_code, body


def _form(assertion: str, **changes: Any) -> dict[str, Any]:
    form: dict[str, Any] = {
        "client_assertion_type": JWT_BEARER,
        "client_assertion": assertion,
        "grant_type": "client_credentials",
    }
    form.update(changes)
    return form


def _error(description: str, error: str = "invalid_request") -> dict[str, str]:
    return {"error": error, "error_description": description}


def test_successful_jwt_token_response(platform: Srv) -> None:
    status, body = _post(platform, _form(_assertion(platform, _claims(platform))))
    assert status == 200
    assert {"access_token", "issued_at"} <= set(body)
    assert body["expires_in"] == "599"
    assert body["token_type"] == "Bearer"


ALG = _error(f"Invalid 'alg' header in {P} - unsupported JWT algorithm - must be 'RS512'")


@pytest.mark.parametrize("alg", ["RS256", "RS384", "PS256", "PS384", "PS512"])
def test_incorrect_jwt_algorithm_rsa(platform: Srv, alg: str) -> None:
    assertion = _assertion(platform, _claims(platform), alg=alg)
    assert _post(platform, _form(assertion)) == (400, ALG)


@pytest.mark.parametrize("alg", ["HS256", "HS384", "HS512"])
def test_incorrect_jwt_algorithm_hmac(platform: Srv, alg: str) -> None:
    """The platform's test sends the same HS256 token, with no claims, for all three: the alg
    check comes before every claim check."""
    assert _post(platform, _form(_hs256())) == (400, ALG)


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        pytest.param({}, (400, _error(f"Missing 'kid' header in {P}")), id="kid-removed"),
        pytest.param(
            {"kid": "invalid"},
            (401, _error(f"Invalid 'kid' header in {P} - no matching public key")),
            id="kid-invalid",
        ),
        pytest.param(
            {"kid": "test-1", "typ": "invalid"},
            (400, _error(f"Invalid 'typ' header in {P} - must be 'JWT'")),
            id="typ-invalid",
        ),
        pytest.param(
            {"kid": "test-1", "typ": None},
            (400, _error(f"Invalid 'typ' header in {P} - must be 'JWT'")),
            id="typ-none",
        ),
    ],
)
def test_missing_or_invalid_headers(
    platform: Srv, headers: dict[str, Any], expected: tuple[int, dict[str, str]]
) -> None:
    assertion = _assertion(platform, _claims(platform), headers=headers)
    assert _post(platform, _form(assertion)) == expected


def test_missing_or_invalid_headers_alg_hs512(platform: Srv) -> None:
    assert _post(platform, _form(_hs256())) == (400, ALG)


ISS_SUB = _error(f"Missing or non-matching 'iss'/'sub' claims in {P}")


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        pytest.param(
            {"sub": "invalid", "iss": "invalid"},
            (401, _error(f"Invalid 'iss'/'sub' claims in {P}")),
            id="sub-iss-invalid",
        ),
        pytest.param({"sub": "invalid"}, (400, ISS_SUB), id="sub-invalid"),
        pytest.param({"sub": _REMOVE}, (400, ISS_SUB), id="sub-removed"),
        pytest.param({"iss": "invalid"}, (400, ISS_SUB), id="iss-invalid"),
        pytest.param({"iss": _REMOVE}, (400, ISS_SUB), id="iss-removed"),
        pytest.param(
            {"jti": 1234567890},
            (
                400,
                _error(
                    f"Invalid 'jti' claim in {P} - must be a unique string value such as a GUID"
                ),
            ),
            id="jti-int",
        ),
        pytest.param({"jti": _REMOVE}, (400, _error(f"Missing 'jti' claim in {P}")), id="jti-gone"),
        pytest.param(
            {"aud": "invalid"},
            (401, _error(f"Missing or invalid 'aud' claim in {P}")),
            id="aud-invalid",
        ),
        pytest.param(
            {"aud": _REMOVE},
            (401, _error(f"Missing or invalid 'aud' claim in {P}")),
            id="aud-removed",
        ),
        pytest.param(
            {"exp": "__string__"},
            (400, _error(f"Invalid 'exp' claim in {P} - must be an integer")),
            id="exp-string",
        ),
        pytest.param(
            {"exp": "__past__"},
            (400, _error(f"Invalid 'exp' claim in {P} - JWT has expired")),
            id="exp-expired",
        ),
        pytest.param(
            {"exp": "__far__"},
            (400, _error(f"Invalid 'exp' claim in {P} - more than 5 minutes in future")),
            id="exp-too-far",
        ),
        pytest.param(
            {"exp": _REMOVE}, (400, _error(f"Missing 'exp' claim in {P}")), id="exp-removed"
        ),
    ],
)
def test_missing_or_invalid_claims(
    platform: Srv, changes: dict[str, Any], expected: tuple[int, dict[str, str]]
) -> None:
    now = int(time.time())
    exp = {"__string__": str(now + 300), "__past__": now - 20, "__far__": now + 360}
    if changes.get("exp") in exp:
        changes = {**changes, "exp": exp[changes["exp"]]}
    assertion = _assertion(platform, _claims(platform, **changes))
    assert _post(platform, _form(assertion)) == expected


def test_reusing_same_jti(platform: Srv) -> None:
    form = _form(_assertion(platform, _claims(platform)))
    assert _post(platform, form)[0] == 200
    assert _post(platform, form) == (400, _error(f"Non-unique 'jti' claim in {P}"))


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        pytest.param(
            {"client_assertion_type": "invalid"},
            _error(
                "Missing or invalid client_assertion_type - must be "
                "'urn:ietf:params:oauth:client-assertion-type:jwt-bearer'"
            ),
            id="assertion-type-invalid",
        ),
        pytest.param(
            {"client_assertion_type": _REMOVE},
            _error(
                "Missing or invalid client_assertion_type - must be "
                "'urn:ietf:params:oauth:client-assertion-type:jwt-bearer'"
            ),
            id="assertion-type-removed",
        ),
        pytest.param(
            {"client_assertion": "invalid"},
            _error("Malformed JWT in client_assertion"),
            id="assertion-invalid",
        ),
        pytest.param(
            {"client_assertion": _REMOVE},
            _error("Missing client_assertion"),
            id="assertion-removed",
        ),
        pytest.param(
            {"grant_type": "invalid"},
            _error("grant_type is invalid", "unsupported_grant_type"),
            id="grant-type-invalid",
        ),
        pytest.param(
            {"grant_type": _REMOVE}, _error("grant_type is missing"), id="grant-type-removed"
        ),
    ],
)
def test_missing_or_invalid_payload(
    platform: Srv, changes: dict[str, Any], expected: dict[str, str]
) -> None:
    form = _form(_assertion(platform, _claims(platform)), **changes)
    assert _post(platform, form) == (400, expected)


@pytest.mark.parametrize(
    ("override_ms", "at_most"), [(100000, 100), (500000, 500), (700000, 600), (1000000, 600)]
)
def test_access_token_override_with_client_credentials(
    platform: Srv, override_ms: int, at_most: int
) -> None:
    form = _form(_assertion(platform, _claims(platform)), _access_token_expiry_ms=override_ms)
    status, body = _post(platform, form)
    assert status == 200
    assert int(body["expires_in"]) <= at_most
    if override_ms < 599_000:
        assert int(body["expires_in"]) == override_ms // 1000


def test_no_jwks_resource_url_set(platform: Srv) -> None:
    claims = _claims(platform, sub=NO_KEY_APP, iss=NO_KEY_APP)
    assert _post(platform, _form(_assertion(platform, claims))) == (
        403,
        _error(
            "You need to register a public key to use this authentication method - please "
            "contact support to configure",
            "public_key error",
        ),
    )


def test_invalid_jwks_resource_url_unreachable(platform: Srv) -> None:
    claims = _claims(platform, sub=UNREACHABLE_APP, iss=UNREACHABLE_APP)
    assert _post(platform, _form(_assertion(platform, claims))) == (
        403,
        _error("The JWKS endpoint, for your client_assertion can't be reached", "public_key error"),
    )


def test_invalid_jwks_resource_url_other_keys(platform: Srv) -> None:
    claims = _claims(platform, sub=OTHER_JWKS_APP, iss=OTHER_JWKS_APP)
    assert _post(platform, _form(_assertion(platform, claims))) == (
        401,
        _error("JWT signature verification failed", "public_key error"),
    )


@pytest.mark.parametrize(
    "scope", ["invalid_scope", "$£$12vdg@@fd", " external scope", ["a-scope", "another"]]
)
def test_flow_removes_external_scopes(platform: Srv, scope: str | list[str]) -> None:
    """test_product_scopes.py: a form scope, even sent twice (as requests encodes a list), is
    ignored; the token comes back without one."""
    status, body = _post(platform, _form(_assertion(platform, _claims(platform)), scope=scope))
    assert status == 200, body
    assert "scope" not in body


def test_scope_combination_errors(platform: Srv) -> None:
    """test_product_scopes.py: an app none of whose products carries an application-level scope
    (here: a client registered without the grant)."""
    claims = _claims(platform, sub=NO_SCOPES_APP, iss=NO_SCOPES_APP)
    assert _post(platform, _form(_assertion(platform, claims))) == (
        401,
        _error(
            "you have tried to request authorization but your application is not configured to "
            "use this authorization grant type",
            "unauthorized_client",
        ),
    )


# -- the order around the app's key, from the proxy flow (claims first, then the app) -----------


def test_an_app_without_a_key_gets_the_claim_errors_first(platform: Srv) -> None:
    claims = _claims(platform, sub=NO_KEY_APP, iss=NO_KEY_APP, exp=int(time.time()) - 20)
    assert _post(platform, _form(_assertion(platform, claims))) == (
        400,
        _error(f"Invalid 'exp' claim in {P} - JWT has expired"),
    )


def test_an_app_without_a_key_uses_up_the_jti(platform: Srv) -> None:
    claims = _claims(platform, sub=NO_KEY_APP, iss=NO_KEY_APP)
    form = _form(_assertion(platform, claims))
    assert _post(platform, form)[0] == 403
    assert _post(platform, form) == (400, _error(f"Non-unique 'jti' claim in {P}"))


def test_the_missing_key_is_answered_before_the_audience(platform: Srv) -> None:
    claims = _claims(platform, sub=NO_KEY_APP, iss=NO_KEY_APP, aud="invalid")
    assert _post(platform, _form(_assertion(platform, claims)))[0] == 403


def test_repeated_form_fields_are_read_by_their_first_value(platform: Srv) -> None:
    assertion = _assertion(platform, _claims(platform))
    form = _form(assertion, grant_type=["client_credentials", "password"])
    assert _post(platform, form)[0] == 200
