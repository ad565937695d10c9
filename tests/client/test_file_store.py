"""FileStore: private files, sharing between clients and processes, corrupt files."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time

import pytest

from pkjwt import FileStore

from .conftest import CLIENT_ID


def _mode(path):
    return stat.S_IMODE(path.stat().st_mode)


def test_files_0600_in_a_0700_dir(server, make_client, tmp_path):
    cache = tmp_path / "cache"
    client = make_client(store=FileStore(cache))
    client.get_token()
    assert _mode(cache) == 0o700
    files = list(cache.iterdir())
    assert [p for p in files if p.name.startswith("token-") and p.suffix == ".json"]
    for path in files:
        assert _mode(path) == 0o600, path.name


def test_file_holds_no_more_than_the_token(server, make_client, tmp_path, nhs_key):
    cache = tmp_path / "cache"
    make_client(store=FileStore(cache)).get_token()
    [path] = cache.glob("token-*.json")
    text = path.read_text()
    data = json.loads(text)
    assert data["access_token"] == server.issued[0]
    assert server.token_requests[0].raw_assertion not in text
    assert "PRIVATE KEY" not in text
    assert CLIENT_ID not in path.name  # file names are digests


def test_second_client_with_its_own_store_reuses_the_token(server, make_client, tmp_path):
    cache = tmp_path / "cache"
    first = make_client(store=FileStore(cache)).get_token()
    second = make_client(store=FileStore(cache)).get_token()
    assert second.access_token == first.access_token
    assert server.token_count == 1


@pytest.mark.anyio
async def test_async_client_reuses_file_store_token(server, make_client, tmp_path):
    cache = tmp_path / "cache"
    first = make_client(store=FileStore(cache)).get_token()
    client = make_client(store=FileStore(cache))
    try:
        second = await client.aget_token()
    finally:
        await client.aclose()
    assert second.access_token == first.access_token
    assert server.token_count == 1


def test_different_scope_does_not_share_file(server, make_client, tmp_path):
    cache = tmp_path / "cache"
    make_client(store=FileStore(cache), scope="a").get_token()
    make_client(store=FileStore(cache), scope="b").get_token()
    assert server.token_count == 2
    assert len(list(cache.glob("token-*.json"))) == 2


@pytest.mark.parametrize(
    "garbage",
    [b"{not json", b"", b"\x00\xff\xfe", b'{"access_token": "x"}', b"[]", b'"str"'],
    ids=["truncated", "empty", "binary", "missing-fields", "array", "string"],
)
def test_corrupt_cache_file_is_refetched(server, make_client, tmp_path, garbage):
    cache = tmp_path / "cache"
    make_client(store=FileStore(cache)).get_token()
    [path] = cache.glob("token-*.json")
    path.write_bytes(garbage)

    token = make_client(store=FileStore(cache)).get_token()
    assert token.access_token == server.issued[1]
    assert server.token_count == 2
    # and the file was replaced with a good one
    assert json.loads(path.read_text())["access_token"] == server.issued[1]
    assert _mode(path) == 0o600


def test_two_processes_share_one_token(server, tmp_path, nhs_key):
    server.date_clock = time.time  # the subprocesses use the real clock

    def slow(req):
        server.hold(0.5)
        return server.ok()(req)

    server.script = [slow] * 5
    key_path = tmp_path / "key.pem"
    key_path.write_bytes(nhs_key.private_pem())
    key_path.chmod(0o600)
    cache = tmp_path / "cache"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PKJWT_")}
    env.update(PKJWT_CACHE_DIR=str(cache), PKJWT_CONFIG=str(tmp_path / "none.toml"))
    args = [
        sys.executable,
        "-m",
        "pkjwt",
        "token",
        "--token-url",
        server.token_url,
        "--client-id",
        CLIENT_ID,
        "--key",
        str(key_path),
        "--kid",
        "test-1",
        "--profile",
        "nhs",
    ]
    procs = [
        subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for _ in range(2)
    ]
    outs = []
    for proc in procs:
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err.decode()
        outs.append(out.decode().strip())
    assert server.token_count == 1
    assert outs == [server.issued[0]] * 2


def _slow(server, seconds=0.3):
    def slow(req):
        server.hold(seconds)
        return server.ok()(req)

    return slow


def test_two_clients_own_stores_concurrent_threads_one_request(server, make_client, tmp_path):
    """Like two processes: separate managers and stores, one directory, asking at once."""
    import threading

    server.script = [_slow(server)] * 5
    cache = tmp_path / "cache"
    clients = [make_client(store=FileStore(cache)) for _ in range(2)]
    barrier = threading.Barrier(2)
    results: list = [None, None]

    def run(i):
        barrier.wait(10)
        results[i] = clients[i].get_token()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    assert server.token_count == 1
    assert results[0].access_token == results[1].access_token


@pytest.mark.anyio
async def test_two_async_clients_own_stores_concurrent_one_request(server, make_client, tmp_path):
    """The async path must honour the store's lock as the sync path does (TokenStore.lock:
    'one fetch per key at a time across every user of the store')."""
    import asyncio

    server.script = [_slow(server)] * 5
    cache = tmp_path / "cache"
    clients = [make_client(store=FileStore(cache)) for _ in range(2)]
    try:
        tokens = await asyncio.gather(*(c.aget_token() for c in clients))
    finally:
        for c in clients:
            await c.aclose()
    assert server.token_count == 1, "both clients fetched: the async path ignores store.lock()"
    assert tokens[0].access_token == tokens[1].access_token
