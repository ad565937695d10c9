"""``Httpx2Auth``: the same bearer flow for the httpx2 fork, when it is installed."""

from __future__ import annotations

import httpx2

from ._flow import BearerFlow

__all__ = ["Httpx2Auth"]


class Httpx2Auth(BearerFlow, httpx2.Auth):
    """``httpx2.Client(auth=Httpx2Auth(token_client))``."""
