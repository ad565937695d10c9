"""Auth adapters against the scripted /api: bearer attached, renew once and resend once on 401."""

from __future__ import annotations

import httpx
import pytest
import requests

from pkjwt import HttpxAuth
from pkjwt.integrations.requests import RequestsAuth


def _bearer(req):
    return req.headers.get("authorization")


# -- httpx (sync) --------------------------------------------------------------------------------


def test_httpx_attaches_bearer(server, make_client):
    client = make_client()
    with httpx.Client(auth=HttpxAuth(client)) as http:
        first = http.get(server.api_url)
        second = http.get(server.api_url)
    assert first.status_code == 200
    assert second.status_code == 200
    assert first.json()["hello"] == "world"
    token = server.issued[0]
    assert [_bearer(r) for r in server.api_requests] == [f"Bearer {token}"] * 2
    assert server.token_count == 1


def test_httpx_renews_once_on_401(server, make_client):
    client = make_client()
    old = client.get_token()
    server.revoked.add(old.access_token)
    with httpx.Client(auth=HttpxAuth(client)) as http:
        response = http.get(server.api_url)
    assert response.status_code == 200
    assert server.token_count == 2
    api = server.api_requests
    assert [_bearer(r) for r in api] == [f"Bearer {old.access_token}", f"Bearer {server.issued[1]}"]
    # the renewed token is now the cached one
    assert client.get_token().access_token == server.issued[1]


def test_httpx_second_401_is_returned_not_looped(server, make_client):
    server.api_always_401 = True
    client = make_client()
    with httpx.Client(auth=HttpxAuth(client)) as http:
        response = http.get(server.api_url)
    assert response.status_code == 401
    assert server.token_count == 2
    assert len(server.api_requests) == 2


def test_httpx_resend_keeps_method_and_body(server, make_client):
    client = make_client()
    server.revoked.add(client.get_token().access_token)
    with httpx.Client(auth=HttpxAuth(client)) as http:
        response = http.post(server.api_url, content=b'{"x": 1}')
    assert response.status_code == 200
    assert [(r.method, r.body) for r in server.api_requests] == [("POST", b'{"x": 1}')] * 2


def test_httpx_no_retry_when_disabled(server, make_client):
    server.api_always_401 = True
    with httpx.Client(auth=HttpxAuth(make_client(), retry_on_401=False)) as http:
        assert http.get(server.api_url).status_code == 401
    assert server.token_count == 1
    assert len(server.api_requests) == 1


# -- httpx (async) -------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_httpx_async_attaches_bearer_and_renews_once(server, make_client):
    client = make_client()
    try:
        async with httpx.AsyncClient(auth=HttpxAuth(client)) as http:
            ok = await http.get(server.api_url)
            assert ok.status_code == 200
            assert _bearer(server.api_requests[0]) == f"Bearer {server.issued[0]}"

            server.revoked.add(server.issued[0])
            renewed = await http.get(server.api_url)
            assert renewed.status_code == 200
            assert server.token_count == 2
            assert _bearer(server.api_requests[-1]) == f"Bearer {server.issued[1]}"

            server.api_always_401 = True
            denied = await http.get(server.api_url)
    finally:
        await client.aclose()
    assert denied.status_code == 401
    assert server.token_count == 3
    assert len(server.api_requests) == 3 + 2


# -- requests ------------------------------------------------------------------------------------


def test_requests_attaches_bearer(server, make_client):
    with requests.Session() as session:
        session.auth = RequestsAuth(make_client())
        response = session.get(server.api_url, timeout=10)
    assert response.status_code == 200
    assert _bearer(server.api_requests[0]) == f"Bearer {server.issued[0]}"
    assert server.token_count == 1


def test_requests_renews_once_on_401(server, make_client):
    client = make_client()
    old = client.get_token()
    server.revoked.add(old.access_token)
    with requests.Session() as session:
        session.auth = RequestsAuth(client)
        response = session.get(server.api_url, timeout=10)
    assert response.status_code == 200
    assert response.json()["hello"] == "world"
    assert server.token_count == 2
    assert [_bearer(r) for r in server.api_requests] == [
        f"Bearer {old.access_token}",
        f"Bearer {server.issued[1]}",
    ]
    assert [r.status_code for r in response.history] == [401]


def test_requests_second_401_is_returned_not_looped(server, make_client):
    server.api_always_401 = True
    with requests.Session() as session:
        session.auth = RequestsAuth(make_client())
        response = session.get(server.api_url, timeout=10)
    assert response.status_code == 401
    assert server.token_count == 2
    assert len(server.api_requests) == 2


def test_requests_plain_call_with_auth(server, make_client):
    response = requests.post(
        server.api_url, data=b"payload", auth=RequestsAuth(make_client()), timeout=10
    )
    assert response.status_code == 200
    assert server.api_requests[0].body == b"payload"


# -- httpx2 --------------------------------------------------------------------------------------


def test_httpx2_attaches_bearer(server, make_client):
    httpx2 = pytest.importorskip("httpx2")
    from pkjwt.integrations.httpx2 import Httpx2Auth

    client = make_client()
    with httpx2.Client(auth=Httpx2Auth(client)) as http:
        response = http.get(server.api_url)
    assert response.status_code == 200
    assert _bearer(server.api_requests[0]) == f"Bearer {server.issued[0]}"


def test_httpx2_renews_once_on_401(server, make_client):
    httpx2 = pytest.importorskip("httpx2")
    from pkjwt.integrations.httpx2 import Httpx2Auth

    client = make_client()
    server.revoked.add(client.get_token().access_token)
    with httpx2.Client(auth=Httpx2Auth(client)) as http:
        response = http.get(server.api_url)
    assert response.status_code == 200
    assert server.token_count == 2
    assert len(server.api_requests) == 2


def test_concurrent_401s_renew_the_token_once(server, make_client):
    """Many requests fail with the same revoked token at once: one renewal, not one each."""
    import threading

    client = make_client()
    old = client.get_token()
    server.revoked.add(old.access_token)
    barrier = threading.Barrier(16)
    statuses: list[int] = []

    with httpx.Client(auth=HttpxAuth(client)) as http:

        def call():
            barrier.wait(10)
            statuses.append(http.get(server.api_url).status_code)

        threads = [threading.Thread(target=call) for _ in range(16)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(20)
    assert statuses == [200] * 16
    assert server.token_count == 2


@pytest.mark.anyio
async def test_concurrent_async_401s_renew_the_token_once(server, make_client):
    import asyncio

    client = make_client()
    try:
        old = await client.aget_token()
        server.revoked.add(old.access_token)
        async with httpx.AsyncClient(auth=HttpxAuth(client)) as http:
            responses = await asyncio.gather(*(http.get(server.api_url) for _ in range(50)))
    finally:
        await client.aclose()
    assert [r.status_code for r in responses] == [200] * 50
    assert server.token_count == 2
