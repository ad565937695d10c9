"""Issue, look up and revoke the server's own access tokens (opaque or RFC 9068 JWT).

Live tokens are remembered in a :class:`~.replay.compact.CompactIndex` keyed by the first 128
bits of the token's SHA-256 (the server never keeps a token itself), with its expiry and one
64-bit word: the issue time, the grant (client, scope and audience, interned: a few clients ask
for a few grants, over and over) and a revoked bit. About 28 bytes of slots a token where a
``dict`` of hex digests to tuples took ~500 (``python -m benchmarks memory``). An opaque
token's ``jti`` is the second half of that SHA-256, so it needs no room either; a JWT's is in
its (verified) claims.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import threading
import time
from array import array
from collections.abc import Callable
from typing import Any, NamedTuple

from ..decode import DecodeError, b64url, compact, decode_compact
from ..keys import Key, generate_key, jwks
from ..signing import LocalSigner
from .replay.compact import NEVER, CompactIndex, expiry_seconds

__all__ = ["IssuedToken", "TokenIssuer"]

#: a payload's low bit: revoked; the next 31: the grant; the high 32: the issue time
_REVOKED = 1
_GRANT_MASK = 0x7FFFFFFF

#: client_id, scope, audience, and the DPoP key's thumbprint when the token is bound to one
Grant = tuple[str, str | None, str | tuple[str, ...] | None, str | None]


class IssuedToken(NamedTuple):
    """What the server knows of a token (built when asked: it is not what is stored)."""

    client_id: str
    scope: str | None
    #: the resource(s) the token is for (RFC 8707), one string or several
    audience: str | tuple[str, ...] | None
    issued_at: int
    expires_at: int
    jti: str
    #: the RFC 7638 thumbprint of the DPoP key the token is bound to (``cnf.jkt``); None: bearer
    jkt: str | None = None

    @property
    def token_type(self) -> str:
        return "DPoP" if self.jkt else "Bearer"


class _Grants:
    """Interned grants, each counted by the live tokens that name it: one that no token names
    any more is forgotten (the scope string is the client's to vary: interning without
    forgetting would grow forever)."""

    def __init__(self) -> None:
        self._ids: dict[Grant, int] = {}
        self._grants: list[Grant | None] = []
        self._refs: array[int] = array("I")
        self._free: list[int] = []

    def __len__(self) -> int:
        return len(self._ids)

    def __getitem__(self, number: int) -> Grant:
        grant = self._grants[number]
        assert grant is not None  # a live token's grant is held
        return grant

    def hold(self, grant: Grant) -> int:
        number = self._ids.get(grant)
        if number is None:
            if self._free:
                number = self._free.pop()
                self._grants[number] = grant
            else:
                number = len(self._grants)
                self._grants.append(grant)
                self._refs.append(0)
            self._ids[grant] = number
        self._refs[number] += 1
        return number

    def release(self, number: int) -> None:
        self._refs[number] -= 1
        if not self._refs[number]:
            grant = self._grants[number]
            assert grant is not None
            del self._ids[grant]
            self._grants[number] = None
            self._free.append(number)


class TokenIssuer:
    """Mints tokens and remembers them (by hash) for introspection, revocation and the echo API."""

    def __init__(
        self,
        *,
        issuer: str,
        lifetime: int,
        token_format: str = "opaque",  # noqa: S107 - a format name, not a secret
        signing_alg: str = "ES256",
        key: Key | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.issuer = issuer
        self.lifetime = lifetime
        self.token_format = token_format
        self.key = key or generate_key(signing_alg, size=2048)
        self._signer = LocalSigner(self.key, signing_alg)
        self._header = b64url(
            json.dumps({"alg": signing_alg, "typ": "at+jwt", "kid": self.key.kid}).encode()
        )
        self._clock = clock
        self._grants = _Grants()
        self._lock = threading.Lock()
        #: reclaims expired tokens as its shards fill: bounded work per issue
        self._live = CompactIndex(payload=True, on_drop=self._dropped)

    def _dropped(self, payload: int) -> None:
        self._grants.release((payload >> 1) & _GRANT_MASK)

    def public_jwks(self) -> dict[str, Any]:
        return jwks([self.key.public().with_alg(self._signer.alg)])

    @staticmethod
    def _digest(token: str) -> bytes:
        return hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()

    def issue(
        self,
        client_id: str,
        scope: str | None,
        audience: str | tuple[str, ...] | None,
        *,
        lifetime: int | None = None,
        jkt: str | None = None,
    ) -> tuple[str, IssuedToken]:
        now = int(self._clock())
        expires_at = now + (self.lifetime if lifetime is None else lifetime)
        while True:
            if self.token_format == "jwt":
                jti = secrets.token_hex(16)
                token = self._jwt((client_id, scope, audience, jkt), now, expires_at, jti)
                digest = self._digest(token)
            else:
                token = b64url(secrets.token_bytes(32))
                digest = self._digest(token)
                jti = digest[16:].hex()
            if self._remember(digest[:16], (client_id, scope, audience, jkt), now, expires_at):
                return token, IssuedToken(client_id, scope, audience, now, expires_at, jti, jkt)
            # the 128 bits of a live token's digest: 2**-128 per live token; draw again

    def _jwt(self, grant: Grant, now: int, expires_at: int, jti: str) -> str:
        client_id, scope, audience, jkt = grant
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "sub": client_id,
            "aud": list(audience) if isinstance(audience, tuple) else audience or self.issuer,
            "client_id": client_id,
            "iat": now,
            "exp": expires_at,
            "jti": jti,
        }
        if scope:
            claims["scope"] = scope
        if jkt:
            claims["cnf"] = {"jkt": jkt}  # RFC 9449 6.1
        signing_input = f"{self._header}.{b64url(json.dumps(claims).encode())}".encode()
        return compact(signing_input, self._signer.sign(signing_input))

    def _remember(self, key: bytes, grant: Grant, now: int, expires_at: int) -> bool:
        with self._lock:
            number = self._grants.hold(grant)
            payload = (min(now, NEVER) << 32) | (number << 1)
            if self._live.add(key, expiry_seconds(expires_at), now, payload):
                return True
            self._grants.release(number)
            return False

    def _find(self, digest: bytes) -> tuple[Grant, int, int, int] | None:
        """The grant, issue time, expiry and payload of a live token, else None."""
        with self._lock:
            found = self._live.get(digest[:16], self._clock())
            if found is None:
                return None
            expires_at, payload = found
            return self._grants[(payload >> 1) & _GRANT_MASK], payload >> 32, expires_at, payload

    def lookup(self, token: str) -> IssuedToken | None:
        """The live record of a token this server issued, else None."""
        digest = self._digest(token)
        found = self._find(digest)
        if found is None or found[3] & _REVOKED:
            return None
        (client_id, scope, audience, jkt), issued_at, expires_at, _ = found
        jti = digest[16:].hex()
        if self.token_format == "jwt":
            try:
                jwt = decode_compact(token)
            except DecodeError:
                return None
            if not self.key.verifies(jwt.signing_input, jwt.signature, self._signer.alg):
                return None
            jti = str(jwt.claims.get("jti", ""))
        return IssuedToken(client_id, scope, audience, issued_at, expires_at, jti, jkt)

    def revoke(self, token: str, *, client_id: str | None) -> bool:
        """Revoke a token issued to ``client_id``; another client's token is left alone."""
        key = self._digest(token)[:16]
        with self._lock:
            found = self._live.get(key, self._clock())
            if found is None:
                return False
            payload = found[1]
            if self._grants[(payload >> 1) & _GRANT_MASK][0] != client_id:
                return False
            return self._live.set_payload(key, payload | _REVOKED)

    def __len__(self) -> int:
        """Tokens remembered (expired ones included until reclaimed)."""
        return len(self._live)
