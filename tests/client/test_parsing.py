"""Token response parsing as the client sees it over HTTP: lifetimes, NHS quirks, errors."""

from __future__ import annotations

import contextlib
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pkjwt import nhs
from pkjwt.errors import (
    AccessDenied,
    InvalidClient,
    InvalidGrant,
    InvalidRequest,
    InvalidScope,
    InvalidTarget,
    OAuthError,
    RateLimited,
    ServerError,
    TemporarilyUnavailable,
    TokenResponseError,
    UnauthorizedClient,
    UnsupportedGrantType,
)
from pkjwt.retry import RetryPolicy
from pkjwt.tokens import DEFAULT_LIFETIME, MAX_LIFETIME

ONCE = RetryPolicy(attempts=1)


@pytest.mark.parametrize(
    ("expires_in", "lifetime"),
    [(599, 599.0), ("599", 599.0), (599.5, 599.5), (" 599 ", 599.0)],
    ids=["int", "string", "float", "padded-string"],
)
def test_expires_in_forms(server, make_client, clock, expires_in, lifetime):
    server.script = [server.ok(expires_in=expires_in)]
    token = make_client().get_token()
    assert token.obtained_at == clock()
    assert token.expires_at == pytest.approx(clock() + lifetime)
    assert token.lifetime_assumed is False


def test_missing_expires_in_gets_default_lifetime(server, make_client, clock):
    server.script = [server.ok(expires_in=None)]
    token = make_client().get_token()
    assert token.expires_at == pytest.approx(clock() + DEFAULT_LIFETIME)
    assert token.lifetime_assumed is True


def test_missing_expires_in_uses_configured_default(server, make_client, clock):
    server.script = [server.ok(expires_in=None)]
    token = make_client(default_lifetime=120).get_token()
    assert token.expires_at == pytest.approx(clock() + 120)
    assert token.lifetime_assumed is True


@pytest.mark.parametrize("expires_in", [0, -5, "0", "-1", "soon", None, True, [600]])
def test_nonsense_lifetime_is_bounded_and_short(server, make_client, clock, expires_in):
    server.script = [server.ok(expires_in=expires_in)]
    token = make_client().get_token()
    assert token.lifetime_assumed is True
    assert 0 < token.expires_at - clock() <= DEFAULT_LIFETIME


@pytest.mark.parametrize("expires_in", [1e12, "1000000000000", 10 * 365 * 24 * 3600])
def test_absurd_lifetime_is_capped(server, make_client, clock, expires_in):
    server.script = [server.ok(expires_in=expires_in)]
    token = make_client().get_token()
    assert token.lifetime_assumed is True
    assert 0 < token.expires_at - clock() <= MAX_LIFETIME


def test_nhs_issued_at_milliseconds_string(server, make_client, clock):
    # NHS: every value a JSON string, issued_at in epoch milliseconds ("1675784384503" style)
    issued_ms = int((clock() - 2.5) * 1000)
    server.script = [
        (
            200,
            {},
            {
                "access_token": "Sr5PGv19wTEHJdDr2wx2f7IGd0cw",
                "expires_in": "599",
                "token_type": "Bearer",
                "issued_at": str(issued_ms),
            },
        )
    ]
    token = make_client().get_token()
    assert token.access_token == "Sr5PGv19wTEHJdDr2wx2f7IGd0cw"
    assert token.expires_at == pytest.approx(issued_ms / 1000 + 599)
    assert token.lifetime_assumed is False


def test_issued_at_far_from_our_clock_is_not_trusted(server, make_client, clock):
    # a server clock a day off must not make the token look expired or eternal
    issued_ms = int((clock() - 86400) * 1000)
    server.script = [(200, {}, server.token("tok", expires_in="599", issued_at=str(issued_ms)))]
    token = make_client().get_token()
    assert token.expires_at == pytest.approx(clock() + 599)


def test_missing_token_type_means_bearer(server, make_client):
    server.script = [(200, {}, {"access_token": "abc", "expires_in": 600})]
    token = make_client().get_token()
    assert token.token_type == "Bearer"
    assert token.authorization() == "Bearer abc"


def test_lowercase_bearer_token_type_is_sent_as_bearer(server, make_client):
    server.script = [(200, {}, server.token("abc", token_type="bearer"))]
    assert make_client().get_token().authorization() == "Bearer abc"


