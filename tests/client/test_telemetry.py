"""Client telemetry (issue 14, item 1): the spans and metrics of a fetch, a cache hit, a stale
serve and a failed refresh, read back through the OpenTelemetry SDK's in-memory exporters; no
attribute ever holds a secret; and telemetry off (or not installed) costs nothing."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from pkjwt import TokenClient
from pkjwt.errors import InvalidClient, ServerError
from pkjwt.otel import OtelTelemetry
from pkjwt.telemetry import OFF, telemetry_for

LIFETIME = 600


class Otel:
    """An SDK wired to in-memory exporters, and the pkjwt telemetry reporting to it."""

    def __init__(self) -> None:
        self.spans = InMemorySpanExporter()
        tracer_provider = TracerProvider()
        tracer_provider.add_span_processor(SimpleSpanProcessor(self.spans))
        self.reader = InMemoryMetricReader()
        meter_provider = MeterProvider(metric_readers=[self.reader])
        self.telemetry = OtelTelemetry(
            tracer_provider=tracer_provider, meter_provider=meter_provider
        )

    def metrics(self) -> dict[str, Any]:
        """Each metric's value: a counter's sum, a histogram's data points."""
        out: dict[str, Any] = {}
        data = self.reader.get_metrics_data()
        for resource in data.resource_metrics if data else ():
            for scope in resource.scope_metrics:
                for metric in scope.metrics:
                    points = list(metric.data.data_points)
                    if metric.name.endswith("duration"):
                        out[metric.name] = points
                    else:
                        out[metric.name] = sum(p.value for p in points)
        return out


@pytest.fixture
def otel() -> Otel:
    return Otel()


@pytest.fixture
def client(make_client, otel) -> TokenClient:
    return make_client(telemetry=otel.telemetry)


def _refresh_done() -> bool:
    return not any(t.name == "pkjwt-refresh" and t.is_alive() for t in threading.enumerate())


def test_a_fetch_is_a_span_with_its_server_method_and_duration(client, otel, server):
    client.get_token()
    (span,) = otel.spans.get_finished_spans()
    assert span.name == "pkjwt.token_fetch"
    assert span.attributes["server.address"] == "127.0.0.1"
    assert span.attributes["url.full"] == server.token_url
    assert span.attributes["pkjwt.auth_method"] == "private_key_jwt"
    assert span.status.status_code is StatusCode.UNSET
    metrics = otel.metrics()
    assert metrics["pkjwt.client.cache.misses"] == 1
    assert metrics["pkjwt.client.cache.hits"] == 0
    (point,) = metrics["pkjwt.client.fetch.duration"]
    assert point.count == 1
    assert dict(point.attributes) == {"pkjwt.outcome": "ok"}


def test_cache_hits_are_counted_without_a_span(client, otel):
    client.get_token()
    for _ in range(5):
        client.get_token()
    assert len(otel.spans.get_finished_spans()) == 1
    metrics = otel.metrics()
    assert metrics["pkjwt.client.cache.hits"] == 5
    assert metrics["pkjwt.client.cache.misses"] == 1


def test_a_stale_serve_starts_a_refresh(client, otel, clock, wait_until):
    old = client.get_token()
    clock.advance(LIFETIME * 0.86)  # past the refresh point, before the leeway
    assert client.get_token() is old
    wait_until(_refresh_done, what="the background refresh")
    metrics = otel.metrics()
    assert metrics["pkjwt.client.cache.stale_serves"] == 1
    assert metrics["pkjwt.client.refreshes"] == 1
    assert metrics["pkjwt.client.refresh.failures"] == 0
    assert len(otel.spans.get_finished_spans()) == 2


