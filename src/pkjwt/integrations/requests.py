"""``RequestsAuth``: attach tokens to ``requests`` calls, renewing once on a 401."""

from __future__ import annotations

from typing import Any

from ..client import TokenClient
from ..dpop_client import is_nonce_challenge
from ..errors import missing_extra
from ..tokens import Token

try:
    import requests
    from requests.auth import AuthBase
except ImportError as exc:  # a client-only install
    raise missing_extra("requests", "RequestsAuth", exc) from None

__all__ = ["RequestsAuth"]


class RequestsAuth(AuthBase):
    """``requests.get(url, auth=RequestsAuth(token_client))``.

    A DPoP-bound token goes out as ``Authorization: DPoP`` with a fresh proof per request (and
    per resend); a 401 asking for the resource's nonce is resent once with it, and any other
    401 renews the token once (``retry_on_401``)."""

    def __init__(self, client: TokenClient, *, retry_on_401: bool = True) -> None:
        self.token_client = client
        self.retry_on_401 = retry_on_401

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        token = self.token_client.get_token()
        self._attach(request, token)
        if self.retry_on_401 or token.is_dpop:
            request.register_hook("response", self._make_hook(token))  # type: ignore[no-untyped-call]
        return request

    def _attach(self, request: requests.PreparedRequest, token: Token) -> None:
        request.headers["Authorization"] = token.authorization()
        dpop = self.token_client.dpop
        if dpop is not None and token.is_dpop:
            method, url = request.method or "GET", request.url or ""
            request.headers["DPoP"] = dpop.proof_now(method, url, access_token=token.access_token)

    def _make_hook(self, used: Token) -> Any:
        dpop = self.token_client.dpop if used.is_dpop else None

        def on_response(response: requests.Response, **kwargs: Any) -> requests.Response:
            sent = response.request
            url = sent.url or ""
            fresh = dpop is not None and dpop.observe(url, response.headers)
            if response.status_code != 401:
                return response
            if fresh and is_nonce_challenge(response.headers) and not _marked(sent, _NONCE):
                # the same token with a new proof carrying the resource's nonce; what that
                # answers goes through this hook again (a 401 then may still renew)
                return on_response(self._resend(response, used, _NONCE, kwargs), **kwargs)
            if not self.retry_on_401 or _marked(sent, _RENEWED):
                return response
            fresh_token = self.token_client.get_token(force=True, stale=used)
            new = self._resend(response, fresh_token, _RENEWED, kwargs)
            if dpop is not None:
                dpop.observe(url, new.headers)
            return new

        return on_response

    def _resend(
        self, response: requests.Response, token: Token, mark: str, kwargs: dict[str, Any]
    ) -> requests.Response:
        """Send the request again with ``token`` (and a new proof), marked as resent."""
        sent = response.request
        retry = sent.copy()
        self._attach(retry, token)
        for name in (_NONCE, _RENEWED):  # a copy forgets them: resends stay bounded
            setattr(retry, name, _marked(sent, name) or name == mark)
        retry.hooks = {"response": []}
        response.content  # noqa: B018 - drain the body so the connection can be reused
        response.close()
        assert response.connection is not None
        new: requests.Response = response.connection.send(retry, **kwargs)
        new.history.append(response)
        new.request = retry
        return new

    def __repr__(self) -> str:
        return f"<RequestsAuth for {self.token_client!r}>"


_NONCE = "_pkjwt_nonce_sent"
_RENEWED = "_pkjwt_retried"


def _marked(request: Any, name: str) -> bool:
    return bool(getattr(request, name, False))
