"""Attack: a client registers a ``jwks_uri`` that hangs, fails, dribbles or sends a compression
bomb (issue 10, item 5). Concurrent requests share one fetch, a failure is remembered briefly,
one deadline bounds the whole fetch, and an inflated body stops at the size cap."""

from __future__ import annotations

import asyncio
import concurrent.futures
import gzip
import socket
import threading
import time
import tracemalloc
from collections.abc import Iterator

import pytest

from pkjwt.keys import Key
from pkjwt.server.jwks_fetch import JwksFetcher, JwksFetchError
from server.conftest import Srv, error_of, start

URI_CLIENT = "uri-client"


class Hostile:
    """A loopback HTTP server that misbehaves as told: ``hang`` (read the request, never
    answer), ``fail`` (500), ``drip`` (a byte every ``drip_every`` s) or ``bomb`` (gzip that
    inflates to 100 MB). Counts connections and the bytes it managed to send."""

    def __init__(self, mode: str, drip_every: float = 0.25) -> None:
        self.mode = mode
        self.drip_every = drip_every
        self.connections = 0
        self.sent = 0
        self.closed = threading.Event()
        # made before the test measures memory: only the fetcher's allocations count
        self.bomb = gzip.compress(b"\0" * (100 * 1024 * 1024), 9) if mode == "bomb" else b""
        self._sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._sock.getsockname()[1]}/jwks.json"
        self._stop = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        self._sock.settimeout(0.1)
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            conn.recv(65536)
            try:
                if self.mode == "hang":
                    self._stop.wait(30)
                elif self.mode == "fail":
                    conn.sendall(b"HTTP/1.1 500 Oops\r\nContent-Length: 0\r\n\r\n")
                elif self.mode == "bomb":
                    body = self.bomb
                    conn.sendall(
                        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                        b"Content-Encoding: gzip\r\n"
                        + f"Content-Length: {len(body)}\r\n\r\n".encode()
                        + body
                    )
                elif self.mode == "drip":
                    reply = b'HTTP/1.1 200 OK\r\nContent-Length: 400\r\n\r\n{"keys": [' + b" " * 400
                    for byte in reply:
                        if self._stop.is_set():
                            break
                        conn.sendall(bytes([byte]))
                        self.sent += 1
                        time.sleep(self.drip_every)
            except OSError:
                pass  # the fetcher gave up and closed: what we want
            self.closed.set()

    def close(self) -> None:
        self._stop.set()
        self._sock.close()


@pytest.fixture
def hostile() -> Iterator[list[Hostile]]:
    made: list[Hostile] = []
    yield made
    for host in made:
        host.close()


def _server(key: Key, uri: str) -> object:
    return start(
        "rfc7523bis",
        key=key,
        clients=[{"client_id": URI_CLIENT, "jwks_uri": uri}],
        extra={"allow_private_jwks_uri": True, "jwks_timeout": 1.0},
    )


def _assertion(srv: Srv, key: Key) -> str:
    header = {"alg": key.alg, "kid": key.kid}
    return srv.assertion(key=key, header=header, iss=URI_CLIENT, sub=URI_CLIENT)


def test_concurrent_requests_share_one_fetch_of_a_hanging_uri(
    es256_key: Key, hostile: list[Hostile]
) -> None:
    host = Hostile("hang")
    hostile.append(host)
    with _server(es256_key, host.url) as srv:  # type: ignore[attr-defined]
        assertions = [_assertion(srv, es256_key) for _ in range(6)]
        with concurrent.futures.ThreadPoolExecutor(6) as pool:
            answers = list(pool.map(srv.token, assertions))
        assert {error_of(a)[:2] for a in answers} == {(400, "invalid_client")}
        assert host.connections == 1
        assert srv.state.fetcher.fetches == 1


def test_a_failing_uri_is_not_fetched_on_every_request(
    es256_key: Key, hostile: list[Hostile]
) -> None:
    host = Hostile("fail")
    hostile.append(host)
    with _server(es256_key, host.url) as srv:  # type: ignore[attr-defined]
        for _ in range(50):
            response = srv.token(_assertion(srv, es256_key))
            assert "R10" in error_of(response)[2]
        assert host.connections == 1  # remembered for failure_ttl (10 s), then tried again


def test_a_dribbling_uri_is_dropped_at_the_deadline(hostile: list[Hostile]) -> None:
    host = Hostile("drip", drip_every=0.25)  # ~110 s to send it all
    hostile.append(host)
    fetcher = JwksFetcher(allow_private=True, timeout=1.0)

    async def fetch() -> str:
        try:
            await fetcher.get(host.url)
        except JwksFetchError as exc:
            return str(exc)
        finally:
            await fetcher.aclose()
        return "fetched"

    assert "did not answer within 1 s" in asyncio.run(fetch())
    assert host.closed.wait(10), "the fetcher kept the connection open"
    assert host.sent < 40  # a per-read timeout would have read on for the whole 110 s


def test_a_compression_bomb_stops_at_the_cap(hostile: list[Hostile]) -> None:
    host = Hostile("bomb")
    hostile.append(host)
    fetcher = JwksFetcher(allow_private=True, timeout=5.0, max_bytes=64 * 1024)

    async def fetch() -> str:
        try:
            await fetcher.get(host.url)
        except JwksFetchError as exc:
            return str(exc)
        finally:
            await fetcher.aclose()
        return "fetched"

    tracemalloc.start()
    try:
        outcome = asyncio.run(fetch())
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert "larger than 65536 bytes" in outcome
    assert peak < 8 * 1024 * 1024, f"inflating the bomb held {peak} bytes"
