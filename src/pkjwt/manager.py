"""TokenManager: cache, early refresh and single-flight, for threads and asyncio alike.

It only orchestrates: look in the in-process cache, else in the shared store, else run one
fetch for everyone who is waiting, then remember the result. The hot path (a token that is not
due for refresh) is a dict lookup and a clock read: no lock, no I/O, no signing.

The parts live elsewhere: when to refresh is a :class:`~pkjwt.refresh.RefreshPolicy`, one fetch
per key is :mod:`pkjwt.single_flight`, and the trip through the shared store (lock, read, fetch,
write, unlock) is one flow (:mod:`pkjwt.flow`) that a thread runs inline and a task runs with
the store's blocking calls in worker threads. A failed background refresh is logged and the old
token keeps serving until ``usable_until``.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import logging
import random
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine, Generator, Hashable
from typing import Any

from .errors import OAuthError, PkjwtError, TransportError
from .fleet import fleet_cooldown, share_cooldown
from .flow import Call, arun, run
from .refresh import Entry, RefreshPolicy
from .single_flight import Flight, SingleFlight
from .stores import TokenStore
from .tokens import Token

__all__ = ["CacheKey", "TokenManager"]

log = logging.getLogger("pkjwt.manager")

CacheKey = tuple[Hashable, ...]


class _Fetch:
    """The store flow's "now fetch a token" action (the driver knows how: call or await)."""

    def __repr__(self) -> str:
        return "<fetch>"


_FETCH = _Fetch()
_StoreFlow = Generator[Call | _Fetch, Any, Token]


