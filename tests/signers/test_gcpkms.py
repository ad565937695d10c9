"""The ``gcpkms:`` signer, tested at the SDK's transport level: google-cloud-kms speaks REST
over real loopback HTTP to a stand-in written from Cloud KMS's API reference
(``gcp_standin.py``; no Cloud KMS emulator exists). Never run against Cloud KMS itself.

Tokens come from a real ``pkjwt serve``; assertions are verified with PyJWT against the public
key the stand-in holds."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt as pyjwt
import pytest
from click.testing import CliRunner
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from google.api_core.client_options import ClientOptions
from google.cloud import kms
from google.oauth2.credentials import Credentials

from pkjwt import load_key
from pkjwt.cli.main import cli
from pkjwt.errors import ConfigError, KeyLoadError, SignerUnavailable
from pkjwt.signers import open_signer
from pkjwt.signers.gcpkms import MAX_ATTEMPTS, GcpKmsSigner, crc32c, parse_uri
from pkjwt.testing import local_auth_server

from .gcp_standin import PARENT, CloudKms


@pytest.fixture(scope="module")
def cloud() -> Iterator[CloudKms]:
    server = CloudKms()
    for key, algorithm in [
        ("rs512", "RSA_SIGN_PKCS1_4096_SHA512"),
        ("ps256", "RSA_SIGN_PSS_2048_SHA256"),
        ("es256", "EC_SIGN_P256_SHA256"),
        ("es384", "EC_SIGN_P384_SHA384"),
        ("ed25519", "EC_SIGN_ED25519"),
        ("k1", "EC_SIGN_SECP256K1_SHA256"),
    ]:
        server.add(key, algorithm)
    yield server
    server.close()


@pytest.fixture
def gcp(cloud: CloudKms, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> CloudKms:
    """Fresh faults; nothing from the machine's gcloud or PKJWT_* settings."""
    cloud.faults.sign.clear()
    cloud.faults.denied.clear()
    cloud.faults.spoil_signature_crc = False
    cloud.sign_calls.clear()
    for name in [n for n in os.environ if n.startswith("PKJWT_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("PKJWT_CONFIG", str(tmp_path / "no-config.toml"))
    monkeypatch.setenv("PKJWT_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("CLOUDSDK_CONFIG", str(tmp_path / "gcloud"))
    monkeypatch.setenv("NO_GCE_CHECK", "True")  # never ask a metadata server (not loopback)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    return cloud


def client_for(cloud: CloudKms, url: str | None = None) -> kms.KeyManagementServiceClient:
    return kms.KeyManagementServiceClient(
        transport="rest",
        credentials=Credentials(token="static-test-token"),
        client_options=ClientOptions(api_endpoint=url or cloud.url),
    )


def name_of(key: str) -> str:
    return f"{PARENT}/cryptoKeys/{key}/cryptoKeyVersions/1"


def public_of(cloud: CloudKms, key: str) -> Any:
    return cloud.versions[name_of(key)].private.public_key()


@pytest.fixture
def adc(gcp: CloudKms, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> str:
    """Application Default Credentials from a service-account file (google-auth signs its own
    JWT with the key; the stand-in checks it); returns the ?endpoint= query for a URI."""
    private = rsa.generate_private_key(65537, 2048)
    gcp.service_account_keys.append(private.public_key())
    pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    account = {
        "type": "service_account",
        "project_id": "pkjwt-test",
        "private_key_id": "k1",
        "private_key": pem,
        "client_email": "signer@pkjwt-test.iam.gserviceaccount.com",
        "client_id": "1",
        "token_uri": f"{gcp.url}/token",
    }
    path = tmp_path / "service-account.json"
    path.write_text(json.dumps(account))
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(path))
    return f"?endpoint={gcp.url}"


# -- tokens from a real pkjwt serve -------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "profile", "alg", "width"),
    [
        ("rs512", "nhs", "RS512", None),
        ("ps256", "fapi2", "PS256", None),
        ("es256", "rfc7523bis", "ES256", 32),
        ("es384", "rfc7523bis", "ES384", 48),
        ("ed25519", "fapi2", "EdDSA", None),
    ],
)
def test_tokens_from_a_real_server(
    gcp: CloudKms, key: str, profile: str, alg: str, width: int | None
) -> None:
    public = public_of(gcp, key)
    signer = GcpKmsSigner(name_of(key), client=client_for(gcp))
    assert signer.algs == (alg,)  # a version has one algorithm
    with local_auth_server(profile, key=load_key(public)) as server:
        client = server.token_client(key=signer)
        assert client.get_token().access_token
        assert server.last_request.ok, server.last_request.description
        assertion = client.make_assertion()
    audience = server.token_url if profile == "nhs" else server.issuer
    pyjwt.decode(assertion, public, algorithms=[alg], audience=audience)
    if width:  # DER from KMS, R || S in the JWS
        assert len(pyjwt.utils.base64url_decode(assertion.rsplit(".", 1)[1])) == 2 * width
    sent = gcp.sign_calls[-1]
    if alg == "EdDSA":
        assert set(sent) == {"data", "dataCrc32c"}  # the name is in the path
    else:  # the digest only, never the claims
        assert set(sent) == {"digest", "digestCrc32c"}


def test_from_uri_with_application_default_credentials_and_the_cli(gcp: CloudKms, adc: str) -> None:
    uri = f"gcpkms:{name_of('es256')}{adc}"
    with local_auth_server("rfc7523bis", key=load_key(public_of(gcp, "es256"))) as server:
        result = CliRunner().invoke(
            cli,
            ["token", "--issuer", server.issuer, "--client-id", server.client_id, "--key", uri,
             "--profile", "rfc7523bis", "--no-cache"],
        )  # fmt: skip
        assert result.exit_code == 0, result.output
        assert server.last_request.ok
    jwks = CliRunner().invoke(cli, ["jwks", uri])
    assert jwks.exit_code == 0, jwks.output
    (jwk,) = json.loads(jwks.stdout)["keys"]
    assert (jwk["alg"], jwk["kid"]) == ("ES256", load_key(public_of(gcp, "es256")).thumbprint())


def test_aget_token_works(gcp: CloudKms) -> None:
    signer = GcpKmsSigner(name_of("es256"), client=client_for(gcp))
    with local_auth_server("rfc7523bis", key=load_key(public_of(gcp, "es256"))) as server:
        client = server.token_client(key=signer)

        async def get() -> Any:
            try:
                return await client.aget_token()
            finally:
                await client.aclose()

        assert asyncio.run(get()).access_token
        assert server.last_request.ok


# -- versions pkjwt will not sign with ----------------------------------------------------------


def test_secp256k1_is_refused(gcp: CloudKms) -> None:
    with pytest.raises(KeyLoadError, match="EC_SIGN_SECP256K1_SHA256 key version") as caught:
        GcpKmsSigner(name_of("k1"), client=client_for(gcp))
    assert "ES256K" in (caught.value.hint or "")


def test_an_algorithm_the_version_cannot_make_is_refused(gcp: CloudKms) -> None:
    with pytest.raises(KeyLoadError, match="cannot sign RS256"):
        GcpKmsSigner(name_of("rs512"), alg="RS256", client=client_for(gcp))


def test_an_unknown_version_is_a_key_load_error(gcp: CloudKms) -> None:
    with pytest.raises(KeyLoadError, match="NOT_FOUND"):
        GcpKmsSigner(name_of("nope"), client=client_for(gcp))


# -- Cloud KMS failing us ------------------------------------------------------------------------


def test_a_disabled_version_is_not_retryable(gcp: CloudKms) -> None:
    gcp.add("disabled-later", "EC_SIGN_P256_SHA256")
    signer = GcpKmsSigner(name_of("disabled-later"), client=client_for(gcp))
    gcp.versions[name_of("disabled-later")].state = "DISABLED"
    with pytest.raises(SignerUnavailable, match="FAILED_PRECONDITION") as caught:
        signer.sign(b"header.payload")
    assert not caught.value.retryable
    assert "gcloud kms keys versions enable" in (caught.value.hint or "")


def test_permission_denied_is_not_retryable(gcp: CloudKms) -> None:
    signer = GcpKmsSigner(name_of("es256"), client=client_for(gcp))
    gcp.faults.denied.add(name_of("es256"))
    with pytest.raises(SignerUnavailable, match="PERMISSION_DENIED") as caught:
        signer.sign(b"header.payload")
    assert not caught.value.retryable
    assert "roles/cloudkms.signerVerifier" in (caught.value.hint or "")
    assert len(gcp.sign_calls) == 1


def test_refused_credentials_are_not_retryable_and_not_shown(gcp: CloudKms) -> None:
    client = kms.KeyManagementServiceClient(
        transport="rest",
        credentials=Credentials(token="expired-secret-token"),
        client_options=ClientOptions(api_endpoint=gcp.url),
    )
    # the 401 makes google-auth refresh the token, which a bare token cannot: RefreshError
    with pytest.raises(SignerUnavailable, match="no usable Google Cloud credentials") as caught:
        GcpKmsSigner(name_of("es256"), client=client)
    assert not caught.value.retryable
    assert "expired-secret-token" not in str(caught.value)


def test_no_credentials_is_not_retryable(gcp: CloudKms, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", "/nonexistent/sa.json")
    with pytest.raises(SignerUnavailable, match="no Google Cloud credentials") as caught:
        open_signer(f"gcpkms:{name_of('es256')}?endpoint={gcp.url}")
    assert not caught.value.retryable
    assert "gcloud auth application-default login" in (caught.value.hint or "")


@pytest.mark.parametrize(
    ("status", "rpc"), [(429, "RESOURCE_EXHAUSTED"), (503, "UNAVAILABLE"), (500, "INTERNAL")]
)
def test_throttling_and_outages_are_retried_once_then_retryable(
    gcp: CloudKms, status: int, rpc: str
) -> None:
    signer = GcpKmsSigner(name_of("es256"), client=client_for(gcp))
    gcp.faults.sign = [(status, rpc)] * 5
    with pytest.raises(SignerUnavailable, match=rpc) as caught:
        signer.sign(b"header.payload")
    assert caught.value.retryable
    assert len(gcp.sign_calls) == MAX_ATTEMPTS


def test_one_blip_is_absorbed(gcp: CloudKms) -> None:
    signer = GcpKmsSigner(name_of("es256"), client=client_for(gcp))
    gcp.faults.sign = [(503, "UNAVAILABLE")]
    assert len(signer.sign(b"header.payload")) == 64
    assert len(gcp.sign_calls) == 2


def test_a_spoiled_checksum_is_caught(gcp: CloudKms) -> None:
    signer = GcpKmsSigner(name_of("es256"), client=client_for(gcp))
    gcp.faults.spoil_signature_crc = True
    with pytest.raises(SignerUnavailable, match="checksum does not match") as caught:
        signer.sign(b"header.payload")
    assert caught.value.retryable


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def test_an_unreachable_endpoint_is_retryable(gcp: CloudKms) -> None:
    url = f"http://127.0.0.1:{_closed_port()}"
    with pytest.raises(SignerUnavailable, match="ConnectionError") as caught:
        GcpKmsSigner(name_of("es256"), client=client_for(gcp, url))
    assert caught.value.retryable


def test_a_silent_endpoint_times_out_and_is_retryable(gcp: CloudKms) -> None:
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        started = time.monotonic()
        with pytest.raises(SignerUnavailable, match="ReadTimeout") as caught:
            GcpKmsSigner(name_of("es256"), client=client_for(gcp, url), timeout=0.5)
    assert caught.value.retryable
    assert time.monotonic() - started < 3


# -- URIs -----------------------------------------------------------------------------------------


def test_uris() -> None:
    name = name_of("es256")
    assert parse_uri(f"gcpkms:{name}") == (name, None)
    assert parse_uri(f"GCPKMS:{name}?endpoint=https%3A%2F%2Fkms.example") == (
        name,
        "https://kms.example",
    )


@pytest.mark.parametrize(
    ("uri", "why"),
    [
        (f"gcpkms:{PARENT}/cryptoKeys/k", "not a key version"),
        ("gcpkms:", "not a key version"),
        (f"gcpkms:{PARENT}/cryptoKeys/k/cryptoKeyVersions/1?region=x", "one parameter"),
    ],
)
def test_bad_uris(uri: str, why: str) -> None:
    with pytest.raises(ConfigError, match=why):
        parse_uri(uri)


def test_crc32c_is_castagnoli() -> None:
    assert crc32c(b"123456789") == 0xE3069283  # the check value of CRC-32C


def test_a_missing_extra_names_the_pip_command(monkeypatch: pytest.MonkeyPatch) -> None:
    import builtins
    import sys

    real = builtins.__import__

    def without_google(name: str, *args: Any, **kw: Any) -> Any:
        if name.split(".")[0] == "google":
            raise ImportError(f"No module named {name!r}", name=name)
        return real(name, *args, **kw)

    monkeypatch.setattr(builtins, "__import__", without_google)
    monkeypatch.delitem(sys.modules, "pkjwt.signers.gcpkms")
    with pytest.raises(ImportError) as caught:
        open_signer(f"gcpkms:{name_of('es256')}")
    assert getattr(caught.value, "hint", None) == "pip install 'pkjwt[gcpkms]'"
