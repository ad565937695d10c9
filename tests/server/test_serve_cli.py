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
from .observed import SECRET, assertion, post_assertion


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


def _secret_config(tmp_path: Path, key: Key) -> Path:
    config = tmp_path / "server.toml"
    config.write_text(
        'replay_store = "memory://"\n[[clients]]\nclient_id = "c1"\n'
        f"jwks = {json.dumps(json.dumps(jwks([key.public()])))}\n"
        f'[[clients]]\nclient_id = "s1"\nclient_secret = "{SECRET}"\n'
    )
    return config


def test_serve_json_log_has_the_fields_and_no_secret(tmp_path: Path, es256_key: Key) -> None:
    proc, issuer = _start(_secret_config(tmp_path, es256_key), "--log-format", "json")
    sent: list[str] = []
    try:
        _wait_ready(issuer)
        with httpx.Client(timeout=10) as http:
            good = assertion(es256_key, issuer)
            wrong_aud = assertion(es256_key, issuer, aud="https://elsewhere.example")
            sent += [good, wrong_aud]
            issued = post_assertion(http, issuer, good)
            assert issued.status_code == 200
            sent.append(issued.json()["access_token"])
            assert post_assertion(http, issuer, wrong_aud).status_code == 400
            secret_post = http.post(
                issuer + "/oauth2/token",
                data={
                    "grant_type": "client_credentials",
                    "client_id": "s1",
                    "client_secret": SECRET,
                },
            )
            assert secret_post.status_code == 200
            sent.append(secret_post.json()["access_token"])
            basic_wrong = http.post(
                issuer + "/oauth2/token",
                data={"grant_type": "client_credentials"},
                auth=("s1", SECRET + "x"),
            )
            assert basic_wrong.status_code == 401
    finally:
        proc.terminate()
        _, stderr = proc.communicate(timeout=30)
    records = [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]
    decided = [r for r in records if "endpoint" in r]
    assert [(r["status"], r["client"], r["rule"], r["error"]) for r in decided] == [
        (200, "c1", None, None),
        (400, "c1", "R14", "invalid_client"),
        (200, "s1", None, None),
        (401, None, "R7", "invalid_client"),  # a wrong secret names no client
    ]
    for r in decided:
        assert set(r) == {"time", "level", "endpoint", "status", "client", "error",
                          "description", "rule"}  # fmt: skip
        assert r["endpoint"] == "token"
        assert r["time"].endswith("Z")
    assert "elsewhere.example" in decided[1]["description"]  # what came
    for secret in [*sent, *(s.split(".")[2] for s in sent[:2]), SECRET]:
        assert secret not in stderr


def test_serve_inspector_is_on_for_loopback_and_off_with_no_inspector(
    tmp_path: Path, es256_key: Key
) -> None:
    config = _secret_config(tmp_path, es256_key)
    for extra, status in (((), 200), (("--no-inspector",), 404)):
        proc, issuer = _start(config, "--log-level", "warning", *extra)
        try:
            _wait_ready(issuer)
            assert httpx.get(issuer + "/_inspect", timeout=10).status_code == status
        finally:
            proc.terminate()
            proc.communicate(timeout=30)