class TokenManager:
    """The token cache with early refresh and single-flight fetching.

    ``store`` is an optional shared second level (file, Redis) consulted before fetching;
    ``clock`` returns epoch seconds; ``refresh_window`` is the jittered fraction of the
    lifetime after which a background refresh starts; ``expiry_leeway`` is how long before
    ``exp`` a token stops being handed out (at most 10% of its lifetime); ``retry_backoff`` is
    the pause after a failed background refresh. ``policy`` gives all of these (and ``rng``) as
    one :class:`~pkjwt.refresh.RefreshPolicy` instead.
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
        policy: RefreshPolicy | None = None,
        schedule: Callable[[], float] | None = None,
    ) -> None:
        self.store = store
        self._clock = clock
        # schedules run on a monotonic clock: a wall clock stepped back an hour must not keep
        # serving a token the server has expired (tests that inject a clock drive both)
        self._schedule = schedule or (time.monotonic if clock is time.time else clock)
        self._failures: dict[CacheKey, tuple[float, BaseException]] = {}
        self._store_failing = False
        self.policy = policy or RefreshPolicy(
            window=refresh_window,
            leeway=expiry_leeway,
            backoff=retry_backoff,
            rng=rng or random.Random(),
        )
        self._entries: dict[CacheKey, Entry] = {}
        self._flights: SingleFlight[CacheKey, Token] = SingleFlight()
        self._tasks: set[asyncio.Task[Any]] = set()

    @property
    def fetches(self) -> int:
        """Number of fetches started (for tests and metrics)."""
        return self._flights.started

    def peek(self, key: CacheKey) -> Token | None:
        """The cached token for ``key`` if it can still be used, without fetching."""
        entry = self._entries.get(key)
        if entry is not None and self._schedule() < entry.usable_until:
            return entry.token
        return None

    def invalidate(self, key: CacheKey) -> None:
        self._entries.pop(key, None)
        if self.store is not None:
            try:
                self.store.delete(key)
            except Exception:
                self._store_trouble("delete failed; ignoring it")

    # -- the drivers ------------------------------------------------------------------------------
    def get(
        self,
        key: CacheKey,
        fetch: Callable[[], Token],
        *,
        force: bool = False,
        stale: Token | None = None,
    ) -> Token:
        """The token for ``key``; ``fetch`` runs at most once at a time per key."""
        entry = self._entries.get(key)
        now = self._schedule()
        if entry is not None and not force and now < entry.refresh_at:
            return entry.token  # the hot path
        token, flight, owner = self._claim(key, entry, now, force, stale, self._thread(key, fetch))
        if token is not None:
            return token
        assert flight is not None
        if owner:
            self._fill(key, flight, fetch, force)
        return flight.wait()

    async def aget(
        self,
        key: CacheKey,
        fetch: Callable[[], Awaitable[Token]],
        *,
        force: bool = False,
        stale: Token | None = None,
    ) -> Token:
        """Async twin of :meth:`get`; shares the same cache and in-flight fetches.

        The fetch runs as a task of its own: if the caller that started it is cancelled (a
        timeout of its own), the fetch still completes for everyone else waiting on it.
        """
        entry = self._entries.get(key)
        now = self._schedule()
        if entry is not None and not force and now < entry.refresh_at:
            return entry.token
        background = self._task(key, fetch)
        token, flight, owner = self._claim(key, entry, now, force, stale, background)
        if token is not None:
            return token
        assert flight is not None
        if owner:
            await asyncio.shield(self._spawn(self._afill(key, flight, fetch, force)))
        return await flight.wait_async()

    def _thread(
        self, key: CacheKey, fetch: Callable[[], Token]
    ) -> Callable[[Flight[Token]], object]:
        def start(flight: Flight[Token]) -> None:
            threading.Thread(
                target=self._fill,
                args=(key, flight, fetch, False, True),
                name="pkjwt-refresh",
                daemon=True,
            ).start()

        return start

    def _task(
        self, key: CacheKey, fetch: Callable[[], Awaitable[Token]]
    ) -> Callable[[Flight[Token]], object]:
        return lambda flight: self._spawn(self._afill(key, flight, fetch, False, True))

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task: asyncio.Task[None] = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def _fill(
        self,
        key: CacheKey,
        flight: Flight[Token],
        fetch: Callable[[], Token],
        force: bool,
        background: bool = False,
    ) -> None:
        def perform(action: Call | _Fetch) -> Any:
            return fetch() if isinstance(action, _Fetch) else action.fn(*action.args)

        run(self._fill_flow(key, flight, force, background), perform)

    async def _afill(
        self,
        key: CacheKey,
        flight: Flight[Token],
        fetch: Callable[[], Awaitable[Token]],
        force: bool,
        background: bool = False,
    ) -> None:
        async def perform(action: Call | _Fetch) -> Any:
            if isinstance(action, _Fetch):
                return await fetch()
            return await asyncio.to_thread(action.fn, *action.args)

        await arun(self._fill_flow(key, flight, force, background), perform)

    # -- the logic, once --------------------------------------------------------------------------
    def _claim(
        self,
        key: CacheKey,
        entry: Entry | None,
        now: float,
        force: bool,
        stale: Token | None,
        background: Callable[[Flight[Token]], object],
    ) -> tuple[Token | None, Flight[Token] | None, bool]:
        """Off the hot path: the token to serve now, or the flight to run (owner) or wait on.
        A token due for refresh is served as is, and ``background(flight)`` starts its refresh
        unless one is running or a failed one asked to back off."""
        if entry is not None and not force and now < entry.usable_until:
            flight = self._flights.lead(key, lambda: now >= entry.retry_at)
            if flight is not None:
                background(flight)
            return entry.token, None, False
        failed = self._failures.get(key)
        if failed is not None and now < failed[0]:
            raise _remembered(failed[1], failed[0] - now)
        return self._flights.join(
            key, lambda: self._fresh_enough(self._entries.get(key), now, force, stale)
        )

    def _store_trouble(self, what: str) -> None:
        """A store failure costs a fetch, never a token; it is said once per failing streak."""
        if not self._store_failing:
            self._store_failing = True
            # a store that reports its own outages (Redis) has said it already
            level = (
                logging.DEBUG if getattr(self.store, "reports_failures", False) else logging.WARNING
            )
            log.log(level, "token store %s (said once until it works again)", what, exc_info=True)

    def _entry(self, token: Token) -> Entry:
        return self.policy.entry(token, self._clock(), self._schedule())

    def _fresh_enough(
        self, entry: Entry | None, now: float, force: bool, stale: Token | None
    ) -> Token | None:
        if entry is None or now >= entry.usable_until:
            return None
        if not force:
            return entry.token
        # a forced renewal is satisfied by any token other than the one the caller saw fail
        if stale is not None and entry.token.access_token != stale.access_token:
            return entry.token
        return None

    def _fill_flow(
        self, key: CacheKey, flight: Flight[Token], force: bool, background: bool
    ) -> Generator[Call | _Fetch, Any, None]:
        """Run one flight: through the store, then land it (cache it, or share its error)."""
        try:
            token = yield from self._through_store(key, force)
        except BaseException as exc:
            self._land(key, flight, None, exc, background)
            if not isinstance(exc, Exception):
                raise
            return
        self._land(key, flight, token, None, background)

    def _through_store(self, key: CacheKey, force: bool) -> _StoreFlow:
        """Lock, read the shared token, else fetch and write, unlock. Store failures are logged
        and bypassed: a broken store costs a fetch, never a token."""
        store = self.store
        if store is None:
            token: Token = yield _FETCH
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
            self._store_trouble("lock failed; fetching without it")
            lock = None
        try:
            if not force:
                shared: Token | None = yield Call(self._load, key)
                if shared is not None:
                    return shared
            try:
                token = yield _FETCH
            except (OAuthError, TransportError) as exc:
                if isinstance(exc, OAuthError) and exc.retryable:  # the server said wait
                    yield Call(share_cooldown, store, key, exc, _cooldown(self.policy, exc))
                raise
            try:
                yield Call(store.set, key, token)
            except Exception:
                self._store_trouble("write failed; the token is kept in memory")
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
            self._store_trouble("read failed; fetching instead")
            return None
        self._store_failing = False
        if token is None:
            return None
        if self._entry(token).refresh_at <= self._schedule():
            return None
        return token

    def _land(
        self,
        key: CacheKey,
        flight: Flight[Token],
        token: Token | None,
        error: BaseException | None,
        background: bool,
    ) -> None:
        def record() -> None:
            if token is not None:
                self._entries[key] = self._entry(token)
                self._failures.pop(key, None)
            elif background and (entry := self._entries.get(key)) is not None:
                entry.retry_at = self._schedule() + self.policy.backoff
            elif error is not None and _passing(error):
                self._failures[key] = (self._schedule() + _cooldown(self.policy, error), error)

        self._flights.land(key, flight, token, error, record)
        if error is not None and background:
            log.warning(
                "background token refresh failed (%s); the current token keeps serving",
                type(error).__name__,
            )


def _cooldown(policy: RefreshPolicy, error: BaseException) -> float:
    """How long a failure that may pass is answered from memory: the policy's cooldown, or
    the server's Retry-After when it asked for longer (bounded: a minute)."""
    retry_after = getattr(error, "retry_after", None)
    wait = policy.failure_cooldown
    if isinstance(retry_after, int | float) and retry_after > wait:
        wait = min(float(retry_after), 60.0)
    return wait


def _passing(error: BaseException) -> bool:
    """A failure that may pass by itself (the endpoint unreachable, a 5xx, a 429): worth
    remembering for a moment, unlike a refusal, which a retry would not change."""
    if isinstance(error, TransportError):
        return True
    return isinstance(error, OAuthError) and error.retryable


def _remembered(error: BaseException, left: float) -> BaseException:
    """A copy of a remembered failure, saying it is one (each caller gets its own object)."""
    again = copy.copy(error)
    if isinstance(again, PkjwtError):
        note = f"the last fetch failed this way {left:.0f} s before the next is allowed"
        again.hint = f"{again.hint}; {note}" if again.hint else note
    return again
