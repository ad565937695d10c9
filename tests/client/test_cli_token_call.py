"""pkjwt token / pkjwt call against the scripted server (CliRunner, and one real process)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time

import pytest
from click.testing import CliRunner

from pkjwt.cli.main import cli

from .conftest import CLIENT_ID


@pytest.fixture
def cli_env(server, tmp_path, nhs_key, monkeypatch):
    """Hermetic settings: a 0600 key file, a tmp cache dir, no config file, no PKJWT_* vars."""
    server.date_clock = time.time  # the CLI uses the real clock
    for name in [n for n in os.environ if n.startswith("PKJWT_")]:
        monkeypatch.delenv(name)
    key_path = tmp_path / "test-1.pem"
    key_path.write_bytes(nhs_key.private_pem())
    key_path.chmod(0o600)
    env = {
        "PKJWT_CACHE_DIR": str(tmp_path / "cache"),
        "PKJWT_CONFIG": str(tmp_path / "missing-config.toml"),
    }
    return {"key": str(key_path), "env": env, "tmp": tmp_path}


@pytest.fixture
def run(cli_env):
    def invoke(*args: str, env: dict[str, str] | None = None):
        merged = {**cli_env["env"], **(env or {})}
        return CliRunner().invoke(cli, list(args), env=merged, catch_exceptions=False)

    return invoke


@pytest.fixture
def token_args(server, cli_env):
    return [
        "token",
        "--token-url",
        server.token_url,
        "--client-id",
        CLIENT_ID,
        "--key",
        cli_env["key"],
        "--kid",
        "test-1",
        "--profile",
        "nhs",
    ]


def test_token_prints_only_the_token(server, run, token_args):
    result = run(*token_args)
    assert result.exit_code == 0, result.stderr
    assert result.stdout == server.issued[0] + "\n"
    [req] = server.token_requests
    assert req.jwt_header == {"alg": "RS512", "typ": "JWT", "kid": "test-1"}
    assert req.claims["aud"] == server.token_url
    assert req.claims["iss"] == req.claims["sub"] == CLIENT_ID


def test_token_json_and_cached_on_second_run(server, run, token_args):
    first = run(*token_args, "--json")
    assert first.exit_code == 0, first.stderr
    data = json.loads(first.stdout)
    assert data["access_token"] == server.issued[0]
    assert 590 <= data["expires_in"] <= 600
    assert data["cached"] is False

    second = run(*token_args, "--json")
    assert second.exit_code == 0, second.stderr
    data2 = json.loads(second.stdout)
    assert data2["access_token"] == server.issued[0]
    assert data2["cached"] is True
    assert server.token_count == 1


def test_no_cache_fetches_every_time(server, run, token_args):
    assert run(*token_args, "--no-cache").exit_code == 0
    assert run(*token_args, "--no-cache").exit_code == 0
    assert server.token_count == 2


def test_named_profile_from_config_file(server, run, cli_env):
    config = cli_env["tmp"] / "config.toml"
    config.write_text(
        f"""
[default]
kid = "test-1"

