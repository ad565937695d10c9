"""Google Cloud KMS as the custodian of a signing key: ``gcpkms:`` key URIs.

    gcpkms:projects/P/locations/L/keyRings/R/cryptoKeys/K/cryptoKeyVersions/V
    gcpkms:projects/P/.../cryptoKeyVersions/V?endpoint=https://kms-psc.p.googleapis.com

A Cloud KMS key version has one algorithm, fixed when it was made (``CryptoKeyVersion
Algorithm``): ``RSA_SIGN_PKCS1_*_SHA256`` signs RS256, ``RSA_SIGN_PSS_4096_SHA512`` PS512,
``EC_SIGN_P256_SHA256`` ES256, and so on; that is the JWS alg this signer makes, and a profile
that wants another is told so. ``EC_SIGN_ED25519`` signs EdDSA, and is the one case where the
signing input itself (not its digest) goes to KMS: Ed25519 hashes inside the signature.

Credentials are Application Default Credentials (``GOOGLE_APPLICATION_CREDENTIALS``,
``gcloud auth application-default login``, the metadata server on Google Cloud). The client
speaks REST (``requests``), as the rest of pkjwt speaks HTTP: proxies and CA bundles apply
the same way, and no gRPC channel threads are left behind. ``?endpoint=`` names another
endpoint (Private Service Connect, say).

``GetPublicKey`` is called once (``pem``, ``algorithm``, ``pem_crc32c`` checked); each
assertion is one ``AsymmetricSign`` with ``digest`` and ``digest_crc32c``, and the answer's
``verified_digest_crc32c``, ``name`` and ``signature_crc32c`` are checked, as Google's
data-integrity guidance asks. ECDSA comes back in DER; the base class makes it ``R || S``.
"""

from __future__ import annotations

import random
import re
import time
from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import parse_qs, unquote

import requests
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from google.api_core import exceptions as api_errors
from google.api_core.client_options import ClientOptions
from google.auth import exceptions as auth_errors
from google.cloud import kms

from ..errors import ConfigError, KeyLoadError, PkjwtError, SignerUnavailable
from ..keys import Key, load_key
from ._cloud import digest_for, scrub
from .base import RemoteSigner

__all__ = ["GcpKmsSigner", "crc32c", "parse_uri"]

_T = TypeVar("_T")

#: CryptoKeyVersionAlgorithm -> the JWS algorithm it makes
ALG_BY_KMS: dict[str, str] = {
    "RSA_SIGN_PKCS1_2048_SHA256": "RS256",
    "RSA_SIGN_PKCS1_3072_SHA256": "RS256",
    "RSA_SIGN_PKCS1_4096_SHA256": "RS256",
    "RSA_SIGN_PKCS1_4096_SHA512": "RS512",
    "RSA_SIGN_PSS_2048_SHA256": "PS256",
    "RSA_SIGN_PSS_3072_SHA256": "PS256",
    "RSA_SIGN_PSS_4096_SHA256": "PS256",
    "RSA_SIGN_PSS_4096_SHA512": "PS512",
    "EC_SIGN_P256_SHA256": "ES256",
    "EC_SIGN_P384_SHA384": "ES384",
    "EC_SIGN_ED25519": "EdDSA",
}
_REFUSED = {
    "EC_SIGN_SECP256K1_SHA256": "secp256k1 (ES256K, RFC 8812) is not among the algorithms "
    "pkjwt signs or verifies",
    "RSA_SIGN_RAW_PKCS1_2048": "raw PKCS#1 keys sign without a hash OID; use an "
    "RSA_SIGN_PKCS1_* or RSA_SIGN_PSS_* version",
}
_CREATE = (
    "gcloud kms keys create NAME --purpose asymmetric-signing "
    "--default-algorithm rsa-sign-pkcs1-4096-sha512 (or ec-sign-p256-sha256)"
)
_NAME = re.compile(
    r"projects/[^/]+/locations/[^/]+/keyRings/[^/]+/cryptoKeys/[^/]+/cryptoKeyVersions/[^/]+"
)

# Why short, and one retry: as for AWS KMS (see pkjwt.signers.awskms), an assertion is signed
# on the way to a token request with its own deadline; the SDK's default retry for
# AsymmetricSign runs for up to a minute. One retry after a short pause absorbs a blip; the
# caller decides beyond that, told by SignerUnavailable.retryable.
TIMEOUT = 5.0
MAX_ATTEMPTS = 2


