"""moto's KMS in server mode on a free loopback port, for the ``awskms:`` signer's tests.

Requests go over real HTTP with real botocore request signing and error parsing; moto keeps
the keys and answers. Two things moto 5.2 does differently from AWS matter here, and this
harness makes moto answer as AWS documents them, each only when a probe at start-up finds it
missing (a moto that has fixed them is used as it is):

``digest``
    ``Sign`` ignores ``MessageType=DIGEST`` and hashes the digest again (getmoto/moto#10202,
    open), so no JWS signed that way verifies. AWS (API_Sign): with ``DIGEST`` the message is
    the hash, signed without hashing again, and its length must match the algorithm's hash.
``state``
    ``Sign`` and ``GetPublicKey`` use a ``Disabled`` or ``PendingDeletion`` key. AWS answers
    ``DisabledException`` / ``KMSInvalidStateException``.

Every ``Sign`` request moto receives is recorded (``MessageType``, message length), so tests
can see what went over the wire.
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import threading
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed
from moto.core.exceptions import JsonRESTError
from moto.kms.responses import KmsResponse
from moto.server import ThreadedMotoServer

REGION = "eu-west-2"
ACCESS_KEY = "testing"
SECRET_KEY = "testing"
_HASHES = {"256": hashes.SHA256, "384": hashes.SHA384, "512": hashes.SHA512}


@dataclass(frozen=True)
class SignRequest:
    """One ``Sign`` request as moto received it."""

    key_id: str
    message_type: str
    message_length: int
    algorithm: str


@dataclass(frozen=True)
class KmsKey:
    key_id: str
    arn: str
    alias: str | None

    @property
    def uri(self) -> str:
        return f"awskms:{self.alias or self.key_id}"


class MotoKms:
    """A running moto server (KMS and IAM), with admin clients for setting keys up."""

    def __init__(self) -> None:
        # werkzeug logs every request at INFO: noise in a failing test's output
        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self._server.start()
        host, port = self._server.get_host_and_port()
        self.url = f"http://{host}:{port}"
        self.sign_requests: list[SignRequest] = []
        self.gaps: frozenset[str] = frozenset()
        _recorder.install(self)
        self.gaps = _probe(self)

    def client(self, service: str = "kms", region: str = REGION, **creds: str) -> Any:
        return boto3.client(
            service,
            endpoint_url=self.url,
            region_name=region,
            aws_access_key_id=creds.get("access_key", ACCESS_KEY),
            aws_secret_access_key=creds.get("secret_key", SECRET_KEY),
        )

    def create_key(
        self,
        spec: str,
        *,
        usage: str = "SIGN_VERIFY",
        alias: str | None = None,
        region: str = REGION,
    ) -> KmsKey:
        kms = self.client(region=region)
        meta = kms.create_key(KeySpec=spec, KeyUsage=usage, Description=f"pkjwt test {spec}")
        key_id, arn = meta["KeyMetadata"]["KeyId"], meta["KeyMetadata"]["Arn"]
        if alias:
            kms.create_alias(AliasName=alias, TargetKeyId=key_id)
        return KmsKey(key_id, arn, alias)

    def public_key(self, key: KmsKey, region: str = REGION) -> Any:
        """The key's public half as ``GetPublicKey`` gives it (a ``cryptography`` object)."""
        der = self.client(region=region).get_public_key(KeyId=key.key_id)["PublicKey"]
        return serialization.load_der_public_key(der)

    def env(self, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, **overrides: str) -> None:
        """The AWS environment a deployment would have, pointed at this server: endpoint,
        credentials and region from the standard variables; nothing read from ~/.aws; no
        instance-metadata lookup (it would leave loopback)."""
        for name in (
            "AWS_PROFILE",
            "AWS_DEFAULT_PROFILE",
            "AWS_SESSION_TOKEN",
            "AWS_SECURITY_TOKEN",
            "AWS_REGION",
            "AWS_ENDPOINT_URL_KMS",
            "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
            "AWS_CONTAINER_CREDENTIALS_FULL_URI",
            "AWS_WEB_IDENTITY_TOKEN_FILE",
            "AWS_ROLE_ARN",
            "AWS_CA_BUNDLE",
        ):
            monkeypatch.delenv(name, raising=False)
        settings = {
            "AWS_ENDPOINT_URL": self.url,
            "AWS_ACCESS_KEY_ID": ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
            "AWS_DEFAULT_REGION": REGION,
            "AWS_CONFIG_FILE": str(tmp_path / "aws-config"),
            "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "aws-credentials"),
            "AWS_EC2_METADATA_DISABLED": "true",
            "NO_PROXY": "127.0.0.1,localhost",
            **overrides,
        }
        for name, value in settings.items():
            monkeypatch.setenv(name, value)

    @contextlib.contextmanager
    def iam_enforced(self) -> Iterator[None]:
        """moto checks every request's SigV4 signature and IAM policies, as AWS does, until
        the block ends (its /moto-api/reset-auth switch)."""
        self._reset_auth(b"0")
        try:
            yield
        finally:
            self._reset_auth(b"inf")

    def _reset_auth(self, count: bytes) -> None:
        request = urllib.request.Request(
            f"{self.url}/moto-api/reset-auth",
            data=count,
            method="POST",
            headers={"Content-Type": "text/plain"},
        )
        with urllib.request.urlopen(request, timeout=10) as answer:  # loopback only
            answer.read()

    def stop(self) -> None:
        _recorder.uninstall()
        self._server.stop()


