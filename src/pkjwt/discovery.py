"""Authorization server metadata (RFC 8414, OpenID Connect Discovery), parsed into data."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .errors import ConfigError

__all__ = ["ServerMetadata", "metadata_urls", "parse_metadata"]


@dataclass(frozen=True, slots=True)
class ServerMetadata:
    issuer: str
    token_endpoint: str
    auth_methods: tuple[str, ...] | None = None
    auth_signing_algs: tuple[str, ...] | None = None
    jwks_uri: str | None = None
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False)

    def supports_method(self, method: str) -> bool:
        # RFC 8414: when omitted, the default is client_secret_basic only; many servers omit it
        # and still take private_key_jwt, so an absent list is not held against the client
        return self.auth_methods is None or method in self.auth_methods


def metadata_urls(issuer: str) -> list[str]:
    """Where to look, in order: RFC 8414 (path-inserted), then OIDC (path-appended)."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(issuer)
    path = parts.path.rstrip("/")
    rfc8414 = urlunsplit(
        (parts.scheme, parts.netloc, "/.well-known/oauth-authorization-server" + path, "", "")
    )
    oidc = issuer.rstrip("/") + "/.well-known/openid-configuration"
    return [rfc8414, oidc] if rfc8414 != oidc else [rfc8414]


def _strings(value: Any) -> tuple[str, ...] | None:
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return tuple(value)
    return None


def parse_metadata(issuer: str, body: bytes, *, url: str) -> ServerMetadata:
    """Parse and check a metadata document: the issuer must match exactly (RFC 8414 3.3)."""
    try:
        data = json.loads(body.decode("utf-8"))
    except (ValueError, UnicodeDecodeError):
        raise ConfigError(f"metadata at {url} is not JSON") from None
    if not isinstance(data, dict):
        raise ConfigError(f"metadata at {url} is not a JSON object")
    got = data.get("issuer")
    if got != issuer and (not isinstance(got, str) or got.rstrip("/") != issuer.rstrip("/")):
        raise ConfigError(
            f"metadata at {url} names issuer {got!r}, not {issuer!r}",
            hint="use the issuer exactly as the server publishes it (RFC 8414 3.3)",
        )
    token_endpoint = data.get("token_endpoint")
    if not isinstance(token_endpoint, str) or not token_endpoint:
        raise ConfigError(f"metadata at {url} has no token_endpoint")
    jwks_uri = data.get("jwks_uri")
    return ServerMetadata(
        issuer=str(got),
        token_endpoint=token_endpoint,
        auth_methods=_strings(data.get("token_endpoint_auth_methods_supported")),
        auth_signing_algs=_strings(data.get("token_endpoint_auth_signing_alg_values_supported")),
        jwks_uri=jwks_uri if isinstance(jwks_uri, str) else None,
        raw=data,
    )
