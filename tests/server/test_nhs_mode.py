"""NHS mode: one test per error row of shared/spec/nhs-signed-jwt.md, with the literal status,
error and error_description; the order of checks; jti memory; the success shape."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest

from pkjwt import nhs as nhs_table
from pkjwt.forge import sign, unsigned
from pkjwt.keys import Key

from .conftest import DROP, FORM, JWT_BEARER, Srv

P = "client_assertion JWT"
# The spec's strings, written out (not read from pkjwt.nhs) so the table is checked too.
GRANT_MISSING = (400, "invalid_request", "grant_type is missing")
GRANT_INVALID = (400, "unsupported_grant_type", "grant_type is invalid")
TYPE_WRONG = (
    400,
    "invalid_request",
    "Missing or invalid client_assertion_type - must be "
    "'urn:ietf:params:oauth:client-assertion-type:jwt-bearer'",
)
ASSERTION_MISSING = (400, "invalid_request", "Missing client_assertion")
MALFORMED = (400, "invalid_request", "Malformed JWT in client_assertion")
ALG = (
    400,
    "invalid_request",
    f"Invalid 'alg' header in {P} - unsupported JWT algorithm - must be 'RS512'",
)
EXPIRED = (400, "invalid_request", f"Invalid 'exp' claim in {P} - JWT has expired")
KID_MISSING = (400, "invalid_request", f"Missing 'kid' header in {P}")
TYP = (400, "invalid_request", f"Invalid 'typ' header in {P} - must be 'JWT'")
EXP_MISSING = (400, "invalid_request", f"Missing 'exp' claim in {P}")
EXP_TYPE = (400, "invalid_request", f"Invalid 'exp' claim in {P} - must be an integer")
ISS_SUB = (400, "invalid_request", f"Missing or non-matching 'iss'/'sub' claims in {P}")
JTI_MISSING = (400, "invalid_request", f"Missing 'jti' claim in {P}")
JTI_TYPE = (
    400,
    "invalid_request",
    f"Invalid 'jti' claim in {P} - must be a unique string value such as a GUID",
)
NON_UNIQUE = (400, "invalid_request", f"Non-unique 'jti' claim in {P}")
TOO_FAR = (400, "invalid_request", f"Invalid 'exp' claim in {P} - more than 5 minutes in future")
UNKNOWN_CLIENT = (401, "invalid_request", f"Invalid 'iss'/'sub' claims in {P}")
AUD = (401, "invalid_request", f"Missing or invalid 'aud' claim in {P}")
KID_UNKNOWN = (401, "invalid_request", f"Invalid 'kid' header in {P} - no matching public key")
SIGNATURE = (401, "public_key error", "JWT signature verification failed")
UNAUTHORIZED = (
    401,
    "unauthorized_client",
    "you have tried to request authorization but your application is not configured to use "
    "this authorization grant type",
)
CONTENT_TYPE = (
    415,
    "invalid_request",
    "Content-Type header must be application/x-www-form-urlencoded",
)
UNREACHABLE = (
    403,
    "public_key error",
    "The JWKS endpoint, for your client_assertion can't be reached",
)
UNKNOWN_ERROR = (
    401,
    "unknown_error",
    "An unknown error occurred processing this request. Contact us for assistance diagnosing this "
    "issue: https://digital.nhs.uk/developer/help-and-support quoting Message ID",
)
NO_KEY = (
    403,
    "public_key error",
    "You need to register a public key to use this authentication method - please contact "
    "support to configure",
)


def _now() -> int:
    return int(time.time())


def _answer(response: httpx.Response) -> tuple[int, str, str]:
    body = response.json()
    assert set(body) == {"error", "error_description", "message_id"}, body
    uuid.UUID(body["message_id"])
    return response.status_code, body["error"], body["error_description"]


def test_spec_strings_match_the_table() -> None:
    rows = {
        (r.status, r.error, r.description)
        for r in (
            nhs_table.CONTENT_TYPE,
            *nhs_table.NHS_REQUEST_ERRORS,
            *(r for r in nhs_table.NHS_ASSERTION_ERRORS if r is not None),
            nhs_table.PUBLIC_KEY_MISSING,
            nhs_table.JWKS_UNREACHABLE,
        )
    }
    spec = {
        GRANT_MISSING, GRANT_INVALID, TYPE_WRONG, ASSERTION_MISSING, MALFORMED, ALG, EXPIRED,
        KID_MISSING, TYP, EXP_MISSING, EXP_TYPE, ISS_SUB, JTI_MISSING, JTI_TYPE, NON_UNIQUE,
        TOO_FAR, UNKNOWN_CLIENT, AUD, KID_UNKNOWN, SIGNATURE, UNAUTHORIZED, CONTENT_TYPE,
        UNREACHABLE, NO_KEY, UNKNOWN_ERROR,
    }  # fmt: skip
    assert rows == spec


# -- request level ---------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE", "PATCH"])
def test_405(nhs: Srv, method: str) -> None:
    response = nhs.http.request(method, nhs.token_url)
    assert response.status_code == 405
    assert response.headers["allow"] == "POST"
    assert response.content == b""


@pytest.mark.parametrize(
    ("ctype", "as_json"),
    [
        ("application/x-www-form-urlencoded; charset=utf-8", False),
        ("application/x-www-form-urlencoded;charset=UTF-8", False),
        ("Application/X-WWW-Form-Urlencoded", False),
        ("application/json", True),
        ("text/plain", False),
    ],
)
def test_415(nhs: Srv, ctype: str, as_json: bool) -> None:
    form = nhs.form()
    content = json.dumps(form) if as_json else urlencode(form)
    response = nhs.post(content=content, headers={"Content-Type": ctype})
    assert _answer(response) == CONTENT_TYPE


def test_415_without_content_type(nhs: Srv) -> None:
    request = nhs.http.build_request("POST", nhs.token_url, content=urlencode(nhs.form()))
    request.headers.pop("Content-Type", None)
    assert _answer(nhs.http.send(request)) == CONTENT_TYPE


@pytest.mark.parametrize(
    ("build", "expected"),
    [
        pytest.param(lambda s: s.form(grant_type=DROP), GRANT_MISSING, id="grant_type-missing"),
        pytest.param(lambda s: s.form(grant_type=""), GRANT_MISSING, id="grant_type-empty"),
        pytest.param(lambda s: s.form(grant_type="password"), GRANT_INVALID, id="grant_type-bad"),
        pytest.param(lambda s: s.form(client_assertion_type="jwt"), TYPE_WRONG, id="type-wrong"),
        pytest.param(lambda s: s.form(client_assertion_type=DROP), TYPE_WRONG, id="type-missing"),
        pytest.param(
            lambda s: s.form(client_assertion=DROP), ASSERTION_MISSING, id="assertion-missing"
        ),
        pytest.param(lambda s: s.form(client_assertion="not-a-jwt"), MALFORMED, id="malformed"),
        pytest.param(lambda s: s.form(client_assertion="a.b.c"), MALFORMED, id="bad-base64"),
        pytest.param(lambda s: s.form(client_assertion="a.b.c.d.e"), MALFORMED, id="jwe"),
        pytest.param(
            lambda s: s.form(sign(s.key, '{"alg":"RS512","alg":"RS512"}', s.claims())),
            MALFORMED,
            id="duplicate-member",
        ),
    ],
)
def test_request_rows(nhs: Srv, build: Callable[[Srv], dict[str, str]], expected: Any) -> None:
    assert _answer(nhs.post(build(nhs))) == expected


# -- header and claim checks -----------------------------------------------------------------------


def _rs256(s: Srv) -> str:
    return s.assertion(header={"alg": "RS256"}, alg=s.key.alg)


ASSERTION_CASES = [
    pytest.param(_rs256, ALG, id="alg-RS256"),
    pytest.param(
        lambda s: s.assertion(header={"alg": "PS512"}, alg=s.key.alg), ALG, id="alg-PS512"
    ),
    pytest.param(lambda s: s.assertion(exp=_now() - 120), EXPIRED, id="exp-expired"),
    pytest.param(lambda s: s.assertion(header={"kid": DROP}), KID_MISSING, id="kid-missing"),
    pytest.param(lambda s: s.assertion(header={"typ": DROP}), TYP, id="typ-missing"),
    pytest.param(lambda s: s.assertion(header={"typ": "at+jwt"}), TYP, id="typ-at+jwt"),
    pytest.param(lambda s: s.assertion(exp=DROP), EXP_MISSING, id="exp-missing"),
    pytest.param(lambda s: s.assertion(exp=str(_now() + 300)), EXP_TYPE, id="exp-string"),
    pytest.param(lambda s: s.assertion(exp=_now() - 2), EXPIRED, id="exp-2s-past-no-allowance"),
    pytest.param(lambda s: s.assertion(header={"kid": ""}), KID_MISSING, id="kid-empty"),
    pytest.param(lambda s: s.assertion(exp={}), EXP_TYPE, id="exp-object"),
    pytest.param(lambda s: s.assertion(iss="someone-else"), ISS_SUB, id="iss-sub-mismatch"),
    pytest.param(lambda s: s.assertion(sub=DROP), ISS_SUB, id="sub-missing"),
    pytest.param(lambda s: s.assertion(iss=DROP), ISS_SUB, id="iss-missing"),
    pytest.param(lambda s: s.assertion(jti=DROP), JTI_MISSING, id="jti-missing"),
    pytest.param(lambda s: s.assertion(jti=DROP, jit="typo"), JTI_MISSING, id="jit-typo"),
    pytest.param(lambda s: s.assertion(jti=12345), JTI_TYPE, id="jti-number"),
    pytest.param(lambda s: s.assertion(jti=""), JTI_MISSING, id="jti-empty"),
    pytest.param(lambda s: s.assertion(jti=None), JTI_MISSING, id="jti-null"),
    pytest.param(
        lambda s: s.assertion(exp=int(time.time() * 1000) + 60_000), TOO_FAR, id="exp-in-ms"
    ),
    pytest.param(lambda s: s.assertion(nbf=_now() + 3600), UNKNOWN_ERROR, id="nbf-future"),
    pytest.param(lambda s: s.assertion(exp=_now() + 600), TOO_FAR, id="exp-10-minutes"),
    pytest.param(
        lambda s: s.assertion(iss="nobody", sub="nobody"), UNKNOWN_CLIENT, id="unknown-client"
    ),
    pytest.param(lambda s: s.assertion(aud=s.issuer), AUD, id="aud-issuer"),
    pytest.param(lambda s: s.assertion(aud=s.token_url + "/"), AUD, id="aud-trailing-slash"),
    pytest.param(lambda s: s.assertion(aud=[s.token_url]), AUD, id="aud-array"),
    pytest.param(lambda s: s.assertion(aud=DROP), AUD, id="aud-missing"),
    pytest.param(lambda s: s.assertion(header={"kid": "test-2"}), KID_UNKNOWN, id="kid-unknown"),
    pytest.param(
        lambda s: s.form(s.assertion()[:-10] + "AAAAAAAAAA")["client_assertion"],
        SIGNATURE,
        id="signature-bad",
    ),
    pytest.param(
        lambda s: s.assertion(iss="nhs-no-grant", sub="nhs-no-grant"),
        UNAUTHORIZED,
        id="unauthorized-client",
    ),
    pytest.param(
        lambda s: s.assertion(iss="nhs-unreachable", sub="nhs-unreachable"),
        UNREACHABLE,
        id="jwks-unreachable",
    ),
    pytest.param(
        lambda s: s.assertion(iss="nhs-no-key", sub="nhs-no-key"), NO_KEY, id="no-public-key"
    ),
]


@pytest.mark.parametrize(("build", "expected"), ASSERTION_CASES)
def test_assertion_rows(nhs: Srv, build: Callable[[Srv], str], expected: Any) -> None:
    response = nhs.token(build(nhs))
    assert _answer(response) == expected
    assert response.headers["cache-control"] == "no-store"


def test_typ_is_case_insensitive(nhs: Srv) -> None:
    assert nhs.token(nhs.assertion(header={"typ": "jwt"})).status_code == 200


def test_signed_by_another_key(nhs: Srv, attacker_rs512: Key) -> None:
    assert _answer(nhs.token(nhs.assertion(key=attacker_rs512))) == SIGNATURE


def test_exp_310_seconds_accepted(nhs: Srv) -> None:
    """The platform allows exp up to now + 310 s."""
    assert nhs.token(nhs.assertion(exp=_now() + 305)).status_code == 200


def test_non_unique_jti(nhs: Srv) -> None:
    assertion = nhs.assertion()
    assert nhs.token(assertion).status_code == 200
    assert _answer(nhs.token(assertion)) == NON_UNIQUE
    # the same jti in a fresh assertion is just as used
    jti = json.loads(_payload(assertion))["jti"]
    assert _answer(nhs.token(nhs.assertion(jti=jti))) == NON_UNIQUE


def _payload(assertion: str) -> str:
    import base64

    part = assertion.split(".")[1]
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)).decode()


# -- order -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("build", "expected"),
    [
        pytest.param(
            lambda s: s.assertion(header={"alg": "RS256"}, alg=s.key.alg, exp=_now() - 120),
            ALG,
            id="alg-before-exp",
        ),
        pytest.param(
            lambda s: s.assertion(header={"kid": DROP}, exp=_now() - 120),
            EXPIRED,
            id="exp-before-kid",
        ),
        pytest.param(
            lambda s: s.assertion(header={"kid": DROP, "typ": DROP}),
            KID_MISSING,
            id="kid-before-typ",
        ),
        pytest.param(
            lambda s: s.assertion(header={"typ": DROP}, exp=DROP), TYP, id="typ-before-exp-missing"
        ),
        pytest.param(
            lambda s: s.assertion(exp=DROP, iss="x"), EXP_MISSING, id="exp-missing-before-iss"
        ),
        pytest.param(lambda s: s.assertion(iss="x", jti=DROP), ISS_SUB, id="iss-before-jti"),
        pytest.param(
            lambda s: s.assertion(jti=7, exp=_now() + 900), JTI_TYPE, id="jti-before-too-far"
        ),
        pytest.param(
            lambda s: s.assertion(exp=_now() + 900, aud="x"), TOO_FAR, id="too-far-before-401s"
        ),
        pytest.param(
            lambda s: s.assertion(iss="nobody", sub="nobody", aud="x"),
            UNKNOWN_CLIENT,
            id="client-before-aud",
        ),
        pytest.param(
            lambda s: s.assertion(aud="x", header={"kid": "zz"}), AUD, id="aud-before-kid"
        ),
    ],
)
def test_order(nhs: Srv, build: Callable[[Srv], str], expected: Any) -> None:
    assert _answer(nhs.token(build(nhs))) == expected


@pytest.mark.parametrize(
    "bad",
    [
        pytest.param({"aud": "https://elsewhere.example/oauth2/token"}, id="aud"),
        pytest.param({"kid": "zz"}, id="kid"),
    ],
)
def test_failed_attempt_uses_up_its_jti(nhs: Srv, bad: dict[str, Any]) -> None:
    jti = str(uuid.uuid4())
    header = {"kid": bad["kid"]} if "kid" in bad else None
    claims = {k: v for k, v in bad.items() if k in ("aud", "iss", "sub")}
    broken = nhs.assertion(header=header, jti=jti, **claims)
    first = _answer(nhs.token(broken))
    assert first[0] in (400, 401)
    assert first != NON_UNIQUE
    # re-sending the same assertion, or a fixed one with the same jti: the jti is used up
    assert _answer(nhs.token(broken)) == NON_UNIQUE
    if "sub" not in claims:  # jti values are unique per client (sub)
        assert _answer(nhs.token(nhs.assertion(jti=jti))) == NON_UNIQUE


@pytest.mark.parametrize(
    ("broken", "expected"),
    [
        pytest.param({"header": {"typ": DROP}}, TYP, id="typ"),
        pytest.param({"exp": "far"}, TOO_FAR, id="exp-too-far"),
    ],
)
def test_failed_claim_check_does_not_use_up_its_jti(
    nhs: Srv, broken: dict[str, Any], expected: Any
) -> None:
    """The jti is recorded after every claim check passed (the platform's script, the 5-minute
    bound included): a failure there leaves it fresh."""
    jti = str(uuid.uuid4())
    if broken.get("exp") == "far":
        broken = {"exp": _now() + 900}
    assert _answer(nhs.token(nhs.assertion(jti=jti, **broken))) == expected
    assert nhs.token(nhs.assertion(jti=jti)).status_code == 200


# -- success ---------------------------------------------------------------------------------------


def test_success_shape(nhs: Srv) -> None:
    before = time.time()
    response = nhs.token()
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"access_token", "expires_in", "token_type", "issued_at"}
    assert body["expires_in"] == "599"
    assert body["token_type"] == "Bearer"
    assert isinstance(body["issued_at"], str)
    assert body["issued_at"].isdigit()
    issued_ms = int(body["issued_at"])
    assert abs(issued_ms / 1000 - before) < 300  # milliseconds, not seconds
    assert issued_ms > 10**12
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["date"]
    echo = nhs.http.get(
        nhs.issuer + "/echo", headers={"Authorization": "Bearer " + body["access_token"]}
    )
    assert echo.status_code == 200


def test_canonical_nhsdigital_construction(nhs: Srv) -> None:
    """Exactly what NHSDigital's own code sends."""
    header = {"alg": "RS512", "typ": "JWT", "kid": nhs.key.kid}
    claims = {
        "iss": nhs.client_id,
        "sub": nhs.client_id,
        "aud": nhs.token_url,
        "jti": str(uuid.uuid4()),
        "exp": int(time.time()) + 300,
    }
    form = {
        "grant_type": "client_credentials",
        "client_assertion_type": JWT_BEARER,
        "client_assertion": sign(nhs.key, header, claims),
    }
    response = nhs.http.post(nhs.token_url, content=urlencode(form), headers={"Content-Type": FORM})
    assert response.status_code == 200, response.text


