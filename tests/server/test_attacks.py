"""Attacks and garbage: always a 4xx with an OAuth error, never a 500 and never a token."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from pkjwt.forge import hmac_sign, segment, sign, unsigned
from pkjwt.keys import Key
from pkjwt.server.app import create_app
from pkjwt.server.replay import MemoryReplayStore

from .conftest import FORM, JWT_BEARER, Srv, start


def _rejected(response: httpx.Response, *, status: int = 400, error: str | None = None) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert "access_token" not in body
    if error is not None:
        assert body["error"] == error, response.text
    return str(body.get("error_description", ""))


# -- algorithm confusion and key injection --------------------------------------------------------


def test_hs256_signed_with_the_public_key_pem(fapi: Srv) -> None:
    """The classic confusion: HMAC keyed with the RSA public key's PEM."""
    pem = fapi.key.public_pem()
    assertion = hmac_sign(pem, fapi.header(alg="HS256"), fapi.claims())
    description = _rejected(fapi.token(assertion), error="invalid_client")
    assert description.startswith("R8 "), description


def _attacker_jwk(attacker: Key) -> dict[str, Any]:
    jwk = attacker.public().public_jwk()
    return jwk


@pytest.mark.parametrize(
    "injected",
    [
        pytest.param(lambda att, url: {"jwk": _attacker_jwk(att)}, id="jwk"),
        pytest.param(lambda att, url: {"jku": url}, id="jku"),
        pytest.param(lambda att, url: {"x5u": url}, id="x5u"),
        pytest.param(
            lambda att, url: {"jwk": _attacker_jwk(att), "kid": "attacker"}, id="jwk+own-kid"
        ),
    ],
)
def test_key_injection_headers(bis: Srv, attacker_es256: Key, injected: Any) -> None:
    from pkjwt.keys import jwks

    from .conftest import JwksHost

    host = JwksHost(jwks([attacker_es256.public()]))
    try:
        header = bis.header(**injected(attacker_es256, host.url))
        assertion = sign(attacker_es256, header, bis.claims())
        description = _rejected(bis.token(assertion), error="invalid_client")
    finally:
        host.close()
    assert description.startswith("R9 "), description
    assert host.hits == 0  # never fetched


def test_x5c_header_with_attacker_key_is_not_trusted(bis: Srv, attacker_es256: Key) -> None:
    header = bis.header(x5c=["MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA"])
    assertion = sign(attacker_es256, header, bis.claims())
    _rejected(bis.token(assertion), error="invalid_client")


@pytest.mark.parametrize(
    "kid",
    [
        "../../etc/passwd",
        "' OR 1=1 --",
        "k" * 5000,
        "\u0000",
        "\u00e9\u2603",
        12,
        None,
        ["test-1"],
        {"kid": "test-1"},
        True,
    ],
    ids=["traversal", "sql", "long", "nul", "unicode", "int", "null", "list", "object", "bool"],
)
def test_odd_kids_rejected_not_500(bis: Srv, kid: Any) -> None:
    assertion = bis.assertion(header={"kid": kid})
    description = _rejected(bis.token(assertion), error="invalid_client")
    assert description.startswith("R9 "), description
    assert len(description) <= 400


def test_one_megabyte_assertion(bis: Srv) -> None:
    huge = bis.assertion(padding="x" * (1024 * 1024))
    assert len(huge) > 1024 * 1024
    _rejected(bis.token(huge))


def test_oversized_assertion_below_the_body_cap(bis: Srv) -> None:
    big = bis.assertion(padding="x" * 30_000)
    description = _rejected(bis.token(big), error="invalid_client")
    assert description.startswith("R5 "), description


@pytest.mark.parametrize("where", ["header", "payload"])
def test_duplicate_json_members(bis: Srv, where: str) -> None:
    header = json.dumps(bis.header())
    claims = json.dumps(bis.claims())
    if where == "header":
        header = header[:-1] + ', "alg": "none"}'
    else:
        claims = claims[:-1] + ', "sub": "someone-else"}'
    assertion = sign(bis.key, header, claims)
    description = _rejected(bis.token(assertion), error="invalid_client")
    assert description.startswith("R6 "), description


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", "1e999"])
def test_non_finite_numbers(bis: Srv, literal: str) -> None:
    claims = json.dumps(bis.claims(exp=0)).replace('"exp": 0', f'"exp": {literal}')
    assert literal in claims
    assertion = sign(bis.key, bis.header(), claims)
    description = _rejected(bis.token(assertion), error="invalid_client")
    assert description.startswith("R6 "), description


