"""Retries: which failures are retried, how long the client waits, fresh jti per attempt."""

from __future__ import annotations

import socket

import httpx
import pytest

from pkjwt.errors import (
    InvalidClient,
    InvalidRequest,
    RateLimited,
    ServerError,
    TransportError,
    UnauthorizedClient,
)
from pkjwt.retry import RetryPolicy

QUOTA = (
    "Your application, Test App, has exceeded its quota of 300 requests every 1 minute(s) "
    "and is being rate limited."
)


def test_503_twice_then_200(server, make_client, sleeps):
    server.script = [
        server.error(503, "temporarily_unavailable", "try later"),
        (503, {"Content-Type": "text/plain"}, "Service Unavailable"),
    ]
    token = make_client().get_token()
    assert token.access_token == server.issued[0]
    assert server.token_count == 3
    assert len(sleeps.calls) == 2
    assert all(0 <= s <= 10 for s in sleeps.calls)


def test_every_attempt_has_a_fresh_jti(server, make_client):
    server.script = [
        (503, {}, "busy"),
        (502, {}, "bad gateway"),
    ]
    make_client().get_token()
    jtis = [r.claims["jti"] for r in server.token_requests]
    assert len(jtis) == 3
    assert len(set(jtis)) == 3
    # and every attempt is a complete, freshly signed assertion
    assert len({r.raw_assertion for r in server.token_requests}) == 3


@pytest.mark.anyio
async def test_every_async_attempt_has_a_fresh_jti(server, make_client, sleeps):
    server.script = [(503, {}, "busy"), (500, {}, "oops")]
    client = make_client()
    try:
        token = await client.aget_token()
    finally:
        await client.aclose()
    assert token.access_token == server.issued[0]
    assert len({r.claims["jti"] for r in server.token_requests}) == 3
    assert len(sleeps.calls) == 2


def test_429_retry_after_is_honoured(server, make_client, sleeps):
    server.script = [
        (429, {"Retry-After": "7"}, {"error": "rate_limited", "error_description": QUOTA})
    ]
    token = make_client().get_token()
    assert token.access_token == server.issued[0]
    assert sleeps.calls == [7]
    assert server.token_count == 2


def test_429_retry_after_http_date(server, make_client, sleeps, clock):
    import email.utils

    when = email.utils.formatdate(clock() + 12, usegmt=True)
    server.script = [(429, {"Retry-After": when}, QUOTA)]
    make_client().get_token()
    assert sleeps.calls == [pytest.approx(12, abs=1)]


def test_retry_after_longer_than_policy_allows_ends_retries(server, make_client, sleeps):
    server.script = [(429, {"Retry-After": "3600"}, QUOTA)]
    with pytest.raises(RateLimited) as info:
        make_client().get_token()
    assert info.value.retry_after == 3600
    assert sleeps.calls == []
    assert server.token_count == 1


def test_invalid_client_is_not_retried(server, make_client, sleeps):
    server.script = [server.error(401, "invalid_client", "unknown kid")]
    with pytest.raises(InvalidClient) as info:
        make_client(profile="nhs").get_token()
    assert info.value.status == 401
    assert server.token_count == 1
    assert sleeps.calls == []


@pytest.mark.parametrize(
    ("error", "cls"),
    [("invalid_request", InvalidRequest), ("unauthorized_client", UnauthorizedClient)],
)
def test_client_errors_are_not_retried(server, make_client, sleeps, error, cls):
    server.script = [server.error(400 if error == "invalid_request" else 401, error, "no")]
    with pytest.raises(cls):
        make_client().get_token()
    assert server.token_count == 1
    assert sleeps.calls == []


def _closed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_connection_refused_is_transport_error_after_three_attempts(make_client, sleeps):
    url = f"http://127.0.0.1:{_closed_port()}/oauth2/token"
    attempts: list[httpx.Request] = []
    http = httpx.Client(event_hooks={"request": [attempts.append]})
    try:
        with pytest.raises(TransportError) as info:
            make_client(token_url=url, http_client=http).get_token()
    finally:
        http.close()
    assert len(attempts) == 3
    assert len(sleeps.calls) == 2
    assert "cannot connect" in info.value.message
    assert info.value.hint


def test_timeout_is_transport_error(server, make_client, sleeps):
    def slow(_):
        server.hold(3)
        return 200, {}, server.token("late")

    server.script = [slow, slow, slow]
    # the flow's clock is the fake one: the timeout bounds each attempt here, and the waits
    # (kept short) fit the budget, so all three attempts run (tests/adversarial has the real
    # clock, where the first attempt spends the whole budget)
    with pytest.raises(TransportError) as info:
        make_client(timeout=0.5, retry=RetryPolicy(attempts=3, base=0.01)).get_token()
    assert "timed out" in info.value.message
    assert info.value.hint
    assert server.token_count == 3
    assert len(sleeps.calls) == 2


def test_retries_exhausted_on_503_is_server_error(server, make_client, sleeps):
    server.script = [(503, {}, "down")] * 5
    with pytest.raises(ServerError) as info:
        make_client().get_token()
    assert info.value.status == 503
    assert server.token_count == 3
    assert len(sleeps.calls) == 2


def test_retry_policy_attempts_is_respected(server, make_client, sleeps):
    server.script = [(500, {}, "down")] * 10
    with pytest.raises(ServerError):
        make_client(retry=RetryPolicy(attempts=5)).get_token()
    assert server.token_count == 5
    assert len(sleeps.calls) == 4


def test_async_client_works_in_a_second_event_loop(server, make_client):
    """A long-lived TokenClient used from two asyncio.run() calls (scripts, per-request loops,
    test frameworks): the second loop's fetch must not reuse the first loop's connections."""
    import asyncio

    client = make_client()

    async def fetch():
        return await client.aget_token()

    first = asyncio.run(fetch())
    client.invalidate()  # as if the token had expired
    try:
        second = asyncio.run(fetch())
    except RuntimeError as exc:
        pytest.fail(f"second event loop: {exc!r}")
    assert second.access_token != first.access_token
    assert server.token_count == 2