def test_html_200_is_token_response_error_with_hint(server, make_client):
    html = "<!DOCTYPE html><html><body><h1>Sign in</h1></body></html>"
    server.script = [(200, {"Content-Type": "text/html; charset=utf-8"}, html)]
    with pytest.raises(TokenResponseError) as info:
        make_client().get_token()
    assert info.value.status == 200
    assert "HTML" in info.value.message
    assert info.value.hint
    assert "token URL" in info.value.hint
    assert server.token_count == 1  # not retried


@pytest.mark.parametrize(
    "body",
    [b'{"access_token": "abc", ', b"\xff\xfe garbage", b"", b"null", b'["access_token"]'],
    ids=["truncated", "not-utf8", "empty", "null", "array"],
)
def test_garbage_json_200_is_token_response_error(server, make_client, body):
    server.script = [(200, {"Content-Type": "application/json"}, body)]
    with pytest.raises(TokenResponseError):
        make_client().get_token()
    assert server.token_count == 1


@pytest.mark.parametrize(
    "body",
    [{"token_type": "Bearer", "expires_in": 600}, {"access_token": ""}, {"access_token": 42}],
    ids=["missing", "empty", "not-a-string"],
)
def test_200_without_access_token_is_token_response_error(server, make_client, body):
    server.script = [(200, {}, body)]
    with pytest.raises(TokenResponseError) as info:
        make_client().get_token()
    assert info.value.hint


@pytest.mark.parametrize(
    ("status", "error", "cls"),
    [
        (400, "invalid_request", InvalidRequest),
        (401, "invalid_client", InvalidClient),
        (400, "invalid_grant", InvalidGrant),
        (401, "unauthorized_client", UnauthorizedClient),
        (400, "unsupported_grant_type", UnsupportedGrantType),
        (400, "invalid_scope", InvalidScope),
        (400, "invalid_target", InvalidTarget),
        (403, "access_denied", AccessDenied),
        (500, "server_error", ServerError),
        (503, "temporarily_unavailable", TemporarilyUnavailable),
        (429, "too_many_requests", RateLimited),
        (401, "public_key error", OAuthError),
        (400, "something_new", OAuthError),
    ],
)
def test_error_bodies_map_to_oauth_error_classes(server, make_client, status, error, cls):
    server.script = [server.error(status, error, f"described {error}")]
    with pytest.raises(OAuthError) as info:
        make_client(retry=ONCE).get_token()
    exc = info.value
    assert type(exc) is cls
    assert exc.status == status
    assert exc.error == error
    assert exc.description == f"described {error}"


def test_error_without_body_json_is_typed(server, make_client):
    server.script = [(404, {"Content-Type": "text/html"}, "<html>Not Found</html>")]
    with pytest.raises(TokenResponseError) as info:
        make_client(retry=ONCE).get_token()
    assert info.value.status == 404
    assert info.value.hint


_NHS_ROWS = [
    nhs.CONTENT_TYPE,
    *nhs.NHS_REQUEST_ERRORS,
    *(row for row in nhs.NHS_ASSERTION_ERRORS if row is not None),
    nhs.PUBLIC_KEY_MISSING,
    nhs.JWKS_UNREACHABLE,
]


@pytest.mark.parametrize("row", _NHS_ROWS, ids=[r.description[:60] for r in _NHS_ROWS])
def test_every_nhs_error_gets_its_hint(server, make_client, row):
    server.script = [server.error(row.status, row.error, row.description)]
    with pytest.raises(OAuthError) as info:
        make_client(retry=ONCE).get_token()
    exc = info.value
    assert exc.status == row.status
    assert exc.error == row.error
    assert exc.description == row.description
    assert exc.hint
    assert exc.hint == row.hint
    assert server.token_count == 1


def test_nhs_error_hint_survives_rewording(server, make_client):
    # the platform's wording has changed before; hints match by meaning, case-insensitively
    server.script = [
        server.error(401, "invalid_request", "Invalid 'KID' header in JWT - NO MATCHING PUBLIC KEY")
    ]
    with pytest.raises(OAuthError) as info:
        make_client(retry=ONCE).get_token()
    assert info.value.hint
    assert "JWKS" in info.value.hint


QUOTA = (
    "Your application, Test App, has exceeded its quota of 300 requests every 1 minute(s) "
    "and is being rate limited."
)


@pytest.mark.parametrize(
    "response",
    [
        (429, {"Retry-After": "30"}, {"error": "rate_limited", "error_description": QUOTA}),
        (429, {"Retry-After": "30"}, {"message_id": "x", "error": "quota", "message": QUOTA}),
        (429, {"Retry-After": "30", "Content-Type": "text/plain"}, QUOTA),
    ],
    ids=["json-description", "json-message", "plain-text"],
)
def test_nhs_quota_429_has_hint(server, make_client, response):
    server.script = [response]
    with pytest.raises(RateLimited) as info:
        make_client(retry=ONCE).get_token()
    exc = info.value
    assert exc.status == 429
    assert exc.retry_after == 30
    assert exc.hint
    assert "quota" in exc.hint


