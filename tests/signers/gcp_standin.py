"""A loopback stand-in for Cloud KMS's REST API (no emulator of Cloud KMS exists), written from
its reference (v1 ``cryptoKeyVersions.getPublicKey`` and ``.asymmetricSign``, JSON error
bodies, CRC-32C checksums). The google-cloud-kms client talks to it over real HTTP, with its
own serialization, auth headers and error parsing. Requests must carry a bearer token: a
static test token, or the self-signed JWT that google-auth makes from a service-account key
(checked against that key), so Application Default Credentials run for real.

This is not Cloud KMS: it checks what the reference says a request must carry and answers as
the reference says, no more. Nothing here was compared with the real service."""

from __future__ import annotations

import base64
import json
import threading
import urllib.parse
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt as pyjwt
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed
from google.cloud import kms

from pkjwt.signers.gcpkms import crc32c

PARENT = "projects/pkjwt-test/locations/europe-west2/keyRings/pkjwt"
_ALGORITHM = kms.CryptoKeyVersion.CryptoKeyVersionAlgorithm
_HASHES = {"SHA256": hashes.SHA256(), "SHA384": hashes.SHA384(), "SHA512": hashes.SHA512()}


@dataclass
class Version:
    """A key version: its private key, algorithm name and state."""

    private: Any
    algorithm: str
    state: str = "ENABLED"

    @property
    def pem(self) -> str:
        return str(
            self.private.public_key()
            .public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            .decode()
        )


def make_private(algorithm: str) -> Any:
    if algorithm.startswith("RSA_"):
        return rsa.generate_private_key(65537, int(algorithm.split("_")[3]))
    if algorithm == "EC_SIGN_ED25519":
        return ed25519.Ed25519PrivateKey.generate()
    curve = {"P256": ec.SECP256R1(), "P384": ec.SECP384R1(), "SECP256K1": ec.SECP256K1()}
    return ec.generate_private_key(curve[algorithm.split("_")[2]])


@dataclass
class Faults:
    """What the next requests meet: (HTTP status, RPC status) for each of the next Sign
    calls, a signature checksum to spoil."""

    sign: list[tuple[int, str]] = field(default_factory=list)
    spoil_signature_crc: bool = False
    denied: set[str] = field(default_factory=set)


