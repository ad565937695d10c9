"""Key formats: recognise the bytes or JSON a user has and parse them into a joserfc key.

The public loaders in :mod:`pkjwt.keys` decide where the bytes come from (a path, text, an
environment variable, a dict) and turn the result into a :class:`~pkjwt.keys.Key`; this module
only knows formats: PEM (PKCS#1, PKCS#8, SEC1, SPKI, certificates, encrypted PKCS#8), JWK, a
JWKS holding exactly one key, PKCS#12 and DER. Every path ends in :func:`check_strength`, the
one place that refuses short RSA moduli and curves other than P-256/384/521 and Ed25519, before
joserfc sees the key (it would warn about a short key it is asked to import).
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass, replace
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from joserfc.jwk import ECKey, OKPKey, RSAKey

from .errors import KeyLoadError

JoseKey = RSAKey | ECKey | OKPKey

EC_ALG_BY_CURVE = {"P-256": "ES256", "P-384": "ES384", "P-521": "ES512"}
MIN_RSA_BITS = 2048
#: the names ``cryptography`` gives the curves pkjwt accepts, as JWK ``crv`` names
_JWK_CURVE = {"secp256r1": "P-256", "secp384r1": "P-384", "secp521r1": "P-521"}
_JOSE_BY_KTY: dict[str, type[RSAKey] | type[ECKey] | type[OKPKey]] = {
    "RSA": RSAKey,
    "EC": ECKey,
    "OKP": OKPKey,
}


@dataclass(frozen=True, slots=True)
class Parsed:
    """A parsed key before it becomes a :class:`~pkjwt.keys.Key`: the joserfc key, the
    ``kid`` and ``alg`` a JWK carried (None for other formats), and where it came from (for
    messages)."""

    jose: JoseKey
    kid: str | None
    alg: str | None
    origin: str
    #: X.509 certificates that came with the key (a PKCS#12 bundle, a PEM file holding the key
    #: and its chain), leaf first; checked to match the key by :mod:`pkjwt.certificates`
    certificates: tuple[Any, ...] = ()


def check_strength(kty: str, *, bits: int | None, crv: str | None, origin: str) -> None:
    """Refuse RSA below 2048 bits and curves other than P-256/384/521 (EC) or Ed25519 (OKP).

    NIST SP 800-131A and the NHS both set 2048 bits as the RSA floor; ``bits`` is None when the
    size cannot be read (the import then fails on the malformed key instead).
    """
    if kty == "RSA" and bits is not None and bits < MIN_RSA_BITS:
        raise KeyLoadError(
            f"{origin}: RSA key has {bits} bits; at least {MIN_RSA_BITS} needed",
            hint="generate a new key: pkjwt keygen --alg RS512 (4096 bits)",
        )
    if kty == "EC" and crv not in EC_ALG_BY_CURVE:
        raise KeyLoadError(
            f"{origin}: unsupported curve {crv!r}", hint="use P-256 (secp256r1), P-384 or P-521"
        )
    if kty == "OKP" and crv != "Ed25519":
        raise KeyLoadError(f"{origin}: unsupported OKP curve {crv!r}; use Ed25519")


# -- bytes: JSON, PEM, PKCS#12, DER ---------------------------------------------------------------


def parse_bytes(data: bytes, password: str | bytes | None, origin: str) -> Parsed:
    """Parse key bytes in whichever format they are: JWK/JWKS JSON, PEM, PKCS#12 or DER."""
    pw = password.encode() if isinstance(password, str) else password
    stripped = data.strip()
    if stripped.startswith(b"{"):
        return parse_jwk(_single_jwk(stripped, origin), origin)
    if b"-----BEGIN" in stripped:
        parsed = parse_native(_load_pem(stripped, pw, origin), origin)
        if b"PRIVATE KEY-----" in stripped and b"CERTIFICATE-----" in stripped:
            return replace(parsed, certificates=_pem_certificates(stripped, origin))
        return parsed
    native, chain = _load_der(data, pw)
    if native is not None:
        return replace(parse_native(native, origin), certificates=chain)
    raise KeyLoadError(
        f"{origin}: not a key pkjwt can read",
        hint="supported: PEM (PKCS#1, PKCS#8, SEC1, encrypted), JWK JSON, PKCS#12, DER",
    )