_lifetimes = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**15), max_value=10**15),
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(min_value=-(10**15), max_value=10**15).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.text(max_size=12),
)


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(expires_in=_lifetimes)
def test_any_expires_in_gives_a_bounded_lifetime(server, make_client, clock, expires_in):
    """Whatever the server sends as expires_in, the token never lives 'forever' or in the past."""
    if isinstance(expires_in, float) and expires_in != expires_in:
        body = '{"access_token": "abc", "expires_in": NaN}'
    elif isinstance(expires_in, float) and expires_in in (float("inf"), float("-inf")):
        body = '{"access_token": "abc", "expires_in": %s}' % (
            "Infinity" if expires_in > 0 else "-Infinity"
        )
    else:
        body = server.token("abc", expires_in=expires_in)
    server.script = [(200, {"Content-Type": "application/json"}, body)]
    token = make_client().fetch_token()
    lifetime = token.expires_at - clock()
    assert 0 <= lifetime <= MAX_LIFETIME  # (a positive subnormal expires_in rounds to 0)
    if not token.lifetime_assumed:
        assert lifetime == pytest.approx(float(expires_in), abs=1e-3)


# -- one exception for "the server refused our credentials" (issue 9) ----------------------------


@pytest.mark.parametrize(
    ("status", "error", "description", "also"),
    [
        (400, "invalid_client", "bad signature", "InvalidClient"),
        (401, "unauthorized_client", "no grant", "UnauthorizedClient"),
        (400, "invalid_request", "Invalid 'typ' header in client_assertion JWT - must be 'JWT'",
         "InvalidRequest"),
        (401, "invalid_request", "Missing or invalid 'aud' claim in client_assertion JWT",
         "InvalidRequest"),
        (401, "public_key error", "JWT signature verification failed", "AssertionRefused"),
        (403, "public_key error", "You need to register a public key to use this "
         "authentication method - please contact support to configure", "AssertionRefused"),
    ],
)  # fmt: skip
def test_refused_credentials_are_one_exception(status, error, description, also):
    import pkjwt
    from pkjwt.tokens import parse_error_response

    exc = parse_error_response(
        status, {}, json.dumps({"error": error, "error_description": description}).encode(), now=0
    )
    assert isinstance(exc, pkjwt.CredentialsRejected)
    assert isinstance(exc, getattr(pkjwt.errors, also))
    assert exc.error == error


@pytest.mark.parametrize(
    ("error", "description"),
    [("invalid_request", "grant_type is missing"), ("invalid_scope", "nope"),
     ("unknown_error", "An unknown error occurred processing this request")],
)  # fmt: skip
def test_other_refusals_are_not_credential_refusals(error, description):
    import pkjwt
    from pkjwt.tokens import parse_error_response

    body = json.dumps({"error": error, "error_description": description}).encode()
    assert not isinstance(parse_error_response(400, {}, body, now=0), pkjwt.CredentialsRejected)


@pytest.mark.parametrize("field", ["expires_in", "issued_at"])
@pytest.mark.parametrize("value", ["1" + "0" * 400, 10**400, -(10**400), "1e400", "9" * 5000])
def test_absurd_numbers_never_escape_as_overflow(field, value):
    """Issue 10 item 12: 10**400 raised OverflowError (the CLI exited 70); a number no float
    can hold is no lifetime: the short default applies."""
    from pkjwt.tokens import DEFAULT_LIFETIME, parse_token_response

    body = json.dumps({"access_token": "t", "token_type": "Bearer", field: value}).encode()
    token = parse_token_response(200, {}, body, now=1000.0)
    assert token.expires_at == pytest.approx(1000.0 + DEFAULT_LIFETIME)


@given(st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10),
                                                                       children, max_size=4),
    max_leaves=20,
))  # fmt: skip
@settings(max_examples=300, deadline=None)
def test_any_json_body_is_a_token_or_a_typed_error(data):
    from pkjwt.errors import PkjwtError
    from pkjwt.tokens import parse_token_response

    for status in (200, 400, 401, 503):
        try:
            body = json.dumps(data).encode()
        except ValueError:
            return
        with contextlib.suppress(PkjwtError):
            parse_token_response(status, {}, body, now=1000.0)