def test_a_failed_refresh_shows_its_attempts_and_counts(client, otel, clock, server, wait_until):
    old = client.get_token()
    server.script = [server.error(503, "temporarily_unavailable", "maintenance")] * 10
    clock.advance(LIFETIME * 0.86)
    assert client.get_token() is old  # stale, while the refresh fails in the background
    wait_until(_refresh_done, what="the background refresh")
    metrics = otel.metrics()
    assert metrics["pkjwt.client.refresh.failures"] == 1
    assert metrics["pkjwt.client.cache.stale_serves"] == 1

    failed = otel.spans.get_finished_spans()[-1]
    assert failed.status.status_code is StatusCode.ERROR
    assert failed.attributes["error.type"] == "temporarily_unavailable"
    events = [e for e in failed.events if e.name == "pkjwt.attempt_failed"]
    assert [e.attributes["pkjwt.attempt"] for e in events] == [1, 2, 3]
    first = events[0].attributes
    assert first["http.response.status_code"] == 503
    assert first["oauth.error"] == "temporarily_unavailable"
    assert first["nhs.message_id"] == "rrt-0000-test"
    assert first["pkjwt.retry_in_s"] >= 0
    assert "pkjwt.retry_in_s" not in events[-1].attributes  # the last one was not retried
    durations = otel.metrics()["pkjwt.client.fetch.duration"]
    outcomes = sorted(dict(p.attributes).get("error.type", "ok") for p in durations)
    assert outcomes == ["ok", "temporarily_unavailable"]


def test_joins_are_counted(make_client, otel, server, wait_until):
    gate = server.gate = threading.Event()  # the first fetch cannot land until all have joined
    client = make_client(telemetry=otel.telemetry)
    threads = [threading.Thread(target=client.get_token) for _ in range(8)]
    for t in threads:
        t.start()
    wait_until(lambda: client.manager.flights.joined == 7, what="seven callers to join")
    gate.set()
    for t in threads:
        t.join(10)
    metrics = otel.metrics()
    assert metrics["pkjwt.client.cache.misses"] == 1
    assert metrics["pkjwt.client.fetch.joins"] == 7
    assert metrics["pkjwt.client.cache.hits"] == 0


def test_no_attribute_holds_a_secret(make_client, otel, server, nhs_key):
    client = make_client(telemetry=otel.telemetry)
    token = client.get_token()
    server.script = [server.error(401, "invalid_client", "bad assertion")]
    client.invalidate()
    with pytest.raises(InvalidClient):
        client.get_token()
    assertion = server.token_requests[-1].form["client_assertion"][0]
    secrets = [token.access_token, assertion, nhs_key.private_pem().decode()]
    seen: list[str] = []
    for span in otel.spans.get_finished_spans():
        seen += [str(v) for v in span.attributes.values()]
        for event in span.events:
            seen += [str(v) for v in event.attributes.values()]
    for point in otel.metrics()["pkjwt.client.fetch.duration"]:
        seen += [str(v) for v in point.attributes.values()]
    for value in seen:
        for secret in secrets:
            assert secret not in value


def test_the_async_path_reports_too(make_client, otel):
    import asyncio

    async def go() -> None:
        client = make_client(telemetry=otel.telemetry)
        await client.aget_token()
        await client.aget_token()
        await client.aclose()

    asyncio.run(go())
    assert len(otel.spans.get_finished_spans()) == 1
    assert otel.metrics()["pkjwt.client.cache.hits"] == 1


def test_off_and_the_default(make_client, otel):
    assert telemetry_for(False) is OFF
    assert telemetry_for(otel.telemetry) is otel.telemetry
    # installed: the default reports to the global providers (no-op until an SDK is set up)
    assert isinstance(telemetry_for(None), OtelTelemetry)
    client = make_client(telemetry=False)
    client.get_token()
    client.get_token()
    # off, the attach path counts nothing (a lookup and a clock read); the rest is kept
    assert client.manager.stats.hits == 0
    assert client.manager.fetches == 1
    assert otel.spans.get_finished_spans() == ()
    watched = make_client(telemetry=otel.telemetry)
    watched.get_token()
    watched.get_token()
    assert watched.manager.stats.hits == 1


def test_a_failed_foreground_fetch_is_counted(make_client, server, otel):
    server.script = [server.error(500, "server_error")] * 5
    client = make_client(telemetry=otel.telemetry)
    with pytest.raises(ServerError):
        client.get_token()
    assert client.manager.stats.fetch_failures == 1
    (span,) = otel.spans.get_finished_spans()
    assert span.attributes["error.type"] == "server_error"