def _single_jwk(text: bytes, origin: str) -> dict[str, Any]:
    try:
        obj = json.loads(text)
    except ValueError:
        raise KeyLoadError(f"{origin}: looks like JSON but does not parse as a JWK") from None
    if not isinstance(obj, dict):
        raise KeyLoadError(f"{origin}: a JWK must be a JSON object")
    if "keys" in obj:
        keys = obj["keys"]
        if not isinstance(keys, list) or len(keys) != 1:
            raise KeyLoadError(
                f"{origin}: is a JWKS with {len(keys) if isinstance(keys, list) else 0} "
                "keys; expected exactly one",
                hint="pass a single JWK, or pick one key from the set",
            )
        obj = keys[0]
        if not isinstance(obj, dict):
            raise KeyLoadError(f"{origin}: a JWK must be a JSON object")
    return obj


def _load_der(data: bytes, pw: bytes | None) -> tuple[Any, tuple[Any, ...]]:
    """A PKCS#12 bundle's key and certificates (leaf first), else a DER private key, else a
    DER public key, else None; with no certificates outside PKCS#12."""
    try:
        p_key, cert, more = pkcs12.load_key_and_certificates(data, pw)
    except (ValueError, TypeError):
        p_key = None
    if p_key is not None:
        return p_key, tuple(c for c in (cert, *more) if c is not None)
    try:
        return serialization.load_der_private_key(data, pw), ()
    except (ValueError, TypeError):
        pass
    try:
        return serialization.load_der_public_key(data), ()
    except (ValueError, TypeError):
        return None, ()


def _pem_certificates(data: bytes, origin: str) -> tuple[Any, ...]:
    from cryptography import x509

    try:
        return tuple(x509.load_pem_x509_certificates(data))
    except ValueError:
        raise KeyLoadError(f"{origin}: a CERTIFICATE block beside the key does not parse") from None


def _load_pem(data: bytes, pw: bytes | None, origin: str) -> Any:
    if b"PRIVATE KEY-----" in data:
        return _load_pem_private(data, pw, origin)
    if b"PUBLIC KEY-----" in data or b"CERTIFICATE-----" in data:
        try:
            if b"CERTIFICATE-----" in data:
                from cryptography import x509

                return x509.load_pem_x509_certificate(data).public_key()
            return serialization.load_pem_public_key(data)
        except Exception:
            raise KeyLoadError(f"{origin}: corrupt or unsupported PEM public key") from None
    raise KeyLoadError(f"{origin}: PEM block is not a key or certificate")


def _load_pem_private(data: bytes, pw: bytes | None, origin: str) -> Any:
    try:
        return serialization.load_pem_private_key(data, pw)
    except TypeError as exc:
        if "encrypted" in str(exc).lower() and pw is None:
            raise KeyLoadError(
                f"{origin}: the private key is encrypted and no password was given",
                hint="pass --password-env VAR, set PKJWT_KEY_PASSWORD, or enter it at the prompt",
            ) from None
        # a password that is not needed (a shared PKJWT_KEY_PASSWORD) is not an error
        return serialization.load_pem_private_key(data, None)
    except ValueError as exc:
        text = str(exc).lower()
        # a wrong password usually fails decryption, but about 1 time in 256 the garbage
        # it yields has valid padding and fails as unparseable key data instead
        encrypted = b"ENCRYPTED" in data
        if pw is not None and (encrypted or "decrypt" in text or "password" in text):
            raise KeyLoadError(
                f"{origin}: wrong password for the encrypted key",
                hint="if the password is right, the file is corrupt",
            ) from None
        raise KeyLoadError(
            f"{origin}: corrupt or unsupported PEM private key",
            hint="check the file is complete (BEGIN/END lines, no stray characters)",
        ) from None
    except Exception:
        raise KeyLoadError(f"{origin}: unsupported private key (curve or type)") from None


