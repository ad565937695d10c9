"""A stand-in for Azure Key Vault's REST API (keys: get, sign), written from its reference (no
emulator of Key Vault exists), answering at the transport level: a ``requests`` adapter
mounted in the session of azure-core's own ``RequestsTransport``, so the Key Vault SDK's
pipeline (challenge authentication, retries, error parsing) runs for real and only the
socket is replaced. Key Vault insists on TLS and checks that its challenge's resource matches
the vault's host, so a loopback server would need a vault host name this machine does not
resolve; the adapter answers for ``https://pkjwt-test.vault.azure.net`` instead, and nothing
leaves the process.

This is not Key Vault: nothing here was compared with the real service."""

from __future__ import annotations

import base64
import io
import json
import urllib.parse
from dataclasses import dataclass, field
from typing import Any

import requests
import urllib3
from azure.core.credentials import AccessToken
from azure.core.pipeline.transport import RequestsTransport
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed, decode_dss_signature

VAULT = "https://pkjwt-test.vault.azure.net"
TENANT = "00000000-0000-0000-0000-0000000000aa"
TOKEN = "kv-test-token"
_HASHES = {"256": hashes.SHA256(), "384": hashes.SHA384(), "512": hashes.SHA512()}
_WIDTH = {"ES256": 32, "ES384": 48, "ES512": 66}


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass
class VaultKey:
    private: Any
    version: str
    enabled: bool = True
    ops: tuple[str, ...] = ("sign", "verify")
    exp: int | None = None

    def jwk(self, name: str) -> dict[str, Any]:
        kid = f"{VAULT}/keys/{name}/{self.version}"
        numbers = self.private.public_key().public_numbers()
        if isinstance(self.private, rsa.RSAPrivateKey):
            size = (numbers.n.bit_length() + 7) // 8
            return {"kid": kid, "kty": "RSA-HSM", "key_ops": list(self.ops),
                    "n": b64url(numbers.n.to_bytes(size, "big")),
                    "e": b64url(numbers.e.to_bytes(3, "big"))}  # fmt: skip
        width = (self.private.curve.key_size + 7) // 8
        crv = {"secp256r1": "P-256", "secp384r1": "P-384", "secp521r1": "P-521",
               "secp256k1": "P-256K"}[self.private.curve.name]  # fmt: skip
        return {"kid": kid, "kty": "EC", "key_ops": list(self.ops), "crv": crv,
                "x": b64url(numbers.x.to_bytes(width, "big")),
                "y": b64url(numbers.y.to_bytes(width, "big"))}  # fmt: skip


