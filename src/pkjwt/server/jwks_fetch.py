"""Fetch clients' JWKS from their ``jwks_uri`` safely (rule R10).

Bounded in time and size, cached (honouring ``Cache-Control: max-age`` within limits), one
rate-limited refetch when a ``kid`` is unknown, and loopback/private addresses refused unless the
configuration allows them (development).
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx

from ..errors import KeyLoadError
from ..keys import KeySet, load_jwks

__all__ = ["JwksFetchError", "JwksFetcher"]

_MAX_AGE = re.compile(r"max-age\s*=\s*(\d+)")


class JwksFetchError(Exception):
    """Why a JWKS could not be had (safe to show the client)."""


@dataclass(slots=True)
class _Cached:
    keys: KeySet
    fresh_until: float
    fetched_at: float


class JwksFetcher:
    def __init__(
        self,
        *,
        allow_private: bool = False,
        timeout: float = 5.0,
        max_bytes: int = 64 * 1024,
        cache_bounds: tuple[int, int] = (60, 3600),
        refetch_interval: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.allow_private = allow_private
        self.timeout = timeout
        self.max_bytes = max_bytes
        self.cache_bounds = cache_bounds
        self.refetch_interval = refetch_interval
        self._clock = clock
        self._cache: dict[str, _Cached] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._http = httpx.AsyncClient(timeout=timeout, follow_redirects=False, transport=transport)
        self.fetches = 0

    async def aclose(self) -> None:
        await self._http.aclose()

    async def get(self, uri: str, *, refresh_for_kid: str | None = None) -> KeySet:
        """Keys at ``uri``; with ``refresh_for_kid``, refetch once if that kid is not cached and
        the last fetch is older than the refetch interval."""
        now = self._clock()
        cached = self._cache.get(uri)
        if cached is not None:
            stale = now >= cached.fresh_until
            wants_kid = refresh_for_kid is not None and cached.keys.get(refresh_for_kid) is None
            if not stale and not (wants_kid and now - cached.fetched_at >= self.refetch_interval):
                return cached.keys
        lock = self._locks.setdefault(uri, asyncio.Lock())
        async with lock:
            cached = self._cache.get(uri)
            if cached is not None and self._clock() - cached.fetched_at < 1.0:
                return cached.keys  # someone fetched while we waited
            try:
                keys, max_age = await self._fetch(uri)
            except JwksFetchError:
                if cached is not None:
                    return cached.keys  # serve the last good set while the URI is down
                raise
            low, high = self.cache_bounds
            ttl = min(max(max_age if max_age is not None else high, low), high)
            now = self._clock()
            self._cache[uri] = _Cached(keys, now + ttl, now)
            return keys

    async def _fetch(self, uri: str) -> tuple[KeySet, int | None]:
        parts = urlsplit(uri)
        if parts.scheme not in ("https", "http") or not parts.hostname:
            raise JwksFetchError("jwks_uri is not an http(s) URL")
        if not self.allow_private:
            if parts.scheme != "https":
                raise JwksFetchError("jwks_uri must use https")
            await self._refuse_private(parts.hostname, parts.port or 443)
        self.fetches += 1
        try:
            async with self._http.stream("GET", uri, headers={"Accept": "application/json"}) as r:
                if r.status_code != 200:
                    raise JwksFetchError(f"jwks_uri answered HTTP {r.status_code}")
                body = bytearray()
                async for chunk in r.aiter_bytes():
                    body += chunk
                    if len(body) > self.max_bytes:
                        raise JwksFetchError(f"JWKS larger than {self.max_bytes} bytes")
                cache_control = r.headers.get("cache-control", "")
        except httpx.TimeoutException:
            raise JwksFetchError("jwks_uri timed out") from None
        except httpx.HTTPError as exc:
            raise JwksFetchError(f"jwks_uri unreachable ({type(exc).__name__})") from None
        try:
            keys = load_jwks(bytes(body))
        except KeyLoadError as exc:
            raise JwksFetchError(f"jwks_uri did not serve a usable JWKS: {exc.message}") from None
        match = _MAX_AGE.search(cache_control)
        return keys, int(match.group(1)) if match else None

    @staticmethod
    async def _refuse_private(host: str, port: int) -> None:
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(host, port)
        except (socket.gaierror, UnicodeError):
            raise JwksFetchError("jwks_uri host does not resolve") from None
        for info in infos:
            addr = ipaddress.ip_address(info[4][0])
            if not addr.is_global:
                raise JwksFetchError(
                    "jwks_uri resolves to a private or loopback address (refused; set "
                    "allow_private_jwks_uri = true for development)"
                )
