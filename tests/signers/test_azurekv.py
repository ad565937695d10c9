"""The ``azurekv:`` signer, tested at the SDK's transport level: the Key Vault SDK runs its
whole pipeline (challenge authentication, retries, error parsing) and a ``requests`` adapter
answers as Key Vault's REST reference says (``azure_standin.py``; no emulator exists). Never
run against Azure Key Vault itself.

Tokens come from a real ``pkjwt serve``; assertions are verified with PyJWT against the public
key the stand-in holds."""

from __future__ import annotations

import asyncio
import os
import socket
import time
from pathlib import Path
from typing import Any

import jwt as pyjwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from pkjwt import load_key
from pkjwt.errors import ConfigError, KeyLoadError, SignerUnavailable
from pkjwt.signers import open_signer
from pkjwt.signers.azurekv import AzureKvSigner, parse_uri
from pkjwt.testing import local_auth_server

from .azure_standin import TENANT, VAULT, KeyVault, StaticCredential, unb64url


@pytest.fixture(autouse=True)
def _loopback_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")


@pytest.fixture(scope="module")
def natives() -> dict[str, Any]:
    return {
        "rsa": rsa.generate_private_key(65537, 2048),
        "p256": ec.generate_private_key(ec.SECP256R1()),
        "p384": ec.generate_private_key(ec.SECP384R1()),
        "p521": ec.generate_private_key(ec.SECP521R1()),
    }


