"""TokenManager through TokenClient: caching, cache keys, early background refresh,
serve-stale-on-error, and never handing out a token past expires_at - leeway."""

from __future__ import annotations

import threading

import pytest

from pkjwt import TokenManager
from pkjwt.errors import KeyLoadError, ServerError
from pkjwt.keys import generate_key

LIFETIME = 600
LEEWAY = 30  # TokenManager's default, at most 10% of the lifetime


def _refresh_threads_done() -> bool:
    return not any(t.name == "pkjwt-refresh" and t.is_alive() for t in threading.enumerate())


def test_second_get_token_makes_no_request(server, make_client):
    client = make_client()
    first = client.get_token()
    for _ in range(5):
        assert client.get_token() is first
    assert server.token_count == 1


@pytest.mark.anyio
async def test_sync_and_async_share_the_cache(server, make_client):
    client = make_client()
    try:
        first = await client.aget_token()
        assert client.get_token() is first
        assert await client.aget_token() is first
    finally:
        await client.aclose()
    assert server.token_count == 1


def test_cache_key_differs_by_scope(server, make_client, clock):
    shared = TokenManager(clock=clock)
    reader = make_client(scope="read", manager=shared)
    writer = make_client(scope="write", manager=shared)
    twin = make_client(scope="read", manager=shared)

    r, w = reader.get_token(), writer.get_token()
    assert r.access_token != w.access_token
    assert server.token_count == 2
    assert [req.form["scope"] for req in server.token_requests] == [["read"], ["write"]]
    # same settings, same manager: the same cached token
    assert twin.get_token() is r
    assert reader.get_token() is r
    assert writer.get_token() is w
    assert server.token_count == 2


def test_force_renews(server, make_client):
    client = make_client()
    first = client.get_token()
    renewed = client.get_token(force=True, stale=first)
    assert renewed.access_token != first.access_token
    assert client.get_token() is renewed
    assert server.token_count == 2


def test_invalidate_forgets(server, make_client):
    client = make_client()
    first = client.get_token()
    client.invalidate()
    assert client.get_token().access_token != first.access_token
    assert server.token_count == 2


def test_background_refresh_after_refresh_point(server, make_client, clock, wait_until):
    client = make_client()
    old = client.get_token()
    assert server.token_count == 1

    clock.advance(LIFETIME * 0.86)  # past the latest refresh point (85%), before usable_until
    assert client.get_token() is old  # served immediately
    server.wait_for_token_requests(2)
    wait_until(lambda: client.get_token() is not old, what="the refreshed token")
    new = client.get_token()
    assert new.access_token == server.issued[1]
    assert new.obtained_at == clock()
    assert server.token_count == 2


@pytest.mark.anyio
async def test_async_background_refresh_after_refresh_point(server, make_client, clock):
    import anyio

    client = make_client()
    try:
        old = await client.aget_token()
        clock.advance(LIFETIME * 0.86)
        assert await client.aget_token() is old
        with anyio.fail_after(10):
            while (await client.aget_token()) is old:
                await anyio.sleep(0.01)
        assert (await client.aget_token()).access_token == server.issued[1]
    finally:
        await client.aclose()
    assert server.token_count == 2


def test_failed_background_refresh_serves_old_token_until_expiry(
    server, make_client, clock, wait_until
):
    client = make_client()
    old = client.get_token()
    server.script = [(500, {}, "down")] * 20

    clock.advance(LIFETIME * 0.86)
    assert client.get_token() is old
    server.wait_for_token_requests(1 + 3)  # the background refresh retried, then gave up
    wait_until(_refresh_threads_done, what="the background refresh to finish")

    # still inside the usable window: the old token keeps serving
    clock.advance(LIFETIME * 0.05)
    assert client.get_token() is old
    assert client.manager.peek(client.cache_key) is old

    # past expires_at - leeway: no more old token; the foreground fetch fails loudly
    clock.set(old.expires_at - LEEWAY)
    with pytest.raises(ServerError):
        client.get_token()
    assert client.manager.peek(client.cache_key) is None
    wait_until(_refresh_threads_done, what="background refreshes")


@pytest.mark.parametrize("lifetime", [600, 100, 20])
def test_token_never_handed_out_after_expiry_minus_leeway(server, make_client, clock, lifetime):
    server.default_expires_in = lifetime
    client = make_client()
    old = client.get_token()
    leeway = min(LEEWAY, lifetime * 0.1)

    clock.set(old.expires_at - leeway)
    assert client.manager.peek(client.cache_key) is None
    fresh = client.get_token()
    assert fresh.access_token != old.access_token
    assert fresh.expires_at - leeway > clock()


@pytest.mark.anyio
async def test_async_token_never_handed_out_after_expiry_minus_leeway(server, make_client, clock):
    client = make_client()
    try:
        old = await client.aget_token()
        clock.set(old.expires_at - LEEWAY)
        fresh = await client.aget_token()
    finally:
        await client.aclose()
    assert fresh.access_token != old.access_token


def test_just_before_usable_until_the_old_token_is_served(server, make_client, clock, wait_until):
    server.gate = threading.Event()  # keep the background refresh in flight
    client = make_client()
    server.gate.set()
    old = client.get_token()
    server.gate.clear()
    clock.set(old.expires_at - LEEWAY - 0.001)
    assert client.get_token() is old
    server.gate.set()
    wait_until(_refresh_threads_done, what="the background refresh to finish")


def test_cache_key_differs_by_resource(server, make_client, clock):
    shared = TokenManager(clock=clock)
    a = make_client(resource="urn:api:a", manager=shared).get_token()
    b = make_client(resource="urn:api:b", manager=shared).get_token()
    assert a.access_token != b.access_token
    assert server.token_count == 2


def test_cache_key_differs_by_extra_params(server, make_client, clock):
    """extra_params go into the token request (e.g. Auth0's audience=), so they change the
    token: clients that differ only there must not share a cached token."""
    shared = TokenManager(clock=clock)
    a = make_client(extra_params={"audience": "https://api-a"}, manager=shared).get_token()
    b = make_client(extra_params={"audience": "https://api-b"}, manager=shared).get_token()
    assert [r.form["audience"] for r in server.token_requests][:1] == [["https://api-a"]]
    assert server.token_count == 2, "the second client got the first client's token"
    assert a.access_token != b.access_token


def test_cache_key_differs_by_credential(server, make_client, clock):
    """Another key (or kid) must sign and fetch, not reuse the token the old key got: a CI
    check "does my new key work?" must not pass on a cached token."""
    shared = TokenManager(clock=clock)
    first = make_client(manager=shared).get_token()
    assert make_client(manager=shared).get_token() is first  # same credential: cached
    make_client(key=generate_key("RS512", size=2048, kid="other"), manager=shared).get_token()
    make_client(kid="renamed", manager=shared).get_token()
    assert server.token_count == 3


def test_secrets_never_appear_in_cache_keys(make_client, drop):
    client = make_client(
        key=drop, auth_method="client_secret_basic", client_secret="s3cret-value", profile=drop
    )
    assert "s3cret-value" not in repr(client.cache_key)


def test_a_public_key_is_refused_before_the_cache_is_consulted(make_client, nhs_key):
    with pytest.raises(KeyLoadError, match="is a public key; signing needs the private key"):
        make_client(key=nhs_key.public())
