"""The trip through a shared token store, as one flow: look, lock, look again, fetch, write,
unlock (:class:`~pkjwt.manager.TokenManager` runs it inline for a thread and with the store's
blocking calls in worker threads for a task).

A broken store costs a fetch, never a token: every store failure is logged once per failing
streak and bypassed.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Generator, Hashable
from typing import Any

from .errors import OAuthError, TransportError
from .fleet import fleet_cooldown, share_cooldown
from .flow import Call
from .refresh import Entry, RefreshPolicy, failure_cooldown
from .stores import TokenStore
from .tokens import Token

__all__ = ["FETCH", "Fetch", "StoreFlow", "StoreTrip"]

log = logging.getLogger("pkjwt.manager")

CacheKey = tuple[Hashable, ...]


class Fetch:
    """The store flow's "now fetch a token" action (the driver knows how: call or await)."""

    def __repr__(self) -> str:
        return "<fetch>"


FETCH = Fetch()
StoreFlow = Generator[Call | Fetch, Any, Token]


class StoreTrip:
    """One manager's way through its ``store`` (None: straight to the fetch). ``entry`` says
    when a token read from the store would be due for refresh, on the ``schedule`` clock."""

    def __init__(
        self,
        store: TokenStore | None,
        policy: RefreshPolicy,
        entry: Callable[[Token], Entry],
        schedule: Callable[[], float],
    ) -> None:
        self.store = store
        self.policy = policy
        self._entry = entry
        self._schedule = schedule
        self._failing = False

    def delete(self, key: CacheKey) -> None:
        if self.store is not None:
            try:
                self.store.delete(key)
            except Exception:
                self._trouble("delete failed; ignoring it")

    def _trouble(self, what: str) -> None:
        """A store failure costs a fetch, never a token; it is said once per failing streak."""
        if not self._failing:
            self._failing = True
            # a store that reports its own outages (Redis) has said it already
            level = (
                logging.DEBUG if getattr(self.store, "reports_failures", False) else logging.WARNING
            )
            log.log(level, "token store %s (said once until it works again)", what, exc_info=True)

    def flow(self, key: CacheKey, force: bool) -> StoreFlow:
        """Lock, read the shared token, else fetch and write, unlock. Store failures are logged
        and bypassed: a broken store costs a fetch, never a token."""
        store = self.store
        if store is None:
            token: Token = yield FETCH
            return token
        yield Call(fleet_cooldown, store, key)  # another process may have been told to wait
        if not force:  # read unlocked first: a wave of processes must not queue just to read
            ready: Token | None = yield Call(self._load, key)
            if ready is not None:
                return ready
        lock: Any = None
        try:
            lock = store.lock(key)
            yield Call(lock.__enter__)
        except Exception:
            self._trouble("lock failed; fetching without it")
            lock = None
        try:
            if not force:
                shared: Token | None = yield Call(self._load, key)
                if shared is not None:
                    return shared
            try:
                token = yield FETCH
            except (OAuthError, TransportError) as exc:
                if isinstance(exc, OAuthError) and exc.retryable:  # the server said wait
                    yield Call(share_cooldown, store, key, exc, failure_cooldown(self.policy, exc))
                raise
            try:
                yield Call(store.set, key, token)
            except Exception:
                self._trouble("write failed; the token is kept in memory")
            return token
        finally:
            if lock is not None:
                with contextlib.suppress(Exception):
                    yield Call(lock.__exit__, None, None, None)

    def _load(self, key: CacheKey) -> Token | None:
        assert self.store is not None
        try:
            token = self.store.get(key)
        except Exception:
            self._trouble("read failed; fetching instead")
            return None
        self._store_failing = False
        if token is None:
            return None
        if self._entry(token).refresh_at <= self._schedule():
            return None
        return token
