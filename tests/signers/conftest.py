"""A real SoftHSM2 token for the PKCS#11 signer tests, made once per session.

Token ``pkjwt-test`` (user PIN in ``hsm.pin_file``) holds:

=============  ====  ============================================================
label          id    what
=============  ====  ============================================================
nhs-int-1      01    RSA-2048 key pair generated on the token
ec-p256        02    EC P-256 key pair generated on the token
ec-p384        03    EC P-384 key pair generated on the token
rsa-nopub      04    an RSA private key imported alone (no public key object)
ec-nopub       05    an EC private key imported alone
twin           06    two RSA private keys imported with the same label
twin           07
no-sign        08    an EC P-256 key pair whose private key's CKA_SIGN is false
=============  ====  ============================================================

Token ``pkjwt-spare`` is never logged in to with its right PIN: the wrong-PIN tests use it
(PKCS#11 keeps one login per token and process, so a token this process is logged in to
answers every later C_Login with CKR_USER_ALREADY_LOGGED_IN, whatever the PIN).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa

import peers
from softhsm import SoftHsm

TOKEN = "pkjwt-test"
SPARE = "pkjwt-spare"


@pytest.fixture(scope="session")
def hsm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SoftHsm]:
    peers.need("softhsm2-util", "pkcs11-tool")
    store = SoftHsm(tmp_path_factory.mktemp("softhsm"))
    if not store.module:
        peers.need("libsofthsm2.so")  # skips (or fails under PKJWT_REQUIRE_PEERS) with why
    store.init_token(TOKEN)
    store.init_token(SPARE)
    store.generate(TOKEN, "rsa:2048", "nhs-int-1", "01")
    store.generate(TOKEN, "EC:prime256v1", "ec-p256", "02")
    store.generate(TOKEN, "EC:secp384r1", "ec-p384", "03")
    store.import_private(TOKEN, rsa.generate_private_key(65537, 2048), "rsa-nopub", "04")
    store.import_private(TOKEN, ec.generate_private_key(ec.SECP256R1()), "ec-nopub", "05")
    store.import_private(TOKEN, rsa.generate_private_key(65537, 2048), "twin", "06")
    store.import_private(TOKEN, rsa.generate_private_key(65537, 2048), "twin", "07")
    store.generate_unusable(TOKEN, "no-sign", "08")
    with pytest.MonkeyPatch.context() as env:
        # SoftHSM2 reads it when the module is first loaded in this process, and children
        # (pkjwt processes, pkcs11-tool) inherit it
        for name, value in store.environ().items():
            env.setenv(name, value)
        for name in [n for n in os.environ if n.startswith("PKJWT_PKCS11_")]:
            env.delenv(name)
        yield store


@pytest.fixture
def cli_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Hermetic CLI settings: a tmp cache, no config file, no PKJWT_* variables."""
    for name in [n for n in os.environ if n.startswith("PKJWT_")]:
        monkeypatch.delenv(name)
    return {
        "PKJWT_CACHE_DIR": str(tmp_path / "cache"),
        "PKJWT_CONFIG": str(tmp_path / "missing-config.toml"),
    }
