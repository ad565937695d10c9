"""The Redis token store (issue 12), against a real redis-server on a free loopback port: one
token for a fleet of processes, a lease that a dead holder cannot keep, nothing readable in
Redis, a cooldown the fleet honours, and Redis down costing a fetch, never a token."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from pkjwt import TokenClient, generate_key
from pkjwt.errors import ConfigError, RateLimited
from pkjwt.stores import open_token_store
from pkjwt.stores.redis import KEY_ENV, RedisTokenStore, new_store_key
from server.redis_fixture import redis_server

KEY = generate_key("ES256", kid="test-1")
STORE_KEY = new_store_key()
PKJWT_NO_KEY = "needs a key shared by the fleet"


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with redis_server(tmp_path_factory.mktemp("redis-tokens")) as (_, url):
        yield url


@pytest.fixture(autouse=True)
def store_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_ENV, STORE_KEY)


@pytest.fixture
def fresh(redis_url: str) -> str:
    """The URL, with this test's keys only: flush the database first."""
    raw = redis.Redis.from_url(redis_url)
    raw.flushdb()
    raw.close()
    return redis_url


def _client(server, store: object, **options: object) -> TokenClient:
    return TokenClient(
        token_url=server.token_url, client_id="c", key=KEY, profile="legacy", store=store,
        **options,  # type: ignore[arg-type]
    )  # fmt: skip


def _values(url: str) -> list[bytes]:
    raw = redis.Redis.from_url(url)
    try:
        return [raw.get(k) or b"" for k in raw.keys("pkjwt:*")]
    finally:
        raw.close()


def test_a_token_shared_through_redis_is_never_readable_there(server, fresh: str) -> None:
    server.date_clock = time.time
    first = _client(server, fresh).get_token()
    second = _client(server, fresh).get_token()  # another client (process): from Redis
    assert second.access_token == first.access_token
    assert server.token_count == 1
    values = _values(fresh)
    assert values
    assert not any(first.access_token.encode() in v for v in values)


def test_a_store_url_or_store_is_required(server) -> None:
    with pytest.raises(ConfigError) as err:
        _client(server, "redis-but-not-a-url")
    assert "unsupported token store" in err.value.message
    with pytest.raises(ConfigError):
        _client(server, object())
    assert isinstance(open_token_store("memory://"), object)


def test_the_encryption_key_is_required(server, fresh: str, monkeypatch) -> None:
    monkeypatch.delenv(KEY_ENV)
    with pytest.raises(ConfigError) as err:
        _client(server, fresh)
    assert KEY_ENV in (err.value.hint or "")


def test_another_key_reads_nothing(server, fresh: str) -> None:
    server.date_clock = time.time
    _client(server, fresh).get_token()
    other = RedisTokenStore(fresh, key=new_store_key())
    client = _client(server, other)
    client.get_token()
    assert server.token_count == 2  # could not decrypt: a miss, then a fetch


def test_redis_down_costs_a_fetch_and_one_log_line(server, caplog) -> None:
    caplog.set_level(logging.WARNING)
    server.date_clock = time.time
    down = "redis://127.0.0.1:9/0"  # nothing listens on the discard port
    client = _client(server, down)
    for _ in range(3):
        assert client.get_token(force=True).access_token
    assert server.token_count == 3
    said = [r for r in caplog.records if "unavailable" in r.getMessage()]
    assert len(said) == 1, [r.getMessage() for r in caplog.records]


FLEET_MEMBER = """
import json, sys, threading
import pkjwt
from pkjwt.stores.redis import RedisTokenStore
token_url, redis_url, key_file, lease = sys.argv[1:5]
store = RedisTokenStore(redis_url, lease=float(lease))
client = pkjwt.TokenClient(token_url=token_url, client_id="c", key=pkjwt.load_key(key_file),
                           profile="legacy", store=store)
barrier = threading.Barrier(16)
seen = []
def member():
    barrier.wait()
    seen.append(client.get_token().access_token)
threads = [threading.Thread(target=member) for _ in range(16)]
for t in threads: t.start()
for t in threads: t.join()
print(json.dumps(sorted(set(seen))), flush=True)
"""


def _fleet(server, url: str, key_file: Path, members: int, lease: float = 30.0) -> list:
    env = {**os.environ, KEY_ENV: STORE_KEY}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", FLEET_MEMBER, server.token_url, url, str(key_file), str(lease)],
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        for _ in range(members)
    ]
    out = []
    for proc in procs:
        stdout, _ = proc.communicate(timeout=120)
        assert proc.returncode == 0
        out.append(json.loads(stdout))
    return out


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    path = tmp_path / "k.pem"
    path.write_bytes(KEY.private_pem())
    path.chmod(0o600)
    return path


def test_eight_processes_of_sixteen_threads_make_one_request(
    server, fresh: str, key_file: Path
) -> None:
    server.date_clock = time.time
    server.default_expires_in = 4
    tokens = _fleet(server, fresh, key_file, members=8)
    assert server.token_count == 1
    assert {t for member in tokens for t in member} == {server.issued[0]}
    time.sleep(4.5)  # the token expires (in Redis too): the next wave makes one request
    tokens = _fleet(server, fresh, key_file, members=8)
    assert server.token_count == 2
    assert {t for member in tokens for t in member} == {server.issued[1]}
    assert not any(server.issued[1].encode() in v for v in _values(fresh))


