"""pkjwt.keys and pkjwt.signing: generate, load from every form, publish, never leak."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import stat
import warnings
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import NameOID

from pkjwt import (
    AssertionBuildError,
    AssertionFactory,
    ConfigError,
    InvalidClient,
    JWTFormatError,
    Key,
    KeyFilePermissionWarning,
    KeyLoadError,
    KeySet,
    LocalSigner,
    PkjwtError,
    generate_key,
    jwks,
    load_jwks,
    load_key,
)

from .helpers import PRIVATE_MEMBERS

# -- helpers ----------------------------------------------------------------------------------


def rfc7638(jwk: dict[str, Any]) -> str:
    """RFC 7638 thumbprint computed independently of pkjwt/joserfc."""
    required = {
        "RSA": ("e", "kty", "n"),
        "EC": ("crv", "kty", "x", "y"),
        "OKP": ("crv", "kty", "x"),
    }
    members = {name: jwk[name] for name in required[jwk["kty"]]}
    canonical = json.dumps(members, separators=(",", ":"), sort_keys=True).encode()
    return base64.urlsafe_b64encode(hashlib.sha256(canonical).digest()).rstrip(b"=").decode()


def pem_pkcs1(native: rsa.RSAPrivateKey) -> bytes:
    return native.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )


def pem_pkcs8(native: Any, password: bytes | None = None) -> bytes:
    enc: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(password)
        if password
        else serialization.NoEncryption()
    )
    return native.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, enc)


def write_file(path: Path, data: bytes, mode: int = 0o600) -> Path:
    path.write_bytes(data)
    path.chmod(mode)
    return path


def private_d(key: Key) -> str:
    return str(key.jose.as_dict(private=True)["d"])


def secret_fragments(key: Key) -> list[str]:
    """Pieces of private material that must never show up in a message."""
    d = private_d(key)
    pem_lines = key.private_pem().decode().splitlines()
    return [d[:24], d[-24:], pem_lines[1][:40], pem_lines[2][:40], "PRIVATE KEY"]


def assert_no_secret(text: str, key: Key) -> None:
    for fragment in secret_fragments(key):
        assert fragment not in text


# -- generate ---------------------------------------------------------------------------------

GEN_CASES = [
    ("RS256", "RSA", 2048, None, 256),
    ("RS512", "RSA", 2048, None, 256),
    ("PS256", "RSA", 2048, None, 256),
    ("ES256", "EC", 256, "P-256", 64),
    ("ES384", "EC", 384, "P-384", 96),
    ("ES512", "EC", 521, "P-521", 132),
    ("EdDSA", "OKP", 256, "Ed25519", 64),
]


@pytest.mark.parametrize(("alg", "kty", "size", "curve", "sig_len"), GEN_CASES)
def test_generate_key(alg: str, kty: str, size: int, curve: str | None, sig_len: int) -> None:
    key = generate_key(alg, kid="k1", size=2048 if kty == "RSA" else None)
    assert key.kty == kty
    assert key.alg == alg
    assert key.algs == (alg,)
    assert key.alg_pinned
    assert key.is_private
    assert key.size == size
    assert key.curve == curve
    assert key.kid == "k1"
    signer = LocalSigner(key)
    assert signer.alg == alg
    assert signer.kid == "k1"
    # JWS signatures: RSA = modulus length; ECDSA = raw R||S (not DER); Ed25519 = 64 bytes
    assert len(signer.sign(b"payload")) == sig_len


def test_generate_rsa_default_is_4096_bits() -> None:
    key = generate_key("RS512")
    assert key.kty == "RSA"
    assert key.size == 4096
    assert key.alg == "RS512"


@pytest.mark.parametrize("alg", ["ES256", "EdDSA"])
def test_generated_kid_defaults_to_rfc7638_thumbprint(alg: str) -> None:
    key = generate_key(alg)
    assert key.kid == key.thumbprint() == rfc7638(key.public_jwk())


def test_generated_rsa_kid_defaults_to_thumbprint(generated_rs512: Key) -> None:
    key = generate_key("PS256", size=2048)
    assert key.kid == rfc7638(key.public_jwk())
    assert generated_rs512.kid == "gen-1"


def test_thumbprint_matches_rfc7638_example() -> None:
    # RFC 7638 section 3.1
    jwk = {
        "kty": "RSA",
        "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1"
        "L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-"
        "65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLy"
        "rdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzK"
        "nqDKgw",
        "e": "AQAB",
        "alg": "RS256",
    }
    key = load_key(jwk)
    assert key.kid == "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
    assert not key.is_private


@pytest.mark.parametrize("alg", ["HS256", "none", "RS1", ""])
def test_generate_key_unknown_alg(alg: str) -> None:
    with pytest.raises(KeyLoadError):
        generate_key(alg)


def test_generate_rsa_1024_refused() -> None:
    with pytest.raises(KeyLoadError, match="2048"):
        generate_key("RS512", size=1024)


# -- load: PEM ------------------------------------------------------------------------------


def test_load_pem_pkcs1_traditional(rsa_native: rsa.RSAPrivateKey, rsa_key: Key) -> None:
    pem = pem_pkcs1(rsa_native)
    assert pem.startswith(b"-----BEGIN RSA PRIVATE KEY-----")
    for source in (pem, pem.decode()):
        key = load_key(source)
        assert key.is_private
        assert key.kty == "RSA"
        assert key.thumbprint() == rsa_key.thumbprint()
        assert key.kid == key.thumbprint()
        assert not key.alg_pinned
        assert set(key.algs) == {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"}


def test_load_pem_pkcs8(rsa_native: rsa.RSAPrivateKey, rsa_key: Key) -> None:
    pem = pem_pkcs8(rsa_native)
    assert pem.startswith(b"-----BEGIN PRIVATE KEY-----")
    key = load_key(pem, kid="int-1", alg="RS512")
    assert key.kid == "int-1"
    assert key.alg == "RS512"
    assert key.algs == ("RS512",)
    assert key.thumbprint() == rsa_key.thumbprint()


def test_load_pem_sec1_ec(ec256_key: Key) -> None:
    native: Any = ec256_key.jose.private_key
    pem = native.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    assert pem.startswith(b"-----BEGIN EC PRIVATE KEY-----")
    key = load_key(pem)
    assert key.alg == "ES256"
    assert key.thumbprint() == ec256_key.thumbprint()


def test_load_public_pem(rsa_key: Key) -> None:
    key = load_key(rsa_key.public_pem())
    assert not key.is_private
    assert key.thumbprint() == rsa_key.thumbprint()


@pytest.mark.parametrize("password", ["s3cret pass", b"s3cret pass"])
def test_load_encrypted_pem_with_password(
    rsa_native: rsa.RSAPrivateKey, rsa_key: Key, password: str | bytes
) -> None:
    pem = pem_pkcs8(rsa_native, b"s3cret pass")
    assert b"ENCRYPTED" in pem
    key = load_key(pem, password=password)
    assert key.is_private
    assert key.thumbprint() == rsa_key.thumbprint()


def test_private_pem_roundtrip_with_password(ec384_key: Key) -> None:
    pem = ec384_key.private_pem("pw-123")
    assert b"ENCRYPTED" in pem
    assert load_key(pem, password="pw-123").thumbprint() == ec384_key.thumbprint()
    assert load_key(ec384_key.private_pem()).thumbprint() == ec384_key.thumbprint()


def test_private_pem_of_public_key_refused(rsa_key: Key) -> None:
    with pytest.raises(KeyLoadError):
        rsa_key.public().private_pem()


def test_encrypted_pem_without_password(rsa_native: rsa.RSAPrivateKey) -> None:
    pem = pem_pkcs8(rsa_native, b"pw")
    with pytest.raises(KeyLoadError, match="encrypted") as info:
        load_key(pem)
    assert info.value.hint


def test_encrypted_pem_wrong_password(rsa_native: rsa.RSAPrivateKey) -> None:
    pem = pem_pkcs8(rsa_native, b"right")
    with pytest.raises(KeyLoadError, match="wrong password"):
        load_key(pem, password="wrong")


def test_password_for_unencrypted_pem_is_ignored(rsa_native: rsa.RSAPrivateKey) -> None:
    # a shared PKJWT_KEY_PASSWORD must not break plain keys (pkjwt jwks enc.pem plain.pem)
    key = load_key(pem_pkcs8(rsa_native), password="pw")
    assert key.is_private


def test_corrupt_pem(rsa_native: rsa.RSAPrivateKey) -> None:
    lines = pem_pkcs8(rsa_native).decode().splitlines()
    corrupt = "\n".join([lines[0], lines[1], "!!!not base64!!!", lines[-1]])
    with pytest.raises(KeyLoadError, match="corrupt"):
        load_key(corrupt)
    truncated = "\n".join([*lines[: len(lines) // 2], lines[-1]])
    with pytest.raises(KeyLoadError):
        load_key(truncated)


def test_pem_that_is_not_a_key() -> None:
    with pytest.raises(KeyLoadError):
        load_key("-----BEGIN FOO-----\nAAAA\n-----END FOO-----\n")


def test_load_certificate_gives_public_key(rsa_native: rsa.RSAPrivateKey, rsa_key: Key) -> None:
    cert = _self_signed(rsa_native)
    key = load_key(cert.public_bytes(serialization.Encoding.PEM))
    assert not key.is_private
    assert key.thumbprint() == rsa_key.thumbprint()


# -- load: JWK --------------------------------------------------------------------------------


def test_load_jwk_dict_and_json(ec256_key: Key) -> None:
    private_jwk = dict(ec256_key.jose.as_dict(private=True))
    private_jwk["kid"] = "from-jwk"
    for source in (private_jwk, json.dumps(private_jwk), json.dumps(private_jwk).encode()):
        key = load_key(source)
        assert key.is_private
        assert key.kid == "from-jwk"
        assert key.thumbprint() == ec256_key.thumbprint()
    assert load_key(private_jwk, kid="override").kid == "override"


def test_load_jwk_without_kid_uses_thumbprint(ed_key: Key) -> None:
    jwk = dict(ed_key.jose.as_dict(private=True))
    jwk.pop("kid", None)
    key = load_key(jwk)
    assert key.kid == rfc7638(ed_key.public_jwk())


def test_load_jwk_alg_pins(rsa_key: Key) -> None:
    jwk = dict(rsa_key.jose.as_dict(private=True))
    jwk["alg"] = "PS384"
    key = load_key(jwk)
    assert key.alg == "PS384"
    assert key.algs == ("PS384",)
    assert key.alg_pinned
    with pytest.raises(KeyLoadError):
        load_key(jwk, alg="RS512")


def test_load_single_key_jwks_text(ec256_key: Key) -> None:
    text = json.dumps({"keys": [dict(ec256_key.jose.as_dict(private=True))]})
    assert load_key(text).thumbprint() == ec256_key.thumbprint()


def test_load_jwks_text_with_two_keys_refused(ec256_key: Key, ed_key: Key) -> None:
    text = json.dumps({"keys": [ec256_key.public_jwk(), ed_key.public_jwk()]})
    with pytest.raises(KeyLoadError, match="exactly one"):
        load_key(text)


@pytest.mark.parametrize(
    "jwk",
    [
        {"kty": "oct", "k": "c2VjcmV0"},
        {"kty": "XYZ"},
        {"kty": "RSA", "n": "AQAB"},
        {"kty": "EC", "crv": "P-256", "x": "AAAA", "y": "AAAA"},
    ],
)
def test_load_bad_jwk(jwk: dict[str, Any]) -> None:
    with pytest.raises(KeyLoadError):
        load_key(jwk)


def test_load_jwk_bad_json() -> None:
    with pytest.raises(KeyLoadError, match="JSON"):
        load_key('{"kty": "EC",')


# -- load: PKCS#12, DER ------------------------------------------------------------------------


def _self_signed(native: Any) -> x509.Certificate:
    import datetime

    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "pkjwt test")])
    now = datetime.datetime(2024, 1, 1, tzinfo=datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(native.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=30))
        .sign(native, hashes.SHA256())
    )


@pytest.mark.parametrize("password", [None, b"p12-pass"])
def test_load_pkcs12(
    tmp_path: Path, rsa_native: rsa.RSAPrivateKey, rsa_key: Key, password: bytes | None
) -> None:
    enc: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(password)
        if password
        else serialization.NoEncryption()
    )
    blob = pkcs12.serialize_key_and_certificates(
        b"pkjwt", rsa_native, _self_signed(rsa_native), None, enc
    )
    path = write_file(tmp_path / "key.p12", blob)
    key = load_key(path, password=password, kid="p12")
    assert key.is_private
    assert key.kid == "p12"
    assert key.thumbprint() == rsa_key.thumbprint()
    assert load_key(blob, password=password).thumbprint() == rsa_key.thumbprint()


def test_load_der_private_and_public(tmp_path: Path, ec521_key: Key) -> None:
    native: Any = ec521_key.jose.private_key
    der = native.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    key = load_key(write_file(tmp_path / "k.der", der))
    assert key.is_private
    assert key.alg == "ES512"
    assert key.thumbprint() == ec521_key.thumbprint()
    pub_der = native.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    pub = load_key(pub_der)
    assert not pub.is_private
    assert pub.thumbprint() == ec521_key.thumbprint()


def test_load_garbage_bytes() -> None:
    with pytest.raises(KeyLoadError, match="not a key"):
        load_key(b"\x00\x01garbage\xff" * 10)


# -- load: env, path, objects -----------------------------------------------------------------


def test_load_from_env(monkeypatch: pytest.MonkeyPatch, ec256_key: Key) -> None:
    monkeypatch.setenv("PKJWT_TEST_KEY", ec256_key.private_pem().decode())
    key = load_key(None, env="PKJWT_TEST_KEY", kid="env-1")
    assert key.kid == "env-1"
    assert key.is_private
    assert key.thumbprint() == ec256_key.thumbprint()
    jwk_text = json.dumps(dict(ec256_key.jose.as_dict(private=True)))
    monkeypatch.setenv("PKJWT_TEST_KEY", jwk_text)
    assert load_key(None, env="PKJWT_TEST_KEY").thumbprint() == ec256_key.thumbprint()


def test_load_from_unset_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PKJWT_TEST_UNSET", raising=False)
    with pytest.raises(KeyLoadError, match="PKJWT_TEST_UNSET") as info:
        load_key(None, env="PKJWT_TEST_UNSET")
    assert info.value.hint


def test_load_from_path(tmp_path: Path, rsa_native: rsa.RSAPrivateKey, rsa_key: Key) -> None:
    path = write_file(tmp_path / "key.pem", pem_pkcs1(rsa_native))
    for source in (path, str(path)):
        key = load_key(source, kid="path-1")
        assert key.kid == "path-1"
        assert key.thumbprint() == rsa_key.thumbprint()


def test_load_missing_file(tmp_path: Path) -> None:
    with pytest.raises(KeyLoadError, match="not found"):
        load_key(tmp_path / "nope.pem")


def test_load_directory_refused(tmp_path: Path) -> None:
    with pytest.raises(KeyLoadError, match="not a regular file"):
        load_key(tmp_path)


def test_load_key_object_and_key(rsa_key: Key) -> None:
    assert load_key(rsa_key) is rsa_key
    renamed = load_key(rsa_key, kid="other")
    assert renamed.kid == "other"
    assert renamed.thumbprint() == rsa_key.thumbprint()
    pinned = load_key(rsa_key, alg="PS256")
    assert pinned.algs == ("PS256",)
    with pytest.raises(KeyLoadError):
        load_key(rsa_key, alg="ES256")


def test_load_unsupported_source_type() -> None:
    with pytest.raises(KeyLoadError):
        load_key(12345)


# -- refusals ---------------------------------------------------------------------------------


def test_public_key_cannot_sign(rsa_key: Key) -> None:
    with pytest.raises(KeyLoadError, match="public key"):
        LocalSigner(rsa_key.public())
    with pytest.raises(KeyLoadError):
        AssertionFactory(
            rsa_key.public(), client_id="c", token_url="https://x/token", profile="legacy"
        )


def test_signer_alg_must_fit_key(ec256_key: Key) -> None:
    with pytest.raises(KeyLoadError):
        LocalSigner(ec256_key, "ES384")
    with pytest.raises(KeyLoadError):
        LocalSigner(ec256_key, "RS256")


def test_secp256k1_pem_refused() -> None:
    native = ec.generate_private_key(ec.SECP256K1())
    with pytest.raises(KeyLoadError, match="curve"):
        load_key(pem_pkcs8(native))
    with pytest.raises(KeyLoadError, match="curve"):
        load_key(native)


@pytest.mark.parametrize("crv", ["P-192", "secp256k1"])
def test_unsupported_jwk_curve(crv: str, ec256_key: Key) -> None:
    jwk = dict(ec256_key.jose.as_dict(private=True))
    jwk["crv"] = crv
    with pytest.raises(KeyLoadError, match="curve"):
        load_key(jwk)


def test_unsupported_okp_curve() -> None:
    with pytest.raises(KeyLoadError, match="curve"):
        load_key({"kty": "OKP", "crv": "X25519", "x": "AAAA"})


@pytest.fixture(scope="module")
def rsa1024() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(65537, 1024)


def test_rsa_1024_pem_refused(rsa1024: rsa.RSAPrivateKey) -> None:
    with pytest.raises(KeyLoadError, match="2048"):
        load_key(pem_pkcs1(rsa1024))
    with pytest.raises(KeyLoadError, match="2048"):
        load_key(rsa1024)


def test_rsa_1024_jwk_refused(rsa1024: rsa.RSAPrivateKey) -> None:
    nums = rsa1024.private_numbers()

    def b64int(n: int) -> str:
        raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    jwk = {
        "kty": "RSA",
        "n": b64int(nums.public_numbers.n),
        "e": b64int(nums.public_numbers.e),
        "d": b64int(nums.d),
        "p": b64int(nums.p),
        "q": b64int(nums.q),
        "dp": b64int(nums.dmp1),
        "dq": b64int(nums.dmq1),
        "qi": b64int(nums.iqmp),
    }
    with pytest.raises(KeyLoadError):
        load_key(jwk)


# -- file permissions -------------------------------------------------------------------------


def test_permission_warning_for_group_readable_private_key(
    tmp_path: Path, rsa_native: rsa.RSAPrivateKey
) -> None:
    path = write_file(tmp_path / "key.pem", pem_pkcs8(rsa_native), 0o644)
    with pytest.warns(KeyFilePermissionWarning, match="chmod 600"):
        load_key(path)


def test_no_permission_warning_for_0600(tmp_path: Path, rsa_native: rsa.RSAPrivateKey) -> None:
    path = write_file(tmp_path / "key.pem", pem_pkcs8(rsa_native), 0o600)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_key(path)


def test_no_permission_warning_for_public_key_file(tmp_path: Path, rsa_key: Key) -> None:
    path = write_file(tmp_path / "pub.pem", rsa_key.public_pem(), 0o644)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert not load_key(path).is_private


# -- publishing ---------------------------------------------------------------------------------


def test_jwks_has_no_private_members(keys_by_alg: dict[str, Key]) -> None:
    doc = jwks(keys_by_alg.values())
    assert len(doc["keys"]) == len(keys_by_alg)
    for member, key in zip(doc["keys"], keys_by_alg.values(), strict=True):
        assert not set(PRIVATE_MEMBERS) & member.keys()
        assert member["use"] == "sig"
        assert member["kid"] == key.kid
        assert member["alg"] == key.alg
        assert member["kty"] == key.kty
    text = json.dumps(doc)
    for key in keys_by_alg.values():
        assert private_d(key) not in text


def test_jwks_unpinned_key_has_no_alg(rsa_key: Key) -> None:
    (member,) = jwks(rsa_key)["keys"]
    assert "alg" not in member
    assert member["use"] == "sig"
    assert member["kid"] == "rsa-1"
    assert set(member) == {"kty", "n", "e", "kid", "use"}


def test_jwks_duplicate_kid_refused(ec256_key: Key, ed_key: Key) -> None:
    with pytest.raises(KeyLoadError, match="kid"):
        jwks([ec256_key, load_key(ed_key, kid=ec256_key.kid)])


def test_load_jwks_roundtrip(tmp_path: Path, keys_by_alg: dict[str, Key]) -> None:
    doc = jwks(keys_by_alg.values())
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps(doc))
    for source in (doc, json.dumps(doc), str(path), path):
        keyset = load_jwks(source)
        assert isinstance(keyset, KeySet)
        assert keyset.kids == [k.kid for k in keys_by_alg.values()]
        for key in keys_by_alg.values():
            got = keyset.get(key.kid)
            assert got is not None
            assert not got.is_private
            assert got.algs == (key.alg,)
            assert got.thumbprint() == key.thumbprint()
    assert load_jwks(doc).get("unknown") is None
    assert load_jwks(doc).get(None) is None  # several keys, no kid: no guess
    assert load_jwks(doc).as_dict() == doc


def test_load_jwks_single_jwk_and_kid_none(ec256_key: Key) -> None:
    keyset = load_jwks(ec256_key.public_jwk())
    assert keyset.get(None) is not None


def test_load_jwks_skips_encryption_keys(ec256_key: Key, ed_key: Key) -> None:
    enc = dict(ec256_key.public_jwk(), use="enc", kid="enc-1")
    keyset = load_jwks({"keys": [enc, ed_key.public_jwk()]})
    assert keyset.kids == [ed_key.kid]
    with pytest.raises(KeyLoadError, match="no signing keys"):
        load_jwks({"keys": [enc]})


@pytest.mark.parametrize("member", [*PRIVATE_MEMBERS, "k"])
def test_load_jwks_refuses_private_members(rsa_key: Key, member: str) -> None:
    private = dict(rsa_key.jose.as_dict(private=True))
    public = rsa_key.public_jwk()
    public[member] = private.get(member, "c2VjcmV0")
    with pytest.raises(KeyLoadError, match="private") as info:
        load_jwks({"keys": [public]})
    assert private_d(rsa_key) not in str(info.value)
    assert info.value.hint


@pytest.mark.parametrize(
    "source",
    [{}, {"keys": []}, {"keys": "x"}, {"keys": [1]}, "[1, 2]", "{not json", "/nonexistent/jwks"],
)
def test_load_jwks_malformed(source: Any) -> None:
    with pytest.raises(KeyLoadError):
        load_jwks(source)


def test_public_and_with_alg(rsa_key: Key) -> None:
    pub = rsa_key.public()
    assert not pub.is_private
    assert pub.kid == rsa_key.kid
    assert pub.public_jwk() == rsa_key.public_jwk()
    assert rsa_key.with_alg("PS512").algs == ("PS512",)
    with pytest.raises(KeyLoadError):
        rsa_key.with_alg("EdDSA")


# -- nothing secret in repr/str/errors ---------------------------------------------------------


def test_repr_of_key_and_signer_hides_private_material(keys_by_alg: dict[str, Key]) -> None:
    for key in keys_by_alg.values():
        signer = LocalSigner(key)
        for text in (repr(key), str(key), key.describe(), repr(signer), str(signer)):
            assert_no_secret(text, key)
            assert key.fingerprint in text or key.kid in text


def _collect_errors(rsa_native: rsa.RSAPrivateKey, rsa_key: Key, tmp_path: Path) -> list[Any]:
    pem = pem_pkcs8(rsa_native).decode()
    lines = pem.splitlines()
    enc = pem_pkcs8(rsa_native, b"right")
    private_jwk = dict(rsa_key.jose.as_dict(private=True))
    attempts: list[Any] = [
        lambda: load_key("\n".join([lines[0], lines[1], "@@@", *lines[2:]])),
        lambda: load_key(pem.replace("PRIVATE KEY-----", "PRIVATE KEY-----\n!!", 1)),
        lambda: load_key(enc),
        lambda: load_key(enc, password="wrong"),
        lambda: load_key({**private_jwk, "n": "!!"}),
        lambda: load_key({**private_jwk, "kty": "oct"}),
        lambda: load_jwks({"keys": [private_jwk]}),
        lambda: LocalSigner(rsa_key.public()),
        lambda: LocalSigner(rsa_key, "ES256"),
        lambda: load_key(pem.encode()[:-60]),
        lambda: load_key(pem.encode(), alg="EdDSA"),
        lambda: load_key(json.dumps({"keys": [private_jwk, private_jwk]})),
    ]
    errors = []
    for attempt in attempts:
        with pytest.raises(PkjwtError) as info:
            attempt()
        errors.append(info.value)
    return errors


def test_errors_never_show_private_material(
    rsa_native: rsa.RSAPrivateKey, rsa_key: Key, tmp_path: Path
) -> None:
    for exc in _collect_errors(rsa_native, rsa_key, tmp_path):
        for text in (str(exc), repr(exc), exc.message, exc.hint or "", *map(str, exc.args)):
            assert_no_secret(text, rsa_key)


def test_error_for_unarmoured_key_text_does_not_echo_it(rsa_native: rsa.RSAPrivateKey) -> None:
    """A PEM body pasted without its BEGIN/END lines must not come back in the message."""
    body = "".join(pem_pkcs8(rsa_native).decode().splitlines()[1:-1])
    with pytest.raises(KeyLoadError) as info:
        load_key(body)
    leaked = body[:40] in str(info.value) or body[:40] in repr(info.value)
    assert not leaked, "the KeyLoadError message echoes the key text it was given"


@pytest.mark.parametrize(
    "exc",
    [
        KeyLoadError("m", hint="h"),
        ConfigError("m"),
        AssertionBuildError("m", hint="h"),
        JWTFormatError("m"),
        InvalidClient("bad assertion", status=400),
    ],
)
def test_error_str_has_message_and_hint(exc: PkjwtError) -> None:
    assert "m" in str(exc) or "bad assertion" in str(exc)
    if exc.hint:
        assert "hint: h" in str(exc)
    assert isinstance(exc, PkjwtError)


def test_invalid_client_text() -> None:
    exc = InvalidClient("sig failed", status=400)
    assert exc.error == "invalid_client"
    assert str(exc) == "HTTP 400 invalid_client: sig failed"


def test_no_permission_warning_for_a_file_that_is_not_a_key(tmp_path: Path) -> None:
    """Issue 9: the warning fired on a world-readable file that was then refused as a non-key:
    two messages about one mistake, the first one wrong."""
    path = write_file(tmp_path / "notes.txt", b"-----BEGIN PRIVATE KEY-----\nnot base64\n", 0o644)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(KeyLoadError):
            load_key(path)
