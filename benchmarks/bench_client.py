"""Token client benchmarks: pkjwt side by side with Authlib 1.9, in one run, as ratios.

Both clients use the same RSA-4096 key and sign RS512 client assertions (``private_key_jwt``,
NHS shape: ``kid`` header). Authlib is configured as its documentation shows: the **PEM text**
as the client secret and ``PrivateKeyJWT(token_endpoint, alg="RS512")`` as the token endpoint
auth method of ``authlib.integrations.httpx_client.OAuth2Client`` / ``AsyncOAuth2Client``
(passing the instance is equivalent to the docstring's ``token_endpoint_auth_method=
"private_key_jwt"`` + ``register_client_auth_method(PrivateKeyJWT(...))``), with
``token_endpoint`` and ``grant_type="client_credentials"`` as client metadata so that it
refetches expired client-credentials tokens itself (``ensure_active_token``). pkjwt is
``TokenClient(token_url=..., client_id=..., key=<Key loaded once>, profile="nhs")`` with
``HttpxAuth`` on an ``httpx`` client.

Note: Authlib 1.9 drives ``httpx2`` (the fork) when it is installed, as it is here, so its
clients are ``httpx2.Client`` subclasses; its overhead is measured against plain ``httpx2``,
and pkjwt's against plain ``httpx``. pkjwt on ``httpx2`` (``Httpx2Auth``) is shown too, as
``pkjwt/httpx2``, so that every comparison also exists on the same HTTP stack.

(a) cold token fetch against a local server (no server delay): a new client per fetch, and a
    reused client (``fetch_token()`` again);
(b) per-request overhead of attaching a cached token: in-process ``MockTransport`` (server
    noise out of the way), the auth step alone (no transport), and real loopback HTTP;
    overhead = candidate - plain client, paired per interleaved round; target
    pkjwt/Authlib <= 0.25 (MockTransport table, pkjwt on httpx);
(c) token requests caused by 32 threads sharing a sync client, and by 1,000 asyncio tasks
    sharing an async client, released together just after the token expired (server delay
    50 ms, connection pools warmed first); target 1;
(d) request latency while tokens expire every 2 s (4 threads, server token delay 50 ms): p99 of
    requests overlapping a token fetch or a token's expiry instant (each widened by 100 ms)
    against p99 of the other requests; target <= 1.2x. The stricter "in-fetch" p99 (requests
    in flight while a token request is) is shown beside it.

The token server (:mod:`benchmarks.tokenserver`) runs in a child process on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import functools
import gc
import statistics
import threading
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import metadata
from typing import Any

import httpx
import httpx2
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

import pkjwt
from pkjwt.integrations.httpx2 import Httpx2Auth

from .common import (
    Candidate,
    Stats,
    environment,
    format_table,
    measure,
    percentile,
    standalone_main,
)
from .tokenserver import TokenServer

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from authlib.integrations.httpx_client import AsyncOAuth2Client, OAuth2Client
    from authlib.oauth2.rfc7523 import PrivateKeyJWT

NAME = "client"
KEY_BITS = 4096
KID = "test-1"
CLIENT_ID = "bench-api-key-0123456789abcdef"
#: the token server's answer time in (c) and (d), to imitate a real server
TOKEN_DELAY = 0.05
#: token lifetime in (d)
LIFETIME = 2
#: Authlib's 60 s default leeway is 10% of NHS's ~600 s tokens; scaled the same for (d)
AUTHLIB_LEEWAY_D = 0.1 * LIFETIME
#: a request is "near" a token fetch or expiry when it overlaps it widened by this (seconds)
MARGIN = 0.1
STORM_THREADS = 32
STORM_TASKS = 1000
LATENCY_THREADS = 4

TARGET_OVERHEAD = 0.25
TARGET_STORM = 1
TARGET_P99 = 1.2

MOCK_BASE = "http://mock.invalid"


@dataclass(frozen=True, slots=True)
class Params:
    cold_rounds: int
    cold_fast: int  # pkjwt fetches per round
    cold_slow: int  # Authlib fetches per round
    mock_rounds: int
    mock_per_round: int
    loop_rounds: int
    loop_per_round: int
    storm_trials: int
    latency_segments: int
    segment_seconds: float


FULL = Params(8, 10, 2, 20, 200, 10, 100, 3, 4, 6.0)
QUICK = Params(3, 5, 1, 5, 100, 4, 50, 1, 1, 3.5)


# -- setup ----------------------------------------------------------------------------------------


class Keys:
    """One RSA-4096 key: PEM text for Authlib (as its docs), a pkjwt Key loaded once."""

    def __init__(self) -> None:
        native = rsa.generate_private_key(public_exponent=65537, key_size=KEY_BITS)
        self.pem_text = native.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode("ascii")
        self.key = pkjwt.load_key(self.pem_text, kid=KID)


def pk_client(keys: Keys, token_url: str, **kw: Any) -> pkjwt.TokenClient:
    return pkjwt.TokenClient(
        token_url=token_url, client_id=CLIENT_ID, key=keys.key, profile="nhs", **kw
    )


def al_client(keys: Keys, token_url: str, cls: Any = OAuth2Client, **kw: Any) -> Any:
    """Authlib as documented: PEM text as client secret, PrivateKeyJWT(token_url, alg)."""
    return cls(
        CLIENT_ID,
        keys.pem_text,
        token_endpoint_auth_method=PrivateKeyJWT(token_url, alg="RS512", headers={"kid": KID}),
        token_endpoint=token_url,
        grant_type="client_credentials",
        **kw,
    )


def al_fetch(client: Any, token_url: str) -> Any:
    return client.fetch_token(token_url, grant_type="client_credentials")


# -- formatting -----------------------------------------------------------------------------------


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]], title: str = "") -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]

    def line(cells: Sequence[str]) -> str:
        first = cells[0].ljust(widths[0])
        rest = (c.rjust(w) for c, w in zip(cells[1:], widths[1:], strict=True))
        return "  ".join((first, *rest))

    out = [title] if title else []
    out.append(line(headers))
    out.append("  ".join("-" * w for w in widths))
    out.extend(line(r) for r in rows)
    return "\n".join(out)


def _us(ns: float) -> str:
    us = ns / 1e3
    return f"{us:.1f}" if us < 1000 else f"{us:.0f}"


def _ms(seconds: float) -> str:
    ms = seconds * 1e3
    return f"{ms:.2f}" if ms < 10 else f"{ms:.1f}"


def _verdict(ok: bool) -> str:
    return "MET" if ok else "NOT MET"


def _versions() -> dict[str, str]:
    out = {}
    for dist in ("pkjwt", "authlib", "httpx", "httpx2", "cryptography", "joserfc"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = "not installed"
    return out


def _paired_overhead_ns(cand: Stats, base: Stats) -> float:
    """Median over rounds of (candidate round median - baseline round median)."""
    diffs = [c - b for c, b in zip(cand.round_medians_ns, base.round_medians_ns, strict=True)]
    return float(statistics.median(diffs))


# -- (a) cold fetch -------------------------------------------------------------------------------


def bench_cold(keys: Keys, p: Params) -> dict[str, Any]:
    print("-- (a) cold token fetch, local server (no delay), RSA-4096 RS512")
    with TokenServer(expires_in=3600, token_delay=0.0) as server:
        url = server.token_url
        reused_pk = pk_client(keys, url)
        reused_al = al_client(keys, url)

        def pk_new() -> object:
            with pk_client(keys, url) as c:
                return c.fetch_token()

        def al_new() -> object:
            with al_client(keys, url) as c:
                return al_fetch(c, url)

        cands = [
            Candidate(
                "pkjwt-new-client",
                pk_new,
                p.cold_fast,
                2,
                "TokenClient(token_url, client_id, key=Key, profile='nhs').fetch_token(), "
                "then close",
            ),
            Candidate(
                "authlib-new-client",
                al_new,
                p.cold_slow,
                1,
                "OAuth2Client(id, PEM text, PrivateKeyJWT(url, alg='RS512')).fetch_token(...), "
                "then close",
            ),
            Candidate(
                "pkjwt-reused-client",
                reused_pk.fetch_token,
                p.cold_fast,
                2,
                "the same TokenClient, fetch_token() again (keep-alive connection)",
            ),
            Candidate(
                "authlib-reused-client",
                lambda: al_fetch(reused_al, url),
                p.cold_slow,
                1,
                "the same OAuth2Client, fetch_token(url, grant_type=...) again",
            ),
        ]
        verification: dict[str, str] = {}
        for cand in cands:
            server.reset()
            cand.fn()
            st = server.stats()
            assertion = st["last_assertion"] or {}
            hdr, clm = assertion.get("header", {}), assertion.get("claims", {})
            problems = []
            if st["token_requests"] != 1:
                problems.append(f"{st['token_requests']} token requests")
            if hdr.get("alg") != "RS512":
                problems.append(f"alg={hdr.get('alg')}")
            if hdr.get("kid") != KID:
                problems.append(f"kid={hdr.get('kid')}")
            if clm.get("iss") != CLIENT_ID or clm.get("sub") != CLIENT_ID:
                problems.append("iss/sub != client_id")
            if problems:
                raise AssertionError(f"{cand.name}: {', '.join(problems)}")
            verification[cand.name] = (
                f"ok: alg={hdr.get('alg')} kid={hdr.get('kid')} typ={hdr.get('typ')} "
                f"aud={'token URL' if clm.get('aud') == url else clm.get('aud')} "
                f"lifetime={clm.get('exp', 0) - clm.get('iat', clm.get('exp', 0) - 300)} s"
            )
        width = max(len(n) for n in verification)
        for name, verdict in verification.items():
            print(f"   verified {name.ljust(width)}  {verdict}")
        stats = measure(cands, p.cold_rounds)
        reused_pk.close()
        reused_al.close()
    print(format_table(stats, "pkjwt-new-client", title="per fetch (ms)"))
    new_ratio = stats["authlib-new-client"].median_ns / stats["pkjwt-new-client"].median_ns
    reused_ratio = stats["authlib-reused-client"].median_ns / stats["pkjwt-reused-client"].median_ns
    print(
        f"   authlib / pkjwt: {new_ratio:.1f}x with a new client, {reused_ratio:.1f}x with a "
        "reused client"
    )
    print()
    return {
        "authlib_over_pkjwt_new_client": new_ratio,
        "authlib_over_pkjwt_reused_client": reused_ratio,
        "verification": verification,
        "candidates": [st.as_dict(stats["pkjwt-new-client"]) for st in stats.values()],
    }


# -- (b) per-request overhead ---------------------------------------------------------------------


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
                _us(st.median_ns),
                _us(st.p10_ns),
                _us(st.p90_ns),
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
    return _table(headers, rows, title), overheads


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

    def step(auth: Any, request: Any) -> Callable[[], Any]:
        def fn() -> Any:
            flow = auth.sync_auth_flow(request)
            sent = next(flow)
            flow.close()
            return sent

        return fn

    def al_step() -> Any:
        if not al.ensure_active_token(al.token):
            raise AssertionError("authlib: token not active")
        flow = al.token_auth.sync_auth_flow(req2)
        sent = next(flow)
        flow.close()
        return sent

    fns = {
        "httpx.Auth": step(httpx.Auth(), req),
        "HttpxAuth": step(pkjwt.HttpxAuth(tc), req),
        "httpx2.Auth": step(httpx2.Auth(), req2),
        "Httpx2Auth": step(Httpx2Auth(tc), req2),
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
    table, over = _overhead_table(
        stats,
        baselines,
        "in-process MockTransport (median per request; overhead = paired per-round median "
        "difference to its plain client)",
    )
    print(table)
    print(f"   token requests during the timed section: {tokens} (1 = the warm-up fetch)")
    results["mock"] = _overhead_summary(stats, over)

    # the auth step alone, without any transport
    stats, base = _auth_step(keys, p)
    table, over = _overhead_table(stats, base, "auth step alone, no transport (median per request)")
    print()
    print(table)
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
    table, over = _overhead_table(
        stats,
        baselines,
        "loopback HTTP to the token server's /api (child process, keep-alive)",
    )
    print()
    print(table)
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
        f"(target <= {TARGET_OVERHEAD}) -> {_verdict(mock['meets_target'])}"
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


# -- (c) refresh storm ----------------------------------------------------------------------------

#: (label, HTTP stack) of the clients in the storm; "pkjwt/httpx2" runs pkjwt on Authlib's stack
STORM_CLIENTS = ("pkjwt", "pkjwt/httpx2", "authlib")


def _expire(server: TokenServer, warm: Callable[[], object], api: Callable[[], object]) -> None:
    """Get a 1 s token, make one API request (connection pool warm, as in a running service),
    then wait until the token has expired (pkjwt stops using it at 0.9 s, Authlib at once)."""
    server.configure(expires_in=1, token_delay=TOKEN_DELAY)
    warm()
    api()
    server.configure(expires_in=3600)
    time.sleep(1.25)
    server.reset()


def _storm_threads(server: TokenServer, http: Any) -> tuple[int, int, float]:
    barrier = threading.Barrier(STORM_THREADS + 1)
    codes: list[int] = []
    lock = threading.Lock()

    def worker() -> None:
        barrier.wait()
        try:
            code = http.get(server.api_url).status_code
        except Exception as exc:
            code = -1
            print(f"   ! {type(exc).__name__}: {exc}")
        with lock:
            codes.append(code)

    threads = [threading.Thread(target=worker) for _ in range(STORM_THREADS)]
    for t in threads:
        t.start()
    barrier.wait()
    t0 = time.perf_counter()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    return server.token_requests, sum(c == 200 for c in codes), wall


def storm_sync(keys: Keys, server: TokenServer, lib: str) -> tuple[int, int, float]:
    url, api = server.token_url, server.api_url
    if lib.startswith("pkjwt"):
        tc = pk_client(keys, url)
        if lib == "pkjwt":
            http: Any = httpx.Client(auth=pkjwt.HttpxAuth(tc), timeout=60)
        else:
            http = httpx2.Client(auth=Httpx2Auth(tc), timeout=60)
        with http:
            _expire(server, tc.get_token, lambda: http.get(api))
            result = _storm_threads(server, http)
        tc.close()
        return result
    with al_client(keys, url, timeout=60) as http:
        _expire(server, lambda: al_fetch(http, url), lambda: http.get(api))
        return _storm_threads(server, http)


async def _storm_tasks(server: TokenServer, http: Any) -> tuple[int, int, float]:
    t0 = time.perf_counter()
    results = await asyncio.gather(
        *(http.get(server.api_url) for _ in range(STORM_TASKS)), return_exceptions=True
    )
    wall = time.perf_counter() - t0
    ok = sum(getattr(r, "status_code", 0) == 200 for r in results)
    errors = {type(r).__name__ for r in results if isinstance(r, BaseException)}
    if errors:
        print(f"   ! errors: {sorted(errors)}")
    return server.token_requests, ok, wall


async def _expire_async(server: TokenServer, warm: Any, http: Any) -> None:
    server.configure(expires_in=1, token_delay=TOKEN_DELAY)
    await warm()
    await http.get(server.api_url)
    server.configure(expires_in=3600)
    await asyncio.sleep(1.25)
    server.reset()


async def _storm_async(keys: Keys, server: TokenServer, lib: str) -> tuple[int, int, float]:
    url = server.token_url
    if lib.startswith("pkjwt"):
        tc = pk_client(keys, url)
        if lib == "pkjwt":
            http: Any = httpx.AsyncClient(auth=pkjwt.HttpxAuth(tc), timeout=60)
        else:
            http = httpx2.AsyncClient(auth=Httpx2Auth(tc), timeout=60)
        async with http:
            await _expire_async(server, tc.aget_token, http)
            result = await _storm_tasks(server, http)
        await tc.aclose()
        return result
    async with al_client(keys, url, cls=AsyncOAuth2Client, timeout=60) as http:
        await _expire_async(
            server, lambda: http.fetch_token(url, grant_type="client_credentials"), http
        )
        return await _storm_tasks(server, http)


def storm_async(keys: Keys, server: TokenServer, lib: str) -> tuple[int, int, float]:
    return asyncio.run(_storm_async(keys, server, lib))


def bench_storm(keys: Keys, p: Params) -> dict[str, Any]:
    print(
        f"-- (c) refresh storm: token just expired, server token delay "
        f"{TOKEN_DELAY * 1e3:.0f} ms, {p.storm_trials} trial(s) each"
    )
    scenarios = [
        (f"{STORM_THREADS} threads, shared sync client", storm_sync, STORM_THREADS),
        (f"{STORM_TASKS:,} asyncio tasks, shared async client", storm_async, STORM_TASKS),
    ]
    out: dict[str, Any] = {}
    rows = []

    def cell(values: Sequence[float]) -> str:
        if len(values) == 1:
            return f"{values[0]:g}"
        return f"{statistics.median(values):g} ({min(values):g}-{max(values):g})"

    with TokenServer(expires_in=3600, token_delay=TOKEN_DELAY) as server:
        for label, fn, n in scenarios:
            res: dict[str, list[tuple[int, int, float]]] = {c: [] for c in STORM_CLIENTS}
            for trial in range(p.storm_trials):
                k = trial % len(STORM_CLIENTS)
                for lib in STORM_CLIENTS[k:] + STORM_CLIENTS[:k]:
                    res[lib].append(fn(keys, server, lib))
            out[label] = {}
            for i, lib in enumerate(STORM_CLIENTS):
                counts = [r[0] for r in res[lib]]
                oks = [r[1] for r in res[lib]]
                walls = [r[2] for r in res[lib]]
                rows.append(
                    (
                        label if i == 0 else "",
                        lib,
                        cell(counts),
                        f"{min(oks)}/{n}",
                        f"{statistics.median(walls):.2f}",
                    )
                )
                out[label][lib] = {"token_requests": counts, "ok": oks, "burst_seconds": walls}
    headers = ("scenario", "client", "token requests", "200s (worst)", "burst s")
    print(_table(headers, rows, "token requests at the server (median (min-max) over trials)"))
    print(
        "   pkjwt = HttpxAuth on httpx; pkjwt/httpx2 = Httpx2Auth on httpx2 (Authlib's stack);\n"
        "   burst s = from release to the last answer (median); each client's pool was warmed "
        "with one API request first"
    )
    pk_runs = [v for scen in out.values() for lib, v in scen.items() if lib.startswith("pkjwt")]
    worst = max(max(v["token_requests"]) for v in pk_runs)
    sizes = [n for _, _, n in scenarios]
    all_ok = all(
        min(v["ok"]) == n
        for scen, n in zip(out.values(), sizes, strict=True)
        for v in scen.values()
    )
    met = worst <= TARGET_STORM and all_ok
    print(
        f"   pkjwt token requests per burst: at most {worst} (target {TARGET_STORM}) -> "
        f"{_verdict(met)}"
    )
    print()
    return {"scenarios": out, "target": TARGET_STORM, "pkjwt_worst": worst, "meets_target": met}


# -- (d) latency across expiry --------------------------------------------------------------------


#: clients in (d): pkjwt on httpx, pkjwt on httpx2 (Authlib's HTTP stack), Authlib
LATENCY_CLIENTS = ("pkjwt", "pkjwt/httpx2", "authlib")
_GROUPS = ("steady", "near_fetch", "near_expiry", "boundary", "in_fetch")


def _run_segment(
    keys: Keys, server: TokenServer, lib: str, seconds: float
) -> tuple[list[tuple[float, float, int, int]], list[list[float]]]:
    url = server.token_url
    server.configure(expires_in=LIFETIME, token_delay=TOKEN_DELAY, reset=True)
    tc: pkjwt.TokenClient | None = None
    http: Any
    if lib.startswith("pkjwt"):
        tc = pk_client(keys, url)
        if lib == "pkjwt":
            http = httpx.Client(auth=pkjwt.HttpxAuth(tc), timeout=60)
        else:
            http = httpx2.Client(auth=Httpx2Auth(tc), timeout=60)
        tc.get_token()
    else:
        http = al_client(keys, url, leeway=AUTHLIB_LEEWAY_D, timeout=60)
        al_fetch(http, url)
    http.get(server.api_url)  # connection up
    records: list[tuple[float, float, int, int]] = []
    lock = threading.Lock()
    barrier = threading.Barrier(LATENCY_THREADS)
    stop_at = 0.0

    def worker() -> None:
        mine: list[tuple[float, float, int, int]] = []
        get, api = http.get, server.api_url
        wall, clock = time.time, time.perf_counter_ns
        barrier.wait()
        while True:
            start = wall()
            t0 = clock()
            try:
                code = get(api).status_code
            except Exception:
                code = -1
            elapsed = clock() - t0
            mine.append((start, start + elapsed / 1e9, elapsed, code))
            if start >= stop_at:
                break
        with lock:
            records.extend(mine)

    stop_at = time.time() + seconds
    threads = [threading.Thread(target=worker) for _ in range(LATENCY_THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    log = server.stats()["token_log"]
    http.close()
    if tc is not None:
        tc.close()
    return records, log


def _classify(
    records: list[tuple[float, float, int, int]], log: list[list[float]]
) -> dict[str, list[int]]:
    """Split latencies: near a token fetch, near a token's expiry instant, or steady."""
    fetch_w = [(a - MARGIN, d + MARGIN) for a, d, _ in log]
    in_w = [(a, d) for a, d, _ in log]
    expiry_w = [(d + e - MARGIN, d + e + MARGIN) for _, d, e in log]

    def hits(windows: list[tuple[float, float]], s: float, e: float) -> bool:
        return any(lo <= e and s <= hi for lo, hi in windows)

    groups: dict[str, list[int]] = {name: [] for name in _GROUPS}
    for s, e, lat, _ in records:
        f, x = hits(fetch_w, s, e), hits(expiry_w, s, e)
        if f:
            groups["near_fetch"].append(lat)
            if hits(in_w, s, e):
                groups["in_fetch"].append(lat)
        if x:
            groups["near_expiry"].append(lat)
        if f or x:
            groups["boundary"].append(lat)
        else:
            groups["steady"].append(lat)
    return groups