# -- JWK and native keys --------------------------------------------------------------------------


def parse_jwk(obj: dict[str, Any], origin: str) -> Parsed:
    """Parse one JWK (a dict); ``kid`` and ``alg`` are returned for the caller to apply."""
    kty = obj.get("kty")
    if kty == "oct":
        raise KeyLoadError(
            f"{origin}: symmetric (oct) keys cannot be used for private_key_jwt",
            hint="use an RSA, EC or Ed25519 key; shared secrets belong to client_secret_jwt",
        )
    if not isinstance(kty, str) or kty not in _JOSE_BY_KTY:
        raise KeyLoadError(f"{origin}: unsupported JWK kty {kty!r}")
    check_strength(kty, bits=_jwk_rsa_bits(obj), crv=obj.get("crv"), origin=origin)
    try:
        jose = _JOSE_BY_KTY[kty].import_key(obj)
    except Exception:
        raise KeyLoadError(f"{origin}: malformed {kty} JWK (missing or invalid members)") from None
    jwk_alg = obj.get("alg")
    if jwk_alg is not None and not isinstance(jwk_alg, str):
        raise KeyLoadError(f"{origin}: JWK 'alg' must be a string")
    jwk_kid = obj.get("kid")
    chain = jwk_certificates(obj.get("x5c"), origin)
    return Parsed(jose, str(jwk_kid) if jwk_kid else None, jwk_alg, origin, chain)


def jwk_certificates(x5c: Any, origin: str) -> tuple[Any, ...]:
    """A JWK's ``x5c`` (RFC 7517 4.7: standard base64 DER, leaf first) as certificates."""
    if x5c is None:
        return ()
    from cryptography import x509

    if not isinstance(x5c, list) or not x5c or not all(isinstance(c, str) for c in x5c):
        raise KeyLoadError(f"{origin}: x5c must be a non-empty array of base64 certificates")
    try:
        return tuple(
            x509.load_der_x509_certificate(base64.b64decode(c, validate=True)) for c in x5c
        )
    except (binascii.Error, ValueError):
        raise KeyLoadError(f"{origin}: x5c holds something that is not a certificate") from None


def _jwk_rsa_bits(obj: dict[str, Any]) -> int | None:
    n = obj.get("n")
    if obj.get("kty") != "RSA" or not isinstance(n, str):
        return None
    try:
        raw = base64.urlsafe_b64decode(n + "=" * (-len(n) % 4))
    except (binascii.Error, ValueError):
        return None
    return int.from_bytes(raw, "big").bit_length()


def parse_native(native: Any, origin: str) -> Parsed:
    """Wrap a ``cryptography`` key object (RSA, EC, Ed25519; private or public)."""
    jose: JoseKey
    if isinstance(native, rsa.RSAPrivateKey | rsa.RSAPublicKey):
        check_strength("RSA", bits=native.key_size, crv=None, origin=origin)
        jose = RSAKey.import_key(native)
    elif isinstance(native, ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey):
        name = native.curve.name
        check_strength("EC", bits=None, crv=_JWK_CURVE.get(name, name), origin=origin)
        jose = ECKey.import_key(native)
    elif isinstance(native, ed25519.Ed25519PrivateKey | ed25519.Ed25519PublicKey):
        jose = OKPKey.import_key(native)
    else:
        raise KeyLoadError(
            f"{origin}: unsupported key type {type(native).__name__}",
            hint="use RSA (>= 2048 bits), EC P-256/384/521 or Ed25519",
        )
    return Parsed(jose, None, None, origin)
