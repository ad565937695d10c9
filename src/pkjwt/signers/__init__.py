"""Keys that stay where they live: signers for HSMs and cloud KMSs, named by URI.

Wherever pkjwt accepts a key (``key=``, ``--key``, ``PKJWT_KEY``, a config section), a URI
names a key held elsewhere, and :func:`open_signer` returns the signer for it:

==============================  =====================================  ==================
URI                              backend                                extra
==============================  =====================================  ==================
``pkcs11:token=...;object=...``  any HSM through PKCS#11 (RFC 7512)     ``pkjwt[pkcs11]``
``awskms:KEY-ID-ARN-OR-ALIAS``   AWS KMS ``Sign``                       ``pkjwt[awskms]``
``gcpkms:projects/.../V``        Google Cloud KMS ``AsymmetricSign``    ``pkjwt[gcpkms]``
``azurekv:https://V/keys/K``     Azure Key Vault (or Managed HSM)       ``pkjwt[azurekv]``
==============================  =====================================  ==================

Each backend is a module of its own, imported only when its scheme is used; a missing extra
is a :class:`~pkjwt.errors.MissingExtra` naming the pip command.
"""

from __future__ import annotations

import importlib
import re
from typing import Any, TypeGuard

from ..errors import ConfigError, missing_extra
from .base import RemoteSigner, der_to_jose

__all__ = ["RemoteSigner", "der_to_jose", "is_key_uri", "open_signer", "redact_key_uri"]

#: RFC 7512 carries a PIN in the URI (pin-value); it never reaches a message or a log
_PIN = re.compile(r"(pin-value=)[^&;]*", re.IGNORECASE)

#: scheme -> (module, class, extra, what it is)
_BACKENDS: dict[str, tuple[str, str, str, str]] = {
    "pkcs11": ("pkcs11", "Pkcs11Signer", "pkcs11", "a PKCS#11 (HSM) key"),
    "awskms": ("awskms", "AwsKmsSigner", "awskms", "an AWS KMS key"),
    "gcpkms": ("gcpkms", "GcpKmsSigner", "gcpkms", "a Google Cloud KMS key"),
    "azurekv": ("azurekv", "AzureKvSigner", "azurekv", "an Azure Key Vault key"),
}


def is_key_uri(text: object) -> TypeGuard[str]:
    """Whether ``text`` names a remote key (a scheme this module knows), not a file."""
    if not isinstance(text, str):
        return False
    scheme, sep, _rest = text.partition(":")
    return bool(sep) and scheme.lower() in _BACKENDS


def redact_key_uri(uri: str) -> str:
    """``uri`` fit to show: a PIN in it replaced by ``***``."""
    return _PIN.sub(r"\1***", uri)


def open_signer(uri: str, *, alg: str | None = None, kid: str | None = None) -> RemoteSigner:
    """The signer for a key URI (see the table above); ``alg`` pins the algorithm (default:
    the key type's, narrowed later by the profile and the server), ``kid`` the key id
    (default: the public key's RFC 7638 thumbprint)."""
    scheme = uri.partition(":")[0].lower()
    backend = _BACKENDS.get(scheme)
    if backend is None:
        raise ConfigError(
            f"{redact_key_uri(scheme)}: is not a key URI pkjwt knows",
            hint="known: " + ", ".join(f"{name}:" for name in _BACKENDS),
        )
    module_name, class_name, extra, what = backend
    try:
        module: Any = importlib.import_module(f"{__name__}.{module_name}")
    except ImportError as exc:
        raise missing_extra(extra, what, exc) from None
    signer: RemoteSigner = getattr(module, class_name).from_uri(uri, alg=alg, kid=kid)
    return signer
