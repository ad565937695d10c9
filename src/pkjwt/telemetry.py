"""What the client tells an operator: counts, spans and metrics, when wanted.

Two costs are kept apart. The token cache counts what happens off its attach path (stale
serves, refreshes, joins, failures: :class:`CacheStats`, plain integers) always; fresh hits
only once a telemetry watches it (one integer add per hit: unwatched, attaching a cached token
stays a lookup and a clock read). A :class:`Telemetry` is otherwise consulted only off that
path: around a token fetch (a span and its duration) and at each failed attempt (an event on
that span). :data:`OFF` does nothing;
:mod:`pkjwt.otel` reports through OpenTelemetry, and reads the counts when a metric reader
collects, never per request.

``TokenClient(telemetry=None)`` (the default) uses OpenTelemetry when its API is installed
(``pip install 'pkjwt[otel]'``) and :data:`OFF` otherwise; an API without a configured SDK
makes no-op spans, so an unconfigured process pays nothing either.
"""

from __future__ import annotations

import contextlib
import importlib.util
from collections.abc import Iterator
from typing import TYPE_CHECKING, Protocol

from .cache_stats import CacheStats, Counted

if TYPE_CHECKING:
    from .errors import PkjwtError

__all__ = ["OFF", "CacheStats", "Counted", "Telemetry", "telemetry_for"]


class Telemetry(Protocol):
    """Where a client reports, off the attach path."""

    def fetch(self, url: str | None, method: str) -> contextlib.AbstractContextManager[None]:
        """Around one token fetch (all its attempts): a span, its duration, its outcome."""
        ...

    def attempt(self, number: int, error: PkjwtError, retry_in: float | None) -> None:
        """An attempt of the current fetch failed; ``retry_in`` seconds until the next one
        (None: no retry)."""
        ...

    def watch(self, manager: Counted) -> None:
        """Count this manager's :class:`CacheStats` in the metrics."""
        ...


class _Off:
    """No telemetry: every call returns at once."""

    @contextlib.contextmanager
    def fetch(self, url: str | None, method: str) -> Iterator[None]:
        yield

    def attempt(self, number: int, error: PkjwtError, retry_in: float | None) -> None:
        return None

    def watch(self, manager: Counted) -> None:
        return None

    def __repr__(self) -> str:
        return "<Telemetry off>"


OFF: Telemetry = _Off()
_default: Telemetry | None = None


def telemetry_for(setting: Telemetry | bool | None) -> Telemetry:
    """The telemetry a client uses: the one given, :data:`OFF` for False, and for None/True
    OpenTelemetry's global providers when its API is installed (one shared reporter)."""
    global _default
    if setting is False:
        return OFF
    if setting is not None and setting is not True:
        return setting
    if _default is None:
        if importlib.util.find_spec("opentelemetry") is None:
            if setting is True:
                from .errors import missing_extra

                raise missing_extra("otel", "client telemetry", ImportError(name="opentelemetry"))
            _default = OFF
        else:
            from .otel import OtelTelemetry

            _default = OtelTelemetry()
    return _default