@dataclass
class KeyVault:
    """The vault's keys and what the next requests meet."""

    keys: dict[str, list[VaultKey]] = field(default_factory=dict)
    #: (status, code, message) for each of the next sign calls
    sign_faults: list[tuple[int, str, str]] = field(default_factory=list)
    denied: set[str] = field(default_factory=set)
    requests: list[tuple[str, str]] = field(default_factory=list)
    signed: list[dict[str, Any]] = field(default_factory=list)

    def add(self, name: str, private: Any, **attributes: Any) -> VaultKey:
        versions = self.keys.setdefault(name, [])
        key = VaultKey(private, f"v{len(versions) + 1:032x}", **attributes)
        versions.append(key)
        return key

    def session(self) -> requests.Session:
        session = requests.Session()
        adapter = _Adapter(self)
        session.mount("https://", adapter)
        session.mount("http://", adapter)
        return session

    def transport(self) -> RequestsTransport:
        """azure-core's RequestsTransport over a session this vault answers."""
        return RequestsTransport(session=self.session(), session_owner=False)

    # -- the REST API ---------------------------------------------------------------------
    def answer(
        self, method: str, url: str, headers: Any, body: bytes
    ) -> tuple[int, Any, dict[str, str]]:
        parts = urllib.parse.urlsplit(url)
        self.requests.append((method, parts.path))
        if f"{parts.scheme}://{parts.netloc}" != VAULT:
            return 404, _error("NotFound", "no such host here"), {}
        if headers.get("Authorization") != f"Bearer {TOKEN}":
            challenge = (f'Bearer authorization="https://login.microsoftonline.com/{TENANT}", '
                         'resource="https://vault.azure.net"')  # fmt: skip
            message = "AKV10000: Request is missing a Bearer or PoP token."
            return 401, _error("Unauthorized", message), {"WWW-Authenticate": challenge}
        segments = [s for s in parts.path.split("/") if s]
        if len(segments) < 2 or segments[0] != "keys":
            return 404, _error("NotFound", "no such path"), {}
        name = segments[1]
        version = segments[2] if len(segments) > 2 and segments[2] != "sign" else None
        key = self._find(name, version)
        if key is None:
            message = f"A key with (name/id) {name} was not found in this key vault."
            return 404, _error("KeyNotFound", message), {}
        if name in self.denied:
            action = "sign" if segments[-1] == "sign" else "read"
            denial = ("Caller is not authorized to perform action on resource. Action: "
                      f"'Microsoft.KeyVault/vaults/keys/{action}/action'")  # fmt: skip
            return 403, _error("Forbidden", denial, "ForbiddenByRbac"), {}
        if method == "GET":
            attributes: dict[str, Any] = {"enabled": key.enabled, "created": 1767225600,
                                          "updated": 1767225600,
                                          "recoveryLevel": "Recoverable+Purgeable"}  # fmt: skip
            if key.exp is not None:
                attributes["exp"] = key.exp
            return 200, {"key": key.jwk(name), "attributes": attributes}, {}
        if method == "POST" and segments[-1] == "sign":
            return self._sign(key, json.loads(body or b"{}"))
        return 405, _error("BadRequest", "no such operation"), {}

    def _find(self, name: str, version: str | None) -> VaultKey | None:
        versions = self.keys.get(name, [])
        if version is None:
            return versions[-1] if versions else None
        return next((k for k in versions if k.version == version), None)

    def _sign(self, key: VaultKey, body: dict[str, Any]) -> tuple[int, Any, dict[str, str]]:
        self.signed.append(body)
        if self.sign_faults:
            status, code, message = self.sign_faults.pop(0)
            return status, _error(code, message), {"Retry-After": "0"} if status == 429 else {}
        if not key.enabled:
            return 403, _error("Forbidden", "Operation sign is not allowed on a disabled key.",
                               "KeyDisabled"), {}  # fmt: skip
        alg, digest = body.get("alg", ""), unb64url(body.get("value", ""))
        chosen = _HASHES.get(alg[2:])
        if chosen is None or len(digest) != chosen.digest_size:
            return 400, _error("BadParameter", f"Invalid digest or algorithm {alg}."), {}
        if alg.startswith("ES"):
            r, s = decode_dss_signature(key.private.sign(digest, ec.ECDSA(Prehashed(chosen))))
            width = _WIDTH[alg]  # Key Vault answers R || S, not DER
            signature = r.to_bytes(width, "big") + s.to_bytes(width, "big")
        else:
            pad: padding.AsymmetricPadding = padding.PKCS1v15()
            if alg.startswith("PS"):
                pad = padding.PSS(padding.MGF1(chosen), chosen.digest_size)
            signature = key.private.sign(digest, pad, Prehashed(chosen))
        return 200, {"kid": body.get("kid"), "value": b64url(signature)}, {}


def _error(code: str, message: str, inner: str | None = None) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code, "message": message}
    if inner:
        error["innererror"] = {"code": inner}
    return {"error": error}


class _Adapter(requests.adapters.HTTPAdapter):
    """Answers every request from the vault; requests builds the response as for a socket's."""

    def __init__(self, vault: KeyVault) -> None:
        super().__init__()
        self.vault = vault

    def send(  # type: ignore[override]
        self, request: requests.PreparedRequest, *args: Any, **kwargs: Any
    ) -> requests.Response:
        body = request.body.encode() if isinstance(request.body, str) else request.body or b""
        status, payload, headers = self.vault.answer(
            str(request.method), str(request.url), request.headers, body
        )
        data = json.dumps(payload).encode()
        raw = urllib3.HTTPResponse(
            body=io.BytesIO(data),
            headers={"Content-Type": "application/json; charset=utf-8",
                     "Content-Length": str(len(data)), **headers},
            status=status,
            preload_content=False,
        )  # fmt: skip
        return self.build_response(request, raw)


class StaticCredential:
    """A TokenCredential that hands out one token, recording what it was asked for."""

    def __init__(self, token: str = TOKEN) -> None:
        self.token = token
        self.asked: list[tuple[tuple[str, ...], str | None]] = []

    def get_token(self, *scopes: str, tenant_id: str | None = None, **kwargs: Any) -> AccessToken:
        self.asked.append((scopes, tenant_id))
        return AccessToken(self.token, 4102444800)  # 2100-01-01

    def get_token_info(self, *scopes: str, options: Any = None) -> Any:
        from azure.core.credentials import AccessTokenInfo

        self.asked.append((scopes, (options or {}).get("tenant_id")))
        return AccessTokenInfo(self.token, 4102444800)
