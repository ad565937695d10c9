"""The bearer flow shared by the httpx and httpx2 integrations (their Auth APIs are the same).

``_flow`` is written once: get a token, send the request, and on a 401 renew once and resend
once. The sync and async drivers differ only in how they obtain the token; requests go out to
httpx, which sends them (httpx's own auth-flow protocol). This runs on every API request, so
the drivers step the flow with plain ``send`` (it ends by yielding None rather than raising
``StopIteration``): the hot path stays a cached token and a header.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Generator
from typing import Any

from ..client import TokenClient
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
        self._last: tuple[Token, str] | None = None

    def _header(self, token: Token) -> str:
        last = self._last
        if last is not None and last[0] is token:
            return last[1]
        value = token.authorization()
        self._last = (token, value)
        return value

    def _flow(self, request: Any) -> Generator[Any, Any, None]:
        token: Token = yield _Renew(None)
        request.headers["Authorization"] = self._header(token)
        response = yield request
        if response.status_code == 401 and self.retry_on_401:
            token = yield _Renew(token)
            request.headers["Authorization"] = self._header(token)
            yield request
        # the end, as an item: the drivers loop without a try/except StopIteration per step
        yield None

    def sync_auth_flow(self, request: Any) -> Generator[Any, Any, None]:
        flow = self._flow(request)
        item = next(flow)
        while item is not None:
            if isinstance(item, _Renew):
                value = self.token_client.get_token(force=item.stale is not None, stale=item.stale)
            else:
                value = yield item
            item = flow.send(value)

    async def async_auth_flow(self, request: Any) -> AsyncGenerator[Any, Any]:
        flow = self._flow(request)
        item = next(flow)
        while item is not None:
            if isinstance(item, _Renew):
                client = self.token_client
                value = await client.aget_token(force=item.stale is not None, stale=item.stale)
            else:
                value = yield item
            item = flow.send(value)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} for {self.token_client!r}>"
