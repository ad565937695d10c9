"""Configuration is validated at start: a bad config names the file, the key and the reason;
``pkjwt serve`` turns it into one 'error:' line and exit code 2."""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from pkjwt.cli.main import cli
from pkjwt.errors import ConfigError
from pkjwt.keys import Key, jwks
from pkjwt.server.config import load_config, parse_config


@pytest.fixture(scope="module")
def public_jwks(es256_key: Key) -> dict[str, Any]:
    return jwks([es256_key.public()])


def _toml_value(value: Any) -> str:
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {_toml_value(v)}" for k, v in value.items()) + " }"
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value)
    return str(value)


def _write(tmp_path: Path, top: dict[str, Any], clients: list[dict[str, Any]]) -> Path:
    lines = [f"{k} = {_toml_value(v)}" for k, v in top.items()]
    for client in clients:
        lines.append("[[clients]]")
        lines += [f"{k} = {_toml_value(v)}" for k, v in client.items()]
    path = tmp_path / "server.toml"
    path.write_text("\n".join(lines) + "\n", "utf-8")
    return path


def _config_error(path: Path) -> str:
    with pytest.raises(ConfigError) as info:
        load_config(path)
    return info.value.message


def test_good_config_loads(tmp_path: Path, public_jwks: dict[str, Any]) -> None:
    (tmp_path / "jwks.json").write_text(json.dumps(public_jwks))
    path = _write(
        tmp_path,
        {"profile": "nhs", "token_format": "jwt", "replay_store": "memory://"},
        [
            {"client_id": "a", "jwks_file": "jwks.json", "scopes": ["x"]},
            {"client_id": "b", "jwks_uri": "https://example.com/jwks"},
            {"client_id": "c", "client_secret": "s"},
        ],
    )
    config = load_config(path)
    assert config.profile.name == "nhs"
    assert [c.client_id for c in config.clients] == ["a", "b", "c"]
    assert config.clients[0].keys is not None  # jwks_file is relative to the config file
    assert config.source == str(path)


_PRIVATE_JWK = {
    "keys": [
        {
            "kty": "EC",
            "crv": "P-256",
            "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
            "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0",
            "d": "jpsQnnGQmL-YBIffH1136cspYG6-0iY7X1fCE9-E9LI",
        }
    ]
}


@pytest.mark.parametrize(
    ("top", "clients", "expected"),
    [
        pytest.param(
            {},
            [{"jwks_uri": "https://e.example/jwks"}],
            ["clients[0]", "client_id"],
            id="missing-client_id",
        ),
        pytest.param(
            {},
            [{"client_id": "a", "jwks_uri": "https://e.example/jwks", "jwks_file": "x.json"}],
            ["clients[0]", "jwks_file", "jwks_uri"],
            id="two-key-sources",
        ),
        pytest.param(
            {},
            [{"client_id": "a", "jwks": _PRIVATE_JWK}],
            ["clients[0]", "jwks", "private"],
            id="private-jwks",
        ),
        pytest.param(
            {}, [{"client_id": "a"}], ["clients[0]", "no credentials"], id="no-credentials"
        ),
        pytest.param(
            {},
            [{"client_id": "a", "jwks_uri": "https://e.example/j", "colour": 1}],
            ["clients[0]", "colour"],
            id="unknown-client-key",
        ),
        pytest.param({"colour": "blue"}, [], ["colour"], id="unknown-server-key"),
        pytest.param({"profile": "nhs2"}, [], ["profile", "nhs2"], id="bad-profile"),
        pytest.param({"token_format": "paseto"}, [], ["token_format"], id="bad-token-format"),
        pytest.param({"token_lifetime": 0}, [], ["token_lifetime"], id="bad-lifetime"),
        pytest.param({"replay_store": "mongodb://x"}, [], ["replay_store"], id="bad-replay-store"),
        pytest.param({"issuer": "ftp://x"}, [], ["issuer"], id="bad-issuer"),
        pytest.param({"signing_alg": "HS256"}, [], ["signing_alg"], id="bad-signing-alg"),
        pytest.param({"skew": -1}, [], ["skew"], id="bad-skew"),
        pytest.param({"audience_policy": "any"}, [], ["audience_policy"], id="bad-aud-policy"),
        pytest.param(
            {},
            [{"client_id": "a", "jwks_uri": "ftp://e.example/jwks"}],
            ["clients[0]", "jwks_uri"],
            id="bad-jwks-uri",
        ),
        pytest.param(
            {},
            [{"client_id": "a", "client_secret": "s", "scopes": [1]}],
            ["clients[0]", "scopes"],
            id="bad-scopes",
        ),
        pytest.param(
            {},
            [{"client_id": "a", "jwks_file": "missing.json"}],
            ["clients[0]", "jwks_file", "missing.json"],
            id="jwks-file-missing",
        ),
        pytest.param(
            {},
            [{"client_id": "a", "client_secret": "s"}, {"client_id": "a", "client_secret": "t"}],
            ["duplicate", "a"],
            id="duplicate-client",
        ),
        pytest.param(
            {},
            [{"client_id": "a", "client_secret_env": "PKJWT_TEST_UNSET_VAR_X"}],
            ["clients[0]", "client_secret_env", "PKJWT_TEST_UNSET_VAR_X"],
            id="secret-env-unset",
        ),
        # values of the wrong type must be refused, not coerced or crashed on
        pytest.param({"jwks_max_bytes": "big"}, [], ["jwks_max_bytes"], id="jwks_max_bytes-str"),
        pytest.param({"jwks_timeout": "soon"}, [], ["jwks_timeout"], id="jwks_timeout-str"),
        pytest.param(
            {"allow_private_jwks_uri": "false"},
            [],
            ["allow_private_jwks_uri"],
            id="allow_private-str",
        ),
        pytest.param(
            {"require_explicit_typ": "no"},
            [],
            ["require_explicit_typ"],
            id="require_explicit_typ-str",
        ),
    ],
)
def test_bad_config(
    tmp_path: Path, top: dict[str, Any], clients: list[dict[str, Any]], expected: list[str]
) -> None:
    path = _write(tmp_path, top, clients)
    message = _config_error(path)
    assert str(path) in message, message
    for word in expected:
        assert word in message, (word, message)


