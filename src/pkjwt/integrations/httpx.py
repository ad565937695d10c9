"""``HttpxAuth``: attach tokens to ``httpx.Client`` and ``httpx.AsyncClient`` requests."""

from __future__ import annotations

import httpx

from ._flow import BearerFlow

__all__ = ["HttpxAuth"]


class HttpxAuth(BearerFlow, httpx.Auth):
    """``httpx.Client(auth=HttpxAuth(token_client))``; works with ``AsyncClient`` too.

    Puts ``Authorization: Bearer ...`` on every request from the shared cache, and on a 401
    from the API renews the token once and resends once.
    """