def crc32c(data: bytes) -> int:
    """CRC-32C (Castagnoli), as Cloud KMS checksums requests and answers with."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 & -(crc & 1))
    return crc ^ 0xFFFFFFFF


def parse_uri(uri: str) -> tuple[str, str | None]:
    """``gcpkms:NAME[?endpoint=URL]`` as the key version's resource name and the endpoint."""
    scheme, _, rest = uri.partition(":")
    if scheme.lower() != "gcpkms":
        raise ConfigError(f"{scheme}: is not a Cloud KMS key URI")
    name_part, _, query = rest.partition("?")
    name = unquote(name_part).strip()
    if not _NAME.fullmatch(name):
        raise ConfigError(
            f"gcpkms:{name}: is not a key version's resource name",
            hint="gcpkms:projects/P/locations/L/keyRings/R/cryptoKeys/K/cryptoKeyVersions/V "
            "(a version: Cloud KMS signs with one)",
        )
    params = parse_qs(query, keep_blank_values=True)
    if set(params) - {"endpoint"} or any(len(v) != 1 or not v[0] for v in params.values()):
        raise ConfigError(
            f"gcpkms:{name}: takes one parameter, ?endpoint=URL", hint="drop the others"
        )
    endpoint = params.get("endpoint", [None])[0]
    return name, endpoint


def kms_client(endpoint: str | None = None) -> kms.KeyManagementServiceClient:
    """A Cloud KMS client over REST with Application Default Credentials."""
    options = ClientOptions(api_endpoint=endpoint) if endpoint else None
    try:
        return kms.KeyManagementServiceClient(transport="rest", client_options=options)
    except auth_errors.DefaultCredentialsError:
        raise SignerUnavailable(
            "no Google Cloud credentials for Cloud KMS (Application Default Credentials)",
            hint="run `gcloud auth application-default login`, set "
            "GOOGLE_APPLICATION_CREDENTIALS, or run with a service account attached",
        ) from None


class GcpKmsSigner(RemoteSigner):
    """Signs JWS with a Cloud KMS key version whose purpose is ``ASYMMETRIC_SIGN``.

    ``client`` replaces the client pkjwt would make (credentials or transport of your own);
    ``timeout`` is seconds per attempt.
    """

    returns_der = True

    def __init__(
        self,
        name: str,
        *,
        alg: str | None = None,
        kid: str | None = None,
        client: kms.KeyManagementServiceClient | None = None,
        endpoint: str | None = None,
        timeout: float = TIMEOUT,
    ) -> None:
        self._name = name
        self._timeout = timeout
        self._client = client or kms_client(endpoint)
        answer = self._call("GetPublicKey", lambda: self._client.get_public_key(
            request={"name": name}, retry=None, timeout=timeout
        ))  # fmt: skip
        algorithm = kms.CryptoKeyVersion.CryptoKeyVersionAlgorithm(answer.algorithm).name
        super().__init__(_public_key(answer, algorithm, self.describe()), alg=alg, kid=kid)

    @classmethod
    def from_uri(cls, uri: str, *, alg: str | None = None, kid: str | None = None) -> GcpKmsSigner:
        """The signer for ``gcpkms:NAME[?endpoint=URL]``."""
        name, endpoint = parse_uri(uri)
        return cls(name, alg=alg, kid=kid, endpoint=endpoint)

    def describe(self) -> str:
        return f"Cloud KMS key {self._name}"

    def _sign(self, alg: str, data: bytes) -> bytes:
        if alg == "EdDSA":  # Ed25519 hashes inside the signature: KMS takes the message
            request: dict[str, Any] = {
                "name": self._name,
                "data": data,
                "data_crc32c": crc32c(data),
            }
        else:
            hash_name, digest = digest_for(alg, data)
            request = {"name": self._name, "digest": {hash_name: digest},
                       "digest_crc32c": crc32c(digest)}  # fmt: skip
        answer = self._call("AsymmetricSign", lambda: self._client.asymmetric_sign(
            request=request, retry=None, timeout=self._timeout
        ))  # fmt: skip
        verified = answer.verified_data_crc32c if alg == "EdDSA" else answer.verified_digest_crc32c
        if not verified or answer.name != self._name:
            raise SignerUnavailable(
                f"{self.describe()}: AsymmetricSign did not confirm the request it signed",
                hint="the request was altered on the way (a proxy?); retry",
                retryable=True,
            )
        signature = bytes(answer.signature)
        if answer.signature_crc32c is None or crc32c(signature) != answer.signature_crc32c:
            raise SignerUnavailable(
                f"{self.describe()}: the signature's checksum does not match",
                hint="the answer was altered on the way (a proxy?); retry",
                retryable=True,
            )
        return signature

    def _call(self, operation: str, call: Callable[[], _T]) -> _T:
        """``call()``, tried again once after a short pause when the failure is transient;
        failures as pkjwt errors (see :func:`kms_error`)."""
        for attempt in range(1, MAX_ATTEMPTS + 1):
            try:
                return call()
            except (api_errors.GoogleAPICallError, auth_errors.GoogleAuthError,
                    requests.RequestException) as exc:  # fmt: skip
                error = kms_error(exc, operation, self.describe())
                retry = isinstance(error, SignerUnavailable) and error.retryable
                if not retry or attempt == MAX_ATTEMPTS:
                    raise error from (None if isinstance(exc, auth_errors.GoogleAuthError) else exc)
            time.sleep(0.1 + random.random() * 0.2)  # jitter
        raise AssertionError("unreachable")  # pragma: no cover