def _probe(moto: MotoKms) -> frozenset[str]:
    """Which of the documented behaviours above this moto lacks (see the module docstring)."""
    kms = moto.client()
    key = moto.create_key("ECC_NIST_P256")
    digest = hashes.Hash(hashes.SHA256())
    digest.update(b"probe")
    value = digest.finalize()
    signature = kms.sign(
        KeyId=key.key_id, Message=value, MessageType="DIGEST", SigningAlgorithm="ECDSA_SHA_256"
    )["Signature"]
    gaps = set()
    try:
        moto.public_key(key).verify(signature, value, ec.ECDSA(Prehashed(hashes.SHA256())))
    except InvalidSignature:
        gaps.add("digest")
    kms.disable_key(KeyId=key.key_id)
    with contextlib.suppress(kms.exceptions.DisabledException):
        kms.get_public_key(KeyId=key.key_id)
        gaps.add("state")
    kms.schedule_key_deletion(KeyId=key.key_id, PendingWindowInDays=7)
    moto.sign_requests.clear()
    return frozenset(gaps)


class _Recorder:
    """Wraps moto's Sign and GetPublicKey handlers: records each Sign, and fills the gaps the
    probe found. One moto server per process at a time (the handlers are class attributes)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._moto: MotoKms | None = None
        self._originals: dict[str, Any] = {}

    def install(self, moto: MotoKms) -> None:
        with self._lock:
            if self._moto is not None:
                raise RuntimeError("one moto KMS harness at a time")
            self._moto = moto
            self._originals = {
                "sign": KmsResponse.sign,
                "get_public_key": KmsResponse.get_public_key,
            }
            recorder = self

            def sign(response: KmsResponse) -> str:
                return recorder.sign(response)

            def get_public_key(response: KmsResponse) -> str:
                recorder.check_state(response)
                return str(recorder._originals["get_public_key"](response))

            KmsResponse.sign = sign  # type: ignore[method-assign]
            KmsResponse.get_public_key = get_public_key  # type: ignore[method-assign]

    def uninstall(self) -> None:
        with self._lock:
            for name, handler in self._originals.items():
                setattr(KmsResponse, name, handler)
            self._originals = {}
            self._moto = None

    @property
    def gaps(self) -> frozenset[str]:
        return self._moto.gaps if self._moto else frozenset()

    def check_state(self, response: KmsResponse) -> Any:
        key_id = response._get_param("KeyId")
        response._validate_key_id(key_id)
        key = response.kms_backend.describe_key(key_id)
        if "state" in self.gaps and key.key_state == "Disabled":
            raise JsonRESTError("DisabledException", f"{key.arn} is disabled.")
        if "state" in self.gaps and key.key_state != "Enabled":
            raise JsonRESTError("KMSInvalidStateException", f"{key.arn} is {key.key_state}.")
        return key

    def sign(self, response: KmsResponse) -> str:
        key = self.check_state(response)
        message = response._get_param("Message")
        message_type = response._get_param("MessageType") or "RAW"
        algorithm = response._get_param("SigningAlgorithm")
        if self._moto is not None:
            self._moto.sign_requests.append(
                SignRequest(response._get_param("KeyId"), message_type, len(message), algorithm)
            )
        if message_type != "DIGEST" or "digest" not in self.gaps:
            return str(self._originals["sign"](response))
        return json.dumps(
            {
                "KeyId": key.arn,
                "Signature": _b64(_sign_digest(key, message, algorithm)),
                "SigningAlgorithm": algorithm,
            }
        )


def _sign_digest(key: Any, digest: bytes, algorithm: str) -> bytes:
    """What AWS does with ``MessageType=DIGEST`` (API_Sign): the digest signed as given."""
    if key.key_usage != "SIGN_VERIFY":
        raise JsonRESTError("InvalidKeyUsageException", f"{key.arn} is not a SIGN_VERIFY key.")
    if algorithm not in (key.signing_algorithms or []):
        raise JsonRESTError("ValidationException", f"{algorithm} is not valid for {key.arn}.")
    chosen = _HASHES[algorithm[-3:]]()
    if len(digest) != chosen.digest_size:
        raise JsonRESTError(
            "ValidationException", f"Digest is invalid length for algorithm {algorithm}."
        )
    native = key.private_key.private_key  # moto's key object holds cryptography's
    if algorithm.startswith("ECDSA_"):
        return bytes(native.sign(digest, ec.ECDSA(Prehashed(chosen))))
    if algorithm.startswith("RSASSA_PSS_"):
        # KMS's PSS salt is as long as the hash (cryptographic details: RSASSA-PSS)
        pss = padding.PSS(padding.MGF1(chosen), chosen.digest_size)
        return bytes(native.sign(digest, pss, Prehashed(chosen)))
    return bytes(native.sign(digest, padding.PKCS1v15(), Prehashed(chosen)))


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


_recorder = _Recorder()
