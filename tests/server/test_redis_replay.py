"""The Redis replay store against a real redis-server: atomic, shared, expiring, fail-closed."""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

import httpx
import pytest
import redis

from pkjwt.errors import ConfigError
from pkjwt.forge import sign
from pkjwt.keys import Key, jwks
from pkjwt.server.app import create_app
from pkjwt.server.config import parse_config
from pkjwt.server.replay import RedisReplayStore, describe_store, open_replay_store
from pkjwt.server.run import run_in_thread

from .conftest import JWT_BEARER
from .redis_fixture import redis_server


@pytest.fixture
def store(redis_url: str) -> RedisReplayStore:
    s = open_replay_store(redis_url)
    assert isinstance(s, RedisReplayStore)
    s.prefix = f"test:{time.time_ns()}:"  # each test its own keyspace on the shared server
    yield s
    s.close()


def test_insert_if_absent_per_client(store: RedisReplayStore) -> None:
    until = time.time() + 60
    assert store.add("c", "j", until)
    assert not store.add("c", "j", until)
    assert store.add("other", "j", until)


def test_the_key_is_a_digest_that_expires_with_the_pair(
    store: RedisReplayStore, redis_url: str
) -> None:
    until = time.time() + 60
    assert store.add("c", "j", until)
    raw = redis.Redis.from_url(redis_url)
    [key] = raw.keys(store.prefix + "*")
    assert abs(raw.pexpiretime(key) - until * 1000) < 1000
    assert b"j" not in key.removeprefix(store.prefix.encode())  # a digest, not the jti
    digest = hashlib.sha256(b"1:cj").hexdigest().encode()
    assert key == store.prefix.encode() + digest
    raw.close()


def test_an_expired_pair_may_be_used_again(store: RedisReplayStore) -> None:
    assert store.add("c", "short", time.time() + 0.05)
    time.sleep(0.2)
    assert store.add("c", "short", time.time() + 60)


def test_two_servers_on_one_redis_share_the_window(store: RedisReplayStore, redis_url: str) -> None:
    other = RedisReplayStore(redis_url, prefix=store.prefix)
    until = time.time() + 60
    assert store.add("c", "once", until)
    assert not other.add("c", "once", until)
    other.close()


@pytest.mark.parametrize(
    "url",
    [
        "redis://:hunter2@127.0.0.1:1/0",
        "redis://:hun/ter2@127.0.0.1:1/0",  # / ? # in a password end a URL parser's authority
        "redis://:hun?ter2@127.0.0.1:1/0",
        "redis://:hun#ter2@127.0.0.1:1/0",
        "redis://user:hunter2@[::1/0",  # not even a valid URL
    ],
)
def test_a_redis_that_is_not_there_fails_at_start_without_the_password(url: str) -> None:
    with pytest.raises(ConfigError) as err:
        open_replay_store(url)
    shown = str(err.value) + (err.value.hint or "")
    assert "hunter2" not in shown
    assert "ter2" not in shown
    assert "***@" in str(err.value)


def test_the_ttl_comes_from_this_servers_clock(redis_url: str) -> None:
    # a Redis clock running ahead must not shorten the window: PX from our clock, not PXAT
    store = RedisReplayStore(redis_url, clock=lambda: 1_000.0)
    store.prefix = f"test:{time.time_ns()}:"
    assert store.add("c", "j", 1_060.0)
    raw = redis.Redis.from_url(redis_url)
    [key] = raw.keys(store.prefix + "*")
    assert 59_000 < raw.pttl(key) <= 60_000
    raw.close()
    store.close()


def test_the_store_is_described_without_the_password(redis_url: str) -> None:
    s = RedisReplayStore(redis_url.replace("redis://", "redis://:pw@"), client=object())
    assert describe_store(s) == (
        f"redis {redis_url.replace('redis://', 'redis://***@')} (shared by every server using it)"
    )


