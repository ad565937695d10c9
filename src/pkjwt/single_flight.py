"""Single-flight: however many threads and tasks ask for the same key at once, one fetch runs.

The first caller for a key becomes the owner of a :class:`Flight` and runs the fetch; later
callers join it and wait for its outcome, threads on a ``threading.Event``, tasks on a future of
their own event loop (woken with ``call_soon_threadsafe``, so a flight run by a thread can wake
tasks on several loops, and the other way round). A failure is shared like a success: every
waiter gets the same exception, and the next call starts a new flight.

This is Duende's ``TokenRequestSynchronization`` (a concurrent map of key to one in-flight
task) for a world of both threads and event loops.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable, Hashable
from typing import Generic, NamedTuple, TypeVar

__all__ = ["Claim", "Flight", "SingleFlight"]

T = TypeVar("T")
K = TypeVar("K", bound=Hashable)


class Flight(Generic[T]):
    """One in-flight fetch that any number of threads and tasks wait on."""

    __slots__ = ("_done", "_lock", "_waiters", "error", "value")

    def __init__(self) -> None:
        self._done = threading.Event()
        self._lock = threading.Lock()
        self._waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[T]]] = []
        self.value: T | None = None
        self.error: BaseException | None = None

    def finish(self, value: T | None, error: BaseException | None) -> None:
        """Record the outcome and wake every waiter, in whichever thread or loop it waits."""
        with self._lock:
            self.value, self.error = value, error
            waiters, self._waiters = self._waiters, []
            self._done.set()
        for loop, fut in waiters:
            with contextlib.suppress(RuntimeError):  # the waiter's loop has closed
                loop.call_soon_threadsafe(_settle, fut, value, error)

    def outcome(self) -> T:
        """The value, or the error raised (only once finished)."""
        if self.error is not None:
            raise self.error
        assert self.value is not None
        return self.value

    def wait(self) -> T:
        """Block this thread until the flight lands; its outcome."""
        self._done.wait()
        return self.outcome()

    async def wait_async(self) -> T:
        """Wait on the running loop without blocking it; the flight's outcome."""
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[T] = loop.create_future()
        with self._lock:
            landed = self._done.is_set()
            if not landed:
                self._waiters.append((loop, fut))
        if landed:
            return self.outcome()
        return await fut


def _settle(fut: asyncio.Future[T], value: T | None, error: BaseException | None) -> None:
    if fut.done():  # the waiter was cancelled
        return
    if error is not None:
        fut.set_exception(error)
    else:
        fut.set_result(value)  # type: ignore[arg-type]  # set when error is None


class Claim(NamedTuple, Generic[T]):
    """What a caller got from :class:`SingleFlight`: a ``value`` ready now, and/or a
    ``flight`` to run (``owner``) or to wait on."""

    value: T | None
    flight: Flight[T] | None
    owner: bool


class SingleFlight(Generic[K, T]):
    """At most one flight per key. The callbacks run under its lock, so a caller's view of the
    cache and of the flights is one consistent snapshot (a fetch that lands between "no fresh
    token" and "no flight" would otherwise be made twice)."""

    def __init__(self) -> None:
        self._flights: dict[K, Flight[T]] = {}
        self._lock = threading.Lock()
        #: flights started so far, those started ahead of need (a refresh), and callers that
        #: joined one already in the air (for tests and metrics)
        self.started = 0
        self.led = 0
        self.joined = 0

    def join(self, key: K, ready: Callable[[], T | None]) -> Claim[T]:
        """``ready()``'s value if it has one; else the key's flight, joined or started."""
        with self._lock:
            value = ready()
            if value is not None:
                return Claim(value, None, False)
            flight = self._flights.get(key)
            if flight is not None:
                self.joined += 1
                return Claim(None, flight, False)
            return Claim(None, self._start(key), True)

    def lead(self, key: K, allowed: Callable[[], bool]) -> Flight[T] | None:
        """A new flight for ``key`` if none is in the air and ``allowed()``; else None."""
        with self._lock:
            if key in self._flights or not allowed():
                return None
            self.led += 1
            return self._start(key)

    def land(
        self,
        key: K,
        flight: Flight[T],
        value: T | None,
        error: BaseException | None,
        record: Callable[[], None],
    ) -> None:
        """End ``flight``: ``record()`` the outcome and retire the flight in one step (a caller
        sees either the flight or what it brought, never neither), then wake its waiters."""
        with self._lock:
            if self._flights.get(key) is flight:
                del self._flights[key]
            record()
        flight.finish(value, error)

    def _start(self, key: K) -> Flight[T]:
        flight: Flight[T] = Flight()
        self._flights[key] = flight
        self.started += 1
        return flight
