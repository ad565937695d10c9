"""The token protocol stepped by hand, with no HTTP at all (as httpx tests its auth flows): the
flow yields what it wants done, the test answers, and every decision shows in what comes next.
The loopback-server tests in tests/client run the same flows through real drivers."""

from __future__ import annotations

import email.utils
import json
from collections.abc import Generator
from typing import Any
from urllib.parse import parse_qs

import pytest

from pkjwt import InvalidClient, generate_key
from pkjwt.client_auth import client_auth_for
from pkjwt.decode import decode_compact
from pkjwt.flow import Reply, Send, Sign, Sleep
from pkjwt.profiles import get_profile
from pkjwt.retry import RetryPolicy
from pkjwt.token_flow import EndpointConfig, TokenEndpoint

NOW = 1_700_000_000.0
ISSUER = "https://as.example"
TOKEN_URL = "https://as.example/oauth2/token"
KEY = generate_key("ES256", kid="k1")


def _endpoint(**changes: Any) -> TokenEndpoint:
    settings: dict[str, Any] = {
        "client_id": "c1",
        "token_url": TOKEN_URL,
        "issuer": None,
        "scope": None,
        "resource": (),
        "audience": None,
        "extra_params": {},
        "profile": get_profile("legacy"),
        "default_lifetime": 300.0,
        "retry": RetryPolicy(attempts=3, base=0.5, cap=1.0),
    }
    settings.update(changes)
    return TokenEndpoint(EndpointConfig(**settings), client_auth_for(key=KEY), clock=lambda: NOW)


def _reply(status: int, body: dict[str, Any], **headers: str) -> Reply:
    return Reply(status, headers, json.dumps(body).encode(), NOW, NOW)


def _until_send(flow: Generator[Any, Any, Any], value: Any = None) -> Send:
    """Step ``flow``, signing when asked, until it wants to send a request."""
    action = flow.send(value)
    while isinstance(action, Sign):
        action = flow.send(action.signer.sign(action.data))
    assert isinstance(action, Send), action
    return action


def _assertion(send: Send) -> dict[str, Any]:
    assert send.body is not None
    form = parse_qs(send.body.decode())
    return decode_compact(form["client_assertion"][0]).claims


OK = {"access_token": "at", "token_type": "Bearer", "expires_in": 600}


def test_one_request_one_signature_one_token() -> None:
    flow = _endpoint().token_flow()
    send = _until_send(flow)
    assert (send.method, send.url) == ("POST", TOKEN_URL)
    assert send.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert _assertion(send)["aud"] == TOKEN_URL
    with pytest.raises(StopIteration) as done:
        flow.send(_reply(200, OK))
    assert done.value.value.access_token == "at"


def test_a_503_sleeps_then_retries_with_a_fresh_jti() -> None:
    flow = _endpoint().token_flow()
    first = _until_send(flow)
    sleep = flow.send(_reply(503, {"error": "temporarily_unavailable"}, **{"Retry-After": "1"}))
    assert sleep == Sleep(1.0)
    second = _until_send(flow, None)
    assert _assertion(first)["jti"] != _assertion(second)["jti"]


def test_invalid_client_is_not_retried() -> None:
    flow = _endpoint().token_flow()
    _until_send(flow)
    with pytest.raises(InvalidClient):
        flow.send(_reply(400, {"error": "invalid_client"}))


def test_an_issuer_tries_its_own_aud_then_the_token_url_once() -> None:
    endpoint = _endpoint(issuer=ISSUER, profile=None)
    flow = endpoint.token_flow()
    discovery = flow.send(None)
    assert isinstance(discovery, Send)
    assert discovery.method == "GET"
    metadata = {"issuer": ISSUER, "token_endpoint": TOKEN_URL}
    first = _until_send(flow, _reply(200, metadata))
    assert _assertion(first)["aud"] == ISSUER  # rfc7523bis
    second = _until_send(flow, _reply(400, {"error": "invalid_client"}))
    assert _assertion(second)["aud"] == TOKEN_URL  # legacy, once
    with pytest.raises(StopIteration):
        flow.send(_reply(200, OK))
    assert endpoint.choose_profile() == (get_profile("legacy"), "remembered for this server")


def test_a_clock_skew_in_date_is_corrected_once() -> None:
    endpoint = _endpoint(profile=get_profile("legacy"))
    flow = endpoint.token_flow()
    first = _until_send(flow)
    server_date = email.utils.formatdate(NOW + 120, usegmt=True)  # the server is 2 min ahead
    second = _until_send(
        flow,
        _reply(
            400,
            {"error": "invalid_request", "error_description": "JWT has expired"},
            Date=server_date,
        ),
    )
    assert _assertion(second)["exp"] - _assertion(first)["exp"] == pytest.approx(120, abs=2)
    assert endpoint.clock_offset == pytest.approx(120, abs=2)
