"""Helpers shared by the unit tests: fixed constants and the NHS / rfc7523bis header and claims
that the rule tests change one member at a time (sign them with :mod:`pkjwt.forge`)."""

from __future__ import annotations

from typing import Any

NOW = 1_700_000_000
TOKEN_URL = "https://int.api.service.nhs.uk/oauth2/token"
ISSUER = "https://as.example.com"
AS_TOKEN_URL = "https://as.example.com/oauth2/token"
CLIENT_ID = "api-key-123"

PRIVATE_MEMBERS = ("d", "p", "q", "dp", "dq", "qi")


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
