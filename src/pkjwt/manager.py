"""TokenManager: cache, early refresh and single-flight, for threads and asyncio alike.

It only orchestrates: look in the in-process cache, else in the shared store, else run one
fetch for everyone who is waiting, then remember the result. The hot path (a token that is not
due for refresh) is a dict lookup and a clock read: no lock, no I/O, no signing.

Timeline of a token with lifetime L obtained at t0::

    t0 ........ refresh_at (t0 + L*U(0.70, 0.85)) ........ usable_until (exp - leeway) .. exp
       served as is     | served as is; one background refresh   | callers wait for a fetch

A failed background refresh is logged and the old token keeps serving until ``usable_until``;
the next background attempt waits a little (backoff) so a sick server is not hammered.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import threading
import time
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass
from typing import Any

from .stores import TokenStore
from .tokens import Token

__all__ = ["CacheKey", "TokenManager"]

log = logging.getLogger("pkjwt.manager")

CacheKey = tuple[Hashable, ...]


@dataclass(slots=True)
class _Entry:
    token: Token
    refresh_at: float
    usable_until: float
    retry_at: float = 0.0


class _Flight:
    """One in-flight fetch that any number of threads and tasks wait on."""

    __slots__ = ("done", "error", "token", "waiters")

    def __init__(self) -> None:
        self.done = threading.Event()
        self.token: Token | None = None
        self.error: BaseException | None = None
        self.waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[Token]]] = []

    def outcome(self) -> Token:
        if self.error is not None:
            raise self.error
        assert self.token is not None
        return self.token


def _settle(fut: asyncio.Future[Token], token: Token | None, error: BaseException | None) -> None:
    if fut.done():
        return
    if error is not None:
        fut.set_exception(error)
    else:
        fut.set_result(token)  # type: ignore[arg-type]


class TokenManager:
    """The token cache with early refresh and single-flight fetching.

    ``store`` is an optional shared second level (file, Redis) consulted before fetching;
    ``clock`` returns epoch seconds; ``refresh_window`` is the jittered fraction of the
    lifetime after which a background refresh starts; ``expiry_leeway`` is how long before
    ``exp`` a token stops being handed out (at most 10% of its lifetime).
    """

    def __init__(
        self,
        *,
        store: TokenStore | None = None,
        clock: Callable[[], float] = time.time,
        refresh_window: tuple[float, float] = (0.70, 0.85),
        expiry_leeway: float = 30.0,
        retry_backoff: float = 5.0,
        rng: random.Random | None = None,
    ) -> None:
        self.store = store
        self._clock = clock
        self._window = refresh_window
        self._leeway = expiry_leeway
        self._backoff = retry_backoff
        self._rng = rng or random.Random()
        self._entries: dict[CacheKey, _Entry] = {}
        self._flights: dict[CacheKey, _Flight] = {}
        self._mutex = threading.Lock()
        self._tasks: set[asyncio.Task[Any]] = set()
        #: number of fetches started (for tests and metrics)
        self.fetches = 0

    # -- entries ------------------------------------------------------------------------------
    def _entry_for(self, token: Token) -> _Entry:
        lifetime = max(0.0, token.expires_at - token.obtained_at)
        leeway = min(self._leeway, lifetime * 0.1)
        usable_until = token.expires_at - leeway
        refresh_at = token.obtained_at + lifetime * self._rng.uniform(*self._window)
        return _Entry(token, min(refresh_at, usable_until), usable_until)

    def peek(self, key: CacheKey) -> Token | None:
        """The cached token for ``key`` if it can still be used, without fetching."""
        entry = self._entries.get(key)
        if entry is not None and self._clock() < entry.usable_until:
            return entry.token
        return None

    def invalidate(self, key: CacheKey) -> None:
        self._entries.pop(key, None)
        if self.store is not None:
            try:
                self.store.delete(key)
            except Exception:
                log.warning("token store delete failed; ignoring", exc_info=True)

    def _fresh_enough(
        self, entry: _Entry | None, now: float, force: bool, stale: Token | None
    ) -> Token | None:
        if entry is None or now >= entry.usable_until:
            return None
        if not force:
            return entry.token
        # a forced renewal is satisfied by any token other than the one the caller saw fail
        if stale is not None and entry.token.access_token != stale.access_token:
            return entry.token
        return None

    # -- sync -----------------------------------------------------------------------------------
    def get(
        self,
        key: CacheKey,
        fetch: Callable[[], Token],
        *,
        force: bool = False,
        stale: Token | None = None,
    ) -> Token:
        """The token for ``key``; ``fetch`` runs at most once at a time per key."""
        token, due, now = self._lookup(key, force)
        if token is not None:
            if due is not None:
                self._background_sync(key, fetch, due, now)
            return token
        flight, owner, ready = self._join(key, now, force, stale)
        if ready is not None:
            return ready
        assert flight is not None
        if owner:
            self._run_sync(key, flight, fetch, force)
        else:
            flight.done.wait()
        return flight.outcome()

    def _lookup(self, key: CacheKey, force: bool) -> tuple[Token | None, _Entry | None, float]:
        """The hot path: a dict lookup and a clock read, no lock. Returns the token to serve
        now (or None), the entry if it is due for a background refresh, and the time."""
        entry = self._entries.get(key)
        now = self._clock()
        if entry is None or force or now >= entry.usable_until:
            return None, None, now
        return entry.token, (entry if now >= entry.refresh_at else None), now

    def _join(
        self, key: CacheKey, now: float, force: bool, stale: Token | None
    ) -> tuple[_Flight | None, bool, Token | None]:
        with self._mutex:
            ready = self._fresh_enough(self._entries.get(key), now, force, stale)
            if ready is not None:
                return None, False, ready
            flight = self._flights.get(key)
            if flight is not None:
                return flight, False, None
            flight = self._flights[key] = _Flight()
            self.fetches += 1
            return flight, True, None

    def _background_sync(
        self, key: CacheKey, fetch: Callable[[], Token], entry: _Entry, now: float
    ) -> None:
        with self._mutex:
            if key in self._flights or now < entry.retry_at:
                return
            flight = self._flights[key] = _Flight()
            self.fetches += 1
        thread = threading.Thread(
            target=self._run_sync,
            args=(key, flight, fetch, False, True),
            name="pkjwt-refresh",
            daemon=True,
        )
        thread.start()

    def _run_sync(
        self,
        key: CacheKey,
        flight: _Flight,
        fetch: Callable[[], Token],
        force: bool,
        background: bool = False,
    ) -> None:
        try:
            token = self._through_store_sync(key, fetch, force)
        except BaseException as exc:
            self._complete(key, flight, None, exc, background)
            if not isinstance(exc, Exception):
                raise
            return
        self._complete(key, flight, token, None, background)

    def _through_store_sync(self, key: CacheKey, fetch: Callable[[], Token], force: bool) -> Token:
        store = self.store
        if store is None:
            return fetch()
        lock: Any = contextlib.nullcontext()
        try:
            lock = store.lock(key)
            lock.__enter__()
        except Exception:
            log.warning("token store lock failed; fetching without it", exc_info=True)
            lock = contextlib.nullcontext()
        try:
            if not force:
                shared = self._load(key)
                if shared is not None:
                    return shared
            token = fetch()
            try:
                store.set(key, token)
            except Exception:
                log.warning("token store write failed; token kept in memory", exc_info=True)
            return token
        finally:
            with contextlib.suppress(Exception):
                lock.__exit__(None, None, None)

    def _load(self, key: CacheKey) -> Token | None:
        assert self.store is not None
        try:
            token = self.store.get(key)
        except Exception:
            log.warning("token store read failed; fetching instead", exc_info=True)
            return None
        if token is None:
            return None
        entry = self._entry_for(token)
        now = self._clock()
        if now >= entry.refresh_at:
            return None
        return token

    def _complete(
        self,
        key: CacheKey,
        flight: _Flight,
        token: Token | None,
        error: BaseException | None,
        background: bool,
    ) -> None:
        with self._mutex:
            if self._flights.get(key) is flight:
                del self._flights[key]
            if token is not None:
                self._entries[key] = self._entry_for(token)
            elif background:
                entry = self._entries.get(key)
                if entry is not None:
                    entry.retry_at = self._clock() + self._backoff
            flight.token, flight.error = token, error
            waiters, flight.waiters = flight.waiters, []
            flight.done.set()
        if error is not None and background:
            log.warning(
                "background token refresh failed (%s); the current token keeps serving",
                type(error).__name__,
            )
        for loop, fut in waiters:
            with contextlib.suppress(RuntimeError):  # the waiter's loop has closed
                loop.call_soon_threadsafe(_settle, fut, token, error)

    # -- async ----------------------------------------------------------------------------------
    async def aget(
        self,
        key: CacheKey,
        fetch: Callable[[], Awaitable[Token]],
        *,
        force: bool = False,
        stale: Token | None = None,
    ) -> Token:
        """Async twin of :meth:`get`; shares the same cache and in-flight fetches."""
        token, due, now = self._lookup(key, force)
        if token is not None:
            if due is not None:
                self._background_async(key, fetch, due, now)
            return token
        flight, owner, ready = self._join(key, now, force, stale)
        if ready is not None:
            return ready
        assert flight is not None
        if owner:
            # the fetch runs as its own task: if this caller is cancelled (a timeout of its
            # own), the fetch still completes for everyone else waiting on it
            task = asyncio.get_running_loop().create_task(
                self._run_async(key, flight, fetch, force)
            )
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
            await asyncio.shield(task)
            return flight.outcome()
        return await self._wait_async(flight)

    async def _wait_async(self, flight: _Flight) -> Token:
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[Token] = loop.create_future()
        with self._mutex:
            if not flight.done.is_set():
                flight.waiters.append((loop, fut))
                registered = True
            else:
                registered = False
        if not registered:
            return flight.outcome()
        return await fut

    def _background_async(
        self, key: CacheKey, fetch: Callable[[], Awaitable[Token]], entry: _Entry, now: float
    ) -> None:
        with self._mutex:
            if key in self._flights or now < entry.retry_at:
                return
            flight = self._flights[key] = _Flight()
            self.fetches += 1
        task = asyncio.get_running_loop().create_task(
            self._run_async(key, flight, fetch, False, True)
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run_async(
        self,
        key: CacheKey,
        flight: _Flight,
        fetch: Callable[[], Awaitable[Token]],
        force: bool,
        background: bool = False,
    ) -> None:
        try:
            token = await self._through_store_async(key, fetch, force)
        except BaseException as exc:
            self._complete(key, flight, None, exc, background)
            if not isinstance(exc, Exception):
                raise
            return
        self._complete(key, flight, token, None, background)

    async def _through_store_async(
        self, key: CacheKey, fetch: Callable[[], Awaitable[Token]], force: bool
    ) -> Token:
        store = self.store
        if store is None:
            return await fetch()
        lock: Any = None
        try:
            lock = store.lock(key)
            await asyncio.to_thread(lock.__enter__)
        except Exception:
            log.warning("token store lock failed; fetching without it", exc_info=True)
            lock = None
        try:
            if not force:
                shared = await asyncio.to_thread(self._load, key)
                if shared is not None:
                    return shared
            token = await fetch()
            try:
                await asyncio.to_thread(store.set, key, token)
            except Exception:
                log.warning("token store write failed; token kept in memory", exc_info=True)
            return token
        finally:
            if lock is not None:
                with contextlib.suppress(Exception):
                    await asyncio.to_thread(lock.__exit__, None, None, None)
