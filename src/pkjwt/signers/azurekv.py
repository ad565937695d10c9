"""Azure Key Vault (or Managed HSM) as the custodian of a signing key: ``azurekv:`` key URIs.

    azurekv:https://VAULT.vault.azure.net/keys/NAME             the key's current version
    azurekv:https://VAULT.vault.azure.net/keys/NAME/VERSION     one version
    azurekv:https://HSM.managedhsm.azure.net/keys/NAME

Credentials are azure-identity's ``DefaultAzureCredential`` (environment, workload identity,
managed identity, ``az login``, ...); Key Vault's own challenge names the tenant and scope.

At construction the key is read once (``get_key``: ``key.kty``, ``key.crv``, ``key_ops``,
``attributes.enabled``/``exp``). A name without a version is resolved to its current version
and every signature is made with that one, so the public key pkjwt publishes is the key that
signs until restart (rotating in Key Vault does not swap the key under a running client).
Each assertion is one ``sign`` call with the digest, hashed here (Key Vault always takes a
digest). Key Vault answers ECDSA as JWS wants it already (``R || S``), so ``returns_der`` is
False.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import unquote, urlsplit

from azure.core.exceptions import (
    AzureError,
    ClientAuthenticationError,
    HttpResponseError,
    ServiceRequestError,
    ServiceResponseError,
)
from azure.keyvault.keys import KeyClient, KeyVaultKey
from azure.keyvault.keys.crypto import CryptographyClient, SignatureAlgorithm
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from ..errors import ConfigError, KeyLoadError, PkjwtError, SignerUnavailable
from ..keys import Key, load_key
from ._cloud import digest_for, scrub
from .base import RemoteSigner

if TYPE_CHECKING:
    from azure.core.credentials import TokenCredential

__all__ = ["AzureKvSigner", "parse_uri"]

_T = TypeVar("_T")

_CURVES: dict[str, ec.EllipticCurve] = {
    "P-256": ec.SECP256R1(),
    "P-384": ec.SECP384R1(),
    "P-521": ec.SECP521R1(),
}
_CREATE = "az keyvault key create --vault-name VAULT --name NAME --kty RSA --size 4096 --ops sign"

# Why short, and one retry: as for AWS KMS (see pkjwt.signers.awskms), an assertion is signed on
# the way to a token request with its own deadline; azure-core's defaults retry 10 times with
# backoff and wait up to 300 s for a read. One retry absorbs a blip; the caller decides beyond.
CONNECTION_TIMEOUT = 2.0
READ_TIMEOUT = 5.0
RETRIES = 1


def parse_uri(uri: str) -> tuple[str, str, str | None]:
    """``azurekv:https://VAULT/keys/NAME[/VERSION]`` as (vault URL, key name, version)."""
    scheme, _, rest = uri.partition(":")
    if scheme.lower() != "azurekv":
        raise ConfigError(f"{scheme}: is not an Azure Key Vault key URI")
    return parse_key_url(rest)


def parse_key_url(url: str) -> tuple[str, str, str | None]:
    """A Key Vault key identifier (``https://VAULT/keys/NAME[/VERSION]``) in its parts."""
    parts = urlsplit(url.strip())
    segments = [unquote(s) for s in parts.path.split("/") if s]
    if (
        parts.scheme != "https"
        or not parts.hostname
        or parts.query
        or len(segments) not in (2, 3)
        or segments[0] != "keys"
    ):
        raise ConfigError(
            f"azurekv:{url}: is not a Key Vault key identifier",
            hint="azurekv:https://VAULT.vault.azure.net/keys/NAME[/VERSION] (the key's URL, "
            "as `az keyvault key show` prints it in key.kid)",
        )
    version = segments[2] if len(segments) == 3 else None
    return f"https://{parts.netloc}", segments[1], version


def default_credential() -> TokenCredential:
    """azure-identity's default chain (imported here: only the default needs it)."""
    from azure.identity import DefaultAzureCredential

    return DefaultAzureCredential()


