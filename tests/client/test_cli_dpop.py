"""pkjwt token / pkjwt call with --dpop (and dpop = true, PKJWT_DPOP) against the scripted
server, which judges every proof: the DPoP key the CLI keeps 0600 in the state dir makes a
cached DPoP token usable by the next run."""

from __future__ import annotations

import json
import os
import stat
import time

import pytest
from click.testing import CliRunner

from pkjwt.cli.main import cli

from .conftest import CLIENT_ID


@pytest.fixture
def env(server, tmp_path, nhs_key, monkeypatch):
    server.date_clock = time.time  # the CLI uses the real clock
    for name in [n for n in os.environ if n.startswith("PKJWT_")]:
        monkeypatch.delenv(name)
    key_path = tmp_path / "test-1.pem"
    key_path.write_bytes(nhs_key.private_pem())
    key_path.chmod(0o600)
    return {
        "PKJWT_CACHE_DIR": str(tmp_path / "cache"),
        "PKJWT_STATE_DIR": str(tmp_path / "state"),
        "PKJWT_CONFIG": str(tmp_path / "config.toml"),
        "PKJWT_TOKEN_URL": server.token_url,
        "PKJWT_CLIENT_ID": CLIENT_ID,
        "PKJWT_KEY": str(key_path),
        "PKJWT_KID": "test-1",
        "PKJWT_PROFILE": "nhs",
    }


@pytest.fixture
def run(env):
    def invoke(*args: str, extra: dict[str, str] | None = None):
        return CliRunner().invoke(cli, list(args), env={**env, **(extra or {})})

    return invoke


def _json(result):
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def _key_files(env):
    folder = os.path.join(env["PKJWT_STATE_DIR"], "dpop")
    return [os.path.join(folder, n) for n in os.listdir(folder)] if os.path.isdir(folder) else []


def test_token_dpop_json_and_the_kept_key(server, run, env):
    first = _json(run("token", "--dpop", "--json"))
    assert first["token_type"] == "DPoP"
    assert first["cached"] is False
    [req] = server.token_requests
    assert req.dpop is not None
    assert req.dpop.ok, req.dpop.first_failure
    assert first["dpop_jkt"] == req.dpop.jkt
    assert server.bound[first["access_token"]] == req.dpop.jkt
    [key_file] = _key_files(env)
    assert stat.S_IMODE(os.stat(key_file).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(os.path.dirname(key_file)).st_mode) == 0o700
    second = _json(run("token", "--dpop", "--json"))
    assert second["cached"] is True  # the same key, so the cached token is still usable
    assert second["access_token"] == first["access_token"]
    assert second["dpop_jkt"] == first["dpop_jkt"]
    assert len(server.token_requests) == 1


def test_call_dpop_uses_the_cached_token_with_a_proof(server, run):
    token = _json(run("token", "--dpop", "--json"))
    result = run("call", "GET", server.api_url, "--dpop")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["hello"] == "world"
    [api] = server.api_requests
    assert api.headers["authorization"] == f"DPoP {token['access_token']}"
    assert api.dpop is not None
    assert api.dpop.ok, api.dpop.first_failure
    assert api.dpop.jkt == token["dpop_jkt"]
    assert len(server.token_requests) == 1


def test_no_cache_means_an_ephemeral_key(server, run, env):
    first = _json(run("token", "--dpop", "--no-cache", "--json"))
    second = _json(run("token", "--dpop", "--no-cache", "--json"))
    assert first["token_type"] == second["token_type"] == "DPoP"
    assert first["dpop_jkt"] != second["dpop_jkt"]
    assert _key_files(env) == []


def test_dpop_from_a_config_section_and_the_environment(server, run, env, tmp_path):
    (tmp_path / "config.toml").write_text("[sections.dev]\ndpop = true\n")
    assert _json(run("token", "-s", "dev", "--json"))["token_type"] == "DPoP"
    from_env = _json(run("token", "--json", "--no-cache", extra={"PKJWT_DPOP": "1"}))
    assert from_env["token_type"] == "DPoP"
    off = _json(run("token", "-s", "dev", "--no-dpop", "--no-cache", "--json"))
    assert off["token_type"] == "Bearer"
    assert "dpop_jkt" not in off
    assert "dpop" not in server.token_requests[-1].headers


def test_without_dpop_nothing_changes(server, run, env):
    data = _json(run("token", "--json"))
    assert data["token_type"] == "Bearer"
    assert "dpop_jkt" not in data
    assert "dpop" not in server.token_requests[0].headers
    assert _key_files(env) == []


def test_a_bad_dpop_setting_is_named(run, tmp_path):
    (tmp_path / "config.toml").write_text('[sections.dev]\ndpop = "sometimes"\n')
    result = run("token", "-s", "dev")
    assert result.exit_code != 0
    assert "dpop must be true or false" in result.output
