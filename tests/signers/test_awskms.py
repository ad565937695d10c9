"""The ``awskms:`` signer against moto's KMS in server mode on loopback (``moto_server.py``):
real HTTP, real SigV4 request signing, keys that never leave moto. Tokens come from a real
``pkjwt serve`` (in-process), assertions are verified with PyJWT (a JOSE library pkjwt does
not use) against the key ``GetPublicKey`` gives, and every way KMS can fail us ends as a
``SignerUnavailable`` that says whether waiting helps.

Faults moto cannot produce on demand (throttling, KMS's internal errors, a 503, AWS's JSON
error shapes for a denied or wrongly-used key) come from a loopback stand-in that answers
KMS's JSON protocol (``_FaultyKms``): botocore's parsing and retrying run on them for real."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jwt as pyjwt
import pytest
from click.testing import CliRunner
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from pkjwt import Key, TokenClient, load_key
from pkjwt.cli.main import cli
from pkjwt.errors import ConfigError, KeyLoadError, SignerUnavailable
from pkjwt.signers import open_signer
from pkjwt.signers.awskms import (
    CONNECT_TIMEOUT,
    MAX_ATTEMPTS,
    AwsKmsSigner,
    KmsKeyRef,
    parse_uri,
)
from pkjwt.testing import local_auth_server

from .moto_server import KmsKey, MotoKms

ARN = "arn:aws:kms:us-east-1:111122223333"


@pytest.fixture(scope="module")
def moto() -> Iterator[MotoKms]:
    server = MotoKms()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def keys(moto: MotoKms) -> dict[str, KmsKey]:
    return {
        "rsa4096": moto.create_key("RSA_4096", alias="alias/pkjwt-nhs"),
        "rsa2048": moto.create_key("RSA_2048", alias="alias/pkjwt-ps256"),
        "p256": moto.create_key("ECC_NIST_P256", alias="alias/pkjwt-es256"),
        "p384": moto.create_key("ECC_NIST_P384", alias="alias/pkjwt-es384"),
        "p521": moto.create_key("ECC_NIST_P521", alias="alias/pkjwt-es512"),
    }


@pytest.fixture
def aws(moto: MotoKms, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> MotoKms:
    """The AWS_* environment pointed at moto, and no PKJWT_* settings from outside."""
    moto.env(monkeypatch, tmp_path)
    for name in [n for n in os.environ if n.startswith("PKJWT_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("PKJWT_CONFIG", str(tmp_path / "no-config.toml"))
    monkeypatch.setenv("PKJWT_CACHE_DIR", str(tmp_path / "cache"))
    moto.sign_requests.clear()
    return moto


def registered(moto: MotoKms, key: KmsKey) -> Key:
    """What the client registers: the public key GetPublicKey gives (kid: its thumbprint)."""
    return load_key(moto.public_key(key))


# -- tokens from a real pkjwt serve -------------------------------------------------------------


def test_nhs_tokens_signed_rs512_by_an_rsa_4096_key(aws: MotoKms, keys: dict[str, KmsKey]) -> None:
    public = aws.public_key(keys["rsa4096"])
    assert public.key_size == 4096
    with local_auth_server("nhs", key=load_key(public)) as server:
        client = server.token_client(key="awskms:alias/pkjwt-nhs")
        assert client.get_token().access_token
        seen = server.last_request
        assert seen.ok, seen.description
        assert (seen.header["alg"], seen.header["kid"]) == ("RS512", load_key(public).thumbprint())
        assertion = client.make_assertion()
    claims = pyjwt.decode(assertion, public, algorithms=["RS512"], audience=server.token_url)
    assert claims["iss"] == claims["sub"] == server.client_id
    # the hash went to KMS, never the claims: MessageType DIGEST, 64 bytes for SHA-512
    assert {(r.message_type, r.message_length, r.algorithm) for r in aws.sign_requests} == {
        ("DIGEST", 64, "RSASSA_PKCS1_V1_5_SHA_512")
    }


def test_fapi2_tokens_signed_ps256(aws: MotoKms, keys: dict[str, KmsKey]) -> None:
    public = aws.public_key(keys["rsa2048"])
    with local_auth_server("fapi2", key=load_key(public)) as server:
        client = server.token_client(key="awskms:alias/pkjwt-ps256")
        assert client.get_token().access_token
        assert server.last_request.ok, server.last_request.description
        assert server.last_request.header["alg"] == "PS256"
        assertion = client.make_assertion()
    pyjwt.decode(assertion, public, algorithms=["PS256"], audience=server.issuer)
    assert {r.algorithm for r in aws.sign_requests} == {"RSASSA_PSS_SHA_256"}


@pytest.mark.parametrize(
    ("name", "alg", "width"), [("p256", "ES256", 32), ("p384", "ES384", 48), ("p521", "ES512", 66)]
)
def test_ecdsa_der_from_kms_becomes_jws_r_s(
    aws: MotoKms, keys: dict[str, KmsKey], name: str, alg: str, width: int
) -> None:
    public = aws.public_key(keys[name])
    with local_auth_server("rfc7523bis", key=load_key(public)) as server:
        client = server.token_client(key=keys[name].uri)
        assert client.get_token().access_token
        assert server.last_request.ok, server.last_request.description
        assertion = client.make_assertion()
    assert pyjwt.get_unverified_header(assertion)["alg"] == alg
    signature = pyjwt.utils.base64url_decode(assertion.rsplit(".", 1)[1])
    assert len(signature) == 2 * width  # R || S, not DER
    pyjwt.decode(assertion, public, algorithms=[alg], audience=server.issuer)
    assert {(r.message_type, r.message_length) for r in aws.sign_requests} == {
        ("DIGEST", width if width != 66 else 64)
    }


def test_aget_token_works(aws: MotoKms, keys: dict[str, KmsKey]) -> None:
    with local_auth_server("rfc7523bis", key=registered(aws, keys["p256"])) as server:
        client = server.token_client(key=keys["p256"].uri)

        async def twice() -> tuple[Any, Any]:
            try:
                return await client.aget_token(), await client.aget_token(force=True)
            finally:
                await client.aclose()

        first, second = asyncio.run(twice())
        assert first.access_token
        assert second.access_token != first.access_token
        assert [r.ok for r in server.requests] == [True, True]


# -- the CLI -------------------------------------------------------------------------------------


def test_pkjwt_token_with_a_kms_key(aws: MotoKms, keys: dict[str, KmsKey]) -> None:
    with local_auth_server("rfc7523bis", key=registered(aws, keys["p384"])) as server:
        result = CliRunner().invoke(
            cli,
            ["token", "--issuer", server.issuer, "--client-id", server.client_id,
             "--key", "awskms:alias/pkjwt-es384", "--profile", "rfc7523bis", "--no-cache"],
        )  # fmt: skip
        assert result.exit_code == 0, result.output
        assert server.last_request.ok
        assert server.last_request.header["alg"] == "ES384"
    assert len(result.stdout.split()) == 1  # the token alone, for $(pkjwt token ...)


def test_pkjwt_jwks_publishes_the_kms_key_and_serve_accepts_it(
    aws: MotoKms, keys: dict[str, KmsKey]
) -> None:
    result = CliRunner().invoke(cli, ["jwks", "awskms:alias/pkjwt-nhs", "--alg", "RS512"])
    assert result.exit_code == 0, result.output
    published = json.loads(result.stdout)
    (jwk,) = published["keys"]
    public = registered(aws, keys["rsa4096"])
    assert (jwk["kid"], jwk["alg"], jwk["kty"]) == (public.thumbprint(), "RS512", "RSA")
    assert not {"d", "p", "q"} & jwk.keys()
    app = {"client_id": "kms-app", "jwks": published, "scopes": ["api:read"]}
    with local_auth_server("nhs", clients=[app]) as server:
        client = TokenClient(
            token_url=server.token_url, client_id="kms-app", key="awskms:alias/pkjwt-nhs",
            profile="nhs",
        )  # fmt: skip
        assert client.get_token().access_token
        assert server.last_request.client_id == "kms-app"
        assert server.last_request.ok, server.last_request.description


def test_the_cli_reports_a_disabled_key_in_one_line(aws: MotoKms) -> None:
    key = aws.create_key("ECC_NIST_P256", alias="alias/pkjwt-disabled")
    aws.client().disable_key(KeyId=key.key_id)
    result = CliRunner().invoke(
        cli,
        ["token", "--token-url", "http://127.0.0.1:9/token", "--client-id", "c",
         "--key", key.uri, "--profile", "legacy", "--no-cache"],
    )  # fmt: skip
    assert result.exit_code == 2
    error, hint = result.stderr.splitlines()
    assert error.startswith(
        "error: AWS KMS key alias/pkjwt-disabled (eu-west-2): KMS GetPublicKey failed: "
        "DisabledException"
    )
    assert hint.startswith("hint: enable the key")
    assert "Traceback" not in result.output


# -- keys pkjwt will not sign with --------------------------------------------------------------


def test_an_encrypt_decrypt_key_is_refused_at_construction(aws: MotoKms) -> None:
    key = aws.create_key("RSA_2048", usage="ENCRYPT_DECRYPT", alias="alias/pkjwt-encrypt")
    with pytest.raises(
        KeyLoadError, match="is a RSA_2048 key for ENCRYPT_DECRYPT, not SIGN_VERIFY"
    ):
        open_signer(key.uri)
    assert aws.sign_requests == []


@pytest.mark.parametrize(
    ("spec", "usage", "why"),
    [
        ("SYMMETRIC_DEFAULT", "ENCRYPT_DECRYPT", "symmetric"),
        ("ECC_SECG_P256K1", "SIGN_VERIFY", "ES256K"),
    ],
)
def test_key_specs_pkjwt_does_not_sign_with_are_refused(
    aws: MotoKms, spec: str, usage: str, why: str
) -> None:
    key = aws.create_key(spec, usage=usage)
    with pytest.raises(KeyLoadError, match=f"is a {spec} key") as caught:
        open_signer(key.uri)
    assert why in (caught.value.hint or "")


def test_an_unknown_alias_is_a_key_load_error_naming_the_region(aws: MotoKms) -> None:
    with pytest.raises(KeyLoadError, match="NotFoundException") as caught:
        open_signer("awskms:alias/pkjwt-no-such-key")
    assert "alias/pkjwt-no-such-key (eu-west-2)" in caught.value.message
    assert "region" in (caught.value.hint or "")


def test_an_algorithm_the_key_cannot_make_is_refused(aws: MotoKms, keys: dict[str, KmsKey]) -> None:
    with pytest.raises(KeyLoadError, match="cannot sign RS256"):
        open_signer(keys["p256"].uri, alg="RS256")
    signer = open_signer(keys["rsa2048"].uri)
    assert signer.algs == ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512")
    assert open_signer(keys["p384"].uri).algs == ("ES384",)


# -- KMS failing us ----------------------------------------------------------------------------


def test_a_key_disabled_after_start_up_is_not_retryable(aws: MotoKms) -> None:
    key = aws.create_key("ECC_NIST_P256", alias="alias/pkjwt-disabled-later")
    signer = open_signer(key.uri)
    aws.client().disable_key(KeyId=key.key_id)
    with pytest.raises(SignerUnavailable, match="KMS Sign failed: DisabledException") as caught:
        signer.sign(b"header.payload")
    assert not caught.value.retryable
    assert "aws kms enable-key" in (caught.value.hint or "")


def test_a_key_pending_deletion_is_not_retryable(aws: MotoKms) -> None:
    key = aws.create_key("ECC_NIST_P256")
    signer = open_signer(key.uri)
    aws.client().schedule_key_deletion(KeyId=key.key_id, PendingWindowInDays=7)
    with pytest.raises(SignerUnavailable, match="KMSInvalidStateException") as caught:
        signer.sign(b"header.payload")
    assert not caught.value.retryable
    assert "cancel-key-deletion" in (caught.value.hint or "")


def _iam_user(moto: MotoKms, name: str, actions: list[str]) -> dict[str, str]:
    iam = moto.client("iam")
    iam.create_user(UserName=name)
    policy = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": actions,
              "Resource": "*"}]}  # fmt: skip
    iam.put_user_policy(UserName=name, PolicyName="kms", PolicyDocument=json.dumps(policy))
    created: dict[str, str] = iam.create_access_key(UserName=name)["AccessKey"]
    return created


def test_access_denied_is_not_retryable_and_names_the_permission(
    aws: MotoKms, keys: dict[str, KmsKey], monkeypatch: pytest.MonkeyPatch
) -> None:
    creds = _iam_user(aws, "pkjwt-reads-only", ["kms:GetPublicKey"])
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", creds["AccessKeyId"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", creds["SecretAccessKey"])
    with aws.iam_enforced():  # moto checks the signature and the user's policy, as IAM does
        signer = open_signer(keys["p256"].uri)
        with pytest.raises(SignerUnavailable) as caught:
            signer.sign(b"header.payload")
    assert not caught.value.retryable
    assert "not authorized to perform: kms:Sign" in caught.value.message
    assert "kms:Sign" in (caught.value.hint or "")
    shown = str(caught.value) + repr(signer)
    assert creds["SecretAccessKey"] not in shown
    assert creds["AccessKeyId"] not in shown


def test_credentials_aws_refuses_are_not_retryable_and_never_shown(
    aws: MotoKms, keys: dict[str, KmsKey], monkeypatch: pytest.MonkeyPatch
) -> None:
    creds = _iam_user(aws, "pkjwt-wrong-secret", ["kms:*"])
    wrong = "wrong-" + creds["SecretAccessKey"][6:]
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", creds["AccessKeyId"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", wrong)
    with aws.iam_enforced():
        result = CliRunner().invoke(cli, ["jwks", keys["p256"].uri])
        with pytest.raises(SignerUnavailable, match="GetPublicKey failed") as caught:
            open_signer(keys["p256"].uri)
    assert not caught.value.retryable
    assert "AWS refused the credentials" in (caught.value.hint or "")
    assert result.exit_code == 2
    for secret in (wrong, creds["SecretAccessKey"], creds["AccessKeyId"]):
        assert secret not in str(caught.value)
        assert secret not in result.output


def test_no_credentials_at_all_is_not_retryable(
    aws: MotoKms, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    with pytest.raises(SignerUnavailable, match="no usable AWS credentials") as caught:
        open_signer("awskms:alias/pkjwt-es256")
    assert not caught.value.retryable
    assert "AWS_PROFILE" in (caught.value.hint or "")


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def test_an_unreachable_endpoint_is_retryable_and_quick(
    aws: MotoKms, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{_closed_port()}")
    started = time.monotonic()
    with pytest.raises(SignerUnavailable, match="Could not connect") as caught:
        open_signer("awskms:alias/pkjwt-es256")
    assert caught.value.retryable
    assert time.monotonic() - started < MAX_ATTEMPTS * CONNECT_TIMEOUT + 2


def test_a_silent_endpoint_times_out_and_is_retryable(
    aws: MotoKms, monkeypatch: pytest.MonkeyPatch
) -> None:
    with socket.socket() as silent:  # the kernel completes the handshake; nobody ever answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{silent.getsockname()[1]}")
        started = time.monotonic()
        with pytest.raises(SignerUnavailable, match="Read timeout") as caught:
            AwsKmsSigner("alias/pkjwt-es256", read_timeout=0.5)
        elapsed = time.monotonic() - started
    assert caught.value.retryable
    assert elapsed < 4  # two 0.5 s attempts and a backoff under a second


def test_the_kms_specific_endpoint_variable_wins(
    aws: MotoKms, keys: dict[str, KmsKey], monkeypatch: pytest.MonkeyPatch
) -> None:
    # boto3 resolves the endpoint itself: AWS_ENDPOINT_URL_KMS over AWS_ENDPOINT_URL
    monkeypatch.setenv("AWS_ENDPOINT_URL_KMS", aws.url)
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{_closed_port()}")
    assert open_signer(keys["p256"].uri).sign(b"header.payload")


def test_an_alias_moved_to_another_key_is_refused_not_signed_with(aws: MotoKms) -> None:
    first = aws.create_key("ECC_NIST_P256", alias="alias/pkjwt-moving")
    second = aws.create_key("ECC_NIST_P256")
    signer = open_signer(first.uri)
    aws.client().update_alias(AliasName="alias/pkjwt-moving", TargetKeyId=second.key_id)
    with pytest.raises(SignerUnavailable, match="now names another key") as caught:
        signer.sign(b"header.payload")
    assert "restart" in (caught.value.hint or "")


# -- faults moto cannot produce: a loopback stand-in speaking KMS's JSON protocol ---------------


class _FaultyKms(ThreadingHTTPServer):
    """Answers ``GetPublicKey`` with a P-256 key and every ``Sign`` with one fault."""

    def __init__(self, status: int, code: str) -> None:
        super().__init__(("127.0.0.1", 0), _FaultyHandler)
        self.status, self.code, self.signs = status, code, 0
        native = ec.generate_private_key(ec.SECP256R1()).public_key()
        self.der = native.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        self.thread = threading.Thread(target=self.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def close(self) -> None:
        self.shutdown()
        self.server_close()
        self.thread.join()


class _FaultyHandler(BaseHTTPRequestHandler):
    server: _FaultyKms

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if self.headers.get("X-Amz-Target") == "TrentService.GetPublicKey":
            key_id = "1234abcd-12ab-34cd-56ef-1234567890ab"
            self._answer(200, {
                "KeyId": f"arn:aws:kms:eu-west-2:111122223333:key/{key_id}",
                "KeySpec": "ECC_NIST_P256", "KeyUsage": "SIGN_VERIFY",
                "SigningAlgorithms": ["ECDSA_SHA_256"],
                "PublicKey": base64.b64encode(self.server.der).decode(),
            })  # fmt: skip
            return
        self.server.signs += 1
        body = (
            {"__type": self.server.code, "message": "as AWS says it"} if self.server.code else None
        )
        self._answer(self.server.status, body)

    def _answer(self, status: int, body: dict[str, Any] | None) -> None:
        data = json.dumps(body).encode() if body is not None else b"Service Unavailable"
        self.send_response(status)
        self.send_header("Content-Type", "application/x-amz-json-1.1")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.mark.parametrize(
    ("status", "code", "retryable", "hint"),
    [
        (400, "ThrottlingException", True, "quota"),
        (400, "LimitExceededException", True, "quota"),
        (500, "KMSInternalException", True, "retry later"),
        (503, "", True, "retry later"),
        (400, "AccessDeniedException", False, "kms:Sign"),
        (400, "InvalidKeyUsageException", False, "SIGN_VERIFY"),
        (400, "NotFoundException", False, "gone"),
        (400, "UnrecognizedClientException", False, "AWS refused the credentials"),
    ],
)
def test_kms_faults_map_to_retryable_or_not(
    aws: MotoKms, monkeypatch: pytest.MonkeyPatch, status: int, code: str, retryable: bool,
    hint: str,
) -> None:  # fmt: skip
    faulty = _FaultyKms(status, code)
    try:
        monkeypatch.setenv("AWS_ENDPOINT_URL", faulty.url)
        signer = open_signer("awskms:alias/pkjwt-anything")
        with pytest.raises(SignerUnavailable, match="KMS Sign failed") as caught:
            signer.sign(b"header.payload")
    finally:
        faulty.close()
    assert caught.value.retryable is retryable
    assert hint in (caught.value.hint or "")
    assert faulty.signs == (MAX_ATTEMPTS if retryable else 1)  # botocore retried, boundedly


# -- where the key is: URIs, regions, profiles -------------------------------------------------


@pytest.mark.parametrize(
    ("uri", "ref"),
    [
        ("awskms:1234abcd-12ab-34cd-56ef-1234567890ab",
         KmsKeyRef("1234abcd-12ab-34cd-56ef-1234567890ab")),
        (f"awskms:{ARN}:key/1234abcd", KmsKeyRef(f"{ARN}:key/1234abcd", "us-east-1")),
        (f"awskms:{ARN}:alias/nhs-int", KmsKeyRef(f"{ARN}:alias/nhs-int", "us-east-1")),
        ("awskms:alias/nhs-int?region=eu-west-2&profile=prod",
         KmsKeyRef("alias/nhs-int", "eu-west-2", "prod")),
        ("AWSKMS:alias%2Fteam%2Fnhs?profile=a%20b", KmsKeyRef("alias/team/nhs", None, "a b")),
    ],
)  # fmt: skip
def test_uris(uri: str, ref: KmsKeyRef) -> None:
    assert parse_uri(uri) == ref


@pytest.mark.parametrize(
    ("uri", "why"),
    [
        ("awskms:", "names no key"),
        ("awskms://alias/x", "names no key"),
        ("awskms:alias/x?regoin=eu-west-2", "unknown parameter"),
        ("awskms:alias/x?region=", "once, with a value"),
        ("awskms:alias/x?region=a&region=b", "once, with a value"),
        (f"awskms:{ARN}:key/k?region=eu-west-2", "the ARN is in us-east-1"),
        ("awskms:arn:aws:s3:::bucket", "not a KMS key or alias ARN"),
    ],
)
def test_bad_uris_are_config_errors(uri: str, why: str) -> None:
    with pytest.raises(ConfigError, match=why):
        parse_uri(uri)


def test_a_key_arn_carries_its_region(aws: MotoKms) -> None:
    key = aws.create_key("ECC_NIST_P256", region="us-east-1")
    signer = open_signer(f"awskms:{key.arn}")  # AWS_DEFAULT_REGION says eu-west-2
    assert signer.describe() == f"AWS KMS key {key.arn} (us-east-1)"
    signature = signer.sign(b"header.payload")
    assert len(signature) == 64


def test_the_region_parameter_and_its_absence(
    aws: MotoKms, monkeypatch: pytest.MonkeyPatch
) -> None:
    aws.create_key("ECC_NIST_P256", alias="alias/pkjwt-virginia", region="us-east-1")
    signer = open_signer("awskms:alias/pkjwt-virginia?region=us-east-1")
    assert repr(signer).startswith("<AwsKmsSigner AWS KMS key alias/pkjwt-virginia (us-east-1)")
    with pytest.raises(KeyLoadError, match="NotFoundException"):
        open_signer("awskms:alias/pkjwt-virginia")  # looked for in eu-west-2
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    with pytest.raises(ConfigError, match="no AWS region") as caught:
        open_signer("awskms:alias/pkjwt-virginia")
    assert "?region=" in (caught.value.hint or "")


def test_a_named_profile(aws: MotoKms, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    aws.create_key("ECC_NIST_P256", alias="alias/pkjwt-profiled", region="us-east-1")
    (tmp_path / "aws-config").write_text("[profile pkjwt-test]\nregion = us-east-1\n")
    (tmp_path / "aws-credentials").write_text(
        "[pkjwt-test]\naws_access_key_id = testing\naws_secret_access_key = testing\n"
    )
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    signer = open_signer("awskms:alias/pkjwt-profiled?profile=pkjwt-test")
    assert signer.describe() == "AWS KMS key alias/pkjwt-profiled (us-east-1)"
    assert signer.sign(b"header.payload")
    with pytest.raises(ConfigError, match="'nope' is not configured"):
        open_signer("awskms:alias/pkjwt-profiled?profile=nope")


# -- the extra -----------------------------------------------------------------------------------

_CLIENT_ONLY = """
import json, sys

class _Missing:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("boto3", "botocore", "google", "azure"):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, _Missing())
import pkjwt, pkjwt.signers, pkjwt.testing
from pkjwt.cli import token, jwks
key = pkjwt.generate_key("ES256", kid="k1")
client = pkjwt.TokenClient(token_url="https://as.example/t", client_id="c", key=key)
client.make_assertion()
hints = []
for uri in ("awskms:alias/x", "gcpkms:projects/p/locations/l/keyRings/r/cryptoKeys/k/"
            "cryptoKeyVersions/1", "azurekv:https://v.vault.azure.net/keys/k"):
    try:
        pkjwt.TokenClient(token_url="https://as.example/t", client_id="c", key=uri)
    except ImportError as exc:
        hints.append([type(exc).__name__, exc.hint])
print(json.dumps(hints))
"""


def test_a_client_only_install_needs_no_cloud_sdk() -> None:
    done = subprocess.run(
        [sys.executable, "-c", _CLIENT_ONLY], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == [
        ["MissingExtra", f"pip install 'pkjwt[{extra}]'"]
        for extra in ("awskms", "gcpkms", "azurekv")
    ]
