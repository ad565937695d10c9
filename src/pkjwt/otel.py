"""Client telemetry through OpenTelemetry (``pip install 'pkjwt[otel]'``).

A span per token fetch (``pkjwt.token_fetch``, kind CLIENT) carries what a person debugging a
refusal wants: the token endpoint, the method, the outcome and, per failed attempt, an event
with the HTTP status, the OAuth error, the NHS platform's ``message_id`` and why it was retried.
Metrics (meter ``pkjwt``):

==================================  ========  ===============================================
``pkjwt.client.cache.hits``         counter   tokens served from the cache without waiting
``pkjwt.client.cache.misses``       counter   fetches a caller had to wait for
``pkjwt.client.cache.stale_serves`` counter   tokens served while due for refresh
``pkjwt.client.refreshes``          counter   background refreshes started
``pkjwt.client.refresh.failures``   counter   background refreshes that failed
``pkjwt.client.fetch.joins``        counter   callers that joined a fetch already in flight
``pkjwt.client.fetch.duration``     histogram seconds per fetch, by ``pkjwt.outcome``
==================================  ========  ===============================================

The counters are observable: the cache counts in plain integers and the SDK reads them when it
collects, so the attach path never calls into OpenTelemetry. No attribute ever holds a token,
an assertion, a key or a secret: the endpoint URL, the method name, codes and counts only.
"""

from __future__ import annotations

import contextlib
import time
import weakref
from collections.abc import Callable, Iterable, Iterator
from typing import Any
from urllib.parse import urlsplit

from .cache_stats import Counted
from .errors import OAuthError, PkjwtError, missing_extra

try:
    from opentelemetry import metrics, trace
    from opentelemetry.metrics import CallbackOptions, Observation
    from opentelemetry.trace import SpanKind, Status, StatusCode
except ImportError as exc:  # pragma: no cover - depends on the install
    raise missing_extra("otel", "client telemetry", exc) from None

__all__ = ["OtelTelemetry"]

_VERSION = "0.1.0"

#: (name, description, how to read it from a manager)
_COUNTERS: tuple[tuple[str, str, Callable[[Counted], int]], ...] = (
    ("pkjwt.client.cache.hits", "tokens served from the cache without waiting",
     lambda m: m.stats.hits + m.stats.stale_serves),
    ("pkjwt.client.cache.misses", "fetches a caller had to wait for",
     lambda m: m.flights.started - m.flights.led),
    ("pkjwt.client.cache.stale_serves", "tokens served while due for refresh",
     lambda m: m.stats.stale_serves),
    ("pkjwt.client.refreshes", "background refreshes started", lambda m: m.flights.led),
    ("pkjwt.client.refresh.failures", "background refreshes that failed",
     lambda m: m.stats.refresh_failures),
    ("pkjwt.client.fetch.joins", "callers that joined a fetch already in flight",
     lambda m: m.flights.joined),
)  # fmt: skip


class OtelTelemetry:
    """Reports to the given providers, else to OpenTelemetry's global ones (set by your SDK
    set-up; until then, the API's no-op ones)."""

    def __init__(self, *, tracer_provider: Any = None, meter_provider: Any = None) -> None:
        self._tracer = trace.get_tracer("pkjwt", _VERSION, tracer_provider)
        meter = metrics.get_meter("pkjwt", _VERSION, meter_provider)
        self._duration = meter.create_histogram(
            "pkjwt.client.fetch.duration", unit="s", description="seconds per token fetch"
        )
        self._managers: weakref.WeakSet[Counted] = weakref.WeakSet()
        for name, description, read in _COUNTERS:
            meter.create_observable_counter(
                name, callbacks=[self._reader(read)], unit="1", description=description
            )

    def _reader(
        self, read: Callable[[Counted], int]
    ) -> Callable[[CallbackOptions], Iterable[Observation]]:
        def observe(options: CallbackOptions) -> Iterable[Observation]:
            # one sum over the live managers: no per-client label (a client id can be an API key)
            return [Observation(sum(read(m) for m in list(self._managers)))]

        return observe

    def watch(self, manager: Counted) -> None:
        manager.count_hits()
        self._managers.add(manager)

    @contextlib.contextmanager
    def fetch(self, url: str | None, method: str) -> Iterator[None]:
        attributes: dict[str, str | int] = {"pkjwt.auth_method": method}
        if url:
            parts = urlsplit(url)
            attributes["server.address"] = parts.hostname or ""
            attributes["url.full"] = f"{parts.scheme}://{parts.netloc}{parts.path}"
        started = time.perf_counter()
        with self._tracer.start_as_current_span(
            "pkjwt.token_fetch",
            kind=SpanKind.CLIENT,
            attributes=attributes,
            record_exception=False,  # our own attributes instead: codes, never free text
            set_status_on_exception=False,
        ) as span:
            try:
                yield
            except BaseException as exc:
                kind = _error_type(exc)
                span.set_attribute("error.type", kind)
                span.set_status(Status(StatusCode.ERROR, kind))
                self._duration.record(
                    time.perf_counter() - started, {"pkjwt.outcome": "error", "error.type": kind}
                )
                raise
            self._duration.record(time.perf_counter() - started, {"pkjwt.outcome": "ok"})

    def attempt(self, number: int, error: PkjwtError, retry_in: float | None) -> None:
        event: dict[str, str | int | float] = {
            "pkjwt.attempt": number,
            "error.type": _error_type(error),
        }
        if isinstance(error, OAuthError):
            if error.status is not None:
                event["http.response.status_code"] = error.status
            event["oauth.error"] = error.error
            message_id = error.body.get("message_id")
            if isinstance(message_id, str) and len(message_id) <= 64:
                event["nhs.message_id"] = message_id  # what NHS support asks for
        if retry_in is not None:
            event["pkjwt.retry_in_s"] = round(retry_in, 3)
        trace.get_current_span().add_event("pkjwt.attempt_failed", event)

    def __repr__(self) -> str:
        return "<Telemetry opentelemetry>"


def _error_type(exc: BaseException) -> str:
    """A code, never a message: the OAuth error, else the exception's class name."""
    if isinstance(exc, OAuthError):
        return exc.error
    return type(exc).__name__
