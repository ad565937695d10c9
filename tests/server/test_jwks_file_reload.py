"""A client's ``jwks_file`` re-read when it changes, and on SIGHUP: a key rotation rehearsed
against ``pkjwt serve`` without a restart (issue 13, item 4)."""

from __future__ import annotations

import logging
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from pkjwt import AssertionFactory
from pkjwt.keys import Key, generate_key
from pkjwt.server.config import parse_config
from pkjwt.server.run import run_in_thread
from publishing import publish

from .conftest import JWT_BEARER, free_port

ISSUER = "http://pkjwt.test"


@pytest.fixture(scope="module")
def old_key() -> Key:
    return generate_key("ES256", kid="old")


@pytest.fixture(scope="module")
def new_key() -> Key:
    return generate_key("ES256", kid="new")


def _status(base_url: str, key: Key) -> tuple[int, str]:
    factory = AssertionFactory(key, client_id="c1", profile="rfc7523bis", issuer=ISSUER)
    reply = httpx.post(
        base_url + "/oauth2/token",
        data={
            "grant_type": "client_credentials",
            "client_assertion_type": JWT_BEARER,
            "client_assertion": factory.make(),
        },
        timeout=30,
    )
    return reply.status_code, reply.json().get("error_description", "")


def test_a_changed_file_is_read_again_and_a_broken_one_keeps_the_last_keys(
    tmp_path: Path, old_key: Key, new_key: Key, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, "pkjwt.server")
    path = tmp_path / "jwks.json"
    publish(path, old_key)
    config = parse_config(
        {
            "issuer": ISSUER,
            "replay_store": "memory://",
            "jwks_file_check_seconds": 0,
            "clients": [{"client_id": "c1", "jwks_file": str(path)}],
        }
    )
    with run_in_thread(config) as server:
        assert _status(server.base_url, old_key)[0] == 200
        assert _status(server.base_url, new_key)[0] == 400

        publish(path, old_key, new_key)  # the rotation's first step: both published
        assert _status(server.base_url, new_key)[0] == 200
        assert _status(server.base_url, old_key)[0] == 200

        publish(path, new_key)  # the old key retired
        status, said = _status(server.base_url, old_key)
        assert status == 400
        assert "kid" in said
        assert _status(server.base_url, new_key)[0] == 200

        path.write_text('{"keys": [')  # half-written: the last keys stay
        for _ in range(3):
            assert _status(server.base_url, new_key)[0] == 200
        path.unlink()  # gone: the last keys stay
        assert _status(server.base_url, new_key)[0] == 200
    unusable = [r for r in caplog.records if "unusable" in r.getMessage()]
    assert len(unusable) == 1  # said once, not per request
    assert any("is gone" in r.getMessage() for r in caplog.records)


def test_sighup_rereads_at_once(tmp_path: Path, old_key: Key, new_key: Key) -> None:
    path = tmp_path / "jwks.json"
    publish(path, old_key)
    config = tmp_path / "server.toml"
    config.write_text(
        f'issuer = "{ISSUER}"\nreplay_store = "memory://"\njwks_file_check_seconds = 3600\n'
        f'[[clients]]\nclient_id = "c1"\njwks_file = "{path}"\n'
    )
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "pkjwt", "serve", "--config", str(config), "--port", str(port),
         "--log-level", "warning"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(base + "/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.05)
        assert _status(base, old_key)[0] == 200
        publish(path, new_key)
        assert _status(base, new_key)[0] == 400  # not looked at for an hour...
        proc.send_signal(signal.SIGHUP)
        for _ in range(100):  # ... until SIGHUP, handled on the loop between requests
            if _status(base, new_key)[0] == 200:
                break
            time.sleep(0.05)
        else:
            raise AssertionError("SIGHUP did not re-read the jwks_file")
        assert _status(base, old_key)[0] == 400
    finally:
        proc.terminate()
        _, stderr = proc.communicate(timeout=30)
    assert "re-read 1 jwks_file(s), 1 changed" in stderr
    assert "Traceback" not in stderr
