"""A real redis-server on a free loopback port, started by the tests (CI installs it)."""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from certs import self_signed_loopback
from peers import need


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _tls_files(workdir: Path) -> tuple[Path, Path]:
    """The server's certificate and key; the certificate is the CA a client must trust."""
    return self_signed_loopback(workdir, "127.0.0.1")


@contextlib.contextmanager
def redis_server(
    workdir: Path, *, tls: bool = False
) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """A redis-server of our own (no persistence) on a free loopback port: its process (to
    pause or kill in a test) and its URL. With ``tls``, it speaks only TLS and the URL is a
    ``rediss://`` one that trusts its self-signed certificate."""
    need("redis-server")
    exe = shutil.which("redis-server")
    assert exe is not None
    port = _free_port()
    listen = ["--port", str(port)]
    url = f"redis://127.0.0.1:{port}/0"
    if tls:
        cert, key = _tls_files(workdir)
        listen = ["--port", "0", "--tls-port", str(port), "--tls-cert-file", str(cert),
                  "--tls-key-file", str(key), "--tls-auth-clients", "no"]  # fmt: skip
        url = f"rediss://127.0.0.1:{port}/0?ssl_ca_certs={cert}"
    proc = subprocess.Popen(
        [exe, *listen, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--dir", str(workdir)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        _wait_for(url)
        yield proc, url
    finally:
        proc.kill()
        proc.wait(timeout=10)


def _wait_for(url: str) -> None:
    import redis

    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        client = redis.Redis.from_url(url, socket_timeout=0.5, socket_connect_timeout=0.5)
        try:
            if client.ping():
                return
        except redis.RedisError:
            time.sleep(0.05)
        finally:
            client.close()
    pytest.fail("redis-server did not answer PING")


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with redis_server(tmp_path_factory.mktemp("redis")) as (_, url):
        yield url
