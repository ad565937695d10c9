"""Fetch clients' JWKS from their ``jwks_uri`` safely (rule R10).

What a ``jwks_uri`` can do to a server, and what stops it here:

* hang, or dribble a byte a second: one deadline bounds the whole fetch (connect, headers and
  body together), not each read;
* be slow for everyone at once: concurrent requests for one URI share one in-flight fetch;
* fail on every request: a failure is remembered for ``failure_ttl`` seconds and answered from
  memory (while a last good set exists, that set keeps serving);
* send a compression bomb: the server asks for ``identity``; a body compressed anyway is
  inflated incrementally and refused once it passes ``max_bytes``, before it is held;
* point at loopback or a private network: refused unless the configuration allows it (dev).

A set is cached, honouring ``Cache-Control: max-age`` within bounds, with one rate-limited
refetch when a ``kid`` is unknown (a rotated key).
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import re
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx

from .._bounded import BodyTooLarge, BoundedBody
from ..errors import KeyLoadError
from ..keys import KeySet, load_jwks

__all__ = ["JwksFetchError", "JwksFetcher"]

log = logging.getLogger("pkjwt.server")

_MAX_AGE = re.compile(r"max-age\s*=\s*(\d+)")


class JwksFetchError(Exception):
    """Why a JWKS could not be had (safe to show the client)."""


@dataclass(slots=True)
class _Cached:
    keys: KeySet
    fresh_until: float
    fetched_at: float


@dataclass(slots=True)
class _Failed:
    error: JwksFetchError
    until: float


class JwksFetcher:
    """JWKS by URI, fetched within a deadline, shared by concurrent callers, cached."""

    def __init__(
        self,
        *,
        allow_private: bool = False,
        timeout: float = 5.0,
        max_bytes: int = 64 * 1024,
        cache_bounds: tuple[int, int] = (60, 3600),
        refetch_interval: float = 30.0,
        failure_ttl: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.allow_private = allow_private
        self.timeout = timeout
        self.max_bytes = max_bytes
        self.cache_bounds = cache_bounds
        self.refetch_interval = refetch_interval
        self.failure_ttl = failure_ttl
        self._clock = clock
        self._cache: dict[str, _Cached] = {}
        self._failed: dict[str, _Failed] = {}
        self._inflight: dict[str, asyncio.Task[tuple[KeySet, int | None]]] = {}
        self._told: set[tuple[str, str]] = set()
        self._http = httpx.AsyncClient(
            timeout=timeout,
            follow_redirects=False,
            transport=transport,
            headers={"Accept": "application/json", "Accept-Encoding": "identity"},
        )
        self.fetches = 0

    async def aclose(self) -> None:
        for task in self._inflight.values():
            task.cancel()
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
        failed = self._failed.get(uri)
        if failed is not None and now < failed.until:
            if cached is not None:
                return cached.keys  # the last good set serves while the URI is down
            raise failed.error
        task = self._inflight.get(uri)
        if task is None:  # the first caller starts the fetch; the others wait on the same one
            task = self._inflight[uri] = asyncio.get_running_loop().create_task(self._fetch(uri))
            task.add_done_callback(lambda _: self._inflight.pop(uri, None))
        try:
            # shielded: a caller that gives up does not cancel the fetch the others wait on
            keys, max_age = await asyncio.shield(task)
        except JwksFetchError as exc:
            self._failed[uri] = _Failed(exc, self._clock() + self.failure_ttl)
            if cached is not None:
                return cached.keys
            raise
        self._failed.pop(uri, None)
        for name, why in keys.ignored:
            if (uri, name) not in self._told:  # once per member, not once per request
                self._told.add((uri, name))
                log.warning("jwks_uri %s: member %s ignored (%s)", uri, name, why)
        low, high = self.cache_bounds
        ttl = min(max(max_age if max_age is not None else high, low), high)
        now = self._clock()
        current = self._cache.get(uri)
        if current is None or current.fetched_at < now:
            self._cache[uri] = _Cached(keys, now + ttl, now)
        return keys

    async def _fetch(self, uri: str) -> tuple[KeySet, int | None]:
        parts = urlsplit(uri)
        if parts.scheme not in ("https", "http") or not parts.hostname:
            raise JwksFetchError("jwks_uri is not an http(s) URL")
        try:
            async with asyncio.timeout(self.timeout):  # one deadline for all of it
                if not self.allow_private:
                    if parts.scheme != "https":
                        raise JwksFetchError("jwks_uri must use https")
                    await self._refuse_private(parts.hostname, parts.port or 443)
                self.fetches += 1
                body, cache_control = await self._download(uri)
        except TimeoutError:
            raise JwksFetchError(f"jwks_uri did not answer within {self.timeout:g} s") from None
        except httpx.HTTPError as exc:
            raise JwksFetchError(f"jwks_uri unreachable ({type(exc).__name__})") from None
        try:
            keys = load_jwks(body)
        except KeyLoadError as exc:
            raise JwksFetchError(f"jwks_uri did not serve a usable JWKS: {exc.message}") from None
        match = _MAX_AGE.search(cache_control)
        return keys, int(match.group(1)) if match else None

    async def _download(self, uri: str) -> tuple[bytes, str]:
        """The body, inflated if the server compressed it anyway, never more than max_bytes."""
        async with self._http.stream("GET", uri) as r:
            if r.status_code != 200:
                raise JwksFetchError(f"jwks_uri answered HTTP {r.status_code}")
            try:
                body = BoundedBody(self.max_bytes, r.headers.get("content-encoding"))
                async for chunk in r.aiter_raw():
                    body.feed(chunk)
            except BodyTooLarge as exc:
                raise JwksFetchError(
                    f"jwks_uri sent {exc} (JWKS larger than {self.max_bytes} bytes?)"
                ) from None
            return body.value(), r.headers.get("cache-control", "")

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
