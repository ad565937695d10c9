"""What client telemetry costs on the attach path: a cached token handed out with telemetry
off, with OpenTelemetry's API and no SDK (the default when ``pkjwt[otel]`` is installed), and
with a real SDK collecting spans and metrics; Authlib's ``ensure_active_token`` beside them.

Each sample times a batch of calls (a single call is a few hundred nanoseconds: a per-call
clock read would weigh as much as the call). Candidates:

* ``pkjwt-off``: ``TokenClient(telemetry=False).get_token()`` on a cached token.
* ``pkjwt-otel-api``: the same with the default telemetry (the API's no-op providers).
* ``pkjwt-otel-sdk``: the same reporting to an SDK ``TracerProvider`` and ``MeterProvider``
  with in-memory exporters (collected between rounds: the callbacks run then, not per call).
* ``HttpxAuth-off`` / ``HttpxAuth-otel-sdk``: the auth step of ``pkjwt.HttpxAuth`` (cached
  token, header set), off and on.
* ``authlib``: ``OAuth2Client.ensure_active_token(token)``, the check Authlib runs per request.

Off, a manager counts no hits: its attach path stays a lookup and a clock read. Watched, it
adds one integer per hit. Target (issue 14): telemetry on within 5 % of off. Informational:
never gates CI.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import httpx
from authlib.integrations.httpx_client import OAuth2Client
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import pkjwt
from pkjwt.otel import OtelTelemetry

from .client.clients import auth_step
from .common import (
    Candidate,
    environment,
    format_table,
    measure,
    print_versions,
    standalone_main,
    table,
    versions,
)

NAME = "telemetry"
TOKEN_URL = "https://as.example/token"
BATCH = 200
FULL = (30, 20)  # rounds, batches per round
QUICK = (6, 5)


def _mock(request: httpx.Request) -> httpx.Response:
    return httpx.Response(200, json={"access_token": "t" * 40, "expires_in": 3600})


def _client(telemetry: Any) -> pkjwt.TokenClient:
    client = pkjwt.TokenClient(
        token_url=TOKEN_URL,
        client_id="bench",
        client_secret="s",
        http_client=httpx.Client(transport=httpx.MockTransport(_mock)),
        telemetry=telemetry,
    )
    client.get_token()
    return client


def _batch(fn: Callable[[], object]) -> Callable[[], object]:
    def many() -> object:
        for _ in range(BATCH):
            fn()
        return None

    return many


def _auth_step(client: pkjwt.TokenClient) -> Callable[[], object]:
    return auth_step(pkjwt.HttpxAuth(client), httpx.Request("GET", "https://api.example/x"))


def _sdk() -> tuple[OtelTelemetry, InMemoryMetricReader, InMemorySpanExporter]:
    spans = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    reader = InMemoryMetricReader()
    telemetry = OtelTelemetry(
        tracer_provider=tracer_provider, meter_provider=MeterProvider(metric_readers=[reader])
    )
    return telemetry, reader, spans


def run(quick: bool = False) -> dict[str, Any]:
    rounds, per_round = QUICK if quick else FULL
    mode = "quick" if quick else "full"
    print(f"== {NAME}: attaching a cached token, telemetry off vs on ({mode}, {rounds} rounds)")
    print_versions(versions("pkjwt", "opentelemetry-api", "opentelemetry-sdk", "authlib"))
    sdk, reader, spans = _sdk()
    off, api, on = _client(False), _client(None), _client(sdk)
    al = OAuth2Client("bench", "s", token_endpoint=TOKEN_URL)
    al.token = {"access_token": "t" * 40, "token_type": "Bearer", "expires_at": time.time() + 3600}
    fns = {
        "pkjwt-off": off.get_token,
        "pkjwt-otel-api": api.get_token,
        "pkjwt-otel-sdk": on.get_token,
        "HttpxAuth-off": _auth_step(off),
        "HttpxAuth-otel-sdk": _auth_step(on),
        "authlib": lambda: al.ensure_active_token(al.token),
    }
    candidates = [Candidate(n, _batch(f), per_round, 2) for n, f in fns.items()]
    stats = measure(candidates, rounds)
    collected = reader.get_metrics_data()  # the SDK reads the counts once, here
    print(format_table(stats, "pkjwt-off", title=f"per batch of {BATCH} calls"))
    per_call = {n: s.median_ns / BATCH for n, s in stats.items()}
    ratio = per_call["pkjwt-otel-sdk"] / per_call["pkjwt-off"]
    ratio_api = per_call["pkjwt-otel-api"] / per_call["pkjwt-off"]
    ratio_auth = per_call["HttpxAuth-otel-sdk"] / per_call["HttpxAuth-off"]
    rows = [(n, f"{ns:.0f}") for n, ns in per_call.items()]
    print(table(("candidate", "ns per call"), rows))
    met = max(ratio, ratio_auth) <= 1.05
    extra = per_call["pkjwt-otel-sdk"] - per_call["pkjwt-off"]
    print(
        f"   attaching a token to a request (HttpxAuth) on / off: {ratio_auth:.3f}; "
        f"get_token() alone: {ratio:.3f} (SDK), {ratio_api:.3f} (API only), +{extra:.0f} ns "
        f"(the hit count a watched manager keeps); target <= 1.05 for both: "
        f"{'MET' if met else 'NOT MET'}"
    )
    hits = _hits(collected)
    print(f"   the SDK saw {hits} cache hits and {len(spans.get_finished_spans())} fetch span(s)")
    print()
    for client in (off, api, on):
        client.close()
    al.close()
    return {
        "benchmark": NAME,
        "mode": mode,
        "environment": environment(),
        "ns_per_call": per_call,
        "ratio_sdk": ratio,
        "ratio_api": ratio_api,
        "ratio_httpx_auth": ratio_auth,
        "target_met": met,
        "candidates": [s.as_dict() for s in stats.values()],
    }


def _hits(data: Any) -> int:
    for resource in data.resource_metrics if data else ():
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                if metric.name == "pkjwt.client.cache.hits":
                    return int(sum(p.value for p in metric.data.data_points))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return standalone_main("bench_telemetry", __doc__, NAME, run, argv)


if __name__ == "__main__":
    raise SystemExit(main())
