"""pkjwt keygen, jwks, assertion, doctor and demo (and --help): through click's CliRunner and as a
real process. (pkjwt token and call are tested in tests/client/.)"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from pkjwt import load_jwks, load_key
from pkjwt.cli.main import cli
from pkjwt.decode import decode_compact

from .helpers import CLIENT_ID, PRIVATE_MEMBERS, TOKEN_URL

REPO = Path(__file__).resolve().parents[2]
COMMANDS = ["keygen", "jwks", "assertion", "doctor", "demo"]
#: an RS512 key under kid test-1 (2048 bits to stay fast); add --out (and --jwks)
KEYGEN_RS512 = ("keygen", "--kid", "test-1", "--alg", "RS512", "--size", "2048")


@pytest.fixture(autouse=True)
def _no_password_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PKJWT_KEY_PASSWORD", raising=False)
    monkeypatch.delenv("PKJWT_DEBUG", raising=False)


def run(*args: str, input: str | None = None, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(cli, list(args), input=input, env=env, catch_exceptions=False)


def assert_one_error_line(result: Result) -> None:
    assert result.exit_code == 2, (result.stdout, result.stderr)
    lines = result.stderr.splitlines()
    assert len([line for line in lines if line.startswith("error:")]) == 1, lines
    assert "Traceback" not in result.output
    assert "Traceback" not in result.stderr


@pytest.fixture(scope="module")
def rs512_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """An RS512 key and its JWKS, made by `pkjwt keygen` (2048 bits to stay fast)."""
    d = tmp_path_factory.mktemp("rs512")
    key, jwks_path = d / "test-1.pem", d / "jwks.json"
    result = run(*KEYGEN_RS512, "--out", str(key), "--jwks", str(jwks_path))
    assert result.exit_code == 0, result.output
    return key, jwks_path


@pytest.fixture(scope="module")
def nhs_jwt(rs512_files: tuple[Path, Path]) -> str:
    key, _ = rs512_files
    args = ["--client-id", CLIENT_ID, "--key", str(key), "--kid", "test-1"]
    result = run("assertion", *args, "--token-url", TOKEN_URL)
    assert result.exit_code == 0, result.output
    return result.stdout.strip()


# -- keygen ----------------------------------------------------------------------------------


def test_keygen_writes_0600_key_and_jwks(tmp_path: Path) -> None:
    key, jwks_path = tmp_path / "k.pem", tmp_path / "j.json"
    result = run(
        "keygen", "--kid", "test-1", "--alg", "ES256", "--out", str(key), "--jwks", str(jwks_path)
    )
    assert result.exit_code == 0, result.output
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert b"PRIVATE KEY" in key.read_bytes()
    doc = json.loads(jwks_path.read_text())
    (member,) = doc["keys"]
    assert member["kid"] == "test-1"
    assert member["alg"] == "ES256"
    assert member["use"] == "sig"
    assert member["kty"] == "EC"
    assert not set(PRIVATE_MEMBERS) & member.keys()
    loaded = load_key(key)
    assert loaded.is_private
    assert loaded.thumbprint() == load_jwks(doc).keys[0].thumbprint()
    # no private key material in what was printed
    assert "PRIVATE" not in result.output
    # no stray temp files left behind
    assert sorted(p.name for p in tmp_path.iterdir()) == ["j.json", "k.pem"]


def test_keygen_refuses_to_overwrite(tmp_path: Path) -> None:
    key = tmp_path / "k.pem"
    assert run("keygen", "--alg", "EdDSA", "--out", str(key)).exit_code == 0
    before = key.read_bytes()
    result = run("keygen", "--alg", "EdDSA", "--out", str(key))
    assert result.exit_code != 0
    assert "--force" in result.output
    assert key.read_bytes() == before
    result = run("keygen", "--alg", "EdDSA", "--out", str(key), "--force")
    assert result.exit_code == 0
    assert key.read_bytes() != before
    assert stat.S_IMODE(key.stat().st_mode) == 0o600


def test_keygen_refuses_to_overwrite_jwks(tmp_path: Path) -> None:
    jwks_path = tmp_path / "j.json"
    jwks_path.write_text("keep me")
    result = run(
        "keygen", "--alg", "ES256", "--out", str(tmp_path / "k.pem"), "--jwks", str(jwks_path)
    )
    assert result.exit_code != 0
    assert jwks_path.read_text() == "keep me"
    assert not (tmp_path / "k.pem").exists()


def test_keygen_json_summary(tmp_path: Path) -> None:
    result = run("keygen", "--alg", "ES384", "--out", str(tmp_path / "k.pem"), "--json")
    assert result.exit_code == 0
    summary = json.loads(result.stdout)
    assert summary["alg"] == "ES384"
    assert summary["kty"] == "EC"
    assert summary["kid"] == summary["thumbprint"]  # kid defaults to the RFC 7638 thumbprint
    assert summary["encrypted"] is False


def test_keygen_unknown_alg(tmp_path: Path) -> None:
    result = run("keygen", "--alg", "HS256", "--out", str(tmp_path / "k.pem"))
    assert_one_error_line(result)
    assert not (tmp_path / "k.pem").exists()


def test_keygen_small_rsa_refused(tmp_path: Path) -> None:
    result = run("keygen", "--alg", "RS512", "--size", "1024", "--out", str(tmp_path / "k.pem"))
    assert_one_error_line(result)


# -- jwks ------------------------------------------------------------------------------------


def test_jwks_prints_public_jwks(rs512_files: tuple[Path, Path]) -> None:
    key, jwks_path = rs512_files
    result = run("jwks", str(key), "--kid", "test-1", "--alg", "RS512")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc == json.loads(jwks_path.read_text())
    for member in doc["keys"]:
        assert not set(PRIVATE_MEMBERS) & member.keys()


def test_jwks_two_keys_and_out(tmp_path: Path, rs512_files: tuple[Path, Path]) -> None:
    key, _ = rs512_files
    other = tmp_path / "ec.pem"
    assert run("keygen", "--alg", "ES256", "--out", str(other)).exit_code == 0
    out = tmp_path / "out.json"
    result = run(
        "jwks", str(key), str(other), "--kid", "int-1", "--kid", "int-2", "--out", str(out)
    )
    assert result.exit_code == 0, result.output
    assert load_jwks(out).kids == ["int-1", "int-2"]
    result = run("jwks", str(key), "--out", str(out))
    assert result.exit_code != 0  # no overwrite without --force


def test_jwks_from_env(monkeypatch: pytest.MonkeyPatch, rs512_files: tuple[Path, Path]) -> None:
    key, _ = rs512_files
    monkeypatch.setenv("PKJWT_TEST_PEM", key.read_text())
    result = run("jwks", "env:PKJWT_TEST_PEM", "--kid", "env-1")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["keys"][0]["kid"] == "env-1"


# -- assertion + doctor ----------------------------------------------------------------------


def test_assertion_prints_an_nhs_jwt(nhs_jwt: str) -> None:
    jwt = decode_compact(nhs_jwt)
    assert jwt.header == {"alg": "RS512", "typ": "JWT", "kid": "test-1"}
    assert jwt.claims["aud"] == TOKEN_URL
    assert jwt.claims["iss"] == jwt.claims["sub"] == CLIENT_ID
    assert jwt.claims["exp"] > 0


def test_doctor_accepts_the_cli_assertion(nhs_jwt: str, rs512_files: tuple[Path, Path]) -> None:
    _, jwks_path = rs512_files
    result = run(
        "doctor", nhs_jwt, "--profile", "nhs", "--token-url", TOKEN_URL, "--jwks", str(jwks_path)
    )
    assert result.exit_code == 0, result.output
    assert "verdict: acceptable" in result.stdout
    assert "FAIL" not in result.stdout


def test_doctor_json(nhs_jwt: str, rs512_files: tuple[Path, Path]) -> None:
    _, jwks_path = rs512_files
    result = run("doctor", nhs_jwt, "--token-url", TOKEN_URL, "--jwks", str(jwks_path), "--json")
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["ok"] is True
    assert out["profile"] == "nhs"
    assert out["profile_guessed"] is True
    assert out["header"]["kid"] == "test-1"
    assert {f["rule"] for f in out["findings"]} >= {"R8", "R9", "R11", "R14"}


def test_doctor_fails_wrong_token_url(nhs_jwt: str, rs512_files: tuple[Path, Path]) -> None:
    _, jwks_path = rs512_files
    other_url = "https://api.service.nhs.uk/oauth2/token"
    args = [
        "doctor",
        nhs_jwt,
        "--profile",
        "nhs",
        "--token-url",
        other_url,
        "--jwks",
        str(jwks_path),
    ]
    result = run(*args)
    assert result.exit_code == 1
    assert "FAIL" in result.stdout
    assert "fix:" in result.stdout
    result = run(*args, "--json")
    assert result.exit_code == 1
    out = json.loads(result.stdout)
    assert out["ok"] is False
    failed = [f for f in out["findings"] if f["verdict"] == "fail"]
    assert [f["code"] for f in failed] == ["aud.wrong"]
    assert failed[0]["hint"]


def test_doctor_fails_with_another_jwks(nhs_jwt: str, tmp_path: Path) -> None:
    other = tmp_path / "o.pem"
    jwks_path = tmp_path / "o.json"
    assert run(*KEYGEN_RS512, "--out", str(other), "--jwks", str(jwks_path)).exit_code == 0
    result = run(
        "doctor",
        nhs_jwt,
        "--profile",
        "nhs",
        "--token-url",
        TOKEN_URL,
        "--jwks",
        str(jwks_path),
        "--json",
    )
    assert result.exit_code == 1
    codes = [f["code"] for f in json.loads(result.stdout)["findings"] if f["verdict"] == "fail"]
    assert codes == ["signature.invalid"]


def test_doctor_not_a_jwt() -> None:
    result = run("doctor", "not-a-jwt")
    assert result.exit_code == 1
    assert "R5" in result.stdout
    assert "FAIL" in result.stdout
    assert "Traceback" not in result.output
    result = run("doctor", "not-a-jwt", "--json")
    assert result.exit_code == 1
    out = json.loads(result.stdout)
    assert out["ok"] is False
    assert out["findings"][0]["rule"] == "R5"
    assert out["findings"][0]["verdict"] == "fail"


def test_doctor_reads_stdin(nhs_jwt: str, rs512_files: tuple[Path, Path]) -> None:
    _, jwks_path = rs512_files
    result = run(
        "doctor", "-", "--profile", "nhs", "--token-url", TOKEN_URL, "--jwks", str(jwks_path),
        input=nhs_jwt + "\n",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    result = run("doctor", "-", "--profile", "nhs", input="garbage\n")
    assert result.exit_code == 1


def test_doctor_missing_jwks_file(nhs_jwt: str, tmp_path: Path) -> None:
    assert_one_error_line(run("doctor", nhs_jwt, "--jwks", str(tmp_path / "missing.json")))


def test_doctor_refuses_private_jwks(
    nhs_jwt: str, rs512_files: tuple[Path, Path], tmp_path: Path
) -> None:
    key, _ = rs512_files
    private = dict(load_key(key).jose.as_dict(private=True))
    path = tmp_path / "leaky.json"
    path.write_text(json.dumps({"keys": [private]}))
    result = run("doctor", nhs_jwt, "--jwks", str(path))
    assert_one_error_line(result)
    assert str(private["d"])[:20] not in result.output


# -- errors: one line, exit 2, no traceback ----------------------------------------------------


def test_corrupt_pem(tmp_path: Path) -> None:
    bad = tmp_path / "bad.pem"
    bad.write_text("-----BEGIN PRIVATE KEY-----\nMIIE!!!garbage\n-----END PRIVATE KEY-----\n")
    bad.chmod(0o600)
    for args in (
        ["jwks", str(bad)],
        ["assertion", "--client-id", "c", "--key", str(bad), "--token-url", TOKEN_URL],
    ):
        assert_one_error_line(run(*args))


def test_missing_key_file(tmp_path: Path) -> None:
    result = run(
        "assertion",
        "--client-id",
        "c",
        "--key",
        str(tmp_path / "nope.pem"),
        "--token-url",
        TOKEN_URL,
    )
    assert_one_error_line(result)
    assert "not found" in result.stderr


@pytest.fixture(scope="module")
def encrypted_key(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("enc")
    key = d / "enc.pem"
    result = CliRunner().invoke(
        cli,
        ["keygen", "--kid", "enc-1", "--alg", "ES256", "--out", str(key), "--password-env", "PW"],
        env={"PW": "correct horse"},
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    assert b"ENCRYPTED" in key.read_bytes()
    return key


def test_encrypted_key_with_password_env(encrypted_key: Path) -> None:
    args = ["assertion", "--client-id", "c", "--key", str(encrypted_key), "--kid", "enc-1"]
    args += [
        "--issuer",
        "https://as.example.com",
        "--profile",
        "rfc7523bis",
        "--password-env",
        "PW",
    ]
    result = run(*args, env={"PW": "correct horse"})
    assert result.exit_code == 0, result.output
    jwt = decode_compact(result.stdout.strip())
    assert jwt.header["alg"] == "ES256"
    assert jwt.claims["aud"] == "https://as.example.com"
    # the default variable works too
    result = run("jwks", str(encrypted_key), env={"PKJWT_KEY_PASSWORD": "correct horse"})
    assert result.exit_code == 0, result.output


def test_default_password_env_does_not_break_plain_keys(
    encrypted_key: Path, rs512_files: tuple[Path, Path]
) -> None:
    """During a rotation one key may be encrypted and one not: `$PKJWT_KEY_PASSWORD` (set for
    the encrypted one) must not make the plain key fail to load."""
    plain, _ = rs512_files
    result = run(
        "jwks", str(encrypted_key), str(plain), "--kid", "enc-1", "--kid", "test-1",
        env={"PKJWT_KEY_PASSWORD": "correct horse"},
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    assert [k["kid"] for k in json.loads(result.stdout)["keys"]] == ["enc-1", "test-1"]


def test_encrypted_key_wrong_password(encrypted_key: Path) -> None:
    result = run("jwks", str(encrypted_key), "--password-env", "PW", env={"PW": "wrong"})
    assert_one_error_line(result)
    assert "wrong password" in result.stderr
    assert "correct horse" not in result.output


def test_wrong_password_whose_garbage_has_valid_padding_is_still_a_wrong_password(
    encrypted_key: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # about 1 wrong password in 256 decrypts to validly padded garbage, which cryptography
    # reports as undecodable key data (no "password" in the message); seen as a flaky test
    from cryptography.hazmat.primitives import serialization

    def undecodable(data: bytes, password: bytes | None, **_: Any) -> Any:
        raise ValueError("Could not deserialize key data. The data may be in an incorrect format")

    monkeypatch.setattr(serialization, "load_pem_private_key", undecodable)
    result = run("jwks", str(encrypted_key), "--password-env", "PW", env={"PW": "wrong"})
    assert_one_error_line(result)
    assert "wrong password" in result.stderr
    assert "corrupt" in result.stderr  # the hint: or the file is damaged


def test_encrypted_key_without_password(encrypted_key: Path) -> None:
    result = run("jwks", str(encrypted_key))
    assert_one_error_line(result)
    assert "encrypted" in result.stderr


def test_password_env_not_set(encrypted_key: Path) -> None:
    result = run("jwks", str(encrypted_key), "--password-env", "PKJWT_TEST_UNSET_PW")
    assert_one_error_line(result)


def test_assertion_profile_mismatch_is_one_line(tmp_path: Path, encrypted_key: Path) -> None:
    args = ["assertion", "--client-id", "c", "--key", str(encrypted_key), "--token-url", TOKEN_URL]
    result = run(*args, "--profile", "nhs", env={"PKJWT_KEY_PASSWORD": "correct horse"})
    assert_one_error_line(result)
    assert "RS512" in result.stderr


def test_assertion_needs_an_audience(rs512_files: tuple[Path, Path]) -> None:
    key, _ = rs512_files
    result = run("assertion", "--client-id", "c", "--key", str(key))
    assert result.exit_code != 0
    assert "--token-url" in result.output


def test_assertion_json(rs512_files: tuple[Path, Path]) -> None:
    key, _ = rs512_files
    result = run(
        "assertion",
        "--client-id",
        "c",
        "--key",
        str(key),
        "--kid",
        "test-1",
        "--token-url",
        TOKEN_URL,
        "--json",
    )
    assert result.exit_code == 0
    out = json.loads(result.stdout)
    assert decode_compact(out["assertion"]).claims == out["claims"]
    assert out["header"]["typ"] == "JWT"


# -- help, demo, version -----------------------------------------------------------------------


@pytest.mark.parametrize("command", COMMANDS)
def test_help_has_an_example(command: str) -> None:
    result = run(command, "--help")
    assert result.exit_code == 0
    assert "Example" in result.stdout


def test_top_level_help_lists_commands() -> None:
    result = run("--help")
    assert result.exit_code == 0
    for command in COMMANDS:
        assert command in result.stdout


def test_unknown_command() -> None:
    result = CliRunner().invoke(cli, ["frobnicate"])
    assert result.exit_code != 0


def test_demo() -> None:
    result = run("demo", "--size", "2048")
    assert result.exit_code == 0, result.output
    # the library got a token from the local NHS-mode server and called the protected API
    assert '"typ": "JWT"' in result.stdout
    assert "GET /echo -> HTTP 200" in result.stdout
    # the broken assertion is refused by the server with the NHS string, then explained
    assert "Invalid 'typ' header in client_assertion JWT - must be 'JWT'" in result.stdout
    assert "a typo for 'jti'" in result.stdout
    assert "demo finished" in result.stdout
    assert "PRIVATE" not in result.output


# -- a real process ----------------------------------------------------------------------------


def _proc(*args: str, cwd: Path, **kw: Any) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PKJWT_KEY_PASSWORD", "PKJWT_DEBUG")}
    exe = REPO / ".venv" / "bin" / "pkjwt"
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "pkjwt"]
    return subprocess.run(
        [*cmd, *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        **kw,
    )


def test_real_process_keygen_assertion_doctor(tmp_path: Path) -> None:
    r = _proc(*KEYGEN_RS512, "--out", "k.pem", "--jwks", "j.json", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert stat.S_IMODE((tmp_path / "k.pem").stat().st_mode) == 0o600
    r = _proc(
        "assertion",
        "--client-id",
        CLIENT_ID,
        "--key",
        "k.pem",
        "--kid",
        "test-1",
        "--token-url",
        TOKEN_URL,
        cwd=tmp_path,
    )
    assert r.returncode == 0, r.stderr
    jwt = r.stdout.strip()
    r = _proc(
        "doctor",
        jwt,
        "--profile",
        "nhs",
        "--token-url",
        TOKEN_URL,
        "--jwks",
        "j.json",
        cwd=tmp_path,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    r = _proc(
        "doctor",
        "-",
        "--profile",
        "nhs",
        "--token-url",
        TOKEN_URL + "x",
        "--jwks",
        "j.json",
        cwd=tmp_path,
        input=jwt,
    )
    assert r.returncode == 1


def test_real_process_errors_have_no_traceback(tmp_path: Path) -> None:
    r = _proc("doctor", "not-a-jwt", cwd=tmp_path)
    assert r.returncode == 1
    assert "Traceback" not in r.stderr
    r = _proc("jwks", "missing.pem", cwd=tmp_path)
    assert r.returncode == 2
    assert "Traceback" not in r.stderr
    assert [line for line in r.stderr.splitlines() if line.startswith("error:")]


def test_python_dash_m(tmp_path: Path) -> None:
    r = subprocess.run(
        [sys.executable, "-m", "pkjwt", "--version"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert r.returncode == 0, r.stderr
    assert "0.1.0" in r.stdout


def test_keygen_onto_an_existing_file_is_one_error_line_with_the_fix(tmp_path: Path) -> None:
    target = tmp_path / "k.pem"
    target.write_text("precious")
    result = run("keygen", "--alg", "ES256", "--out", str(target))
    assert_one_error_line(result)
    assert f"error: {target} exists" in result.stderr
    assert "hint: pass --force to overwrite it" in result.stderr
    assert target.read_text() == "precious"


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--alg", "ES256", "--size", "4096"], "--size applies to RSA keys only"),
        (["--alg", "HS256"], "cannot generate a key for alg 'HS256'"),
    ],
)
def test_keygen_refuses_before_it_announces_work(
    tmp_path: Path, args: list[str], says: str
) -> None:
    result = run("keygen", *args, "--out", str(tmp_path / "k.pem"))
    assert_one_error_line(result)
    assert says in result.stderr
    assert "generating" not in result.stderr
    assert not (tmp_path / "k.pem").exists()


@pytest.mark.parametrize("kids", [["--kid", "a"], ["--kid", "a", "--kid", "b", "--kid", "c"]])
def test_jwks_wants_one_kid_per_key_file_or_none(
    rs512_files: tuple[Path, Path], kids: list[str]
) -> None:
    key, _ = rs512_files
    result = CliRunner().invoke(cli, ["jwks", str(key), str(key), *kids])
    assert result.exit_code == 2
    assert "give one --kid per key file" in result.output
