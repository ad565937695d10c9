"""Attack: hold connections open without ever finishing a request: idle after connecting,
headers a byte at a time (slowloris), a body sent slowly, and more connections than the
server can hold (issue 10, item 4). Each is closed at the request deadline; past the cap, new
connections are closed at once and the server says so in its log; real clients still get
tokens throughout."""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest

from pkjwt.keys import Key
from server.conftest import Srv, start

TIMEOUT = 1.0


@pytest.fixture
def strict(es256_key: Key) -> Iterator[Srv]:
    extra = {"request_timeout": TIMEOUT, "max_connections": 40, "keep_alive_timeout": 1.0}
    with start("rfc7523bis", key=es256_key, extra=extra) as srv:
        yield srv


def _connect(srv: Srv) -> socket.socket:
    url = urlsplit(srv.issuer)
    sock = socket.create_connection((url.hostname, url.port), timeout=5)
    return sock


def _closed_by_server(sock: socket.socket, *, within: float) -> bool:
    """Whether the server closes ``sock`` within ``within`` seconds (a generous bound: the
    deadline is 1 s, an unlimited server never closes at all)."""
    sock.settimeout(within)
    try:
        while True:
            data = sock.recv(4096)
            if not data:
                return True
    except TimeoutError:
        return False
    except ConnectionResetError:
        return True


def test_an_idle_connection_is_closed(strict: Srv) -> None:
    with _connect(strict) as sock:
        assert _closed_by_server(sock, within=15)


def test_slowloris_headers_are_cut_off(strict: Srv) -> None:
    with _connect(strict) as sock:
        request = b"POST /oauth2/token HTTP/1.1\r\nHost: x\r\nX-Slow: "
        sock.sendall(request)
        closed = False
        for _ in range(60):  # a byte every 0.25 s: 15 s of headers
            try:
                sock.sendall(b"a")
            except (BrokenPipeError, ConnectionResetError):
                closed = True
                break
            time.sleep(0.25)
        assert closed or _closed_by_server(sock, within=1)


def test_a_slow_body_is_cut_off(strict: Srv) -> None:
    with _connect(strict) as sock:
        sock.sendall(
            b"POST /introspect HTTP/1.1\r\nHost: x\r\n"
            b"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 1000\r\n\r\n"
        )
        closed = False
        for _ in range(60):
            try:
                sock.sendall(b"a")
            except (BrokenPipeError, ConnectionResetError):
                closed = True
                break
            time.sleep(0.25)
        assert closed or _closed_by_server(sock, within=1)


def test_the_connection_cap_holds_and_is_logged(
    strict: Srv, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="pkjwt.server")
    held = [_connect(strict) for _ in range(60)]
    try:
        closed = sum(_closed_by_server(s, within=0.5) for s in held[40:])
        assert closed >= 15, closed  # those past the cap are closed at once
        assert any("connection limit reached" in r.getMessage() for r in caplog.records)
    finally:
        for sock in held:
            sock.close()
    # once the hoarder has let go, clients are served again
    deadline = time.monotonic() + 10
    while strict.token().status_code != 200:
        assert time.monotonic() < deadline
        time.sleep(0.2)


def test_keep_alive_still_works_between_requests(strict: Srv) -> None:
    for _ in range(3):
        assert strict.token().status_code == 200
