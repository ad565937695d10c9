"""A process-wide store, for sharing one cache between several client objects."""

from __future__ import annotations

import threading
from collections.abc import Hashable
from contextlib import AbstractContextManager

from ..tokens import Token


class MemoryStore:
    """A dict shared by every client given this store, with a ``threading.Lock`` per key.

    For several :class:`~pkjwt.client.TokenClient` objects in one process that should share
    tokens without sharing a :class:`~pkjwt.manager.TokenManager`; tokens live until the
    process ends (or ``delete``), in plain memory.
    """

    def __init__(self) -> None:
        self._tokens: dict[tuple[Hashable, ...], Token] = {}
        self._locks: dict[tuple[Hashable, ...], threading.Lock] = {}
        self._notes: dict[str, str] = {}
        self._mutex = threading.Lock()

    def get(self, key: tuple[Hashable, ...]) -> Token | None:
        """The token stored under ``key``, or None."""
        return self._tokens.get(key)

    def set(self, key: tuple[Hashable, ...], token: Token) -> None:
        """Store ``token`` under ``key``."""
        self._tokens[key] = token

    def delete(self, key: tuple[Hashable, ...]) -> None:
        """Forget the token under ``key``."""
        self._tokens.pop(key, None)

    def get_note(self, name: str) -> str | None:
        """A small fact kept beside the tokens (which assertion profile a server took)."""
        return self._notes.get(name)

    def set_note(self, name: str, value: str) -> None:
        """Keep a small fact beside the tokens (which assertion profile a server took)."""
        self._notes[name] = value

    def lock(self, key: tuple[Hashable, ...]) -> AbstractContextManager[object]:
        """A per-key lock shared by the threads of this process."""
        with self._mutex:
            return self._locks.setdefault(key, threading.Lock())

    def __repr__(self) -> str:
        return f"<MemoryStore {len(self._tokens)} token(s)>"