def test_not_toml(tmp_path: Path) -> None:
    path = tmp_path / "server.toml"
    path.write_text('{"profile": "nhs"}\n')
    message = _config_error(path)
    assert str(path) in message
    assert "TOML" in message


def test_missing_file(tmp_path: Path) -> None:
    message = _config_error(tmp_path / "nope.toml")
    assert "nope.toml" in message


def test_parse_config_names_its_source() -> None:
    with pytest.raises(ConfigError) as info:
        parse_config({"clients": [{"client_id": ""}]}, source="inline.toml")
    assert "inline.toml" in info.value.message
    assert "clients[0].client_id" in info.value.message


# -- the CLI ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "content",
    [
        "profile = 'nope'\n",
        "[[clients]]\njwks_uri = 'https://e.example/jwks'\n",
        "this is not toml = = \n",
        "jwks_max_bytes = 'big'\n",
    ],
    ids=["bad-profile", "missing-client-id", "not-toml", "wrong-type"],
)
def test_serve_with_bad_config_exits_2(tmp_path: Path, content: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(content)
    result = CliRunner().invoke(cli, ["serve", "--config", str(path), "--port", "0"])
    stderr = result.stderr
    assert result.exit_code == 2, (result.exit_code, result.output)
    error_lines = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert len(error_lines) == 1, stderr
    assert str(path) in error_lines[0]
    assert "Traceback" not in result.output
    assert "internal error" not in result.output


def test_serve_with_missing_config_file(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["serve", "--config", str(tmp_path / "none.toml")])
    assert result.exit_code == 2
    assert sum(1 for line in result.stderr.splitlines() if line.startswith("error:")) == 1


def test_serve_on_a_port_in_use_says_so_in_one_line(tmp_path: Path, es256_key: Key) -> None:
    path = tmp_path / "ok.toml"
    inline = json.dumps(json.dumps(jwks([es256_key.public()])))
    path.write_text(f'replay_store = "memory://"\n[[clients]]\nclient_id = "c"\njwks = {inline}\n')
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        result = CliRunner().invoke(cli, ["serve", "--config", str(path), "--port", str(port)])
    assert result.exit_code == 2, result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert errors == [f"error: cannot listen on 127.0.0.1:{port}: Address already in use"]
    assert "--port 0" in result.stderr
    assert "internal error" not in result.output


def test_serve_refuses_a_port_out_of_range(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["serve", "--config", "x.toml", "--port", "70000"])
    assert result.exit_code == 2
    assert "70000" in result.output
    assert "Traceback" not in result.output
