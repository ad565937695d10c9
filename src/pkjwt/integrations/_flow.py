"""The token flow shared by the httpx and httpx2 integrations (their Auth APIs are the same).

``_flow`` is written once: get a token, send the request, and on a 401 renew once and resend
once. A DPoP-bound token (RFC 9449) goes out as ``Authorization: DPoP`` with a fresh proof for
this method and URL (its ``ath`` the token's hash, the server's nonce when known); a 401 that
asks for a nonce (``WWW-Authenticate: DPoP error="use_dpop_nonce"`` and a ``DPoP-Nonce``) is
resent once with a new proof carrying it. The sync and async drivers differ only in how they
obtain the token and sign a proof (an async signer is awaited); requests go out to httpx,
which sends them (httpx's own auth-flow protocol). This runs on every API request, so the
drivers step the flow with plain ``send`` (it ends by yielding None rather than raising
``StopIteration``): the hot path stays a cached token and a header (and, for DPoP, one
signature).
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Generator
from typing import Any

from ..client import TokenClient
from ..dpop_client import DPoPSession, is_nonce_challenge
from ..flow import Sign
from ..signing import asign
from ..tokens import Token


class _Renew:
    """The flow asks its driver for a token; ``stale`` is the one the API just refused (a
    forced renewal past it), None for the cached one."""

    __slots__ = ("stale",)

    def __init__(self, stale: Token | None) -> None:
        self.stale = stale


class BearerFlow:
    """Mixin for an ``httpx.Auth``-style class. Set ``token_client``."""

    requires_request_body = False
    requires_response_body = False

    def __init__(self, client: TokenClient, *, retry_on_401: bool = True) -> None:
        self.token_client = client
        self.retry_on_401 = retry_on_401
        self._last: tuple[Token, str, DPoPSession | None] | None = None

    def _bind(self, token: Token) -> tuple[str, DPoPSession | None]:
        """The Authorization value for ``token``, and the DPoP session when it is bound (both
        worked out once per token: this runs on every request)."""
        last = self._last
        if last is not None and last[0] is token:
            return last[1], last[2]
        dpop = self.token_client.dpop if token.is_dpop else None
        value = token.authorization()
        self._last = (token, value, dpop)
        return value, dpop

    def _proof(self, dpop: DPoPSession, request: Any, token: Token) -> Generator[Any, Any, str]:
        url = str(request.url)
        return (yield from dpop.proof(request.method, url, access_token=token.access_token))

    def _flow(self, request: Any) -> Generator[Any, Any, None]:
        token: Token = yield _Renew(None)
        header, dpop = self._bind(token)
        request.headers["Authorization"] = header
        if dpop is not None:
            request.headers["DPoP"] = yield from self._proof(dpop, request, token)
        response = yield request
        if dpop is not None and _nonce_asked(dpop, str(request.url), response):
            # the same token with a new proof, carrying the resource's nonce
            request.headers["DPoP"] = yield from self._proof(dpop, request, token)
            response = yield request
            dpop.observe(str(request.url), response.headers)
        if response.status_code == 401 and self.retry_on_401:
            yield from self._renewed(request, token)
        # the end, as an item: the drivers loop without a try/except StopIteration per step
        yield None

    def _renewed(self, request: Any, stale: Token) -> Generator[Any, Any, None]:
        """Resend once with a token renewed past the refused one (and a proof for it)."""
        token: Token = yield _Renew(stale)
        header, dpop = self._bind(token)
        request.headers["Authorization"] = header
        if dpop is None:
            request.headers.pop("DPoP", None)
            yield request
            return
        request.headers["DPoP"] = yield from self._proof(dpop, request, token)
        response = yield request
        dpop.observe(str(request.url), response.headers)

    def sync_auth_flow(self, request: Any) -> Generator[Any, Any, None]:
        flow = self._flow(request)
        item = next(flow)
        value: Any
        while item is not None:
            if isinstance(item, _Renew):
                value = self.token_client.get_token(force=item.stale is not None, stale=item.stale)
            elif isinstance(item, Sign):
                value = item.signer.sign(item.data)
            else:
                value = yield item
            item = flow.send(value)

    async def async_auth_flow(self, request: Any) -> AsyncGenerator[Any, Any]:
        flow = self._flow(request)
        item = next(flow)
        value: Any
        while item is not None:
            if isinstance(item, _Renew):
                client = self.token_client
                value = await client.aget_token(force=item.stale is not None, stale=item.stale)
            elif isinstance(item, Sign):
                value = await asign(item.signer, item.data)
            else:
                value = yield item
            item = flow.send(value)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} for {self.token_client!r}>"


def _nonce_asked(dpop: DPoPSession, url: str, response: Any) -> bool:
    """Keep the resource's nonce; True when its 401 asks for it and it is a new one (a nonce
    already sent would fail again)."""
    fresh = dpop.observe(url, response.headers)
    return fresh and response.status_code == 401 and is_nonce_challenge(response.headers)
