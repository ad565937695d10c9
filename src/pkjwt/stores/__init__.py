"""Token stores: where tokens are shared beyond one client object.

The in-process cache lives in :class:`~pkjwt.manager.TokenManager` itself; a store is the
optional second level shared by several clients, processes or hosts. A store holds secrets:
implementations keep them out of logs and off world-readable media.
"""

from __future__ import annotations

from collections.abc import Hashable
from contextlib import AbstractContextManager
from typing import Protocol, runtime_checkable

from ..errors import ConfigError
from ..store_url import parse_store_url, redacted_url
from ..tokens import Token
from .file import FileStore
from .memory import MemoryStore

__all__ = ["FileStore", "MemoryStore", "TokenStore", "open_token_store"]


@runtime_checkable
class TokenStore(Protocol):
    """Get, set and delete tokens by cache key; ``lock`` makes one fetch per key at a time
    across every user of the store (a file lock, a Redis lease)."""

    def get(self, key: tuple[Hashable, ...]) -> Token | None:
        """The token stored under ``key``, or None."""

    def set(self, key: tuple[Hashable, ...], token: Token) -> None:
        """Store ``token`` under ``key``."""

    def delete(self, key: tuple[Hashable, ...]) -> None:
        """Forget the token under ``key`` (no error if there is none)."""

    def lock(self, key: tuple[Hashable, ...]) -> AbstractContextManager[object]:
        """A lock held while one user of the store fetches the token for ``key``."""


def open_token_store(store: TokenStore | str) -> TokenStore:
    """A store object as is, or one named by URL: ``memory://``, ``file:///DIR`` (``file://``
    alone: the user cache folder) or ``redis://`` / ``rediss://`` (``pkjwt[redis]``; the
    encryption key from ``$PKJWT_STORE_KEY``). Anything else is refused here, when the client
    is built, not at every call."""
    if not isinstance(store, str):
        if isinstance(store, TokenStore):
            return store
        raise ConfigError(
            f"store must be a TokenStore or a store URL, not a {type(store).__name__}",
            hint="memory://, file:///DIR or redis://HOST:PORT/DB",
        )
    if store.startswith("file://"):
        path = store[len("file://") :]
        return FileStore(path or None)
    parsed = parse_store_url(store, what="token store")
    if parsed.kind == "memory":
        return MemoryStore()
    if parsed.kind == "redis":
        from .redis import RedisTokenStore

        return RedisTokenStore(store)
    raise ConfigError(
        f"a token store cannot be {parsed.kind} ({redacted_url(store)})",
        hint="memory://, file:///DIR or redis://HOST:PORT/DB",
    )
