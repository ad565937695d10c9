"""The CLI as a newcomer meets it (issue 9): config sections and assertion profiles never
confused (each error points to the other flag), settings whose origin -v shows, --explain
against the JWKS the server registered, and the alg keygen published used without --alg."""

from __future__ import annotations

import json
import os
import time

import pytest
from click.testing import CliRunner

from pkjwt import generate_key, jwks
from pkjwt.cli.main import cli

from .conftest import CLIENT_ID


@pytest.fixture
def env(server, tmp_path, nhs_key, monkeypatch):
    server.date_clock = time.time
    for name in [n for n in os.environ if n.startswith("PKJWT_")]:
        monkeypatch.delenv(name)
    key = tmp_path / "test-1.pem"
    key.write_bytes(nhs_key.private_pem())
    key.chmod(0o600)
    config = tmp_path / "config.toml"
    config.write_text(
        f"""
[sections.int]
token_url = "{server.token_url}"
client_id = "{CLIENT_ID}"
key = "{key}"
kid = "test-1"
profile = "nhs"
"""
    )
    return {
        "PKJWT_CACHE_DIR": str(tmp_path / "cache"),
        "PKJWT_CONFIG": str(config),
        "key": str(key),
        "tmp": str(tmp_path),
    }


def run(env, *args):
    settings = {k: v for k, v in env.items() if k.startswith("PKJWT_")}
    return CliRunner().invoke(cli, list(args), env=settings, catch_exceptions=False)


def test_a_section_is_chosen_with_dash_s(server, env):
    server.script = [server.ok()]
    result = run(env, "token", "-s", "int")
    assert result.exit_code == 0, result.stderr
    assert result.stdout.strip() == server.issued[0]


def test_dash_p_still_works_and_says_what_it_became(server, env):
    server.script = [server.ok()]
    result = run(env, "token", "-p", "int")
    assert result.exit_code == 0, result.stderr
    assert "-p/--use is now -s/--section" in result.stderr


def test_a_profile_name_given_as_a_section_points_to_profile(server, env):
    result = run(env, "token", "-s", "nhs")
    assert result.exit_code == 2
    assert "no config section named 'nhs'" in result.stderr
    assert "--profile nhs" in result.stderr


def test_a_section_name_given_as_a_profile_points_to_section(server, env):
    result = run(env, "token", "--profile", "int")
    assert result.exit_code == 2
    assert "unknown assertion profile 'int'" in result.stderr
    assert "--section int" in result.stderr


def test_verbose_shows_where_each_setting_came_from(server, env):
    server.script = [server.ok()]
    env = {**env, "PKJWT_CLIENT_ID": CLIENT_ID}  # a variable quietly overriding the section
    result = run(env, "token", "-s", "int", "-v", "--scope", "api:read")
    assert result.exit_code == 0, result.stderr
    lines = {line.split()[0]: line for line in result.stderr.splitlines()[1:] if line.strip()}
    assert lines["client_id"].endswith("from $PKJWT_CLIENT_ID")
    assert "[sections.int] in" in lines["token_url"]
    assert lines["scope"].endswith("from --scope")
    assert server.issued[0] not in result.stderr


def test_explain_checks_against_the_registered_jwks(server, env):
    server.script = [server.error(400, "invalid_client", "signature")] * 3
    other = generate_key("RS512", kid="test-1", size=2048)
    registered = os.path.join(env["tmp"], "registered.json")
    with open(registered, "w") as fh:
        json.dump(jwks([other.public()]), fh)
    result = run(env, "token", "-s", "int", "--explain", "--jwks", registered)
    assert result.exit_code == 2
    assert "is not this private key's public half" in result.stderr
    assert "FAIL R11" in result.stderr  # checked with the registered key, not our own


def test_the_alg_published_next_to_the_key_is_used(server, env, tmp_path):
    """keygen writes RS512 into the JWKS beside the key; a run without --alg or --profile nhs
    (a local NHS-style server) must sign RS512, not the RSA default."""
    server.script = [server.ok()]
    key = tmp_path / "k" / "int-1.pem"
    key.parent.mkdir()
    made = CliRunner().invoke(cli, ["keygen", "--kid", "int-1", "--alg", "RS512", "--size",
                                    "2048", "--out", str(key), "--jwks",
                                    str(key.parent / "jwks.json")])  # fmt: skip
    assert made.exit_code == 0, made.stderr
    result = run(env, "token", "--token-url", server.token_url, "--client-id", CLIENT_ID,
                 "--key", str(key), "--no-cache")  # fmt: skip
    assert result.exit_code == 0, result.stderr
    assert server.token_requests[0].jwt_header["alg"] == "RS512"
    assert "signing with RS512" in result.stderr


def test_an_nhs_style_answer_says_use_profile_nhs(server, env):
    server.script = [
        server.error(400, "invalid_request", "Invalid 'typ' header in client_assertion JWT - "
                     "must be 'JWT'")
    ]  # fmt: skip
    result = run(env, "token", "--token-url", server.token_url, "--client-id", CLIENT_ID,
                 "--key", env["key"], "--kid", "test-1", "--profile", "rfc7523bis",
                 "--audience", server.token_url, "--no-cache")  # fmt: skip
    assert result.exit_code == 2
    assert "--profile nhs" in result.stderr