@pytest.fixture
def vault(natives: dict[str, Any], monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> KeyVault:
    for name in [n for n in os.environ if n.startswith(("PKJWT_", "AZURE_"))]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("PKJWT_CONFIG", str(tmp_path / "no-config.toml"))
    kv = KeyVault()
    for name, native in natives.items():
        kv.add(name, native)
    return kv


@pytest.fixture
def credential() -> StaticCredential:
    return StaticCredential()


def signer_for(vault: KeyVault, credential: Any, name: str, **kw: Any) -> AzureKvSigner:
    return AzureKvSigner(f"{VAULT}/keys/{name}", credential=credential,
                         transport=vault.transport(), **kw)  # fmt: skip


# -- tokens from a real pkjwt serve -------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "profile", "alg", "width"),
    [
        ("rsa", "nhs", "RS512", None),
        ("rsa", "fapi2", "PS256", None),
        ("p256", "rfc7523bis", "ES256", 32),
        ("p384", "rfc7523bis", "ES384", 48),
        ("p521", "rfc7523bis", "ES512", 66),
    ],
)
def test_tokens_from_a_real_server(
    vault: KeyVault, credential: StaticCredential, natives: dict[str, Any],
    key: str, profile: str, alg: str, width: int | None,
) -> None:  # fmt: skip
    public = natives[key].public_key()
    signer = signer_for(vault, credential, key)
    with local_auth_server(profile, key=load_key(public)) as server:
        client = server.token_client(key=signer)
        assert client.get_token().access_token
        assert server.last_request.ok, server.last_request.description
        assertion = client.make_assertion()
    audience = server.token_url if profile == "nhs" else server.issuer
    pyjwt.decode(assertion, public, algorithms=[alg], audience=audience)
    if width:  # Key Vault's R || S passes through untouched
        assert len(pyjwt.utils.base64url_decode(assertion.rsplit(".", 1)[1])) == 2 * width
    # Key Vault was sent the digest for the alg, never the claims
    assert {b["alg"] for b in vault.signed} == {alg}
    assert {len(unb64url(b["value"])) for b in vault.signed} == {int(alg[2:]) // 8}
    # the token was asked for the scope and tenant of Key Vault's challenge
    assert credential.asked[0] == (("https://vault.azure.net/.default",), TENANT)


def test_a_versionless_key_is_pinned_to_its_current_version(
    vault: KeyVault, credential: StaticCredential
) -> None:
    first = vault.add("rotating", ec.generate_private_key(ec.SECP256R1()))
    signer = signer_for(vault, credential, "rotating")
    vault.add("rotating", ec.generate_private_key(ec.SECP256R1()))  # rotated in the vault
    with local_auth_server("rfc7523bis", key=load_key(first.private.public_key())) as server:
        assert server.token_client(key=signer).get_token().access_token
        assert server.last_request.ok
    assert vault.requests[-1] == ("POST", f"/keys/rotating/{first.version}/sign")


def test_aget_token_works(vault: KeyVault, credential: StaticCredential, natives: Any) -> None:
    signer = signer_for(vault, credential, "p256")
    with local_auth_server("rfc7523bis", key=load_key(natives["p256"].public_key())) as server:
        client = server.token_client(key=signer)

        async def get() -> Any:
            try:
                return await client.aget_token()
            finally:
                await client.aclose()

        assert asyncio.run(get()).access_token
        assert server.last_request.ok


# -- keys pkjwt will not sign with --------------------------------------------------------------


def test_a_p256k_key_is_refused(vault: KeyVault, credential: StaticCredential) -> None:
    vault.add("k1", ec.generate_private_key(ec.SECP256K1()))
    with pytest.raises(KeyLoadError, match=r"EC \(P-256K\) key") as caught:
        signer_for(vault, credential, "k1")
    assert "ES256K" in (caught.value.hint or "")


def test_a_key_that_may_not_sign_is_refused(vault: KeyVault, credential: StaticCredential) -> None:
    vault.add("wrap-only", rsa.generate_private_key(65537, 2048), ops=("wrapKey", "unwrapKey"))
    with pytest.raises(KeyLoadError, match="does not allow sign"):
        signer_for(vault, credential, "wrap-only")


def test_an_unknown_key_is_a_key_load_error(vault: KeyVault, credential: StaticCredential) -> None:
    with pytest.raises(KeyLoadError, match="KeyNotFound"):
        signer_for(vault, credential, "nope")


def test_a_disabled_or_expired_key_is_refused_at_construction(
    vault: KeyVault, credential: StaticCredential
) -> None:
    vault.add("off", ec.generate_private_key(ec.SECP256R1()), enabled=False)
    with pytest.raises(SignerUnavailable, match="is disabled") as caught:
        signer_for(vault, credential, "off")
    assert not caught.value.retryable
    vault.add("old", ec.generate_private_key(ec.SECP256R1()), exp=1577836800)  # 2020
    with pytest.raises(SignerUnavailable, match="expired at 2020-01-01"):
        signer_for(vault, credential, "old")


# -- Key Vault failing us ------------------------------------------------------------------------


def test_a_key_disabled_after_start_up_is_not_retryable(
    vault: KeyVault, credential: StaticCredential
) -> None:
    key = vault.add("disabled-later", ec.generate_private_key(ec.SECP256R1()))
    signer = signer_for(vault, credential, "disabled-later")
    key.enabled = False
    with pytest.raises(SignerUnavailable, match="Forbidden: Operation sign") as caught:
        signer.sign(b"header.payload")
    assert not caught.value.retryable
    assert "--enabled true" in (caught.value.hint or "")


def test_rbac_denial_is_not_retryable(vault: KeyVault, credential: StaticCredential) -> None:
    signer = signer_for(vault, credential, "p256")
    vault.denied.add("p256")
    with pytest.raises(SignerUnavailable, match="not authorized") as caught:
        signer.sign(b"header.payload")
    assert not caught.value.retryable
    assert "Key Vault Crypto User" in (caught.value.hint or "")
    assert [path for method, path in vault.requests if method == "POST"] == [
        "/keys/p256/v00000000000000000000000000000001/sign"
    ]  # not retried


def test_a_refused_token_is_not_retryable_and_not_shown(vault: KeyVault) -> None:
    wrong = StaticCredential("wrong-secret-token")
    with pytest.raises(SignerUnavailable, match="Unauthorized") as caught:
        signer_for(vault, wrong, "p256")
    assert not caught.value.retryable
    assert "wrong-secret-token" not in str(caught.value)


def test_no_credentials_is_not_retryable(vault: KeyVault, monkeypatch: pytest.MonkeyPatch) -> None:
    # DefaultAzureCredential limited to the environment (no managed-identity probe: not loopback)
    monkeypatch.setenv("AZURE_TOKEN_CREDENTIALS", "EnvironmentCredential")
    with pytest.raises(SignerUnavailable, match="no usable Azure credentials") as caught:
        AzureKvSigner(f"{VAULT}/keys/p256", transport=vault.transport())
    assert not caught.value.retryable
    assert "az login" in (caught.value.hint or "")


@pytest.mark.parametrize(
    ("status", "code"), [(429, "Throttled"), (503, "ServiceUnavailable"), (500, "InternalError")]
)
def test_throttling_and_outages_are_retried_once_then_retryable(
    vault: KeyVault, credential: StaticCredential, status: int, code: str
) -> None:
    signer = signer_for(vault, credential, "p256")
    vault.sign_faults = [(status, code, "as the service says it")] * 5
    started = time.monotonic()
    with pytest.raises(SignerUnavailable, match=code) as caught:
        signer.sign(b"header.payload")
    assert caught.value.retryable
    assert len(vault.signed) == 2  # azure-core retried once
    assert time.monotonic() - started < 5


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def test_an_unreachable_vault_is_retryable(credential: StaticCredential) -> None:
    # the real RequestsTransport, to a closed loopback port
    with pytest.raises(SignerUnavailable, match="ServiceRequestError") as caught:
        AzureKvSigner(f"https://127.0.0.1:{_closed_port()}/keys/k", credential=credential)
    assert caught.value.retryable


def test_a_silent_vault_times_out_and_is_retryable(credential: StaticCredential) -> None:
    with socket.socket() as silent:  # accepts the TCP handshake, never answers TLS
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        url = f"https://127.0.0.1:{silent.getsockname()[1]}/keys/k"
        started = time.monotonic()
        with pytest.raises(SignerUnavailable) as caught:
            AzureKvSigner(url, credential=credential, connection_timeout=0.5, read_timeout=0.5)
    assert caught.value.retryable
    assert time.monotonic() - started < 4


# -- URIs -----------------------------------------------------------------------------------------


def test_uris() -> None:
    assert parse_uri(f"azurekv:{VAULT}/keys/nhs-int") == (VAULT, "nhs-int", None)
    assert parse_uri(f"AZUREKV:{VAULT}/keys/nhs-int/0123abcd") == (VAULT, "nhs-int", "0123abcd")
    hsm = "https://pkjwt.managedhsm.azure.net"
    assert parse_uri(f"azurekv:{hsm}/keys/k/") == (hsm, "k", None)


@pytest.mark.parametrize(
    "uri",
    [
        "azurekv:http://pkjwt.vault.azure.net/keys/k",
        "azurekv:https://pkjwt.vault.azure.net/secrets/k",
        "azurekv:https://pkjwt.vault.azure.net/keys",
        "azurekv:https://pkjwt.vault.azure.net/keys/k/v/extra",
        "azurekv:pkjwt/keys/k",
    ],
)
def test_bad_uris(uri: str) -> None:
    with pytest.raises(ConfigError, match="not a Key Vault key identifier"):
        parse_uri(uri)


def test_open_signer_knows_the_scheme(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[tuple[str, Any]] = []

    def record(self: Any, url: str, **kw: Any) -> None:
        seen.append((url, kw))
        raise KeyLoadError("recorded")

    monkeypatch.setattr(AzureKvSigner, "__init__", record)
    with pytest.raises(KeyLoadError, match="recorded"):
        open_signer(f"azurekv:{VAULT}/keys/nhs-int/abc", alg="ES256")
    assert seen == [(f"{VAULT}/keys/nhs-int/abc", {"alg": "ES256", "kid": None})]


def test_a_missing_extra_names_the_pip_command(monkeypatch: pytest.MonkeyPatch) -> None:
    import builtins
    import sys

    real = builtins.__import__

    def without_azure(name: str, *args: Any, **kw: Any) -> Any:
        if name.split(".")[0] == "azure":
            raise ImportError(f"No module named {name!r}", name=name)
        return real(name, *args, **kw)

    monkeypatch.setattr(builtins, "__import__", without_azure)
    monkeypatch.delitem(sys.modules, "pkjwt.signers.azurekv")
    with pytest.raises(ImportError) as caught:
        open_signer(f"azurekv:{VAULT}/keys/k")
    assert getattr(caught.value, "hint", None) == "pip install 'pkjwt[azurekv]'"
