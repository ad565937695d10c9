"""``pkjwt serve --workers N`` and several servers on one Redis: one replay window for all.

Real processes on a free loopback port, real SQLite and a real redis-server; a replayed
assertion sent to every worker at once must be accepted exactly once.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlencode, urlsplit

import httpx
import jwt as pyjwt
import pytest

from pkjwt import AssertionFactory
from pkjwt.errors import ConfigError
from pkjwt.keys import Key, jwks
from pkjwt.server.config import parse_config
from pkjwt.server.run import check_workers

from .conftest import JWT_BEARER
from .redis_fixture import redis_url  # noqa: F401 - a fixture

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def _config(tmp_path: Path, key: Key, replay_store: str, name: str = "server.toml") -> Path:
    path = tmp_path / name
    path.write_text(
        f'replay_store = "{replay_store}"\ntoken_format = "jwt"\n'
        '[[clients]]\nclient_id = "c1"\n'
        f"jwks = {json.dumps(json.dumps(jwks([key.public()])))}\n"
    )
    return path


def _start(config: Path, *extra: str) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "pkjwt", "serve", "--config", str(config), "--port", "0",
         "--log-level", "warning", *extra],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    assert proc.stderr is not None
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if line.strip().startswith("issuer"):
            issuer = line.split()[-1]
            _wait_ready(issuer)
            return proc, issuer
        if not line and proc.poll() is not None:
            break
    proc.kill()
    raise AssertionError("pkjwt serve printed no issuer")


def _wait_ready(issuer: str) -> None:
    deadline = time.monotonic() + 60
    said = "no answer"
    while time.monotonic() < deadline:
        try:
            reply = httpx.get(issuer + "/health", timeout=1)
            if reply.status_code == 200:
                return
            said = f"{reply.status_code} {reply.text}"
        except httpx.TransportError as exc:
            said = repr(exc)
        time.sleep(0.05)
    raise AssertionError(f"no healthy /health: {said}")


def _stop(proc: subprocess.Popen[str]) -> str:
    proc.terminate()
    _, stderr = proc.communicate(timeout=30)
    return stderr


def _workers_seen(issuer: str, want: int, tries: int = 200) -> set[int]:
    seen: set[int] = set()
    for _ in range(tries):
        with httpx.Client(timeout=10) as client:
            seen.add(client.get(issuer + "/health").json()["worker"])
        if len(seen) == want:
            break
    return seen


def _replay_everywhere(urls: list[str], assertion: str, copies: int) -> list[int]:
    """``copies`` submissions of one assertion, each on a connection of its own (so the kernel
    spreads them over the workers), up to 100 at once, round-robin over ``urls``."""
    body = urlencode(
        {
            "grant_type": "client_credentials",
            "client_assertion_type": JWT_BEARER,
            "client_assertion": assertion,
        }
    ).encode()

    async def one(url: str, gate: asyncio.Semaphore) -> int:
        parts = urlsplit(url)
        async with gate:
            reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
            writer.write(
                f"POST {parts.path} HTTP/1.1\r\nHost: {parts.netloc}\r\nConnection: close\r\n"
                "Content-Type: application/x-www-form-urlencoded\r\n"
                f"Content-Length: {len(body)}\r\n\r\n".encode()
                + body
            )
            await writer.drain()
            reply = await asyncio.wait_for(reader.read(), 60)
            writer.close()
        return int(reply.split(b" ", 2)[1])

    async def all_of_them() -> list[int]:
        gate = asyncio.Semaphore(100)
        return await asyncio.gather(*(one(urls[i % len(urls)], gate) for i in range(copies)))

    return asyncio.run(all_of_them())


# -- the refusal ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("store", "what"),
    [("memory://", "memory://"), ("sqlite:///", "writes behind")],
)
def test_workers_refuse_a_replay_window_per_process(store: str, what: str) -> None:
    with pytest.raises(ConfigError) as caught:
        check_workers(parse_config({"replay_store": store}), 4)
    assert what in str(caught.value)
    assert "commit_interval=0" in (caught.value.hint or "")


@pytest.mark.parametrize("store", ["sqlite:///x.db?commit_interval=0", "redis://127.0.0.1:1/0"])
def test_workers_accept_a_shared_replay_window(store: str) -> None:
    check_workers(parse_config({"replay_store": store}), 4)
    check_workers(parse_config({"replay_store": "memory://"}), 1)


def test_serve_workers_refusal_is_a_cli_error_not_a_traceback(tmp_path: Path, es256_key: Key):
    config = _config(tmp_path, es256_key, "memory://")
    done = subprocess.run(
        [sys.executable, "-m", "pkjwt", "serve", "--config", str(config), "--port", "0",
         "--workers", "2"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode != 0
    assert "Traceback" not in done.stderr
    assert "a replay sent to another worker would be accepted" in done.stderr
    assert "commit_interval=0" in done.stderr


# -- real processes ------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["sqlite", "redis"])
def test_two_workers_accept_a_replayed_assertion_once(
    tmp_path: Path, es256_key: Key, kind: str, request: pytest.FixtureRequest
) -> None:
    if kind == "sqlite":
        store = f"sqlite:///{tmp_path / 'replay.db'}?commit_interval=0"
    else:
        store = request.getfixturevalue("redis_url")
    proc, issuer = _start(_config(tmp_path, es256_key, store), "--workers", "2")
    try:
        assert len(_workers_seen(issuer, 2)) == 2, "the kernel gave every connection to one worker"
        factory = AssertionFactory(es256_key, client_id="c1", profile="rfc7523bis", issuer=issuer)
        statuses = _replay_everywhere([issuer + "/oauth2/token"], factory.make(), 1000)
        assert statuses.count(200) == 1
        assert set(statuses) == {200, 400}

        # one signing key for all: a token from any worker verifies against any worker's JWKS
        tokens = []
        for _ in range(20):
            with httpx.Client(timeout=10) as client:
                reply = client.post(
                    issuer + "/oauth2/token",
                    data={
                        "grant_type": "client_credentials",
                        "client_assertion_type": JWT_BEARER,
                        "client_assertion": factory.make(),
                    },
                )
            assert reply.status_code == 200
            tokens.append(reply.json()["access_token"])
        keys = {json.dumps(httpx.get(issuer + "/jwks", timeout=10).json()) for _ in range(20)}
        assert len(keys) == 1
        jwk_set = pyjwt.PyJWKSet.from_dict(json.loads(keys.pop()))
        for token in tokens:
            kid = pyjwt.get_unverified_header(token)["kid"]
            key = next(k for k in jwk_set.keys if k.key_id == kid)
            pyjwt.decode(token, key.key, algorithms=[key.algorithm_name], audience=None,
                         options={"verify_aud": False})  # fmt: skip
    finally:
        stderr = _stop(proc)
    assert "Traceback" not in stderr


def test_two_servers_on_one_redis_accept_a_replayed_assertion_once(
    tmp_path: Path,
    es256_key: Key,
    redis_url: str,  # noqa: F811 - the fixture
) -> None:
    config = _config(tmp_path, es256_key, redis_url)
    issuer = "https://auth.fleet.test"
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    # both servers must accept the same aud: one issuer for the fleet, as behind a load balancer
    text = config.read_text()
    config.write_text(f'issuer = "{issuer}"\n' + text)
    first, url_a = _start_at(config)
    second, url_b = _start_at(config)
    try:
        factory = AssertionFactory(es256_key, client_id="c1", profile="rfc7523bis", issuer=issuer)
        statuses = _replay_everywhere(
            [url_a + "/oauth2/token", url_b + "/oauth2/token"], factory.make(), 1000
        )
        assert statuses.count(200) == 1
        assert set(statuses) == {200, 400}
    finally:
        _stop(first)
        _stop(second)


def _start_at(config: Path) -> tuple[subprocess.Popen[str], str]:
    """Start a server whose issuer is fixed by the config: find its port from /health."""
    from .conftest import free_port

    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "pkjwt", "serve", "--config", str(config), "--port", str(port),
         "--log-level", "warning"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(base)
    except AssertionError:
        proc.kill()
        raise
    return proc, base