def _server_config(es256_key: Key, store: str) -> object:
    return parse_config(
        {
            "issuer": "http://pkjwt.test",  # one issuer for both servers: one aud fits both
            "profile": "rfc7523bis",
            "replay_store": store,
            "clients": [{"client_id": "c1", "jwks": jwks([es256_key.public()])}],
        }
    )


def _form(es256_key: Key, jti: str) -> dict[str, str]:
    now = int(time.time())
    assertion = sign(
        es256_key,
        {"alg": "ES256", "kid": es256_key.kid, "typ": "client-authentication+jwt"},
        {"iss": "c1", "sub": "c1", "aud": "http://pkjwt.test", "jti": jti, "iat": now,
         "exp": now + 60},
    )  # fmt: skip
    return {
        "grant_type": "client_credentials",
        "client_assertion_type": JWT_BEARER,
        "client_assertion": assertion,
    }


def test_a_replay_sent_to_a_second_server_is_refused(
    es256_key: Key, redis_url: str, tmp_path: Path
) -> None:
    config = _server_config(es256_key, redis_url)
    form = _form(es256_key, f"shared-{time.time_ns()}")
    with run_in_thread(config) as a, run_in_thread(config) as b:
        first = httpx.post(a.base_url + "/oauth2/token", data=form, timeout=30)
        second = httpx.post(b.base_url + "/oauth2/token", data=form, timeout=30)
    assert first.status_code == 200, first.text
    assert second.status_code == 400
    assert second.json()["error_description"].startswith("R19 ")


def test_redis_gone_mid_run_answers_503_and_accepts_nothing(es256_key: Key) -> None:
    dead = redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.5)
    store = RedisReplayStore("redis://127.0.0.1:1/0", client=dead)
    config = _server_config(es256_key, "memory://")
    app = create_app(config, replay=store)

    async def go() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://pkjwt.test") as c:
            return await c.post("/oauth2/token", data=_form(es256_key, "j"))

    import asyncio

    response = asyncio.run(go())
    assert response.status_code == 503
    assert response.headers["retry-after"] == "1"
    assert response.json()["error"] == "temporarily_unavailable"


def test_a_redis_password_stays_out_of_the_config_repr() -> None:
    config = parse_config({"replay_store": "redis://:hunter2@127.0.0.1:6379/0"})
    assert "hunter2" not in repr(config)


def test_a_redis_without_persistence_is_named_at_start(
    redis_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Issue 10 item 9: the tests' redis-server runs with no RDB and no AOF, so a restart would
    forget every jti; the server says so when it opens the store, and in its start banner."""
    import logging

    caplog.set_level(logging.WARNING, logger="pkjwt.server")
    store = RedisReplayStore(redis_url)
    try:
        assert store.persistent is False
        assert "no persistence" in describe_store(store)
        assert any("has no persistence" in r.getMessage() for r in caplog.records)
    finally:
        store.close()


def test_a_redis_with_an_append_only_file_is_persistent(tmp_path: Path) -> None:
    with redis_server(tmp_path) as (_, url):
        raw = redis.Redis.from_url(url)
        raw.config_set("appendonly", "yes")
        raw.close()
        store = RedisReplayStore(url)
        assert store.persistent is True
        assert "no persistence" not in describe_store(store)
        store.close()


def test_rediss_records_over_tls_in_both_forms(tmp_path: Path) -> None:
    import asyncio

    with redis_server(tmp_path, tls=True) as (_, url):
        store = open_replay_store(url)
        assert isinstance(store, RedisReplayStore)
        until = time.time() + 60
        try:
            assert store.add("c", "sync", until)
            assert not store.add("c", "sync", until)

            async def twice() -> tuple[bool, bool]:
                try:
                    return await store.aadd("c", "async", until), await store.aadd(
                        "c", "async", until
                    )
                finally:
                    await store.aclose()

            assert asyncio.run(twice()) == (True, False)
            assert not store.add("c", "async", until)  # one window for both forms
        finally:
            store.close()