[profiles.int]
token_url = "{server.token_url}"
client_id = "{CLIENT_ID}"
key = "{cli_env["key"]}"
profile = "nhs"
scope = "from-config"
"""
    )
    result = run("token", "-p", "int", env={"PKJWT_CONFIG": str(config)})
    assert result.exit_code == 0, result.stderr
    assert result.stdout.strip() == server.issued[0]
    [req] = server.token_requests
    assert req.jwt_header["kid"] == "test-1"
    assert req.form["scope"] == ["from-config"]


def test_unknown_named_profile_is_a_clear_error(server, run, cli_env):
    config = cli_env["tmp"] / "config.toml"
    config.write_text('[profiles.int]\nclient_id = "x"\n')
    result = run("token", "-p", "prod", env={"PKJWT_CONFIG": str(config)})
    assert result.exit_code == 2
    assert "error:" in result.stderr
    assert "prod" in result.stderr
    assert server.token_count == 0


def test_settings_from_environment(server, run, cli_env):
    env = {
        "PKJWT_TOKEN_URL": server.token_url,
        "PKJWT_CLIENT_ID": CLIENT_ID,
        "PKJWT_KEY": cli_env["key"],
        "PKJWT_KID": "test-1",
        "PKJWT_PROFILE": "nhs",
    }
    result = run("token", env=env)
    assert result.exit_code == 0, result.stderr
    assert result.stdout.strip() == server.issued[0]
    assert server.token_requests[0].claims["iss"] == CLIENT_ID


def test_flags_override_environment(server, run, cli_env):
    env = {
        "PKJWT_TOKEN_URL": server.token_url,
        "PKJWT_CLIENT_ID": "from-env",
        "PKJWT_KEY": cli_env["key"],
        "PKJWT_KID": "test-1",
        "PKJWT_PROFILE": "nhs",
    }
    result = run("token", "--client-id", "from-flag", env=env)
    assert result.exit_code == 0, result.stderr
    assert server.token_requests[0].claims["iss"] == "from-flag"


def test_missing_settings_is_usage_error(server, run):
    result = run("token", "--client-id", CLIENT_ID)
    assert result.exit_code == 2
    assert "missing" in result.stderr
    assert "--token-url" in result.stderr
    assert result.stdout == ""
    assert server.token_count == 0


def test_invalid_client_exits_2_with_one_error_line(server, run, token_args):
    server.script = [server.error(401, "invalid_client", "unknown key")]
    result = run(*token_args)
    assert result.exit_code == 2
    assert result.stdout == ""
    assert "Traceback" not in result.output
    error_lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(error_lines) == 1
    assert "invalid_client" in error_lines[0]
    assert "hint:" in result.stderr
    assert server.token_count == 1


def test_invalid_client_explain_prints_doctor_rules(server, run, token_args):
    server.script = [server.error(401, "invalid_client", "unknown key")]
    result = run(*token_args, "--explain")
    assert result.exit_code == 2
    assert "Traceback" not in result.output
    assert "doctor says" in result.stderr
    assert "rules (nhs profile):" in result.output
    rule_lines = [
        line for line in result.output.splitlines() if line.strip().startswith(("PASS", "FAIL"))
    ]
    assert rule_lines, result.output
    assert "error:" in result.stderr


def test_explain_keeps_stdout_for_the_token_only(server, run, token_args):
    """`TOKEN=$(pkjwt token --explain ...)`: the diagnosis must reach the terminal (stderr), not
    the variable meant for the token."""
    server.script = [server.error(401, "invalid_client", "unknown key")]
    result = run(*token_args, "--explain")
    assert result.exit_code == 2
    assert "rules (nhs profile):" in result.stderr
    assert result.stdout == ""


def test_token_error_never_prints_secrets(server, run, token_args, nhs_key):
    server.script = [server.error(401, "invalid_client", "unknown key")]
    result = run(*token_args, "--explain")
    assert server.token_requests[0].raw_assertion not in result.output
    assert "PRIVATE KEY" not in result.output


def test_call_prints_api_body(server, run, token_args):
    args = ["call", "GET", server.api_url, *token_args[1:]]
    result = run(*args)
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout) == {"hello": "world", "path": "/api/hello"}
    assert server.api_requests[0].headers["authorization"] == f"Bearer {server.issued[0]}"


def test_call_exits_1_on_4xx(server, run, token_args):
    result = run("call", "GET", server.base_url + "/api/missing", *token_args[1:])
    assert result.exit_code == 1
    assert json.loads(result.stdout) == {"error": "not found"}
    assert "404" in result.stderr


def test_call_renews_once_on_401_then_exits_1(server, run, token_args):
    server.api_always_401 = True
    result = run("call", "GET", server.api_url, *token_args[1:])
    assert result.exit_code == 1
    assert len(server.api_requests) == 2
    assert server.token_count == 2


def test_call_sends_data_and_headers(server, run, token_args):
    result = run(
        "call", "POST", server.api_url, *token_args[1:], "-d", '{"a":1}', "-H", "X-Test: yes"
    )
    assert result.exit_code == 0, result.stderr
    [req] = server.api_requests
    assert req.method == "POST"
    assert req.body == b'{"a":1}'
    assert req.headers["x-test"] == "yes"


def test_real_process_prints_only_the_token(server, cli_env, token_args):
    env = {k: v for k, v in os.environ.items() if not k.startswith("PKJWT_")}
    env.update(cli_env["env"])
    proc = subprocess.run(
        [sys.executable, "-m", "pkjwt", *token_args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == server.issued[0] + "\n"
    assert server.issued[0] not in proc.stderr


def test_real_process_error_has_no_traceback(server, cli_env, token_args):
    server.script = [server.error(401, "invalid_client", "unknown key")]
    env = {k: v for k, v in os.environ.items() if not k.startswith("PKJWT_")}
    env.update(cli_env["env"])
    proc = subprocess.run(
        [sys.executable, "-m", "pkjwt", *token_args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert proc.stderr.startswith("error:")
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize(
    ("name", "value", "check"),
    [
        ("PKJWT_SCOPE", "env-scope", lambda req: req.form["scope"] == ["env-scope"]),
        ("PKJWT_TIMEOUT", "15", lambda req: True),
        ("PKJWT_RESOURCE", "urn:env", lambda req: req.form["resource"] == ["urn:env"]),
    ],
)
def test_optional_settings_from_environment(server, run, token_args, name, value, check):
    result = run(*token_args, env={name: value})
    assert result.exit_code == 0, result.stderr
    assert check(server.token_requests[0])


def test_timeout_in_config_file(server, run, cli_env):
    config = cli_env["tmp"] / "config.toml"
    config.write_text(
        f"""