class AzureKvSigner(RemoteSigner):
    """Signs JWS with a Key Vault or Managed HSM key whose ``key_ops`` include ``sign``.

    ``key_url`` is the key's identifier (``https://VAULT/keys/NAME[/VERSION]``). ``credential``
    replaces ``DefaultAzureCredential``; other keyword arguments go to the Key Vault clients
    (azure-core options: ``transport``, ``connection_verify``, ``proxies``, ...).
    """

    returns_der = False

    def __init__(
        self,
        key_url: str,
        *,
        alg: str | None = None,
        kid: str | None = None,
        credential: TokenCredential | None = None,
        connection_timeout: float = CONNECTION_TIMEOUT,
        read_timeout: float = READ_TIMEOUT,
        **client_options: Any,
    ) -> None:
        vault, name, version = parse_key_url(key_url)
        self._url = key_url
        options: dict[str, Any] = {
            "retry_total": RETRIES,
            "connection_timeout": connection_timeout,
            "read_timeout": read_timeout,
            **client_options,
        }
        credential = credential or default_credential()
        keys = KeyClient(vault, credential, **options)
        key = self._call("GetKey", lambda: keys.get_key(name, version))
        public = _public_key(key, self.describe())
        self._version_url = key.id
        self._crypto = CryptographyClient(key, credential, **options)
        super().__init__(public, alg=alg, kid=kid)

    @classmethod
    def from_uri(cls, uri: str, *, alg: str | None = None, kid: str | None = None) -> AzureKvSigner:
        """The signer for ``azurekv:https://VAULT/keys/NAME[/VERSION]``."""
        vault, name, version = parse_uri(uri)
        url = f"{vault}/keys/{name}" + (f"/{version}" if version else "")
        return cls(url, alg=alg, kid=kid)

    def describe(self) -> str:
        return f"Azure Key Vault key {self._url}"

    def _sign(self, alg: str, data: bytes) -> bytes:
        _, digest = digest_for(alg, data)
        result = self._call("Sign", lambda: self._crypto.sign(SignatureAlgorithm(alg), digest))
        return bytes(result.signature)

    def _call(self, operation: str, call: Callable[[], _T]) -> _T:
        """``call()``, its failures as pkjwt errors (see :func:`kv_error`)."""
        try:
            return call()
        except AzureError as exc:
            credential_side = isinstance(exc, ClientAuthenticationError) and exc.response is None
            raise kv_error(exc, operation, self.describe()) from (None if credential_side else exc)
        except ValueError as exc:
            # the SDK refuses a challenge whose resource is not the vault's domain (a host that
            # is not Key Vault, or one that impersonates it)
            raise SignerUnavailable(
                f"{self.describe()}: Key Vault {operation} refused: {scrub(str(exc))}",
                hint="the URL must be the vault's own (https://VAULT.vault.azure.net/keys/...)",
            ) from exc