def test_errors_have_message_ids(nhs: Srv) -> None:
    ids = {nhs.token(client_assertion="x").json()["message_id"] for _ in range(3)}
    assert len(ids) == 3


# -- fail closed -----------------------------------------------------------------------------------


def test_crit_header_with_forged_signature_is_rejected(nhs: Srv) -> None:
    """A `crit` header makes the rule table stop after R6 (nothing else is checked, not even the
    signature). NHS mode must still refuse: the platform's answer is 'Malformed JWT'."""
    header = nhs.header(crit=["exp"])
    forged = unsigned(json.dumps(header), json.dumps(nhs.claims()), b"not a signature")
    response = nhs.token(forged)
    assert response.status_code != 200, "a forged assertion with a crit header got a token"
    assert _answer(response) == MALFORMED


def test_exp_as_a_float_is_accepted(nhs: Srv) -> None:
    """The platform's check is `typeof exp == "number"`: a JSON float passes."""
    assert nhs.token(nhs.assertion(exp=_now() + 299.5)).status_code == 200


def test_key_headers_are_ignored_not_refused(nhs: Srv) -> None:
    """The platform takes keys only from the app's JWKS URL and never reads jku: a header that
    names another key changes nothing (and is never used)."""
    header = {"jku": "https://attacker.example/jwks.json"}
    assert nhs.token(nhs.assertion(header=header)).status_code == 200


def test_nbf_far_in_the_future_is_not_accepted(nhs: Srv) -> None:
    """The nhs profile keeps checking nbf (a 10 s allowance; only iat is unchecked): an
    assertion not valid for another hour must not buy a token now."""
    response = nhs.token(nhs.assertion(nbf=_now() + 3600))
    assert response.status_code != 200, response.text


def test_iat_is_unchecked(nhs: Srv) -> None:
    assert nhs.token(nhs.assertion(iat=_now() + 3600)).status_code == 200
