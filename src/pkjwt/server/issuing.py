"""Issue, look up and revoke the server's own access tokens (opaque or RFC 9068 JWT)."""

from __future__ import annotations

import hashlib
import json
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any, NamedTuple

from ..decode import DecodeError, b64url, compact, decode_compact
from ..keys import Key, generate_key, jwks
from ..signing import LocalSigner

__all__ = ["IssuedToken", "TokenIssuer"]


class IssuedToken(NamedTuple):
    """A plain tuple of atomic values: the garbage collector stops tracking it, so a million
    live tokens do not lengthen GC pauses."""

    client_id: str
    scope: str | None
    #: the resource(s) the token is for (RFC 8707), one string or several
    audience: str | tuple[str, ...] | None
    issued_at: int
    expires_at: int
    jti: str


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
        self._tokens: dict[str, IssuedToken] = {}
        self._revoked: set[str] = set()
        self._lock = threading.Lock()
        #: (expires_at, digest) in issue order: with one lifetime it is also expiry order, so
        #: purging is popping from the left, a little at a time (a token shortened on request
        #: is purged no earlier than those issued before it; lookups check its own expiry)
        self._expiry: deque[tuple[int, str]] = deque()

    def public_jwks(self) -> dict[str, Any]:
        return jwks([self.key.public().with_alg(self._signer.alg)])

    @staticmethod
    def _digest(token: str) -> str:
        return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()

    def issue(
        self,
        client_id: str,
        scope: str | None,
        audience: str | tuple[str, ...] | None,
        *,
        lifetime: int | None = None,
    ) -> tuple[str, IssuedToken]:
        now = int(self._clock())
        random = secrets.token_bytes(48)  # one system call for the token and the jti
        expires_at = now + (self.lifetime if lifetime is None else lifetime)
        record = IssuedToken(client_id, scope, audience, now, expires_at, random[32:].hex())
        if self.token_format == "jwt":
            claims: dict[str, Any] = {
                "iss": self.issuer,
                "sub": client_id,
                "aud": list(audience) if isinstance(audience, tuple) else audience or self.issuer,
                "client_id": client_id,
                "iat": now,
                "exp": record.expires_at,
                "jti": record.jti,
            }
            if scope:
                claims["scope"] = scope
            signing_input = f"{self._header}.{b64url(json.dumps(claims).encode())}".encode()
            token = compact(signing_input, self._signer.sign(signing_input))
            # JWTs are self-contained; remember only what revocation needs
            with self._lock:
                self._remember(token, record)
        else:
            token = b64url(random[:32])
            with self._lock:
                self._remember(token, record)
        return token, record

    def _remember(self, token: str, record: IssuedToken) -> None:
        now = self._clock()
        expiry = self._expiry
        for _ in range(8):  # bounded work per issue keeps every request's cost flat
            if not expiry or expiry[0][0] > now:
                break
            _, old = expiry.popleft()
            self._tokens.pop(old, None)
            self._revoked.discard(old)
        digest = self._digest(token)
        self._tokens[digest] = record
        expiry.append((record.expires_at, digest))

    def lookup(self, token: str) -> IssuedToken | None:
        """The live record of a token this server issued, else None."""
        digest = self._digest(token)
        record = self._tokens.get(digest)
        if record is None or digest in self._revoked or record.expires_at <= self._clock():
            return None
        if self.token_format == "jwt":
            try:
                jwt = decode_compact(token)
            except DecodeError:
                return None
            from joserfc.jws import JWSRegistry

            impl = JWSRegistry.algorithms[self._signer.alg]
            if not impl.verify(jwt.signing_input, jwt.signature, self.key.jose):
                return None
        return record

    def revoke(self, token: str, *, client_id: str | None) -> bool:
        """Revoke a token issued to ``client_id``; another client's token is left alone."""
        digest = self._digest(token)
        with self._lock:
            record = self._tokens.get(digest)
            if record is None or record.client_id != client_id:
                return False
            self._revoked.add(digest)
            return True
