"""The server's own metrics, served at ``GET /metrics`` in the Prometheus text format (0.0.4).

Written here rather than with a client library: a handful of counters and one histogram do not
justify a runtime dependency. Every label value comes from a fixed set (the endpoints below,
the catalogue's rule ids, the OAuth error codes the server can answer); anything else is
counted as ``other``, so nothing a client sends can mint a label or grow the series.

Counting is per process: with ``--workers N`` each worker counts what it answered, and a scrape
reaches one worker (the one the kernel gives the connection).
"""

from __future__ import annotations

import os
import resource
import time
from bisect import bisect_left
from collections.abc import Callable, Iterable
from typing import Any

from ..catalogue import CATALOGUE
from .replay import ReplayGuard

__all__ = [
    "BUCKETS",
    "CONTENT_TYPE",
    "ENDPOINTS",
    "Metrics",
    "ObservedRoutes",
    "endpoint_for",
    "outcome_of",
]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

#: upper bounds (seconds) of the latency histogram: a token request takes about a millisecond;
#: the top buckets catch a replay store at its deadline (0.5 s) and a slow JWKS fetch
BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)

#: the endpoint label of each served path; every other path is ``other``
_PATHS = {
    "/oauth2/token": "token",
    "/introspect": "introspect",
    "/revoke": "revoke",
    "/jwks": "jwks",
    "/.well-known/oauth-authorization-server": "metadata",
    "/.well-known/openid-configuration": "metadata",
    "/echo": "echo",
    "/health": "health",
    "/openapi.json": "openapi",
    "/metrics": "metrics",
    "/_inspect": "inspect",
}
ENDPOINTS = (*dict.fromkeys(_PATHS.values()), "other")
_ENDPOINTS = frozenset(ENDPOINTS)
_RULES = frozenset(CATALOGUE)
#: every ``error`` the server answers (RFC 6749 5.2, RFC 6750 3.1, RFC 8707, RFC 9449, the
#: NHS rows)
_ERRORS = frozenset(
    {
        "invalid_dpop_proof",
        "use_dpop_nonce",
        "invalid_request",
        "invalid_client",
        "invalid_grant",
        "unauthorized_client",
        "unsupported_grant_type",
        "invalid_scope",
        "invalid_target",
        "invalid_token",
        "temporarily_unavailable",
        "server_error",
    }
)
#: the scope key an endpoint sets to tell :class:`ObservedRoutes` its failing rule and error
DECISION = "pkjwt.decision"


def endpoint_for(path: str) -> str:
    return _PATHS.get(path, "other")


def outcome_of(status: int) -> str:
    if status < 400:
        return "ok"
    if status == 503:
        return "unavailable"
    return "refused" if status < 500 else "error"