[profiles.int]
token_url = "{server.token_url}"
client_id = "{CLIENT_ID}"
key = "{cli_env["key"]}"
kid = "test-1"
profile = "nhs"
timeout = 15
"""
    )
    result = run("token", "-p", "int", env={"PKJWT_CONFIG": str(config)})
    assert result.exit_code == 0, result.stderr


def test_token_with_issuer_discovery(server, run, cli_env):
    server.metadata = {"issuer": server.issuer, "token_endpoint": server.base_url + "/tok"}
    result = run(
        "token",
        "--issuer",
        server.issuer,
        "--client-id",
        CLIENT_ID,
        "--key",
        cli_env["key"],
        "--kid",
        "test-1",
    )
    assert result.exit_code == 0, result.stderr
    assert result.stdout.strip() == server.issued[0]
    [req] = server.token_requests
    assert req.path == "/tok"
    assert req.claims["aud"] == server.issuer


def test_call_to_an_api_that_is_not_there_is_one_error_line(server, run, token_args):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{probe.getsockname()[1]}/api"
    result = run("call", "GET", dead, *token_args[1:])
    assert result.exit_code == 2
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert errors == [f"error: cannot connect to {dead}"]
    assert "hint:" in result.stderr


def test_explain_checks_the_signature_and_defers_to_a_rule_the_server_names(
    server, run, token_args
):
    server.script = [server.error(400, "invalid_client", "R14 aud: expected x; got y")]
    result = run(*token_args, "--explain")
    assert result.exit_code == 2
    lines = result.stderr.splitlines()
    assert any("R11" in line and "PASS" in line for line in lines), result.stderr
    assert "every rule the client can check passes" not in result.stderr
    assert "the server names a rule the client-side check passes: R14 aud" in result.stderr


def test_explain_with_a_client_secret_keeps_the_servers_error(server, run, cli_env):
    server.script = [server.error(401, "invalid_client", "bad secret")]
    result = run(
        "token", "--token-url", server.token_url, "--client-id", CLIENT_ID,
        "--auth-method", "client_secret_basic", "--client-secret-env", "SECRET", "--explain",
        env={"SECRET": "s3cret"},
    )  # fmt: skip
    assert result.exit_code == 2
    assert "no assertion to explain" in result.stderr
    assert "bad secret" in result.stderr  # the server's answer, not a key-loading error
    assert "s3cret" not in result.output