def _public_key(key: KeyVaultKey, what: str) -> Key:
    """The public key of a Key Vault key (its JWK ``n``/``e`` or ``crv``/``x``/``y``), once
    its type, operations and attributes show it can sign now."""
    kty = _text(key.key_type)
    jwk: Any = key.key  # a JsonWebKey, its members set from the service's JSON
    crv = _text(jwk.crv) if jwk.crv else None
    if kty in ("RSA", "RSA-HSM") and jwk.n and jwk.e:
        native: Any = rsa.RSAPublicNumbers(
            int.from_bytes(jwk.e, "big"), int.from_bytes(jwk.n, "big")
        ).public_key()
    elif kty in ("EC", "EC-HSM") and crv in _CURVES and jwk.x and jwk.y:
        native = ec.EllipticCurvePublicNumbers(
            int.from_bytes(jwk.x, "big"), int.from_bytes(jwk.y, "big"), _CURVES[crv]
        ).public_key()
    else:
        curve = f" ({crv})" if crv else ""
        why = f"{crv} is not among the curves pkjwt signs with" if crv else f"{kty} cannot sign"
        if crv == "P-256K":
            why = "P-256K (ES256K, RFC 8812) is not among the algorithms pkjwt signs"
        raise KeyLoadError(
            f"{what} is a {kty}{curve} key; pkjwt signs with RSA and EC P-256/P-384/P-521 keys",
            hint=f"{why}; create one: {_CREATE}",
        )
    operations = [_text(op) for op in key.key_operations or ()]
    if "sign" not in operations:
        raise KeyLoadError(
            f"{what} does not allow sign (key_ops: {', '.join(operations) or 'none'})",
            hint="az keyvault key set-attributes --ops sign verify ...",
        )
    attributes = key.properties
    if attributes.enabled is False:
        raise SignerUnavailable(
            f"{what} is disabled",
            hint="az keyvault key set-attributes --enabled true ..., or name another key",
        )
    expires = attributes.expires_on
    if expires is not None and expires <= datetime.datetime.now(datetime.UTC):
        raise SignerUnavailable(
            f"{what} expired at {expires.isoformat()}",
            hint="Key Vault refuses to sign with it: rotate to a new version, or extend "
            "its expiry (az keyvault key set-attributes --expires ...)",
        )
    return load_key(native)


def _text(value: object) -> str:
    """An SDK enum member's wire value (``str()`` of one is its qualified name)."""
    return str(getattr(value, "value", value))


# -- failures -------------------------------------------------------------------------------------


def kv_error(exc: AzureError, operation: str, what: str) -> PkjwtError:
    """The pkjwt error for a failed Key Vault call: :class:`SignerUnavailable`, retryable when
    waiting may help; a key that does not exist, when first read, a :class:`KeyLoadError`."""
    if isinstance(exc, ClientAuthenticationError) and exc.response is None:
        # the credential chain failed before Key Vault was asked; its message lists what it
        # tried and can quote tool output, so only its type is shown
        return SignerUnavailable(
            f"{what}: no usable Azure credentials for {operation} ({type(exc).__name__})",
            hint="run `az login`, set AZURE_CLIENT_ID/AZURE_TENANT_ID (with a secret, a "
            "certificate or workload identity), or run with a managed identity",
        )
    if isinstance(exc, HttpResponseError):
        return _response_error(exc, operation, what)
    if isinstance(exc, ServiceRequestError | ServiceResponseError):
        return SignerUnavailable(
            f"{what}: Key Vault {operation} failed: {type(exc).__name__}: {scrub(str(exc))}",
            hint=f"Key Vault did not answer in time (tried {RETRIES + 1} times); check the "
            "network path to the vault (private endpoint, firewall)",
            retryable=True,
        )
    return SignerUnavailable(f"{what}: Key Vault {operation} failed ({type(exc).__name__})")


def _response_error(exc: HttpResponseError, operation: str, what: str) -> PkjwtError:
    status = int(exc.status_code or 0)
    error = getattr(exc, "error", None)
    code = str(getattr(error, "code", None) or status)
    detail = scrub(str(getattr(error, "message", None) or exc.reason or ""))
    message = f"{what}: Key Vault {operation} failed: {code}" + (f": {detail}" if detail else "")
    if status == 429 or status >= 500:
        return SignerUnavailable(
            message,
            hint=f"Key Vault is throttling or failing (tried {RETRIES + 1} times); retry later, "
            "and if throttled, spread the load (Key Vault limits requests per vault)",
            retryable=True,
        )
    if status == 404 and operation == "GetKey":
        return KeyLoadError(message, hint="check the vault, key name and version in the URI")
    if status == 403 and "disabled" in detail.lower():
        hint: str | None = "az keyvault key set-attributes --enabled true ..., or name another key"
    else:
        hint = {
            401: "Key Vault refused the token: check the identity's tenant (az login --tenant)",
            403: "the identity may not use this key: assign it the 'Key Vault Crypto User' role "
            "(or, for access policies, the get and sign key permissions)",
            404: "the key version is gone: check it in the vault",
        }.get(status)
    return SignerUnavailable(message, hint=hint)