class Metrics:
    """Counters by (endpoint, status, rule, error), a latency histogram per endpoint, and the
    gauges read at scrape time (replay store, process). :meth:`observe` is the only per-request
    cost: two dict updates and a bisect."""

    def __init__(
        self,
        *,
        replay: ReplayGuard,
        info: dict[str, str],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._replay = replay
        self._info = info
        self._started = clock()
        self._requests: dict[tuple[str, int, str, str], int] = {}
        # per endpoint: a count per bucket (not cumulative; the last is +Inf), and the sum
        self._buckets: dict[str, list[int]] = {e: [0] * (len(BUCKETS) + 1) for e in ENDPOINTS}
        self._sums: dict[str, float] = dict.fromkeys(ENDPOINTS, 0.0)

    def observe(self, endpoint: str, status: int, rule: str, error: str, seconds: float) -> None:
        if endpoint not in _ENDPOINTS:
            endpoint = "other"
        key = (
            endpoint,
            status,
            rule if not rule or rule in _RULES else "other",
            error if not error or error in _ERRORS else "other",
        )
        requests = self._requests
        requests[key] = requests.get(key, 0) + 1
        self._buckets[endpoint][bisect_left(BUCKETS, seconds)] += 1
        self._sums[endpoint] += seconds

    def counts(self) -> dict[tuple[str, str, str, str], int]:
        """Requests by (endpoint, outcome, rule, error), as :meth:`render` shows them."""
        out: dict[tuple[str, str, str, str], int] = {}
        for (endpoint, status, rule, error), n in self._requests.items():
            key = (endpoint, outcome_of(status), rule, error)
            out[key] = out.get(key, 0) + n
        return out

    def render(self) -> bytes:
        lines: list[str] = []
        _family(lines, "pkjwt_server_info", "gauge", "This server: its profile and version.")
        lines.append(f"pkjwt_server_info{_labels(self._info.items())} 1")
        _family(
            lines,
            "pkjwt_server_requests_total",
            "counter",
            "Requests answered, by endpoint, outcome (ok, refused, unavailable, error), the "
            "rule that refused them and the OAuth error sent.",
        )
        for (endpoint, outcome, rule, error), n in sorted(self.counts().items()):
            labels = _labels(
                (("endpoint", endpoint), ("outcome", outcome), ("rule", rule), ("error", error))
            )
            lines.append(f"pkjwt_server_requests_total{labels} {n}")
        self._render_latency(lines)
        self._render_replay(lines)
        _render_process(lines, self._started)
        lines.append("")
        return "\n".join(lines).encode()

    def _render_latency(self, lines: list[str]) -> None:
        name = "pkjwt_server_request_duration_seconds"
        _family(lines, name, "histogram", "Time from a request's arrival to its answer sent.")
        for endpoint in ENDPOINTS:
            buckets = self._buckets[endpoint]
            total = sum(buckets)
            if not total:
                continue
            running = 0
            for bound, n in zip((*BUCKETS, None), buckets, strict=True):
                running += n
                le = "+Inf" if bound is None else f"{bound:g}"
                lines.append(f'{name}_bucket{{endpoint="{endpoint}",le="{le}"}} {running}')
            lines.append(f'{name}_sum{{endpoint="{endpoint}"}} {self._sums[endpoint]!r}')
            lines.append(f'{name}_count{{endpoint="{endpoint}"}} {total}')

    def _render_replay(self, lines: list[str]) -> None:
        guard = self._replay
        _family(
            lines,
            "pkjwt_server_replay_store_up",
            "gauge",
            "1 while the replay store answers, 0 from a failure until its next success.",
        )
        lines.append(f"pkjwt_server_replay_store_up {int(guard.healthy)}")
        _family(
            lines,
            "pkjwt_server_replay_store_failures_total",
            "counter",
            "Replay checks that failed (unreachable, timed out).",
        )
        lines.append(f"pkjwt_server_replay_store_failures_total {guard.failures}")
        if guard.last_failure_at is not None:
            _family(
                lines,
                "pkjwt_server_replay_store_last_failure_timestamp_seconds",
                "gauge",
                "When the replay store last failed.",
            )
            lines.append(
                "pkjwt_server_replay_store_last_failure_timestamp_seconds "
                f"{guard.last_failure_at:.3f}"
            )
        entries = replay_entries(guard.store)
        if entries is not None:
            _family(
                lines,
                "pkjwt_server_replay_store_entries",
                "gauge",
                "(client_id, jti) pairs held by this process's index, expired ones not yet "
                "reclaimed included (memory and SQLite stores; Redis cannot tell cheaply).",
            )
            lines.append(f"pkjwt_server_replay_store_entries {entries}")


def replay_entries(store: object) -> int | None:
    """The pairs a store holds, when it can say without I/O: the memory and SQLite stores
    count their in-memory index; a Redis store would have to scan the server's keys."""
    if getattr(type(store), "__len__", None) is None:
        return None
    try:
        return len(store)  # type: ignore[arg-type]
    except Exception:  # a store that cannot count is not a reason for a failed scrape
        return None


def _family(lines: list[str], name: str, kind: str, help_: str) -> None:
    lines.append(f"# HELP {name} {help_}")
    lines.append(f"# TYPE {name} {kind}")


def _labels(pairs: Iterable[tuple[str, str]]) -> str:
    # values come from fixed sets or the config; escaped anyway, as the format requires
    def escape(value: str) -> str:
        return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")

    return "{" + ",".join(f'{k}="{escape(v)}"' for k, v in pairs) + "}"


def _render_process(lines: list[str], started: float) -> None:
    """The standard process metrics that are cheap to read (Linux's /proc where needed)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    _family(lines, "process_cpu_seconds_total", "counter", "User and system CPU time.")
    lines.append(f"process_cpu_seconds_total {usage.ru_utime + usage.ru_stime:.3f}")
    _family(lines, "process_start_time_seconds", "gauge", "When this server process started.")
    lines.append(f"process_start_time_seconds {started:.3f}")
    try:
        with open("/proc/self/statm", "rb") as f:
            rss = int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        fds = len(os.listdir("/proc/self/fd"))
    except (OSError, ValueError, IndexError):
        return  # not Linux: CPU and start time only
    _family(lines, "process_resident_memory_bytes", "gauge", "Resident memory.")
    lines.append(f"process_resident_memory_bytes {rss}")
    _family(lines, "process_open_fds", "gauge", "Open file descriptors (connections included).")
    lines.append(f"process_open_fds {fds}")


class ObservedRoutes:
    """ASGI middleware: times and counts every request the framework answers (the token
    route's fast path is observed where it is served). An endpoint that refuses names the rule
    and error in ``scope[DECISION]``."""

    def __init__(self, app: Any, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # what the client gets when the app fails before answering

        async def tracked(message: Any) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, tracked)
        finally:
            rule, error = scope.get(DECISION, ("", ""))
            self.metrics.observe(
                endpoint_for(scope.get("path", "")),
                status,
                rule,
                error,
                time.perf_counter() - started,
            )
