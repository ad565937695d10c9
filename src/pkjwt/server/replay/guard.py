"""A replay store behind a deadline, as the server uses it.

A store that waits (Redis over the network, a shared SQLite file whose writer lock another
process holds) must not stop the event loop: every other request, ``/health`` included, would
wait with it (measured: a Redis paused for 15 s froze the whole server for 15 s). So a
``blocking`` store is called from a worker thread and given ``timeout`` seconds; past that,
that one request answers 503 ``temporarily_unavailable`` and nothing is accepted unrecorded.
Stores that only touch memory (the memory store, SQLite writing behind) are called inline:
a thread hop would cost more than the call.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from ...errors import ReplayStoreUnavailable
from .base import ReplayStore

__all__ = ["ReplayGuard"]


class ReplayGuard:
    """Calls ``store.add`` within ``timeout`` seconds and remembers how the store is doing."""

    def __init__(self, store: ReplayStore, *, timeout: float = 0.5) -> None:
        self.store = store
        self.timeout = timeout
        self.blocking: bool = getattr(store, "blocking", True)
        self._aadd = getattr(store, "aadd", None)
        self._keeps_deadline = bool(getattr(store, "keeps_deadline", False))
        self._failing_since: float | None = None
        self._last_error = ""
        self.failures = 0
        #: when the store last failed (epoch seconds; None: never), kept after it recovers
        self.last_failure_at: float | None = None

    async def add(self, client_id: str, jti: str, expires_at: float) -> bool:
        if self._aadd is None and not self.blocking:  # memory only: inline, no hop
            try:
                fresh = self.store.add(client_id, jti, expires_at)
            except ReplayStoreUnavailable as exc:
                self._failed(exc.message)
                raise
            self._ok()
            return fresh
        if self._aadd is not None and self._keeps_deadline:  # Redis: its own deadline, no task
            try:
                fresh = bool(await self._aadd(client_id, jti, expires_at, within=self.timeout))
            except ReplayStoreUnavailable as exc:
                self._failed(exc.message)
                raise
            self._ok()
            return fresh
        # another native async form runs on this loop; a blocking store on a worker thread
        call = (
            self._aadd(client_id, jti, expires_at)
            if self._aadd is not None
            else asyncio.to_thread(self.store.add, client_id, jti, expires_at)
        )
        try:
            fresh = bool(await asyncio.wait_for(call, self.timeout))
        except TimeoutError:
            # a worker thread finishes on its own; if it does record the jti, the client
            # (told to retry with a new assertion) has lost nothing
            message = f"replay store gave no answer within {self.timeout:g} s"
            self._failed(message)
            raise ReplayStoreUnavailable(message) from None
        except ReplayStoreUnavailable as exc:
            self._failed(exc.message)
            raise
        self._ok()
        return fresh

    def _ok(self) -> None:
        self._failing_since = None

    def _failed(self, message: str) -> None:
        self.failures += 1
        self._last_error = message
        self.last_failure_at = time.time()
        if self._failing_since is None:
            self._failing_since = self.last_failure_at

    async def aclose(self) -> None:
        aclose = getattr(self.store, "aclose", None)
        if aclose is not None:
            await aclose()

    @property
    def healthy(self) -> bool:
        return self._failing_since is None

    def health(self) -> dict[str, Any]:
        """The store's state for ``/health``: from memory, never by asking the store."""
        describe = getattr(self.store, "describe", None)
        state: dict[str, Any] = {
            "store": describe() if callable(describe) else type(self.store).__name__,
            "state": "ok" if self.healthy else "failing",
            "failures": self.failures,
        }
        if self._failing_since is not None:
            state["failing_since"] = int(self._failing_since)
            state["last_error"] = self._last_error
        return state