def test_huge_integer_claims(bis: Srv) -> None:
    for name in ("exp", "iat", "nbf"):
        claims = json.dumps(bis.claims(**{name: 7})).replace(
            f'"{name}": 7', f'"{name}": 1{"0" * 400}'
        )
        _rejected(bis.token(sign(bis.key, bis.header(), claims)), error="invalid_client")


def test_jwe_five_parts(bis: Srv) -> None:
    jwe = ".".join([segment({"alg": "RSA-OAEP", "enc": "A256GCM"}), "a", "b", "c", "d"])
    description = _rejected(bis.token(jwe), error="invalid_client")
    assert description.startswith("R5 "), description


@pytest.mark.parametrize(
    "assertion",
    ["", "a", "a.b", "a.b.c.d", "....", "@@@.###.$$$", '{"payload":"x","signatures":[]}'],
)
def test_not_a_compact_jws(bis: Srv, assertion: str) -> None:
    response = bis.token(assertion)
    assert response.status_code == 400, response.text
    assert response.json()["error"] in ("invalid_client", "invalid_request")


def test_crit_header_rejected(bis: Srv) -> None:
    assertion = bis.assertion(header={"crit": ["exp"]})
    description = _rejected(bis.token(assertion), error="invalid_client")
    assert description.startswith("R6 "), description


# -- request-level (R1, R2) -----------------------------------------------------------------------


def test_repeated_parameter(bis: Srv) -> None:
    content = urlencode(bis.form()) + "&grant_type=client_credentials"
    description = _rejected(bis.post(content=content), error="invalid_request")
    assert description.startswith("R1 "), description
    assert "grant_type" in description


@pytest.mark.parametrize(
    "ctype", ["application/json", "text/plain", "multipart/form-data; boundary=x", None]
)
def test_wrong_content_type(bis: Srv, ctype: str | None) -> None:
    content = urlencode(bis.form())
    headers = {"Content-Type": ctype} if ctype else {}
    request = bis.http.build_request("POST", bis.token_url, content=content, headers=headers)
    if ctype is None:
        request.headers.pop("Content-Type", None)
    description = _rejected(bis.http.send(request), error="invalid_request")
    assert description.startswith("R1 "), description


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE", "PATCH"])
def test_other_methods_405(bis: Srv, method: str) -> None:
    response = bis.http.request(method, bis.token_url)
    assert response.status_code == 405
    assert response.headers["allow"] == "POST"


def test_assertion_plus_basic(bis: Srv) -> None:
    basic = base64.b64encode(b"secret-client:s3cr3t").decode()
    response = bis.post(bis.form(), headers={"Authorization": f"Basic {basic}"})
    description = _rejected(response, error="invalid_request")
    assert description.startswith("R2 "), description


def test_assertion_plus_client_secret_post(bis: Srv) -> None:
    response = bis.post(bis.form(client_secret="s3cr3t", client_id="secret-client"))
    description = _rejected(response, error="invalid_request")
    assert description.startswith("R2 "), description


def test_body_client_id_must_match_sub(bis: Srv) -> None:
    response = bis.token(client_id="secret-client")
    description = _rejected(response, error="invalid_client")
    assert description.startswith("R7 "), description


@pytest.mark.parametrize("path", ["/oauth2/token", "/introspect", "/revoke"])
def test_non_ascii_basic_credentials_are_not_a_500(bis: Srv, path: str) -> None:
    """A Basic header with bytes outside ASCII (valid in HTTP as obs-text) is malformed
    credentials: 401 invalid_client with a challenge, not a server error."""
    response = bis.post(
        {"grant_type": "client_credentials", "token": "x"},
        headers={"Authorization": b"Basic \xe9\xe9\xe9\xe9"},
        path=None if path == "/oauth2/token" else path,
    )
    assert response.status_code in (400, 401), response.text
    assert response.json()["error"] in ("invalid_client", "invalid_request")


