"""What every replay store is: an atomic insert-if-absent of (client_id, jti) with an expiry."""

from __future__ import annotations

from typing import Protocol

from ...errors import ConfigError

__all__ = ["ReplayStore", "ReplayStoreInUse", "blob", "replay_key"]


class ReplayStoreInUse(ConfigError):
    """The store's file is held by another process in a mode that cannot share it."""


class ReplayStore(Protocol):
    """One operation matters: :meth:`add`. ``describe`` is what ``pkjwt serve`` announces."""

    def add(self, client_id: str, jti: str, expires_at: float) -> bool:
        """Record the pair; True if it was new, False if it was seen and has not expired."""
        ...

    def describe(self) -> str:
        """Where the jtis go, and how durably (one line, never a password)."""
        ...

    def close(self) -> None: ...


def replay_key(client_id: str, jti: str) -> str:
    """One string per (client_id, jti) pair: the length prefix keeps ("a:b", "c") and
    ("a", "b:c") apart, whatever either holds (lone surrogates included)."""
    return f"{len(client_id)}:{client_id}{jti}"


def blob(key: str) -> bytes:
    # JSON strings may hold lone surrogates: stored as bytes, they round-trip exactly
    return key.encode("utf-8", "surrogatepass")
