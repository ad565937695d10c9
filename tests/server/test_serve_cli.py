"""``pkjwt serve`` as a user runs it: a real process on a free loopback port."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import httpx

from pkjwt import AssertionFactory
from pkjwt.keys import Key, jwks

from .conftest import JWT_BEARER


def _start(config: Path, *extra: str) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "pkjwt", "serve", "--config", str(config), "--port", "0", *extra],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stderr is not None
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if line.strip().startswith("issuer"):
            return proc, line.split()[-1]
        if not line and proc.poll() is not None:
            break
    proc.kill()
    raise AssertionError("pkjwt serve printed no issuer")


def _wait_ready(issuer: str) -> None:
    for _ in range(300):
        try:
            if httpx.get(issuer + "/health", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.05)
    raise AssertionError("no /health")


def test_serve_logs_one_line_per_token_request_without_secrets(
    tmp_path: Path, es256_key: Key
) -> None:
    config = tmp_path / "server.toml"
    config.write_text(
        'replay_store = "memory://"\n[[clients]]\nclient_id = "c1"\n'
        f"jwks = {json.dumps(json.dumps(jwks([es256_key.public()])))}\n"
    )
    proc, issuer = _start(config)
    try:
        _wait_ready(issuer)
        good = AssertionFactory(es256_key, client_id="c1", profile="rfc7523bis", issuer=issuer)
        wrong_aud = AssertionFactory(
            es256_key, client_id="c1", profile="rfc7523bis", issuer="https://elsewhere.example"
        )
        sent = []
        for factory in (good, wrong_aud):
            assertion = factory.make()
            sent.append(assertion)
            httpx.post(
                issuer + "/oauth2/token",
                data={
                    "grant_type": "client_credentials",
                    "client_assertion_type": JWT_BEARER,
                    "client_assertion": assertion,
                },
                timeout=10,
            )
    finally:
        proc.terminate()
        _, stderr = proc.communicate(timeout=30)
    lines = [line for line in stderr.splitlines() if " client=" in line]
    assert lines[0] == "INFO:     token 200 client=c1 issued"
    assert lines[1].startswith("INFO:     token 400 client=c1 invalid_client: R14 ")
    assert "elsewhere.example" in lines[1]  # what came, so the user sees the mistake
    for assertion in sent:
        assert assertion not in stderr
        assert assertion.split(".")[2] not in stderr


def test_serve_at_log_level_warning_is_quiet(tmp_path: Path, es256_key: Key) -> None:
    config = tmp_path / "server.toml"
    config.write_text(
        'replay_store = "memory://"\n[[clients]]\nclient_id = "c1"\n'
        f"jwks = {json.dumps(json.dumps(jwks([es256_key.public()])))}\n"
    )
    proc, issuer = _start(config, "--log-level", "warning")
    try:
        _wait_ready(issuer)
        httpx.post(issuer + "/oauth2/token", data={"grant_type": "client_credentials"}, timeout=10)
    finally:
        proc.terminate()
        _, stderr = proc.communicate(timeout=30)
    assert " client=" not in stderr
