"""(b) Per-request overhead of attaching a cached token: in-process ``MockTransport`` (server
noise out of the way), the auth step alone (no transport), and real loopback HTTP; overhead =
candidate - plain client, paired per interleaved round."""

from __future__ import annotations

import functools
import statistics
from collections.abc import Callable
from typing import Any

import httpx
import httpx2

import pkjwt
from pkjwt.integrations.httpx2 import Httpx2Auth

from ..common import Candidate, Stats, format_us, measure, table
from ..tokenserver import TokenServer
from .clients import Keys, Params, al_client, al_fetch, auth_step, pk_client, verdict

TARGET_OVERHEAD = 0.25
MOCK_BASE = "http://mock.invalid"


def _paired_overhead_ns(cand: Stats, base: Stats) -> float:
    """Median over rounds of (candidate round median - baseline round median)."""
    diffs = [c - b for c, b in zip(cand.round_medians_ns, base.round_medians_ns, strict=True)]
    return float(statistics.median(diffs))


class _MockApi:
    """Handler for httpx/httpx2 MockTransport: /token answers a token, /api answers ok."""

    def __init__(self, module: Any) -> None:
        self.module = module
        self.api = 0
        self.no_bearer = 0
        self.tokens = 0

    def __call__(self, request: Any) -> Any:
        if request.url.path == "/token":
            self.tokens += 1
            return self.module.Response(
                200,
                json={
                    "access_token": f"mock-{self.tokens}",
                    "token_type": "Bearer",
                    "expires_in": 3600,
                },
            )
        self.api += 1
        if not request.headers.get("authorization", "").startswith("Bearer "):
            self.no_bearer += 1
        return self.module.Response(200, text="ok")


def _overhead_table(
    stats: dict[str, Stats], baselines: dict[str, str], title: str
) -> tuple[str, dict[str, float]]:
    rows = []
    overheads: dict[str, float] = {}
    for st in stats.values():
        base_name = baselines.get(st.name)
        if base_name is None:
            over, rel = "-", "1.00x"
        else:
            base = stats[base_name]
            ov = _paired_overhead_ns(st, base)
            overheads[st.name] = ov
            over = f"{ov / 1e3:+.1f}"
            rel = f"{st.median_ns / base.median_ns:.2f}x"
        rows.append(
            (
                st.name,
                str(st.calls),
                format_us(st.median_ns),
                format_us(st.p10_ns),
                format_us(st.p90_ns),
                over,
                rel,
                base_name or "",
            )
        )
    headers = (
        "candidate",
        "calls",
        "median us",
        "p10 us",
        "p90 us",
        "overhead us",
        "x plain",
        "plain",
    )
    return table(headers, rows, title), overheads


def _overhead_candidates(
    keys: Keys, token_url: str, api_url: str, per_round: int, mock: bool
) -> tuple[list[Candidate], list[Callable[[], None]], dict[str, _MockApi]]:
    """The five clients, each with a warm token; returns candidates and closers."""
    handlers: dict[str, _MockApi] = {}

    def transport(name: str, module: Any) -> dict[str, Any]:
        if not mock:
            return {}
        handlers[name] = _MockApi(module)
        return {"transport": module.MockTransport(handlers[name])}

    closers: list[Callable[[], None]] = []
    if mock:
        tc_http = httpx.Client(**transport("pkjwt-token", httpx))
        closers.append(tc_http.close)
        tc = pk_client(keys, token_url, http_client=tc_http)
    else:
        tc = pk_client(keys, token_url)
    closers.append(tc.close)
    tc.get_token()  # warm

    plain = httpx.Client(**transport("httpx", httpx))
    pk = httpx.Client(auth=pkjwt.HttpxAuth(tc), **transport("httpx+pkjwt", httpx))
    plain2 = httpx2.Client(**transport("httpx2", httpx2))
    pk2 = httpx2.Client(auth=Httpx2Auth(tc), **transport("httpx2+pkjwt", httpx2))
    al = al_client(keys, token_url, **transport("httpx2+authlib", httpx2))
    al_fetch(al, token_url)  # warm
    for c in (plain, pk, plain2, pk2, al):
        closers.append(c.close)
    warm = 50
    notes = {
        "httpx": "httpx.Client(), no auth",
        "httpx+pkjwt": "httpx.Client(auth=pkjwt.HttpxAuth(token_client)), token cached",
        "httpx2": "httpx2.Client(), no auth (the HTTP stack Authlib 1.9 uses)",
        "httpx2+pkjwt": "httpx2.Client(auth=Httpx2Auth(token_client)), token cached",
        "httpx2+authlib": "authlib OAuth2Client (httpx2), token cached (ensure_active_token)",
    }
    clients = {
        "httpx": plain,
        "httpx+pkjwt": pk,
        "httpx2": plain2,
        "httpx2+pkjwt": pk2,
        "httpx2+authlib": al,
    }
    cands = [
        Candidate(name, functools.partial(client.get, api_url), per_round, warm, notes[name])
        for name, client in clients.items()
    ]
    # check once: every authenticated client sent a bearer token and got 200
    for name, client in clients.items():
        resp = client.get(api_url)
        if resp.status_code != 200:
            raise AssertionError(f"{name}: HTTP {resp.status_code}")
    return cands, closers, handlers


