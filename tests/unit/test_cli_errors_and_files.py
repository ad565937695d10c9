"""The CLI's first hour: one error format for every mistake (click's own included), exit 2,
nothing half-written, and the small things a newcomer trips over (a JWKS without alg, a JWT
pasted with its Bearer prefix, a rotation undone by --force)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from pkjwt import AssertionFactory, generate_key
from pkjwt.cli.main import cli

from .helpers import CLIENT_ID, TOKEN_URL


def run(*args: str, input: str | None = None) -> Result:
    return CliRunner().invoke(cli, list(args), input=input, catch_exceptions=False)


def one_error(result: Result, *words: str) -> str:
    assert result.exit_code == 2, (result.stdout, result.stderr)
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert "Usage:" not in result.stderr  # click's own format is not a second one
    for word in words:
        assert word in result.stderr, result.stderr
    return result.stderr


@pytest.mark.parametrize(
    ("args", "words"),
    [
        pytest.param(["keygen"], ["--out", "hint: pkjwt keygen --help"], id="missing-option"),
        pytest.param(["keygen", "--out"], ["--out"], id="option-without-value"),
        pytest.param(["doctor", "x", "--bogus"], ["--bogus"], id="unknown-option"),
        pytest.param(["token", "--timeout", "soon"], ["soon"], id="not-a-number"),
        pytest.param(["nosuchcommand"], ["nosuchcommand"], id="unknown-command"),
    ],
)
def test_usage_errors_use_the_one_format(args: list[str], words: list[str]) -> None:
    one_error(run(*args), *words)


def test_keygen_into_a_folder_that_is_a_file(tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("x")
    one_error(
        run("keygen", "--alg", "ES256", "--out", str(tmp_path / "afile" / "k.pem")), "is a file"
    )


def test_keygen_out_a_directory(tmp_path: Path) -> None:
    one_error(run("keygen", "--alg", "ES256", "--out", str(tmp_path)), "is a directory")


def test_keygen_writes_no_key_when_the_jwks_cannot_be_written(tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("x")
    key = tmp_path / "k.pem"
    result = run(
        "keygen", "--alg", "ES256", "--out", str(key), "--jwks", str(tmp_path / "afile" / "j.json")
    )
    one_error(result, "is a file")
    assert not key.exists()


def test_keygen_force_does_not_unpublish_another_kid(tmp_path: Path) -> None:
    jwks_path = tmp_path / "jwks.json"
    old = tmp_path / "old.pem"
    assert run("keygen", "--alg", "ES256", "--kid", "int-1", "--out", str(old),
               "--jwks", str(jwks_path)).exit_code == 0  # fmt: skip
    before = jwks_path.read_text()
    new = tmp_path / "new.pem"
    result = run("keygen", "--alg", "ES256", "--kid", "int-2", "--out", str(new),
                 "--jwks", str(jwks_path), "--force")  # fmt: skip
    one_error(result, "int-1", "pkjwt jwks")
    assert jwks_path.read_text() == before
    assert not new.exists()
    # the same kid may be replaced (a re-run of the same step)
    again = run("keygen", "--alg", "ES256", "--kid", "int-1", "--out", str(old),
                "--jwks", str(jwks_path), "--force")  # fmt: skip
    assert again.exit_code == 0, again.stderr


def test_jwks_pins_the_alg_where_the_key_type_has_one(tmp_path: Path) -> None:
    ec = tmp_path / "ec.pem"
    ec.write_bytes(generate_key("ES256", kid="e1").private_pem())
    ec.chmod(0o600)
    result = run("jwks", str(ec))
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["keys"][0]["alg"] == "ES256"
    rsa = tmp_path / "rsa.pem"
    rsa.write_bytes(generate_key("RS512", kid="r1", size=2048).private_pem())
    rsa.chmod(0o600)
    result = run("jwks", str(rsa))
    assert "alg" not in json.loads(result.stdout)["keys"][0]
    assert "--alg RS512" in result.stderr
    assert json.loads(run("jwks", str(rsa), "--alg", "RS512").stdout)["keys"][0]["alg"] == "RS512"


@pytest.mark.parametrize(
    "wrap",
    [
        lambda t: f"Bearer {t}",
        lambda t: f'"{t}"',
        lambda t: f"'{t}'\n",
        lambda t: f"Authorization: Bearer {t}",
        lambda t: f"grant_type=client_credentials&client_assertion={t}&x=1",
    ],
)
def test_doctor_reads_the_jwt_out_of_what_was_pasted(wrap: object) -> None:
    key = generate_key("RS512", kid="test-1", size=2048)
    token = AssertionFactory(key, client_id=CLIENT_ID, token_url=TOKEN_URL, profile="nhs").make()
    pasted = wrap(token)  # type: ignore[operator]
    result = run("doctor", pasted, "--profile", "nhs", "--token-url", TOKEN_URL, "--json")
    assert result.exit_code == 0, result.stdout
    assert json.loads(result.stdout)["ok"] is True