def bench_latency(keys: Keys, p: Params) -> dict[str, Any]:
    print(
        f"-- (d) latency across expiry: {LATENCY_THREADS} threads, tokens live {LIFETIME} s, "
        f"server token delay {TOKEN_DELAY * 1e3:.0f} ms, {p.latency_segments} x "
        f"{p.segment_seconds:g} s per client (interleaved)"
    )
    recs: dict[str, list[tuple[float, float, int, int]]] = {c: [] for c in LATENCY_CLIENTS}
    fetches = dict.fromkeys(LATENCY_CLIENTS, 0)
    duration = dict.fromkeys(LATENCY_CLIENTS, 0.0)
    groups: dict[str, dict[str, list[int]]] = {
        c: {name: [] for name in _GROUPS} for c in LATENCY_CLIENTS
    }
    with TokenServer(expires_in=LIFETIME, token_delay=TOKEN_DELAY) as server:
        for seg in range(p.latency_segments):
            k = seg % len(LATENCY_CLIENTS)
            for lib in LATENCY_CLIENTS[k:] + LATENCY_CLIENTS[:k]:
                gc.collect()
                records, log = _run_segment(keys, server, lib, p.segment_seconds)
                recs[lib].extend(records)
                fetches[lib] += len(log) - 1  # minus the warm-up fetch
                duration[lib] += max(r[1] for r in records) - min(r[0] for r in records)
                for name, values in _classify(records, log).items():
                    groups[lib][name].extend(values)

    def pct(values: list[int], q: float) -> str:
        return _ms(percentile(values, q) / 1e9) if values else "-"

    rows = []
    out: dict[str, Any] = {"clients": {}}
    for lib in LATENCY_CLIENTS:
        g = groups[lib]
        steady99 = percentile(g["steady"], 99)
        b99 = percentile(g["boundary"], 99) if g["boundary"] else float("nan")
        f99 = percentile(g["near_fetch"], 99) if g["near_fetch"] else float("nan")
        ratio = max(b99, f99) / steady99
        in99 = percentile(g["in_fetch"], 99) if g["in_fetch"] else float("nan")
        bad = sum(r[3] != 200 for r in recs[lib])
        rows.append(
            (
                lib,
                str(len(recs[lib])),
                f"{len(recs[lib]) / duration[lib]:.0f}",
                str(fetches[lib]),
                pct(g["steady"], 50),
                pct(g["steady"], 99),
                pct(g["boundary"], 50),
                pct(g["boundary"], 99),
                pct(g["near_fetch"], 99),
                _ms(max(g["boundary"]) / 1e9) if g["boundary"] else "-",
                f"{ratio:.2f}x",
                pct(g["in_fetch"], 99),
                f"{in99 / steady99:.2f}x",
            )
        )
        out["clients"][lib] = {
            "requests": len(recs[lib]),
            "non_200": bad,
            "requests_per_s": len(recs[lib]) / duration[lib],
            "token_requests": fetches[lib],
            "groups": {
                name: {
                    "n": len(v),
                    "p50_ms": percentile(v, 50) / 1e6 if v else None,
                    "p99_ms": percentile(v, 99) / 1e6 if v else None,
                    "max_ms": max(v) / 1e6 if v else None,
                }
                for name, v in g.items()
            },
            "ratio_p99": ratio,
            "in_fetch_ratio_p99": in99 / steady99,
        }
        if bad:
            print(f"   ! {lib}: {bad} requests did not answer 200")
    headers = (
        "client",
        "requests",
        "req/s",
        "tokens",
        "steady p50",
        "steady p99",
        "bound. p50",
        "bound. p99",
        "fetch p99",
        "bound. max",
        "p99 ratio",
        "in-fetch p99",
        "ratio",
    )
    print(_table(headers, rows, "request latency (ms)"))
    print(
        "   boundary = requests overlapping a token fetch or a token's expiry instant, each "
        f"widened by {MARGIN * 1e3:.0f} ms;\n"
        "   steady = all other requests; fetch p99 = requests overlapping a fetch; "
        "p99 ratio = max(bound. p99, fetch p99) / steady p99;\n"
        "   in-fetch = only requests in flight while a token request was (no widening), "
        "with its p99 ratio to steady;\n"
        "   tokens = token requests during the runs; "
        f"Authlib leeway {AUTHLIB_LEEWAY_D:g} s (its 60 s default scaled as on NHS's ~600 s "
        "tokens);\n   pkjwt defaults (background refresh at 70-85% of the lifetime, leeway 10%)"
    )
    for lib in LATENCY_CLIENTS:
        n = {k: len(v) for k, v in groups[lib].items()}
        print(f"   {lib}: samples {n}")
    pk = [out["clients"][c] for c in LATENCY_CLIENTS if c.startswith("pkjwt")]
    worst = max(c["ratio_p99"] for c in pk)
    worst_in = max(c["in_fetch_ratio_p99"] for c in pk)
    met = worst <= TARGET_P99 and all(c["non_200"] == 0 for c in pk)
    print(
        f"   pkjwt boundary p99 / steady p99 = {worst:.2f}x (worst pkjwt client; target <= "
        f"{TARGET_P99}x) -> {_verdict(met)}; authlib "
        f"{out['clients']['authlib']['ratio_p99']:.1f}x"
    )
    print()
    out["pkjwt_worst_ratio"] = worst
    out["pkjwt_worst_in_fetch_ratio"] = worst_in
    out["target"] = TARGET_P99
    out["meets_target"] = met
    return out