def _auth_step(keys: Keys, p: Params) -> tuple[dict[str, Stats], dict[str, str]]:
    """Only the auth step (what runs between building a request and sending it): the
    client's ``Auth.sync_auth_flow`` up to the request it yields; for Authlib also the
    ``ensure_active_token`` check its ``request()`` runs first."""
    token_url, api_url = f"{MOCK_BASE}/token", f"{MOCK_BASE}/api"
    tc_http = httpx.Client(transport=httpx.MockTransport(_MockApi(httpx)))
    tc = pk_client(keys, token_url, http_client=tc_http)
    tc.get_token()
    al = al_client(keys, token_url, transport=httpx2.MockTransport(_MockApi(httpx2)))
    al_fetch(al, token_url)
    req, req2 = httpx.Request("GET", api_url), httpx2.Request("GET", api_url)

    def al_step() -> Any:
        if not al.ensure_active_token(al.token):
            raise AssertionError("authlib: token not active")
        flow = al.token_auth.sync_auth_flow(req2)
        sent = next(flow)
        flow.close()
        return sent

    fns = {
        "httpx.Auth": auth_step(httpx.Auth(), req),
        "HttpxAuth": auth_step(pkjwt.HttpxAuth(tc), req),
        "httpx2.Auth": auth_step(httpx2.Auth(), req2),
        "Httpx2Auth": auth_step(Httpx2Auth(tc), req2),
        "authlib": al_step,
    }
    notes = {
        "httpx.Auth": "httpx's no-op auth flow (what a client without auth runs)",
        "HttpxAuth": "pkjwt.HttpxAuth: cached token from TokenManager, Authorization header set",
        "httpx2.Auth": "httpx2's no-op auth flow",
        "Httpx2Auth": "pkjwt Httpx2Auth, same flow on httpx2",
        "authlib": "ensure_active_token(token) + OAuth2Auth flow (rebuilds the request)",
    }
    for name in ("HttpxAuth", "Httpx2Auth", "authlib"):
        sent = fns[name]()
        if not sent.headers.get("authorization", "").startswith("Bearer "):
            raise AssertionError(f"{name}: no bearer token on the request")
    per_round = p.mock_per_round * 10
    cands = [Candidate(n, f, per_round, 200, notes[n]) for n, f in fns.items()]
    stats = measure(cands, p.mock_rounds)
    tc.close()
    tc_http.close()
    al.close()
    return stats, {"HttpxAuth": "httpx.Auth", "Httpx2Auth": "httpx2.Auth", "authlib": "httpx2.Auth"}


