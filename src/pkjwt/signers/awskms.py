"""AWS KMS as the custodian of a signing key: ``awskms:`` key URIs.

    awskms:1234abcd-12ab-34cd-56ef-1234567890ab                      a key id (default region)
    awskms:arn:aws:kms:eu-west-2:111122223333:key/1234abcd-...         a key ARN (its region)
    awskms:alias/nhs-int?region=eu-west-2&profile=prod                an alias name
    awskms:arn:aws:kms:eu-west-2:111122223333:alias/nhs-int            an alias ARN

The region is the ARN's, else ``?region=``, else boto3's own (``AWS_REGION``,
``AWS_DEFAULT_REGION``, the profile's). Credentials are boto3's chain (environment, profile,
SSO, instance or task role); ``?profile=`` picks a named profile. The endpoint is boto3's too:
pkjwt never passes one, so ``AWS_ENDPOINT_URL_KMS`` / ``AWS_ENDPOINT_URL`` (LocalStack, moto,
a VPC endpoint) keep working.

At construction ``GetPublicKey`` is called once: its ``PublicKey`` (DER SubjectPublicKeyInfo)
is the key pkjwt publishes and derives the ``kid`` from, and ``KeySpec``, ``KeyUsage`` and
``SigningAlgorithms`` say which JWS algorithms the key may make. Each assertion is one ``Sign``
call with ``MessageType=DIGEST``: the hash is computed here, so the signing input (the
assertion's claims) never reaches KMS or CloudTrail, and KMS's 4096-byte limit on ``RAW``
messages never applies. ECDSA comes back in DER; :class:`~pkjwt.signers.RemoteSigner` turns
it into JWS's ``R || S``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import parse_qs, unquote

import boto3
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    CredentialRetrievalError,
    HTTPClientError,
    NoCredentialsError,
    NoRegionError,
    PartialCredentialsError,
    ProfileNotFound,
    SSLError,
    SSOError,
    TokenRetrievalError,
)
from botocore.exceptions import ConnectionError as BotoConnectionError
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import load_der_public_key

from ..errors import ConfigError, KeyLoadError, PkjwtError, SignerUnavailable
from ..keys import Key, load_key
from ._cloud import digest_for, scrub
from .base import RemoteSigner

if TYPE_CHECKING:
    from mypy_boto3_kms.client import KMSClient
    from mypy_boto3_kms.literals import SigningAlgorithmSpecType

__all__ = ["AwsKmsSigner", "KmsKeyRef", "parse_uri"]

_T = TypeVar("_T")

#: JWS algorithm -> the KMS ``SigningAlgorithm`` that makes it (RFC 7518 3.1)
KMS_ALGORITHM: dict[str, SigningAlgorithmSpecType] = {
    "RS256": "RSASSA_PKCS1_V1_5_SHA_256",
    "RS384": "RSASSA_PKCS1_V1_5_SHA_384",
    "RS512": "RSASSA_PKCS1_V1_5_SHA_512",
    "PS256": "RSASSA_PSS_SHA_256",
    "PS384": "RSASSA_PSS_SHA_384",
    "PS512": "RSASSA_PSS_SHA_512",
    "ES256": "ECDSA_SHA_256",
    "ES384": "ECDSA_SHA_384",
    "ES512": "ECDSA_SHA_512",
}
_RSA = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512")
#: the KMS ``KeySpec`` values pkjwt signs with, and the JWS algorithms each allows
SPEC_ALGS: dict[str, tuple[str, ...]] = {
    "RSA_2048": _RSA,
    "RSA_3072": _RSA,
    "RSA_4096": _RSA,
    "ECC_NIST_P256": ("ES256",),
    "ECC_NIST_P384": ("ES384",),
    "ECC_NIST_P521": ("ES512",),
}
_SIGNING_SPECS = "RSA_2048/3072/4096 or ECC_NIST_P256/P384/P521"
_CREATE = "aws kms create-key --key-usage SIGN_VERIFY --key-spec RSA_4096 (or ECC_NIST_P256)"
#: why a spec KMS has is not one pkjwt signs with
_SPEC_REFUSED = {
    "ECC_SECG_P256K1": "secp256k1 (ES256K, RFC 8812) is not among the algorithms pkjwt signs "
    "or verifies",
    "SYMMETRIC_DEFAULT": "a symmetric key encrypts; it cannot make a signature anyone can verify",
    "SM2": "SM2 is not a JWS algorithm",
}

# Why short timeouts and one retry: an assertion is signed on the way to a token request with
# its own deadline. botocore's defaults (60 s to connect, 60 s to read, up to 5 attempts in
# legacy mode) would hold a token refresh for minutes while KMS is unreachable. Standard mode
# retries once, with backoff, on throttling and transient errors, which absorbs a blip; beyond
# that the caller decides, told by SignerUnavailable.retryable.
CONNECT_TIMEOUT = 2.0
READ_TIMEOUT = 5.0
MAX_ATTEMPTS = 2

_URI_PARAMS = ("region", "profile")
_ARN = re.compile(r"arn:(?P<partition>[^:]+):kms:(?P<region>[^:]*):(?P<account>[^:]*):(?P<res>.+)")


@dataclass(frozen=True, slots=True)
class KmsKeyRef:
    """What an ``awskms:`` URI names: ``key_id`` as KMS takes it (``KeyId``), and where."""

    key_id: str
    region: str | None = None
    profile: str | None = None


def parse_uri(uri: str) -> KmsKeyRef:
    """``awskms:KEY[?region=R&profile=P]`` (percent-decoded) as a :class:`KmsKeyRef`; the
    region of an ARN wins, and a different ``?region=`` is refused rather than ignored."""
    scheme, _, rest = uri.partition(":")
    if scheme.lower() != "awskms":
        raise ConfigError(f"{scheme}: is not an AWS KMS key URI", hint="awskms:alias/NAME")
    key_part, _, query = rest.partition("?")
    key_id = unquote(key_part).strip()
    if not key_id or key_id.startswith("/"):
        raise ConfigError(
            f"awskms:{key_part}: names no key",
            hint="awskms:KEY-ID, awskms:alias/NAME, or a key or alias ARN (no // after awskms:)",
        )
    params = parse_qs(query, keep_blank_values=True)  # values are percent-decoded
    unknown = sorted(set(params) - set(_URI_PARAMS))
    if unknown:
        raise ConfigError(
            f"awskms:{key_id}: unknown parameter(s) {', '.join(unknown)}",
            hint="an awskms: URI takes ?region=...&profile=...",
        )
    for name, values in params.items():
        if len(values) > 1 or not values[0]:
            raise ConfigError(f"awskms:{key_id}: give {name}= once, with a value")
    region = params.get("region", [None])[0]
    profile = params.get("profile", [None])[0]
    if key_id.startswith("arn:"):
        region = _region_of_arn(key_id, region)
    return KmsKeyRef(key_id, region, profile)


def _region_of_arn(arn: str, asked: str | None) -> str:
    match = _ARN.fullmatch(arn)
    if match is None or not match["region"] or not match["res"].startswith(("key/", "alias/")):
        raise ConfigError(
            f"awskms:{arn}: is not a KMS key or alias ARN",
            hint="arn:aws:kms:REGION:ACCOUNT:key/ID or arn:aws:kms:REGION:ACCOUNT:alias/NAME",
        )
    if asked and asked != match["region"]:
        raise ConfigError(
            f"awskms:{arn}: the ARN is in {match['region']} but ?region={asked} was given",
            hint="a key lives in one region: drop ?region= (the ARN says it)",
        )
    return match["region"]


def kms_client(
    ref: KmsKeyRef,
    *,
    connect_timeout: float = CONNECT_TIMEOUT,
    read_timeout: float = READ_TIMEOUT,
) -> KMSClient:
    """A boto3 KMS client for ``ref``'s region and profile, with short timeouts and one retry
    (see ``CONNECT_TIMEOUT`` above). No ``endpoint_url`` is passed: boto3 resolves it, from
    ``AWS_ENDPOINT_URL_KMS`` / ``AWS_ENDPOINT_URL`` when set."""
    try:
        session = boto3.session.Session(profile_name=ref.profile, region_name=ref.region)
    except ProfileNotFound:
        raise ConfigError(
            f"AWS profile {ref.profile!r} is not configured",
            hint="add it to ~/.aws/config (aws configure --profile NAME) or fix ?profile=",
        ) from None
    config = Config(
        connect_timeout=connect_timeout,
        read_timeout=read_timeout,
        # total_max_attempts counts the first request; max_attempts would count retries only
        retries={"total_max_attempts": MAX_ATTEMPTS, "mode": "standard"},
        user_agent_extra="pkjwt",
    )
    try:
        return session.client("kms", config=config)
    except NoRegionError:
        raise ConfigError(
            f"no AWS region for KMS key {ref.key_id}",
            hint="add ?region=eu-west-2 (say) to the URI, name the key by ARN, or set AWS_REGION",
        ) from None


class AwsKmsSigner(RemoteSigner):
    """Signs JWS with an asymmetric AWS KMS key (``KeyUsage`` ``SIGN_VERIFY``).

    ``key_id`` is anything KMS takes as ``KeyId``: a key id, key ARN, ``alias/NAME`` or alias
    ARN. ``client`` replaces the boto3 client pkjwt would make (for credentials of your own,
    say an assumed role); ``connect_timeout`` and ``read_timeout`` are seconds per attempt.
    """

    returns_der = True

    def __init__(
        self,
        key_id: str,
        *,
        region: str | None = None,
        profile: str | None = None,
        alg: str | None = None,
        kid: str | None = None,
        client: KMSClient | None = None,
        connect_timeout: float = CONNECT_TIMEOUT,
        read_timeout: float = READ_TIMEOUT,
    ) -> None:
        if key_id.startswith("arn:"):
            region = _region_of_arn(key_id, region)
        ref = KmsKeyRef(key_id, region, profile)
        self._key_id = key_id
        self._client = client or kms_client(
            ref, connect_timeout=connect_timeout, read_timeout=read_timeout
        )
        self._region = self._client.meta.region_name
        answer = self._call("GetPublicKey", lambda: self._client.get_public_key(KeyId=key_id))
        # which key the name resolved to: Sign answers are checked against it (an alias moved
        # to another key would sign with a key whose public half we do not publish)
        self._resolved = _bare_key_id(answer["KeyId"])
        super().__init__(_public_key(answer, self.describe()), alg=alg, kid=kid)

    @classmethod
    def from_uri(cls, uri: str, *, alg: str | None = None, kid: str | None = None) -> AwsKmsSigner:
        """The signer for ``awskms:KEY[?region=...&profile=...]``."""
        ref = parse_uri(uri)
        return cls(ref.key_id, region=ref.region, profile=ref.profile, alg=alg, kid=kid)

    def describe(self) -> str:
        return f"AWS KMS key {self._key_id} ({self._region or 'no region'})"

    def _sign(self, alg: str, data: bytes) -> bytes:
        _, digest = digest_for(alg, data)
        # KeyId as the user named it, not the resolved key: IAM conditions such as
        # kms:RequestAlias see the alias; the answer's KeyId is checked below instead
        answer = self._call(
            "Sign",
            lambda: self._client.sign(
                KeyId=self._key_id,
                Message=digest,
                MessageType="DIGEST",
                SigningAlgorithm=KMS_ALGORITHM[alg],
            ),
        )
        if _bare_key_id(answer.get("KeyId", self._resolved)) != self._resolved:
            raise SignerUnavailable(
                f"{self.describe()} now names another key than the one whose public key was "
                "read at start-up",
                hint="the alias was moved: restart to read (and publish) the new key's public "
                "half, or name the key by id",
            )
        return answer["Signature"]

    def _call(self, operation: str, call: Callable[[], _T]) -> _T:
        """``call()``, its failures as pkjwt errors (see :func:`kms_error`)."""
        try:
            return call()
        except (ClientError, BotoCoreError) as exc:
            raise kms_error(exc, operation, self.describe()) from _cause(exc)


def _bare_key_id(key_id: str) -> str:
    """A key ARN's id (``GetPublicKey`` and ``Sign`` answer ARNs on AWS, ids on some
    emulators)."""
    return key_id.rpartition(":key/")[2] if ":key/" in key_id else key_id


def _public_key(answer: Mapping[str, Any], what: str) -> Key:
    """The public key from a ``GetPublicKey`` answer, its algorithms narrowed to those the key
    spec allows and ``SigningAlgorithms`` lists; a key unfit to sign JWS is refused here."""
    spec = str(answer.get("KeySpec") or answer.get("CustomerMasterKeySpec") or "unknown")
    usage = str(answer.get("KeyUsage") or "unknown")
    if spec not in SPEC_ALGS:
        raise KeyLoadError(
            f"{what} is a {spec} key; pkjwt signs with {_SIGNING_SPECS} keys",
            hint=_SPEC_REFUSED.get(spec, "not a JWS signing key type") + f"; create one: {_CREATE}",
        )
    if usage != "SIGN_VERIFY":
        raise KeyLoadError(
            f"{what} is a {spec} key for {usage}, not SIGN_VERIFY",
            hint=f"a key's usage is fixed when it is created: {_CREATE}",
        )
    try:
        native = load_der_public_key(answer["PublicKey"])
    except ValueError:
        raise KeyLoadError(f"{what}: GetPublicKey answered a key that cannot be parsed") from None
    if not isinstance(native, rsa.RSAPublicKey | ec.EllipticCurvePublicKey):
        raise KeyLoadError(f"{what}: GetPublicKey answered a {type(native).__name__}")
    public = load_key(native)
    offered = set(answer.get("SigningAlgorithms") or ())
    algs = tuple(a for a in public.algs if a in SPEC_ALGS[spec] and KMS_ALGORITHM[a] in offered)
    if not algs:
        raise KeyLoadError(
            f"{what} ({spec}) offers no JWS algorithm (SigningAlgorithms: "
            f"{', '.join(sorted(offered)) or 'none'})",
        )
    return Key(public.jose, public.kid, algs[0], algs, False)


# -- failures -------------------------------------------------------------------------------------

#: KMS error codes worth retrying: the request may succeed later unchanged
_RETRYABLE = frozenset(
    {
        "ThrottlingException",
        "LimitExceededException",
        "KMSInternalException",
        "KeyUnavailableException",
        "DependencyTimeoutException",
        "RequestTimeout",
        "ServiceUnavailable",
        "InternalFailure",
    }
)
_CREDENTIALS_REFUSED = frozenset(
    {
        "UnrecognizedClientException",
        "InvalidSignatureException",
        "SignatureDoesNotMatch",
        "InvalidClientTokenId",
        "IncompleteSignature",
        "ExpiredTokenException",
        "ExpiredToken",
        "MissingAuthenticationToken",
    }
)
_CREDENTIAL_ERRORS = (
    NoCredentialsError,
    PartialCredentialsError,
    CredentialRetrievalError,
    TokenRetrievalError,
    SSOError,
)
_XML_ERROR = re.compile(
    r"<Code>(?P<code>[^<]+)</Code>(?:\s*<Message>(?P<message>[^<]*)</Message>)?"
)


def kms_error(exc: ClientError | BotoCoreError, operation: str, what: str) -> PkjwtError:
    """The pkjwt error for a failed KMS call: :class:`SignerUnavailable`, retryable when
    waiting may help; a key that does not exist, when first opened, a :class:`KeyLoadError`.
    Messages carry the KMS error code and message, scrubbed of anything credential-like."""
    if isinstance(exc, ClientError):
        return _client_error(exc, operation, what)
    if isinstance(exc, _CREDENTIAL_ERRORS):
        return SignerUnavailable(
            f"{what}: no usable AWS credentials for KMS {operation} ({type(exc).__name__})",
            hint="set AWS_PROFILE (or ?profile= in the URI), run `aws sso login`, or give the "
            "process a role; AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY work too",
        )
    if isinstance(exc, SSLError):
        return SignerUnavailable(
            f"{what}: TLS to the KMS endpoint failed ({type(exc).__name__})",
            hint="a proxy that inspects TLS needs its CA in AWS_CA_BUNDLE",
        )
    if isinstance(exc, BotoConnectionError | HTTPClientError):
        return SignerUnavailable(
            f"{what}: KMS {operation} failed: {scrub(str(exc))}",
            hint=f"KMS did not answer in time (tried {MAX_ATTEMPTS} times); check the network "
            "path to KMS, and AWS_ENDPOINT_URL_KMS / AWS_ENDPOINT_URL if set",
            retryable=True,
        )
    return SignerUnavailable(f"{what}: KMS {operation} failed ({type(exc).__name__})")


def _client_error(exc: ClientError, operation: str, what: str) -> PkjwtError:
    error = exc.response.get("Error", {})
    code = str(error.get("Code") or "unknown")
    status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
    raw = str(error.get("Message") or "")
    # an XML error body where KMS speaks JSON (an IAM layer in front, an emulator): botocore
    # gives the status as the code and the whole body as the message
    xml = _XML_ERROR.search(raw) if code.isdigit() else None
    if xml:
        code, raw = xml["code"], xml["message"] or ""
    detail = scrub(raw)
    message = f"{what}: KMS {operation} failed: {code}" + (f": {detail}" if detail else "")
    if code in _RETRYABLE or status >= 500:
        return SignerUnavailable(
            message,
            hint=f"KMS is throttling or failing (tried {MAX_ATTEMPTS} times); retry later, and "
            "if throttled, spread the load or raise the KMS request quota",
            retryable=True,
        )
    if code == "NotFoundException" and operation == "GetPublicKey":
        return KeyLoadError(
            message,
            hint="check the key id or alias and the region: aliases and keys belong to one "
            "account and region (aws kms list-aliases --region REGION)",
        )
    return SignerUnavailable(message, hint=_hint(code, status, operation))


def _hint(code: str, status: int, operation: str) -> str | None:
    if code in _CREDENTIALS_REFUSED:
        return (
            "AWS refused the credentials (unknown, wrong secret, or an expired session): "
            "check AWS_PROFILE / the credentials in use, or run `aws sso login`"
        )
    if code.startswith("AccessDenied") or status in (401, 403):
        return (
            f"the credentials in use may not call kms:{operation} on this key: allow it in "
            "the IAM policy and the key policy (aws kms get-key-policy)"
        )
    return {
        "DisabledException": "enable the key (aws kms enable-key --key-id ...) or name another",
        "KMSInvalidStateException": "the key is pending deletion or import: "
        "aws kms cancel-key-deletion, or name another key",
        "NotFoundException": "the key or alias is gone: check it in the KMS console",
        "InvalidKeyUsageException": f"pkjwt needs a SIGN_VERIFY key: {_CREATE}",
    }.get(code)


def _cause(exc: Exception) -> Exception | None:
    # a credential provider's message can quote what it ran or read: not chained
    return None if isinstance(exc, _CREDENTIAL_ERRORS) else exc
