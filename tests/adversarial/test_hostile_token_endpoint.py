"""Attack (issue 10, items 10 and 11): a token endpoint that dribbles its answer a byte a second,
or sends 50 MB, or a gzip bomb. The client's timeout bounds the whole fetch (every attempt,
response included, and the waits between them); a response is read only up to 1 MB, decoded.
Sync and async alike."""

from __future__ import annotations

import asyncio
import gzip
import socket
import threading
import time
import tracemalloc
from collections.abc import Iterator

import pytest

from pkjwt import TokenClient, generate_key
from pkjwt.errors import TokenResponseError, TransportError
from pkjwt.retry import RetryPolicy

KEY = generate_key("ES256", kid="k1")


class Hostile:
    """Answers every request on 127.0.0.1 as told: ``drip`` (a valid response, a byte every
    ``every`` s), ``huge`` (50 MB of JSON-ish body) or ``bomb`` (gzip inflating to 100 MB)."""

    def __init__(self, mode: str, every: float = 0.25) -> None:
        self.mode = mode
        self.every = every
        self.sent = 0
        self.requests = 0
        self.bomb = gzip.compress(b" " * (100 * 1024 * 1024), 9) if mode == "bomb" else b""
        self._sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._sock.getsockname()[1]}/token"
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
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            conn.recv(65536)
            self.requests += 1
            try:
                if self.mode == "drip":
                    body = b'{"access_token":"t","token_type":"Bearer","expires_in":60}'
                    reply = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                    reply += f"Content-Length: {len(body)}\r\n\r\n".encode() + body
                    for byte in reply:
                        if self._stop.is_set():
                            return
                        conn.sendall(bytes([byte]))
                        self.sent += 1
                        time.sleep(self.every)
                elif self.mode == "huge":
                    size = 50 * 1024 * 1024
                    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                                 + f"Content-Length: {size}\r\n\r\n".encode())  # fmt: skip
                    chunk = b" " * 65536
                    for _ in range(size // len(chunk)):
                        conn.sendall(chunk)
                else:
                    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                                 b"Content-Encoding: gzip\r\n"
                                 + f"Content-Length: {len(self.bomb)}\r\n\r\n".encode()
                                 + self.bomb)  # fmt: skip
            except OSError:
                pass  # the client hung up: what we want

    def close(self) -> None:
        self._stop.set()
        self._sock.close()


@pytest.fixture
def hostile() -> Iterator[list[Hostile]]:
    made: list[Hostile] = []
    yield made
    for host in made:
        host.close()


def _client(url: str, **options: object) -> TokenClient:
    return TokenClient(token_url=url, client_id="c", key=KEY, profile="legacy", **options)  # type: ignore[arg-type]


@pytest.mark.parametrize("flavour", ["sync", "async"])
def test_a_dribbling_endpoint_is_cut_off_at_the_timeout(
    hostile: list[Hostile], flavour: str
) -> None:
    host = Hostile("drip", every=0.25)  # a whole answer would take ~40 s
    hostile.append(host)
    client = _client(host.url, timeout=2.0, retry=RetryPolicy(attempts=3, base=0.1))

    def fetch() -> object:
        return client.fetch_token() if flavour == "sync" else asyncio.run(client.afetch_token())

    with pytest.raises(TransportError) as err:
        fetch()
    assert "timed out" in err.value.message
    # the whole fetch had 2 s: the first attempt spends it, no second attempt fits
    assert host.requests == 1
    assert host.sent < 40  # a per-read timeout would have let it send everything


@pytest.mark.parametrize("mode", ["huge", "bomb"])
def test_a_response_is_read_only_up_to_the_cap(hostile: list[Hostile], mode: str) -> None:
    host = Hostile(mode)
    hostile.append(host)
    client = _client(host.url, timeout=20.0)
    tracemalloc.start()
    try:
        with pytest.raises(TokenResponseError) as err:
            client.fetch_token()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert "larger than 1048576 bytes" in err.value.message
    assert peak < 16 * 1024 * 1024, f"the client held {peak} bytes"