# -- driver ---------------------------------------------------------------------------------------


def run(quick: bool = False) -> dict[str, Any]:
    """Run (a)-(d), print their tables, return a JSON-serialisable result."""
    p = QUICK if quick else FULL
    versions = _versions()
    print(
        f"== {NAME}: token clients, pkjwt vs Authlib, RSA-{KEY_BITS} RS512 "
        f"({'quick' if quick else 'full'} mode)"
    )
    print("   " + ", ".join(f"{k} {v}" for k, v in versions.items()))
    t_all = time.perf_counter()
    keys = Keys()
    print(f"   key generated in {time.perf_counter() - t_all:.1f} s")
    print()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        cold = bench_cold(keys, p)
        overhead = bench_overhead(keys, p)
        storm = bench_storm(keys, p)
        latency = bench_latency(keys, p)
    print("summary")
    print(
        f"   (a) cold fetch: authlib / pkjwt = {cold['authlib_over_pkjwt_new_client']:.1f}x "
        f"(new client), {cold['authlib_over_pkjwt_reused_client']:.1f}x (reused client)"
    )
    m = overhead["mock"]
    print(
        f"   (b) cached-token overhead pkjwt / authlib = {m['ratio']:.2f} "
        f"(target <= {TARGET_OVERHEAD}): {_verdict(overhead['meets_target'])}"
    )
    sc = list(storm["scenarios"].values())
    print(
        f"   (c) token requests, 32 threads / 1,000 tasks: pkjwt "
        f"{max(sc[0]['pkjwt']['token_requests'])} / {max(sc[1]['pkjwt']['token_requests'])}, "
        f"authlib {statistics.median(sc[0]['authlib']['token_requests']):g} / "
        f"{statistics.median(sc[1]['authlib']['token_requests']):g} "
        f"(target {TARGET_STORM}): {_verdict(storm['meets_target'])}"
    )
    print(
        f"   (d) p99 across expiry / steady: pkjwt {latency['pkjwt_worst_ratio']:.2f}x "
        f"(in-fetch only {latency['pkjwt_worst_in_fetch_ratio']:.2f}x), "
        f"authlib {latency['clients']['authlib']['ratio_p99']:.1f}x (target <= {TARGET_P99}x): "
        f"{_verdict(latency['meets_target'])}"
    )
    print(f"   total {time.perf_counter() - t_all:.1f} s")
    print()
    return {
        "benchmark": NAME,
        "mode": "quick" if quick else "full",
        "params": {
            "key": f"RSA-{KEY_BITS}",
            "alg": "RS512",
            "profile": "nhs",
            "token_delay_s": TOKEN_DELAY,
            "lifetime_s": LIFETIME,
            "authlib_leeway_d_s": AUTHLIB_LEEWAY_D,
            "margin_s": MARGIN,
            **{k: getattr(p, k) for k in p.__slots__},
        },
        "environment": environment(versions),
        "cold_fetch": cold,
        "overhead": overhead,
        "storm": storm,
        "latency": latency,
        "meets_targets": {
            "overhead": overhead["meets_target"],
            "storm": storm["meets_target"],
            "latency_p99": latency["meets_target"],
        },
    }


def main(argv: Sequence[str] | None = None) -> int:
    return standalone_main(
        "python -m benchmarks.bench_client", __doc__, NAME, run, argv, "fewer iterations (< 60 s)"
    )


if __name__ == "__main__":
    raise SystemExit(main())
