"""The replay check's own Redis connection (pkjwt.server.replay.pipeline), against real
redis-servers, on asyncio's loop and on uvloop (the one ``pkjwt serve`` runs): replies pair
with their requests even when callers give up, a lost or stalled Redis is a 503 for those
waiting and a new connection for the next, and the URL means what it means to redis-py
(password, user, db, unix socket, TLS)."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from pkjwt.errors import ReplayStoreUnavailable
from pkjwt.server.replay import RedisReplayStore, open_replay_store
from pkjwt.server.replay.pipeline import ReplayPipeline

from .redis_fixture import redis_server

LOOPS = ["asyncio", "uvloop"]


def _run(loop: str, main: Callable[[], Awaitable[Any]]) -> Any:
    if loop == "uvloop":
        uvloop = pytest.importorskip("uvloop")
        return uvloop.run(main())
    return asyncio.run(main())


@pytest.fixture(scope="module")
def plain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[subprocess.Popen, str]]:
    with redis_server(tmp_path_factory.mktemp("pipeline")) as running:
        yield running


@pytest.mark.parametrize("loop", LOOPS)
def test_many_at_once_each_gets_its_own_answer(loop: str, plain) -> None:
    _, url = plain
    prefix = f"t{time.time_ns()}:".encode()

    async def main() -> list[bool]:
        pipe = ReplayPipeline(url, timeout=2)
        try:
            # 500 keys, each sent twice, interleaved: the first of each pair is new
            keys = [prefix + b"%d" % (i // 2) for i in range(1000)]
            return await asyncio.gather(*(pipe.set_nx_px(k, 60_000) for k in keys))
        finally:
            pipe.close()

    answers = _run(loop, main)
    assert answers == [True, False] * 500
    raw = redis.Redis.from_url(url)
    ttl = raw.pttl(prefix + b"7")
    raw.close()
    assert 0 < ttl <= 60_000


@pytest.mark.parametrize("loop", LOOPS)
def test_a_caller_that_gives_up_does_not_shift_the_replies(loop: str, plain) -> None:
    proc, url = plain
    prefix = f"g{time.time_ns()}:".encode()

    async def main() -> tuple[list[object], bool, bool]:
        pipe = ReplayPipeline(url, timeout=5)
        try:
            assert await pipe.set_nx_px(prefix + b"warm", 60_000)
            os.kill(proc.pid, signal.SIGSTOP)  # the replies are late: the callers give up
            try:
                gave_up = await asyncio.gather(
                    *(asyncio.wait_for(pipe.set_nx_px(prefix + b"a", 60_000), 0.2),
                      asyncio.wait_for(pipe.set_nx_px(prefix + b"b", 60_000), 0.2)),
                    return_exceptions=True,
                )  # fmt: skip
            finally:
                os.kill(proc.pid, signal.SIGCONT)
            # Redis did set both; the answers to those two must not be taken for these
            return (
                gave_up,
                await pipe.set_nx_px(prefix + b"a", 60_000),
                await pipe.set_nx_px(prefix + b"c", 60_000),
            )
        finally:
            pipe.close()

    gave_up, a_again, c_first = _run(loop, main)
    assert all(isinstance(e, TimeoutError) for e in gave_up)
    assert (a_again, c_first) == (False, True)


@pytest.mark.parametrize("loop", LOOPS)
def test_a_redis_that_goes_away_and_comes_back(loop: str, tmp_path: Path) -> None:
    with redis_server(tmp_path) as (proc, url):
        port = int(url.rsplit(":", 1)[1].split("/")[0])

        async def main() -> tuple[bool, str, bool]:
            pipe = ReplayPipeline(url, timeout=1)
            try:
                first = await pipe.set_nx_px(b"k1", 60_000)
                proc.kill()
                proc.wait()
                with pytest.raises(ReplayStoreUnavailable) as down:
                    await pipe.set_nx_px(b"k2", 60_000)
                again = subprocess.Popen(
                    [shutil.which("redis-server") or "redis-server", "--port", str(port),
                     "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                     "--dir", str(tmp_path)],
                    stdout=subprocess.DEVNULL,
                )  # fmt: skip
                try:
                    for _ in range(200):
                        try:
                            back = await pipe.set_nx_px(b"k2", 60_000)
                            break
                        except ReplayStoreUnavailable:
                            await asyncio.sleep(0.05)
                    else:
                        raise AssertionError("no reconnection")
                finally:
                    again.kill()
                    again.wait()
                return first, str(down.value), back
            finally:
                pipe.close()

        first, down, back = _run(loop, main)
        assert first
        assert back
        assert "replay store" in down


@pytest.mark.parametrize("loop", LOOPS)
def test_a_silent_redis_fails_the_waiting_and_is_left(loop: str, tmp_path: Path) -> None:
    with redis_server(tmp_path) as (proc, url):

        async def main() -> tuple[list[object], bool]:
            pipe = ReplayPipeline(url, timeout=0.3)
            try:
                await pipe.set_nx_px(b"warm", 60_000)
                os.kill(proc.pid, signal.SIGSTOP)
                waiting = [asyncio.ensure_future(pipe.set_nx_px(b"s%d" % i, 60_000)) for i in
                           range(3)]  # fmt: skip
                await asyncio.sleep(0.5)  # longer than the deadline, with requests waiting
                # answered (503) at their deadline, by the pipeline itself: no wait_for around
                assert all(w.done() for w in waiting)
                later = asyncio.ensure_future(pipe.set_nx_px(b"later", 60_000))
                await asyncio.sleep(0.1)
                os.kill(proc.pid, signal.SIGCONT)
                failed = await asyncio.gather(*waiting, return_exceptions=True)
                return failed, await asyncio.wait_for(later, 5)
            finally:
                os.kill(proc.pid, signal.SIGCONT)
                pipe.close()

        failed, later = _run(loop, main)
        assert all(isinstance(e, ReplayStoreUnavailable) for e in failed), failed
        assert later is True  # ... and that one went over a new connection


def _redis_with(tmp_path: Path, *args: str) -> tuple[subprocess.Popen[bytes], int]:
    from .redis_fixture import _free_port

    port = _free_port()
    proc = subprocess.Popen(
        [shutil.which("redis-server") or "redis-server", "--port", str(port), "--bind",
         "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", str(tmp_path), *args],
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    return proc, port


@pytest.mark.parametrize("loop", LOOPS)
def test_password_user_and_database_as_in_the_url(loop: str, tmp_path: Path) -> None:
    from .redis_fixture import _wait_for

    pytest.importorskip("redis")
    proc, port = _redis_with(
        tmp_path, "--requirepass", "s3cret-pw", "--user", "svc", "on", ">u-pw", "~*", "&*", "+@all"
    )
    try:
        _wait_for(f"redis://:s3cret-pw@127.0.0.1:{port}/0")

        async def main() -> tuple[bool, bool, str, str]:
            ok = ReplayPipeline(f"redis://:s3cret-pw@127.0.0.1:{port}/5", timeout=2)
            user = ReplayPipeline(f"redis://svc:u-pw@127.0.0.1:{port}/5", timeout=2)
            wrong = ReplayPipeline(f"redis://:wrong-pw@127.0.0.1:{port}/0", timeout=2)
            none = ReplayPipeline(f"redis://127.0.0.1:{port}/0", timeout=2)
            try:
                first = await ok.set_nx_px(b"db5", 60_000)
                second = await user.set_nx_px(b"db5", 60_000)  # same db: already there
                with pytest.raises(ReplayStoreUnavailable) as refused:
                    await wrong.set_nx_px(b"x", 60_000)
                with pytest.raises(ReplayStoreUnavailable) as anonymous:
                    await none.set_nx_px(b"x", 60_000)
                return first, second, str(refused.value), str(anonymous.value)
            finally:
                for pipe in (ok, user, wrong, none):
                    pipe.close()

        first, second, refused, anonymous = _run(loop, main)
        assert (first, second) == (True, False)
        assert "AUTH refused" in refused
        assert "wrong-pw" not in refused
        assert "NOAUTH" in anonymous
        raw = redis.Redis.from_url(f"redis://:s3cret-pw@127.0.0.1:{port}/5")
        assert raw.exists(b"db5")
        raw.close()
    finally:
        proc.kill()
        proc.wait()


@pytest.mark.parametrize("loop", LOOPS)
def test_a_unix_socket(loop: str, tmp_path: Path) -> None:
    from .redis_fixture import _wait_for

    sock = tmp_path / "redis.sock"
    proc, _port = _redis_with(tmp_path, "--unixsocket", str(sock))
    try:
        _wait_for(f"unix://{sock}?db=1")

        async def main() -> tuple[bool, bool]:
            pipe = ReplayPipeline(f"unix://{sock}?db=1", timeout=2)
            try:
                return await pipe.set_nx_px(b"u", 60_000), await pipe.set_nx_px(b"u", 60_000)
            finally:
                pipe.close()

        assert _run(loop, main) == (True, False)
    finally:
        proc.kill()
        proc.wait()


@pytest.mark.parametrize("loop", LOOPS)
def test_the_store_over_tls_on_either_loop(loop: str, tmp_path: Path) -> None:
    with redis_server(tmp_path, tls=True) as (_, url):
        store = open_replay_store(url)
        assert isinstance(store, RedisReplayStore)

        async def main() -> tuple[bool, bool]:
            until = time.time() + 60
            try:
                return await store.aadd("c", "j", until), await store.aadd("c", "j", until)
            finally:
                await store.aclose()

        try:
            assert _run(loop, main) == (True, False)
        finally:
            store.close()
