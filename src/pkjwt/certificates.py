"""X.509 certificates that come with a key, and the JOSE headers that name them.

Some servers identify a client's key by its certificate rather than by ``kid``: Microsoft
Entra ID wants ``x5t`` (the base64url SHA-1 thumbprint of the leaf certificate's DER) for
certificate credentials, and newer deployments ``x5t#S256`` (SHA-256; RFC 7515 4.1.7-4.1.8);
``x5c`` carries the chain itself (standard base64 DER, leaf first; RFC 7515 4.1.6). They are
sent only on request, and only from a chain that was checked to hold the signing key: a
thumbprint of another certificate makes the server look up a key that did not sign.
"""

from __future__ import annotations

import base64
import hashlib
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from .errors import ConfigError, KeyLoadError

__all__ = ["X509_HEADERS", "X509Header", "check_chain", "header_values", "load_certificates"]

X509Header = Literal["x5t#S256", "x5t", "x5c"]
#: the certificate headers a client can be asked to send
X509_HEADERS: tuple[X509Header, ...] = ("x5t#S256", "x5t", "x5c")


def _der(cert: Any) -> bytes:
    from cryptography.hazmat.primitives.serialization import Encoding

    der: bytes = cert.public_bytes(Encoding.DER)
    return der


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def header_values(chain: Sequence[Any], names: Sequence[str]) -> dict[str, Any]:
    """The requested certificate headers for ``chain`` (leaf first)."""
    unknown = [n for n in names if n not in X509_HEADERS]
    if unknown:
        raise ConfigError(
            f"unknown certificate header(s) {', '.join(unknown)}",
            hint="choose from " + ", ".join(X509_HEADERS),
        )
    if names and not chain:
        raise ConfigError(
            f"{', '.join(names)} asked for, but the key has no certificate",
            hint="load the key from a PKCS#12 bundle or a PEM file holding its certificate, "
            "or pass certificate=FILE (--cert FILE)",
        )
    leaf = _der(chain[0]) if chain else b""
    values: dict[str, Any] = {}
    for name in names:
        if name == "x5t#S256":
            values[name] = _b64url(hashlib.sha256(leaf).digest())
        elif name == "x5t":
            # SHA-1 here is a name, not a signature: RFC 7515 4.1.7 defines x5t with it
            values[name] = _b64url(hashlib.sha1(leaf).digest())  # noqa: S324
        else:
            values[name] = [base64.b64encode(_der(c)).decode("ascii") for c in chain]
    return values


def check_chain(key: Any, chain: Sequence[Any], origin: str) -> None:
    """Refuse a chain whose leaf certificate holds a key other than ``key`` (a
    :class:`~pkjwt.keys.Key`; not imported here, as keys import this module)."""
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    if not chain:
        return
    spki = PublicFormat.SubjectPublicKeyInfo
    leaf = chain[0].public_key().public_bytes(Encoding.DER, spki)
    ours = key.jose.public_key.public_bytes(Encoding.DER, spki)
    if leaf != ours:
        raise KeyLoadError(
            f"{origin}: the certificate is not the key's (its public key differs)",
            hint="give the certificate issued for this key, leaf first",
        )


def load_certificates(source: str | os.PathLike[str] | bytes) -> tuple[Any, ...]:
    """Certificates from a PEM file or bytes (one or more blocks, leaf first) or one DER."""
    from cryptography import x509

    origin = "certificate bytes" if isinstance(source, bytes) else str(source)
    try:
        data = source if isinstance(source, bytes) else Path(source).expanduser().read_bytes()
    except OSError as exc:
        raise KeyLoadError(f"{origin}: {exc.strerror}") from None
    try:
        if b"-----BEGIN CERTIFICATE" in data:
            return tuple(x509.load_pem_x509_certificates(data))
        return (x509.load_der_x509_certificate(data),)
    except ValueError:
        raise KeyLoadError(f"{origin}: not an X.509 certificate (PEM or DER)") from None
