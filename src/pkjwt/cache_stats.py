"""What a token cache counts about itself: plain integers, no lock, nothing to import."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

__all__ = ["CacheStats", "Counted", "FlightCounts"]


@dataclass(slots=True)
class CacheStats:
    """What a :class:`~pkjwt.manager.TokenManager` did, counted since it was made. Read them
    directly, or through :mod:`pkjwt.otel`'s metrics. Counts from many threads may lose an
    increment now and then (a metric, not a ledger: no lock on the attach path)."""

    #: tokens handed out fresh from the cache, counted only while a telemetry watches the
    #: manager (:meth:`~pkjwt.manager.TokenManager.count_hits`): an unwatched attach path adds
    #: nothing to its lookup
    hits: int = 0
    #: tokens handed out while due for refresh, or after a refresh failed
    stale_serves: int = 0
    #: background refreshes that failed (the cached token kept serving)
    refresh_failures: int = 0
    #: fetches a caller waited for that ended in an error
    fetch_failures: int = 0


class FlightCounts(Protocol):
    """Fetches started, of them refreshes started ahead of need, and callers that joined one
    in flight (:class:`~pkjwt.single_flight.SingleFlight` keeps them)."""

    started: int
    led: int
    joined: int


class Counted(Protocol):
    """What a :class:`~pkjwt.manager.TokenManager` shows of its counts."""

    @property
    def stats(self) -> CacheStats: ...

    @property
    def flights(self) -> FlightCounts: ...

    def count_hits(self) -> None:
        """Start counting fresh hits (they are free, and uncounted, until asked for)."""
        ...
