"""Single-flight: however many threads and tasks ask at once, one token request is made."""

from __future__ import annotations

import asyncio
import threading

import anyio
import pytest

LIFETIME = 600
LEEWAY = 30
THREADS = 64
TASKS = 1000


@pytest.fixture
def slow_server(server):
    """Every token response takes ~200 ms, so concurrent callers overlap."""

    def slow(req):
        server.hold(0.2)
        return server.ok()(req)

    server.script = [slow] * 50
    return server


def _in_threads(n, target):
    """Run ``target()`` in ``n`` threads released together; return their results."""
    barrier = threading.Barrier(n)
    results: list = [None] * n
    errors: list[BaseException] = []

    def run(i):
        barrier.wait(timeout=10)
        try:
            results[i] = target()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=20)
    assert not any(t.is_alive() for t in threads), "a caller is stuck"
    assert errors == []
    return results


def _expire(clock, token):
    clock.set(token.expires_at - LEEWAY + 1)


def test_threads_cold_cache_one_request(slow_server, make_client):
    client = make_client()
    tokens = _in_threads(THREADS, client.get_token)
    assert slow_server.token_count == 1
    assert {t.access_token for t in tokens} == {slow_server.issued[0]}
    assert client.manager.fetches == 1


@pytest.mark.anyio
async def test_tasks_cold_cache_one_request(slow_server, make_client):
    client = make_client()
    try:
        tokens = await asyncio.gather(*(client.aget_token() for _ in range(TASKS)))
    finally:
        await client.aclose()
    assert slow_server.token_count == 1
    assert {t.access_token for t in tokens} == {slow_server.issued[0]}


@pytest.mark.anyio
async def test_threads_and_tasks_at_once_one_request(slow_server, make_client):
    client = make_client()
    go = threading.Event()
    results: list = []
    lock = threading.Lock()

    def worker():
        go.wait(10)
        token = client.get_token()
        with lock:
            results.append(token)

    threads = [threading.Thread(target=worker) for _ in range(THREADS)]
    for t in threads:
        t.start()
    try:
        go.set()
        tokens = await asyncio.gather(*(client.aget_token() for _ in range(TASKS)))
        for t in threads:
            await anyio.to_thread.run_sync(t.join, 20)
    finally:
        await client.aclose()
    assert not any(t.is_alive() for t in threads)
    assert slow_server.token_count == 1
    assert len(results) == THREADS
    assert {t.access_token for t in [*tokens, *results]} == {slow_server.issued[0]}


def test_threads_across_expiry_boundary_one_request(slow_server, make_client, clock):
    client = make_client()
    first = client.get_token()
    _expire(clock, first)
    tokens = _in_threads(THREADS, client.get_token)
    assert slow_server.token_count == 2
    assert {t.access_token for t in tokens} == {slow_server.issued[1]}

    # and once more, for a token obtained at the new time
    _expire(clock, tokens[0])
    tokens = _in_threads(THREADS, client.get_token)
    assert slow_server.token_count == 3
    assert {t.access_token for t in tokens} == {slow_server.issued[2]}


@pytest.mark.anyio
async def test_tasks_across_expiry_boundary_one_request(slow_server, make_client, clock):
    client = make_client()
    try:
        first = await client.aget_token()
        _expire(clock, first)
        tokens = await asyncio.gather(*(client.aget_token() for _ in range(TASKS)))
        assert slow_server.token_count == 2
        assert {t.access_token for t in tokens} == {slow_server.issued[1]}
        _expire(clock, tokens[0])
        tokens = await asyncio.gather(*(client.aget_token() for _ in range(TASKS)))
    finally:
        await client.aclose()
    assert slow_server.token_count == 3
    assert {t.access_token for t in tokens} == {slow_server.issued[2]}


def test_threads_share_one_failure(server, make_client, sleeps):
    def slow_fail(_):
        server.hold(0.2)
        return server.error(401, "invalid_client", "no")

    server.script = [slow_fail] * 10
    client = make_client()
    barrier = threading.Barrier(16)
    errors: list[BaseException] = []

    def run():
        barrier.wait(10)
        try:
            client.get_token()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    assert len(errors) == 16
    assert server.token_count == 1


def test_no_caller_waits_on_a_refresh_while_a_valid_token_exists(
    server, make_client, clock, wait_until
):
    client = make_client()
    old = client.get_token()
    gate = server.gate = threading.Event()  # the refresh cannot complete until we say so

    clock.advance(LIFETIME * 0.9)  # after the refresh point, before usable_until
    tokens = _in_threads(THREADS, client.get_token)  # joins every caller (bounded)
    assert not gate.is_set()  # so every caller returned before the refresh could complete
    assert all(t is old for t in tokens)
    server.wait_for_token_requests(2)  # the refresh is in flight, held by the gate

    gate.set()
    wait_until(lambda: client.get_token() is not old, what="the refreshed token")
    assert client.get_token().access_token == server.issued[1]
    assert server.token_count == 2


@pytest.mark.anyio
async def test_no_task_waits_on_a_refresh_while_a_valid_token_exists(server, make_client, clock):
    client = make_client()
    try:
        old = await client.aget_token()
        gate = server.gate = threading.Event()
        clock.advance(LIFETIME * 0.9)
        tokens = await asyncio.gather(*(client.aget_token() for _ in range(TASKS)))
        assert not gate.is_set()
        assert all(t is old for t in tokens)
        gate.set()
        with anyio.fail_after(10):
            while (await client.aget_token()) is old:
                await anyio.sleep(0.01)
    finally:
        await client.aclose()
    assert server.token_count == 2


def test_cancelled_owner_does_not_cancel_other_waiters(server, make_client):
    """One impatient caller (asyncio.wait_for with a short timeout) happens to own the fetch;
    the other callers did not ask to be cancelled and must still get the token."""

    def slow(req):
        server.hold(0.5)
        return server.ok()(req)

    server.script = [slow] * 5
    client = make_client()

    async def main():
        try:
            impatient = asyncio.ensure_future(asyncio.wait_for(client.aget_token(), 0.1))
            await asyncio.sleep(0)  # let it become the owner of the fetch
            patient = [asyncio.ensure_future(client.aget_token()) for _ in range(5)]
            return await asyncio.gather(impatient, *patient, return_exceptions=True)
        finally:
            await client.aclose()

    impatient, *patient = asyncio.run(main())
    assert isinstance(impatient, TimeoutError | asyncio.TimeoutError)
    kinds = [type(r).__name__ for r in patient]
    assert all(not isinstance(r, BaseException) for r in patient), kinds
    assert {r.access_token for r in patient} <= set(server.issued)


def test_cancelled_owner_does_not_fail_waiting_threads(server, make_client):
    def slow(req):
        server.hold(0.5)
        return server.ok()(req)

    server.script = [slow] * 5
    client = make_client()
    results: list = []

    def waiter():
        try:
            results.append(client.get_token())
        except BaseException as exc:
            results.append(exc)

    async def main():
        try:
            owner = asyncio.ensure_future(asyncio.wait_for(client.aget_token(), 0.1))
            await asyncio.sleep(0.02)
            threads = [threading.Thread(target=waiter) for _ in range(4)]
            for t in threads:
                t.start()
            await asyncio.gather(owner, return_exceptions=True)
            for t in threads:
                await anyio.to_thread.run_sync(t.join, 10)
        finally:
            await client.aclose()

    asyncio.run(main())
    kinds = [type(r).__name__ for r in results]
    assert len(results) == 4
    assert all(not isinstance(r, BaseException) for r in results), kinds
