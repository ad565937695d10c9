"""The Token model and the one parser for token endpoint responses (success and error).

Sans-I/O: these functions take a status, headers and body bytes, so the sync and async clients,
the CLI and the tests share them. A token without a usable lifetime gets a short default,
never "forever".
"""

from __future__ import annotations

import email.utils
import hashlib
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from . import nhs
from .errors import (
    AssertionRefused,
    InvalidRequest,
    InvalidRequestAssertion,
    OAuthError,
    RateLimited,
    ServerError,
    TokenResponseError,
    oauth_error_class,
)

__all__ = [
    "DEFAULT_LIFETIME",
    "MAX_LIFETIME",
    "Token",
    "parse_error_response",
    "parse_retry_after",
    "parse_token_response",
]

#: lifetime assumed when the server sends none or nonsense (seconds)
DEFAULT_LIFETIME = 300.0
#: longest lifetime believed; anything longer is treated as this (a year-long token is a bug)
MAX_LIFETIME = 24 * 3600.0
_MAX_BODY = 1 << 20
#: token types whose Authorization scheme has one spelling (a server may answer "bearer")
_SCHEMES = {"bearer": "Bearer", "dpop": "DPoP"}


@dataclass(frozen=True, slots=True)
class Token:
    """An access token. ``expires_at`` and ``obtained_at`` are epoch seconds."""

    access_token: str = field(repr=False)
    token_type: str
    expires_at: float
    obtained_at: float
    scope: str | None = None
    #: the parsed response body (holds the token: never log it)
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)
    lifetime_assumed: bool = False

    @property
    def lifetime(self) -> float:
        """Seconds from when the token was obtained to when it expires."""
        return self.expires_at - self.obtained_at

    def expires_in(self, now: float) -> float:
        """Seconds left at ``now`` (negative once expired)."""
        return self.expires_at - now

    def is_expired(self, now: float, leeway: float = 0.0) -> bool:
        """Whether the token has expired at ``now``, or will within ``leeway`` seconds."""
        return now >= self.expires_at - leeway

    @property
    def fingerprint(self) -> str:
        """A short, non-reversible identifier for logs."""
        return hashlib.sha256(self.access_token.encode()).hexdigest()[:10]

    @property
    def is_dpop(self) -> bool:
        """Bound to a DPoP key (RFC 9449): every use needs a proof made with that key."""
        return self.token_type.lower() == "dpop"

    def authorization(self) -> str:
        """The ``Authorization`` header value (the scheme as the RFCs spell it)."""
        kind = _SCHEMES.get(self.token_type.lower(), self.token_type)
        return f"{kind} {self.access_token}"

    def to_json(self) -> dict[str, Any]:
        """Serializable form (for the file and Redis stores)."""
        return {
            "access_token": self.access_token,
            "token_type": self.token_type,
            "expires_at": self.expires_at,
            "obtained_at": self.obtained_at,
            "scope": self.scope,
            "lifetime_assumed": self.lifetime_assumed,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Token:
        """A token from :meth:`to_json`'s form (what the file and Redis stores keep)."""
        return cls(
            access_token=str(data["access_token"]),
            token_type=str(data.get("token_type") or "Bearer"),
            expires_at=float(data["expires_at"]),
            obtained_at=float(data["obtained_at"]),
            scope=data.get("scope"),
            lifetime_assumed=bool(data.get("lifetime_assumed", False)),
        )

    def __repr__(self) -> str:
        return (
            f"<Token {self.token_type} fp={self.fingerprint} expires_at={self.expires_at:.0f}"
            f"{' (lifetime assumed)' if self.lifetime_assumed else ''}>"
        )


def _header(headers: Mapping[str, str], name: str) -> str | None:
    for key, value in headers.items():
        if key.lower() == name:
            return value
    return None


def _number(value: Any) -> float | None:
    """A finite positive number from a JSON number or numeric string, else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        try:
            num = float(value)
        except OverflowError:  # 10**400 is a JSON integer Python holds, and no float can
            return None
    elif isinstance(value, str):
        if len(value) > 64:  # a number this long is no lifetime (and float() of it is costly)
            return None
        try:
            num = float(value.strip())
        except (ValueError, OverflowError):
            return None
    else:
        return None
    if not math.isfinite(num):
        return None
    return num


def parse_retry_after(headers: Mapping[str, str], now: float) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or HTTP date)."""
    value = _header(headers, "retry-after")
    if not value:
        return None
    delta = _number(value)
    if delta is not None:
        return max(0.0, delta)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return max(0.0, when.timestamp() - now)


def _load_json(body: bytes) -> Any:
    if len(body) > _MAX_BODY:
        raise ValueError("body too large")
    return json.loads(body.decode("utf-8"))


def _describe_body(headers: Mapping[str, str], body: bytes) -> str:
    ctype = (_header(headers, "content-type") or "no content type").split(";")[0]
    if body.lstrip()[:15].lower().startswith((b"<!doctype", b"<html")):
        return f"an HTML page ({ctype}, {len(body)} bytes)"
    return f"{ctype}, {len(body)} bytes"


def parse_token_response(
    status: int,
    headers: Mapping[str, str],
    body: bytes,
    *,
    now: float,
    default_lifetime: float = DEFAULT_LIFETIME,
) -> Token:
    """Turn a token endpoint response into a :class:`Token` or raise the right error.

    Accepts ``expires_in`` as a number or numeric string and ``issued_at`` in seconds or
    milliseconds (NHS sends ms strings). A missing, zero, negative or absurd lifetime becomes
    ``default_lifetime`` (and ``lifetime_assumed`` is set).
    """
    if status != 200:
        raise parse_error_response(status, headers, body, now=now)
    try:
        data = _load_json(body)
    except (ValueError, UnicodeDecodeError):
        raise TokenResponseError(
            f"token endpoint answered 200 with {_describe_body(headers, body)}, not JSON",
            status=status,
            hint="check the token URL: a proxy or login page may be answering instead",
        ) from None
    if not isinstance(data, dict):
        raise TokenResponseError("token response is not a JSON object", status=status)
    access_token = data.get("access_token")
    if not isinstance(access_token, str) or not access_token:
        raise TokenResponseError(
            "token response has no access_token",
            status=status,
            hint="the server answered 200 without a token; check the token URL and grant",
        )
    token_type = data.get("token_type")
    if not isinstance(token_type, str) or not token_type:
        token_type = "Bearer"
    issued_at = now
    issued = _number(data.get("issued_at"))
    if issued is not None:
        # NHS sends epoch milliseconds; anything past year 33658 in seconds is surely ms
        seconds = issued / 1000.0 if issued > 1e12 else issued
        # trust it only within a minute of our clock; otherwise our own clock is the safer base
        if abs(seconds - now) < 60:
            issued_at = min(seconds, now)
    lifetime = _number(data.get("expires_in"))
    assumed = False
    if lifetime is None or lifetime <= 0:
        lifetime, assumed = default_lifetime, True
    elif lifetime > MAX_LIFETIME:
        lifetime, assumed = MAX_LIFETIME, True
    scope = data.get("scope")
    return Token(
        access_token=access_token,
        token_type=token_type,
        expires_at=issued_at + lifetime,
        obtained_at=now,
        scope=scope if isinstance(scope, str) else None,
        raw=data,
        lifetime_assumed=assumed,
    )


def parse_error_response(
    status: int, headers: Mapping[str, str], body: bytes, *, now: float
) -> OAuthError | TokenResponseError:
    """The typed error for a non-200 token response (returned, for the caller to raise)."""
    retry_after = parse_retry_after(headers, now)
    if 300 <= status < 400:
        where = next((v for k, v in headers.items() if k.lower() == "location"), "elsewhere")
        return TokenResponseError(
            f"the token endpoint answered HTTP {status}, a redirect to {where[:200]}: a token "
            "request cannot follow one (its body and credentials would be resent elsewhere)",
            status=status,
            hint=f"use the URL it names, {where[:200]} (often a trailing slash added or removed)",
        )
    data: Any = None
    try:
        data = _load_json(body)
    except (ValueError, UnicodeDecodeError):
        data = None
    if isinstance(data, dict) and isinstance(data.get("error"), str):
        code = data["error"]
        description = data.get("error_description")
        if not isinstance(description, str):
            description = data.get("message") if isinstance(data.get("message"), str) else None
        cls = RateLimited if status == 429 else oauth_error_class(code)
        if status >= 500 and cls is OAuthError:
            cls = ServerError
        elif nhs.about_the_assertion(status, code, description):
            # the NHS platform refuses assertions with invalid_request ("public_key error" for
            # a signature): still "our credentials were refused", for whoever catches that
            cls = InvalidRequestAssertion if cls is InvalidRequest else AssertionRefused
        return cls(
            description,
            error=code,
            status=status,
            hint=nhs.hint_for(status, code, description) or _generic_hint(status, code),
            retry_after=retry_after,
            body={k: v for k, v in data.items() if k != "access_token"},
        )
    if status == 429:
        return RateLimited(
            f"rate limited ({_describe_body(headers, body)})",
            status=status,
            retry_after=retry_after,
            hint=nhs.hint_for(429, None, None),
        )
    if status >= 500:
        return ServerError(
            f"server error ({_describe_body(headers, body)})",
            status=status,
            retry_after=retry_after,
        )
    return TokenResponseError(
        f"token endpoint answered HTTP {status} with {_describe_body(headers, body)}",
        status=status,
        hint="check the token URL (a 404 or an HTML page means the wrong endpoint)",
    )


def _generic_hint(status: int, code: str) -> str | None:
    if code == "invalid_client":
        return (
            "the server rejected the client authentication; `pkjwt token --explain` runs the "
            "doctor on the assertion. Common causes: kid or key not registered, alg differs "
            "from the JWKS's alg (pass --alg), wrong aud shape, wrong client_id"
        )
    if code == "invalid_scope":
        return "request only scopes registered for this client"
    if code == "unauthorized_client":
        return "this client is not allowed the client_credentials grant on the server"
    if code == "use_dpop_nonce":
        return "the server wants its DPoP-Nonce in the proof and did not send a new one"
    if code == "invalid_dpop_proof":
        return (
            "the server refused the DPoP proof: check this machine's clock (iat), and that "
            "the server takes the proof's alg (dpop_signing_alg_values_supported)"
        )
    return None