def bench_overhead(keys: Keys, p: Params) -> dict[str, Any]:
    print("-- (b) per-request overhead of attaching a cached token (GET /api)")
    baselines = {"httpx+pkjwt": "httpx", "httpx2+pkjwt": "httpx2", "httpx2+authlib": "httpx2"}
    results: dict[str, Any] = {}

    # in-process transport
    cands, closers, handlers = _overhead_candidates(
        keys, f"{MOCK_BASE}/token", f"{MOCK_BASE}/api", p.mock_per_round, mock=True
    )
    stats = measure(cands, p.mock_rounds)
    for c in closers:
        c()
    for name in ("httpx+pkjwt", "httpx2+pkjwt", "httpx2+authlib"):
        if handlers[name].no_bearer:
            raise AssertionError(f"{name}: {handlers[name].no_bearer} requests without a token")
    tokens = {n: h.tokens for n, h in handlers.items() if h.tokens}
    text, over = _overhead_table(
        stats,
        baselines,
        "in-process MockTransport (median per request; overhead = paired per-round median "
        "difference to its plain client)",
    )
    print(text)
    print(f"   token requests during the timed section: {tokens} (1 = the warm-up fetch)")
    results["mock"] = _overhead_summary(stats, over)

    # the auth step alone, without any transport
    stats, base = _auth_step(keys, p)
    text, over = _overhead_table(stats, base, "auth step alone, no transport (median per request)")
    print()
    print(text)
    pk, pk2, al = over["HttpxAuth"], over["Httpx2Auth"], over["authlib"]
    results["auth_step"] = {
        "pkjwt_overhead_us": pk / 1e3,
        "pkjwt_httpx2_overhead_us": pk2 / 1e3,
        "authlib_overhead_us": al / 1e3,
        "ratio": pk / al,
        "ratio_httpx2": pk2 / al,
        "candidates": [s.as_dict() for s in stats.values()],
    }
    print(
        f"   auth step: pkjwt {pk / 1e3:.2f} us (httpx) / {pk2 / 1e3:.2f} us (httpx2) over a "
        f"no-op auth, authlib {al / 1e3:.2f} us: ratio {pk / al:.3f} / {pk2 / al:.3f}"
    )

    # real loopback HTTP
    with TokenServer(expires_in=3600, token_delay=0.0, require_bearer=False) as server:
        cands, closers, _ = _overhead_candidates(
            keys, server.token_url, server.api_url, p.loop_per_round, mock=False
        )
        server.reset()
        stats = measure(cands, p.loop_rounds)
        st = server.stats()
        for c in closers:
            c()
    text, over = _overhead_table(
        stats,
        baselines,
        "loopback HTTP to the token server's /api (child process, keep-alive)",
    )
    print()
    print(text)
    plain_calls = stats["httpx"].calls + stats["httpx2"].calls
    print(
        f"   server: {st['api_requests']} API requests, {st['api_unauthorized']} without a "
        f"token (the {plain_calls} plain ones + warm-up), {st['token_requests']} token requests"
    )
    results["loopback"] = _overhead_summary(stats, over)

    mock = results["mock"]
    print()
    print(
        f"   overhead pkjwt (httpx) {mock['pkjwt_overhead_us']:.1f} us vs authlib "
        f"{mock['authlib_overhead_us']:.1f} us: ratio {mock['ratio']:.2f} "
        f"(target <= {TARGET_OVERHEAD}) -> {verdict(mock['meets_target'])}"
    )
    print(
        f"   same HTTP stack (httpx2): pkjwt {mock['pkjwt_httpx2_overhead_us']:.1f} us, ratio "
        f"{mock['ratio_httpx2']:.2f}; loopback ratio {results['loopback']['ratio']:.2f} "
        "(server noise dominates there)"
    )
    print()
    results["target"] = TARGET_OVERHEAD
    results["meets_target"] = mock["meets_target"]
    return results


def _overhead_summary(stats: dict[str, Stats], over: dict[str, float]) -> dict[str, Any]:
    pk, pk2, al = over["httpx+pkjwt"], over["httpx2+pkjwt"], over["httpx2+authlib"]
    ratio = pk / al if al > 0 else float("inf")
    return {
        "pkjwt_overhead_us": pk / 1e3,
        "pkjwt_httpx2_overhead_us": pk2 / 1e3,
        "authlib_overhead_us": al / 1e3,
        "ratio": ratio,
        "ratio_httpx2": pk2 / al if al > 0 else float("inf"),
        "meets_target": ratio <= TARGET_OVERHEAD,
        "candidates": [s.as_dict() for s in stats.values()],
    }
