"""Session-scoped keys: generated once, shared by every unit test (RSA keys are slow to make)."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from pkjwt import Key, KeySet, generate_key, load_key


@pytest.fixture(scope="session")
def rsa_native() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(65537, 2048)


@pytest.fixture(scope="session")
def rsa_key(rsa_native: rsa.RSAPrivateKey) -> Key:
    """An RSA-2048 key with no pinned alg (it may sign RS*/PS*)."""
    return load_key(rsa_native, kid="rsa-1")


@pytest.fixture(scope="session")
def rs512_key(rsa_native: rsa.RSAPrivateKey) -> Key:
    """The NHS shape: RSA pinned to RS512, kid test-1."""
    return load_key(rsa_native, kid="test-1", alg="RS512")


@pytest.fixture(scope="session")
def nhs_keyset(rsa_key: Key) -> KeySet:
    """The public half of the (unpinned) RSA key under kid test-1, as a server would hold it."""
    return KeySet((load_key(rsa_key, kid="test-1").public(),))


@pytest.fixture(scope="session")
def ec256_key() -> Key:
    return load_key(ec.generate_private_key(ec.SECP256R1()), kid="ec256-1")


@pytest.fixture(scope="session")
def ec384_key() -> Key:
    return load_key(ec.generate_private_key(ec.SECP384R1()), kid="ec384-1")


@pytest.fixture(scope="session")
def ec521_key() -> Key:
    return load_key(ec.generate_private_key(ec.SECP521R1()), kid="ec521-1")


@pytest.fixture(scope="session")
def ed_key() -> Key:
    return load_key(ed25519.Ed25519PrivateKey.generate(), kid="ed-1")


@pytest.fixture(scope="session")
def keys_by_alg(
    rsa_native: rsa.RSAPrivateKey, ec256_key: Key, ec384_key: Key, ec521_key: Key, ed_key: Key
) -> dict[str, Key]:
    """One private key pinned to each JWS algorithm pkjwt signs with."""
    out: dict[str, Key] = {}
    for alg in ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512"):
        out[alg] = load_key(rsa_native, kid=f"k-{alg}", alg=alg)
    out["ES256"] = load_key(ec256_key, kid="k-ES256", alg="ES256")
    out["ES384"] = load_key(ec384_key, kid="k-ES384", alg="ES384")
    out["ES512"] = load_key(ec521_key, kid="k-ES512", alg="ES512")
    out["EdDSA"] = load_key(ed_key, kid="k-EdDSA", alg="EdDSA")
    return out


@pytest.fixture(scope="session")
def generated_rs512() -> Key:
    """A key made by pkjwt's own generate_key (2048 bits to stay fast)."""
    return generate_key("RS512", kid="gen-1", size=2048)