@pytest.mark.parametrize("profile", ["rfc7523bis", "nhs"])
def test_lone_surrogate_jti_with_sqlite_replay_store(
    tmp_path: Path, profile: str, es256_key: Key, rs512_key: Key
) -> None:
    """JSON allows "\\ud800"; Python decodes it to a lone surrogate that SQLite cannot store.
    The server must answer with an OAuth error, not a 500 (in NHS mode the jti is recorded
    before the signature check, so no key is needed to reach the store)."""
    key = rs512_key if profile == "nhs" else es256_key
    extra = {"replay_store": f"sqlite:///{tmp_path / 'r.db'}"}
    with start(profile, key=key, extra=extra) as srv:
        header = srv.header()
        claims = json.dumps(srv.claims(jti="JTI")).replace('"JTI"', '"\\ud800"')
        assertion = sign(key, header, claims)
        response = srv.token(assertion)
        assert response.status_code < 500, response.text
        # unauthenticated variant: a forged signature
        forged = unsigned(header, claims, b"forged")
        response = srv.token(forged)
        assert response.status_code < 500, response.text
        assert "access_token" not in response.json()


# -- fuzzing: never a 500 -------------------------------------------------------------------------


@dataclass
class FuzzTarget:
    """The rfc7523bis server's app driven in-process (fast enough for hundreds of examples)."""

    srv: Srv
    client: TestClient

    def post(
        self, content: bytes | str, ctype: str = FORM, path: str = "/oauth2/token"
    ) -> httpx.Response:
        headers = {"Content-Type": ctype} if ctype else {}
        return self.client.post(path, content=content, headers=headers)


@pytest.fixture(scope="module")
def fuzz_target(bis: Srv) -> Iterator[FuzzTarget]:
    app = create_app(bis.state.config, issuer=bis.issuer, replay=MemoryReplayStore())
    with TestClient(app, base_url=bis.issuer, raise_server_exceptions=False) as client:
        yield FuzzTarget(bis, client)


_FUZZ = settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@_FUZZ
@given(body=st.binary(max_size=2048), ctype=st.sampled_from([FORM, "application/json", ""]))
def test_fuzz_raw_bytes(fuzz_target: FuzzTarget, body: bytes, ctype: str) -> None:
    response = fuzz_target.post(body, ctype)
    assert response.status_code in (400, 401), response.text
    assert "error" in response.json()


_names = st.sampled_from(
    [
        "grant_type",
        "client_assertion_type",
        "client_assertion",
        "client_id",
        "scope",
        "resource",
        "client_secret",
    ]
) | st.text(max_size=12)
_values = st.sampled_from(["client_credentials", JWT_BEARER, "a.b.c", "", "test-client"]) | st.text(
    max_size=64
)


@_FUZZ
@given(
    pairs=st.lists(st.tuples(_names, _values), max_size=8),
    path=st.sampled_from(["/oauth2/token", "/introspect", "/revoke"]),
)
def test_fuzz_forms(fuzz_target: FuzzTarget, pairs: list[tuple[str, str]], path: str) -> None:
    response = fuzz_target.post(urlencode(pairs), path=path)
    assert response.status_code in (400, 401), response.text
    assert response.json()["error"]


_json_leaf = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
)
_json = st.recursive(
    _json_leaf,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=8,
)
_claim_names = st.sampled_from(["iss", "sub", "aud", "exp", "iat", "nbf", "jti", "x"])
_header_names = st.sampled_from(["alg", "kid", "typ", "crit", "jku", "b64", "zip", "x"])


@_FUZZ
@given(
    header_over=st.dictionaries(_header_names, _json, max_size=3),
    claim_over=st.dictionaries(_claim_names, _json, max_size=4),
)
def test_fuzz_header_and_claims(
    fuzz_target: FuzzTarget, header_over: dict[str, Any], claim_over: dict[str, Any]
) -> None:
    """Validly signed assertions with arbitrary JSON in the members the rules read: any answer
    but a 500 (a 200 is possible when the fuzz happens to keep everything valid)."""
    srv = fuzz_target.srv
    assertion = sign(srv.key, srv.header(**header_over), srv.claims(**claim_over), alg=srv.key.alg)
    response = fuzz_target.post(urlencode(srv.form(assertion)))
    assert response.status_code in (200, 400), response.text
    if response.status_code == 400:
        assert response.json()["error"] in ("invalid_client", "invalid_request")


def test_time_is_not_frozen() -> None:
    """Sanity: the fixtures build assertions on the real clock."""
    assert time.time() > 1_600_000_000