class CloudKms(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.versions: dict[str, Version] = {}
        self.faults = Faults()
        self.tokens: set[str] = {"static-test-token"}
        self.service_account_keys: list[Any] = []
        self.sign_calls: list[dict[str, Any]] = []
        self._thread = threading.Thread(target=self.serve_forever, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def add(self, key: str, algorithm: str) -> str:
        name = f"{PARENT}/cryptoKeys/{key}/cryptoKeyVersions/1"
        self.versions[name] = Version(make_private(algorithm), algorithm)
        return name

    def close(self) -> None:
        self.shutdown()
        self.server_close()
        self._thread.join()

    # -- what the handler asks ------------------------------------------------------------
    def authorized(self, header: str | None) -> bool:
        scheme, _, token = (header or "").partition(" ")
        if scheme != "Bearer" or not token:
            return False
        if token in self.tokens:
            return True
        # a service account's self-signed JWT (google-auth sends one instead of a token)
        for public in self.service_account_keys:
            try:
                pyjwt.decode(token, public, algorithms=["RS256"], options={"verify_aud": False})
                return True
            except pyjwt.PyJWTError:
                continue
        return False

    def public_key(self, name: str) -> tuple[int, dict[str, Any]]:
        version = self.versions.get(name)
        if version is None:
            return _error(404, "NOT_FOUND", f"{name} not found.")
        if name in self.faults.denied:
            return _error(403, "PERMISSION_DENIED", "Permission 'cloudkms.cryptoKeyVersions."
                          f"viewPublicKey' denied on resource '{name}'.")  # fmt: skip
        if version.state != "ENABLED":
            return _error(400, "FAILED_PRECONDITION", f"{name} is not enabled, current state "
                          f"is: {version.state}.")  # fmt: skip
        pem = version.pem
        return 200, {
            "pem": pem,
            "algorithm": _ALGORITHM[version.algorithm].value,
            "pemCrc32c": str(crc32c(pem.encode())),
            "name": name,
            "protectionLevel": 2,
        }

    def asymmetric_sign(self, name: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        self.sign_calls.append(body)
        if self.faults.sign:
            status, rpc = self.faults.sign.pop(0)
            return _error(status, rpc, "as the service says it")
        version = self.versions.get(name)
        if version is None:
            return _error(404, "NOT_FOUND", f"{name} not found.")
        if name in self.faults.denied:
            return _error(403, "PERMISSION_DENIED", "Permission 'cloudkms.cryptoKeyVersions."
                          f"useToSign' denied on resource '{name}'.")  # fmt: skip
        if version.state != "ENABLED":
            return _error(400, "FAILED_PRECONDITION", f"{name} is not enabled, current state "
                          f"is: {version.state}.")  # fmt: skip
        try:
            signature, field_name = _sign(version, body)
        except ValueError as exc:
            return _error(400, "INVALID_ARGUMENT", str(exc))
        crc = crc32c(signature) ^ (1 if self.faults.spoil_signature_crc else 0)
        return 200, {
            "signature": base64.b64encode(signature).decode(),
            "signatureCrc32c": str(crc),
            field_name: True,
            "name": name,
            "protectionLevel": 2,
        }


def _sign(version: Version, body: dict[str, Any]) -> tuple[bytes, str]:
    """The signature AsymmetricSign makes, and which ``verified_*_crc32c`` it confirms."""
    if version.algorithm == "EC_SIGN_ED25519":
        data = base64.b64decode(body.get("data", ""))
        if int(body.get("dataCrc32c", -1)) != crc32c(data):
            raise ValueError("The checksum in field data_crc32c did not match the data.")
        return version.private.sign(data), "verifiedDataCrc32c"
    wanted = version.algorithm.rsplit("_", 1)[1]
    given = body.get("digest", {})
    if list(given) != [wanted.lower()]:
        raise ValueError(f"The digest must be a {wanted} digest for {version.algorithm}.")
    digest = base64.b64decode(given[wanted.lower()])
    if int(body.get("digestCrc32c", -1)) != crc32c(digest):
        raise ValueError("The checksum in field digest_crc32c did not match the digest.")
    chosen = _HASHES[wanted]
    if version.algorithm.startswith("EC_"):
        return version.private.sign(digest, ec.ECDSA(Prehashed(chosen))), "verifiedDigestCrc32c"
    pad: padding.AsymmetricPadding = padding.PKCS1v15()
    if "_PSS_" in version.algorithm:  # Cloud KMS: salt length = digest length
        pad = padding.PSS(padding.MGF1(chosen), chosen.digest_size)
    return version.private.sign(digest, pad, Prehashed(chosen)), "verifiedDigestCrc32c"


def _error(status: int, rpc: str, message: str) -> tuple[int, dict[str, Any]]:
    return status, {"error": {"code": status, "message": message, "status": rpc}}


class _Handler(BaseHTTPRequestHandler):
    server: CloudKms

    def do_GET(self) -> None:
        if not self._allowed():
            return
        path = urllib.parse.urlsplit(self.path).path
        if path.startswith("/v1/") and path.endswith("/publicKey"):
            self._answer(*self.server.public_key(path[4 : -len("/publicKey")]))
        else:
            self._answer(*_error(404, "NOT_FOUND", "no such method"))

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", 0))
        raw = self.rfile.read(length)
        path = urllib.parse.urlsplit(self.path).path
        if not self._allowed():
            return
        if path.startswith("/v1/") and path.endswith(":asymmetricSign"):
            body = json.loads(raw or b"{}")
            self._answer(*self.server.asymmetric_sign(path[4 : -len(":asymmetricSign")], body))
        else:
            self._answer(*_error(404, "NOT_FOUND", "no such method"))

    def _allowed(self) -> bool:
        if self.server.authorized(self.headers.get("Authorization")):
            return True
        self._answer(*_error(401, "UNAUTHENTICATED", "Request had invalid authentication "
                             "credentials. Expected OAuth 2 access token."))  # fmt: skip
        return False

    def _answer(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=UTF-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: Any) -> None:
        pass
