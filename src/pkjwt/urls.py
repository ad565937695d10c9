"""Endpoint URLs as users type them: the mistakes that can never work, refused up front with a
message that names them (and so never retried): no scheme, whitespace from a paste, a scheme
that is not HTTP, credentials sent over plain http to another machine."""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

from .errors import ConfigError

__all__ = ["endpoint_url", "is_loopback"]


#: RFC 6761 special-use names that never reach another machine over the public internet
_LOCAL_SUFFIXES = (".localhost", ".invalid", ".test")


def is_loopback(host: str | None) -> bool:
    """Whether ``host`` stays on this machine (or names no machine at all)."""
    if not host:
        return False
    if host == "localhost" or host.endswith(_LOCAL_SUFFIXES):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def endpoint_url(url: str, what: str) -> str:
    """``url`` if a client can send credentials to it; else a ConfigError saying why."""
    if not isinstance(url, str) or not url:
        raise ConfigError(f"{what} must be a URL string")
    if any(ch.isspace() for ch in url):
        raise ConfigError(
            f"{what} {url.strip()!r} contains whitespace",
            hint="a space or newline came with a paste: remove it",
        )
    parts = urlsplit(url)
    if not parts.scheme or not parts.netloc:
        raise ConfigError(
            f"{what} {url!r} has no scheme or host",
            hint=f"write it whole: https://{url.lstrip('/')}",
        )
    if parts.scheme not in ("https", "http"):
        raise ConfigError(f"{what} {url!r} is not an http(s) URL")
    if parts.scheme == "http" and not is_loopback(parts.hostname):
        raise ConfigError(
            f"{what} {url!r} is plain http to another machine: the assertion (or secret) "
            "would travel unencrypted",
            hint="use https (plain http is for a local server: localhost, 127.0.0.1, ::1)",
        )
    return url
