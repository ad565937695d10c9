"""``RequestsAuth``: attach tokens to ``requests`` calls, renewing once on a 401."""

from __future__ import annotations

from typing import Any

from ..client import TokenClient
from ..errors import missing_extra
from ..tokens import Token

try:
    import requests
    from requests.auth import AuthBase
except ImportError as exc:  # a client-only install
    raise missing_extra("requests", "RequestsAuth", exc) from None

__all__ = ["RequestsAuth"]


class RequestsAuth(AuthBase):
    """``requests.get(url, auth=RequestsAuth(token_client))``."""

    def __init__(self, client: TokenClient, *, retry_on_401: bool = True) -> None:
        self.token_client = client
        self.retry_on_401 = retry_on_401

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        token = self.token_client.get_token()
        request.headers["Authorization"] = token.authorization()
        if self.retry_on_401:
            request.register_hook("response", self._make_hook(token))  # type: ignore[no-untyped-call]
        return request

    def _make_hook(self, used: Token) -> Any:
        def on_response(response: requests.Response, **kwargs: Any) -> requests.Response:
            if response.status_code != 401 or getattr(response.request, "_pkjwt_retried", False):
                return response
            fresh = self.token_client.get_token(force=True, stale=used)
            retry = response.request.copy()
            retry.headers["Authorization"] = fresh.authorization()
            retry._pkjwt_retried = True  # type: ignore[attr-defined]
            retry.hooks = {"response": []}
            response.content  # noqa: B018 - drain the body so the connection can be reused
            response.close()
            assert response.connection is not None
            new: requests.Response = response.connection.send(retry, **kwargs)
            new.history.append(response)
            new.request = retry
            return new

        return on_response

    def __repr__(self) -> str:
        return f"<RequestsAuth for {self.token_client!r}>"
