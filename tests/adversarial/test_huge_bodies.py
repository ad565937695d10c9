"""Attack: a huge body at an endpoint that reads before it authenticates (issue 10, item 3:
a 200 MB body to /introspect cost 400 MB). Every endpoint stops reading at the one limit and
answers before the client has finished sending; the server never holds the rest."""

from __future__ import annotations

import socket
from urllib.parse import urlsplit

import pytest

from pkjwt.server.http import MAX_BODY
from server.conftest import Srv

HUGE = 200 * 1024 * 1024


def _answer_while_sending(srv: Srv, path: str, *, chunked: bool) -> bytes:
    """Send headers for a 200 MB body, then the body in 64 kB pieces until the server answers;
    return the status line. Bounded: gives up after 4 MB sent (60 pieces)."""
    url = urlsplit(srv.issuer)
    with socket.create_connection((url.hostname, url.port), timeout=10) as sock:
        length = "Transfer-Encoding: chunked" if chunked else f"Content-Length: {HUGE}"
        sock.sendall(
            f"POST {path} HTTP/1.1\r\nHost: {url.netloc}\r\n"
            f"Content-Type: application/x-www-form-urlencoded\r\n{length}\r\n\r\n".encode()
        )
        piece = b"a" * 65536
        sock.settimeout(0.05)
        for _ in range(60):
            try:
                sock.sendall(f"{len(piece):x}\r\n".encode() + piece + b"\r\n" if chunked else piece)
            except (BrokenPipeError, ConnectionResetError):
                break
            try:
                head = sock.recv(4096)
            except TimeoutError:
                continue
            if head:
                return head.split(b"\r\n", 1)[0]
        sock.settimeout(5)
        try:
            return sock.recv(4096).split(b"\r\n", 1)[0]
        except (TimeoutError, ConnectionResetError):
            return b"no answer"


@pytest.mark.parametrize("path", ["/oauth2/token", "/introspect", "/revoke", "/echo"])
@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_every_endpoint_refuses_a_huge_body_early(bis: Srv, path: str, chunked: bool) -> None:
    status = _answer_while_sending(bis, path, chunked=chunked)
    assert status.startswith(b"HTTP/1.1 4"), status


def test_the_limit_is_one_for_all() -> None:
    assert MAX_BODY == 64 * 1024
