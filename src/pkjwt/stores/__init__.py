"""Token stores: where tokens are shared beyond one client object.

The in-process cache lives in :class:`~pkjwt.manager.TokenManager` itself; a store is the
optional second level shared by several clients, processes or hosts. A store holds secrets:
implementations keep them out of logs and off world-readable media.
"""

from __future__ import annotations

from collections.abc import Hashable
from contextlib import AbstractContextManager
from typing import Protocol, runtime_checkable

from ..tokens import Token
from .file import FileStore
from .memory import MemoryStore

__all__ = ["FileStore", "MemoryStore", "TokenStore"]


@runtime_checkable
class TokenStore(Protocol):
    """Get, set and delete tokens by cache key; ``lock`` makes one fetch per key at a time
    across every user of the store (a file lock, a Redis lease)."""

    def get(self, key: tuple[Hashable, ...]) -> Token | None: ...

    def set(self, key: tuple[Hashable, ...], token: Token) -> None: ...

    def delete(self, key: tuple[Hashable, ...]) -> None: ...

    def lock(self, key: tuple[Hashable, ...]) -> AbstractContextManager[object]: ...
