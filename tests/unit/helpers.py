"""Helpers shared by the unit tests: hand-built JWTs and fixed constants.

These build compact JWS from arbitrary header/claims dicts so the rule tests can produce every
kind of broken assertion, signed correctly unless a test says otherwise.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

from pkjwt.decode import b64url
from pkjwt.keys import Key
from pkjwt.signing import LocalSigner

NOW = 1_700_000_000
TOKEN_URL = "https://int.api.service.nhs.uk/oauth2/token"
ISSUER = "https://as.example.com"
AS_TOKEN_URL = "https://as.example.com/oauth2/token"
CLIENT_ID = "api-key-123"

PRIVATE_MEMBERS = ("d", "p", "q", "dp", "dq", "qi")


def b64json(obj: Any) -> str:
    return b64url(json.dumps(obj, separators=(",", ":")).encode())


def signing_input(header: dict[str, Any] | str, claims: dict[str, Any] | str) -> str:
    """``header``/``claims`` may be raw JSON text (for duplicate keys, NaN, ...)."""
    h = b64url(header.encode()) if isinstance(header, str) else b64json(header)
    c = b64url(claims.encode()) if isinstance(claims, str) else b64json(claims)
    return f"{h}.{c}"


def sign_jwt(
    key: Key,
    header: dict[str, Any] | str,
    claims: dict[str, Any] | str,
    *,
    alg: str | None = None,
) -> str:
    """Sign arbitrary header/claims with ``key`` (alg from ``alg``, the header, or the key)."""
    if alg is None:
        alg = header.get("alg") if isinstance(header, dict) else None
        if not isinstance(alg, str):
            alg = key.alg
    signer = LocalSigner(key if alg in key.algs else key.with_alg(alg), alg)
    data = signing_input(header, claims)
    return f"{data}.{b64url(signer.sign(data.encode('ascii')))}"


def hmac_jwt(secret: bytes, header: dict[str, Any], claims: dict[str, Any]) -> str:
    """HS256 over header.claims with ``secret`` (whatever ``header['alg']`` claims)."""
    data = signing_input(header, claims)
    sig = hmac.new(secret, data.encode("ascii"), hashlib.sha256).digest()
    return f"{data}.{b64url(sig)}"


def unsigned_jwt(header: dict[str, Any], claims: dict[str, Any]) -> str:
    return f"{signing_input(header, claims)}."


def nhs_header(kid: str = "test-1", alg: str = "RS512") -> dict[str, Any]:
    return {"alg": alg, "typ": "JWT", "kid": kid}


def nhs_claims(now: int = NOW, **changes: Any) -> dict[str, Any]:
    claims: dict[str, Any] = {
        "iss": CLIENT_ID,
        "sub": CLIENT_ID,
        "aud": TOKEN_URL,
        "jti": "5f0c7c1e-1f6c-4d4b-9a77-3e0b5d1e2f10",
        "exp": now + 300,
    }
    claims.update(changes)
    return claims


def bis_header(kid: str, alg: str) -> dict[str, Any]:
    return {"alg": alg, "typ": "client-authentication+jwt", "kid": kid}


def bis_claims(now: int = NOW, **changes: Any) -> dict[str, Any]:
    claims: dict[str, Any] = {
        "iss": CLIENT_ID,
        "sub": CLIENT_ID,
        "aud": ISSUER,
        "jti": "0b7e4f0e-3f43-4f0e-8a4e-0f3f3b1b2c3d",
        "iat": now,
        "exp": now + 60,
    }
    claims.update(changes)
    return claims