def test_a_lease_holder_that_dies_blocks_no_one_beyond_the_lease(
    server, fresh: str, key_file: Path
) -> None:
    server.date_clock = time.time

    def slow(rec):
        server.hold(60)
        return server.ok()(rec)

    server.script = [slow]
    env = {**os.environ, KEY_ENV: STORE_KEY}
    holder = subprocess.Popen(
        [sys.executable, "-c", FLEET_MEMBER, server.token_url, fresh, str(key_file), "2"],
        stdout=subprocess.DEVNULL, env=env,
    )  # fmt: skip
    server.wait_for_token_requests(1, timeout=60)
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait()
    started = time.monotonic()
    [tokens] = _fleet(server, fresh, key_file, members=1, lease=2.0)
    assert server.token_count == 2
    assert tokens == [server.issued[-1]]
    assert time.monotonic() - started < 30  # the lease (2 s), not the dead holder, decided


def test_a_429_seen_by_one_process_is_honoured_by_all(server, fresh: str) -> None:
    server.date_clock = time.time
    server.script = [server.error(429, "rate_limited", "quota", headers={"Retry-After": "30"})]
    with pytest.raises(RateLimited):
        _client(server, fresh, retry=None).get_token()
    sent = server.token_count
    other = _client(server, fresh)  # another process's client, sharing the store
    with pytest.raises(RateLimited) as err:
        other.get_token()
    assert server.token_count == sent  # it did not ask
    assert "another process" in (err.value.hint or "")


def test_redis_stopped_mid_run_leaves_cached_tokens_serving(server, tmp_path: Path) -> None:
    server.date_clock = time.time
    with redis_server(tmp_path) as (proc, url):
        client = _client(server, url)
        token = client.get_token()
        proc.kill()
        proc.wait()
        for _ in range(50):
            assert client.get_token() == token
        assert server.token_count == 1
        # a refresh with Redis gone is a fetch, not an error
        assert client.get_token(force=True).access_token == server.issued[-1]
        assert server.token_count == 2


def test_the_async_client_shares_the_fleet_token(server, fresh: str) -> None:
    import asyncio

    server.date_clock = time.time
    first = _client(server, fresh).get_token()

    async def many() -> set[str]:
        other = _client(server, fresh)  # another process's client: its memory is empty
        tokens = await asyncio.gather(*(other.aget_token() for _ in range(32)))
        return {t.access_token for t in tokens}

    assert asyncio.run(many()) == {first.access_token}
    assert server.token_count == 1


def test_rediss_carries_the_fleet_token_over_tls(server, tmp_path: Path) -> None:
    server.date_clock = time.time
    with redis_server(tmp_path, tls=True) as (_, url):
        assert url.startswith("rediss://")
        first = _client(server, url).get_token()
        assert _client(server, url).get_token() == first  # another process's client: from Redis
        assert server.token_count == 1
        assert not any(first.access_token.encode() in v for v in _values(url))


def test_rediss_without_the_servers_ca_is_a_miss_not_an_outage(
    server, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    server.date_clock = time.time
    with redis_server(tmp_path, tls=True) as (_, url):
        untrusted = url.split("?")[0]  # the certificate is self-signed: no trust without its CA
        assert _client(server, untrusted).get_token().access_token
        assert any("unavailable" in r.getMessage() for r in caplog.records)


def _cli(server, key_file: Path, tmp_path: Path, *extra: str, env: dict[str, str]):
    from click.testing import CliRunner

    from pkjwt.cli.main import cli

    args = ["token", "--token-url", server.token_url, "--client-id", "c", "--key",
            str(key_file), "--profile", "legacy", "--json", *extra]  # fmt: skip
    base = {"PKJWT_CONFIG": str(tmp_path / "none.toml"), "PKJWT_CACHE_DIR": str(tmp_path / "c")}
    return CliRunner().invoke(cli, args, env={**base, **env}, catch_exceptions=False)


def test_the_cli_shares_tokens_through_redis_by_flag_or_variable(
    server, fresh: str, key_file: Path, tmp_path: Path
) -> None:
    server.date_clock = time.time
    first = _cli(server, key_file, tmp_path, "--store", fresh, env={KEY_ENV: STORE_KEY})
    assert first.exit_code == 0, first.stderr
    # another run, on another machine's cache folder: the token comes from Redis
    second = _cli(
        server, key_file, tmp_path / "other", env={KEY_ENV: STORE_KEY, "PKJWT_STORE": fresh}
    )
    assert second.exit_code == 0, second.stderr
    assert json.loads(second.stdout)["access_token"] == json.loads(first.stdout)["access_token"]
    assert json.loads(second.stdout)["cached"] is True
    assert server.token_count == 1


@pytest.mark.parametrize(
    ("store", "said"),
    [("postgres://db/x", "token store"), ("redis://:hunter2@127.0.0.1:9/0", PKJWT_NO_KEY)],
)
def test_the_cli_refuses_a_store_it_cannot_use_in_one_line(
    server, key_file: Path, tmp_path: Path, store: str, said: str
) -> None:
    result = _cli(server, key_file, tmp_path, "--store", store, env={KEY_ENV: ""})
    assert result.exit_code == 2
    assert "Traceback" not in result.output
    assert said in result.stderr
    assert "hunter2" not in result.output + result.stderr
    assert server.token_count == 0