def _public_key(answer: kms.PublicKey, algorithm: str, what: str) -> Key:
    """The public key from a ``GetPublicKey`` answer, pinned to its version's algorithm."""
    alg = ALG_BY_KMS.get(algorithm)
    if alg is None:
        raise KeyLoadError(
            f"{what} is a {algorithm} key version; pkjwt signs with "
            "RSA_SIGN_PKCS1_*, RSA_SIGN_PSS_*, EC_SIGN_P256/P384 and EC_SIGN_ED25519 versions",
            hint=_REFUSED.get(algorithm, "not a JWS signing algorithm")
            + f"; create one: {_CREATE}",
        )
    pem = answer.pem.encode()
    if answer.pem_crc32c is not None and crc32c(pem) != answer.pem_crc32c:
        raise SignerUnavailable(f"{what}: the public key's checksum does not match", retryable=True)
    try:
        native = load_pem_public_key(pem)
    except ValueError:
        raise KeyLoadError(f"{what}: GetPublicKey answered a key that cannot be parsed") from None
    if not isinstance(
        native, rsa.RSAPublicKey | ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey
    ):
        raise KeyLoadError(f"{what}: GetPublicKey answered a {type(native).__name__}")
    public = load_key(native)
    if alg not in public.algs:
        raise KeyLoadError(f"{what}: a {algorithm} version whose public key is {public.describe()}")
    return Key(public.jose, public.kid, alg, (alg,), True)


# -- failures -------------------------------------------------------------------------------------


def kms_error(exc: Exception, operation: str, what: str) -> PkjwtError:
    """The pkjwt error for a failed Cloud KMS call: :class:`SignerUnavailable`, retryable when
    waiting may help; a key version that does not exist, when first read, a KeyLoadError."""
    if isinstance(exc, api_errors.GoogleAPICallError):
        return _call_error(exc, operation, what)
    if isinstance(exc, requests.exceptions.SSLError):
        return SignerUnavailable(
            f"{what}: TLS to Cloud KMS failed",
            hint="a proxy that inspects TLS needs its CA in REQUESTS_CA_BUNDLE",
        )
    if isinstance(exc, requests.RequestException | auth_errors.TransportError):
        return SignerUnavailable(
            f"{what}: Cloud KMS {operation} failed: {type(exc).__name__}: {scrub(str(exc))}",
            hint=f"Cloud KMS did not answer in time (tried {MAX_ATTEMPTS} times); check the "
            "network path to it",
            retryable=True,
        )
    # credentials: their messages can quote what a credential helper printed, so not shown
    return SignerUnavailable(
        f"{what}: no usable Google Cloud credentials for {operation} ({type(exc).__name__})",
        hint="run `gcloud auth application-default login`, set GOOGLE_APPLICATION_CREDENTIALS, "
        "or run with a service account attached",
        retryable=bool(getattr(exc, "retryable", False)),
    )


def _call_error(exc: api_errors.GoogleAPICallError, operation: str, what: str) -> PkjwtError:
    status, detail = _status_of(exc)
    http = int(exc.code or 0)
    message = f"{what}: Cloud KMS {operation} failed: {status or http}" + (
        f": {detail}" if detail else ""
    )
    if http == 429 or http >= 500 or status in ("UNAVAILABLE", "RESOURCE_EXHAUSTED"):
        return SignerUnavailable(
            message,
            hint=f"Cloud KMS is throttling or failing (tried {MAX_ATTEMPTS} times); retry later, "
            "and if throttled, raise the Cloud KMS quota",
            retryable=True,
        )
    if http == 404 and operation == "GetPublicKey":
        return KeyLoadError(
            message, hint="check the project, location, key ring, key and version in the URI"
        )
    hints = {
        401: "the credentials were refused: `gcloud auth application-default login` again, or "
        "check GOOGLE_APPLICATION_CREDENTIALS",
        403: "grant the caller roles/cloudkms.signerVerifier (and roles/cloudkms.publicKeyViewer) "
        "on the key",
        404: "the key version is gone: check it in the console",
    }
    hint = hints.get(http)
    if status == "FAILED_PRECONDITION":
        hint = "the key version is not enabled (disabled, destroyed or still being made): "
        hint += "gcloud kms keys versions enable V --key K --keyring R --location L"
    return SignerUnavailable(message, hint=hint)


def _status_of(exc: api_errors.GoogleAPICallError) -> tuple[str | None, str]:
    """The RPC status name (``FAILED_PRECONDITION``) and the service's own message."""
    grpc_status = getattr(exc, "grpc_status_code", None)
    status = getattr(grpc_status, "name", None)
    detail = str(exc.message or "")
    response = getattr(exc, "response", None)
    if isinstance(response, requests.Response):
        try:
            body = response.json().get("error", {})
        except ValueError:
            body = {}
        if isinstance(body, dict):
            status = str(body.get("status") or status or "") or None
            detail = str(body.get("message") or detail)
    return status, scrub(detail)
