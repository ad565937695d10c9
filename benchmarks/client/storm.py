"""(c) Token requests caused by 32 threads sharing a sync client, and by 1,000 asyncio tasks
sharing an async client, released together just after the token expired (server delay 50 ms,
connection pools warmed first)."""

from __future__ import annotations

import asyncio
import statistics
import threading
import time
import warnings
from collections.abc import Callable, Sequence
from typing import Any

from ..common import table
from ..tokenserver import TokenServer
from .clients import TOKEN_DELAY, Keys, Params, al_client, al_fetch, pk_client, pk_http, verdict

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from authlib.integrations.httpx_client import AsyncOAuth2Client

STORM_THREADS = 32
STORM_TASKS = 1000
TARGET_STORM = 1

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
        with pk_http(tc, lib) as http:
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
        async with pk_http(tc, lib, asynchronous=True) as http:
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
    print(table(headers, rows, "token requests at the server (median (min-max) over trials)"))
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
        f"{verdict(met)}"
    )
    print()
    return {"scenarios": out, "target": TARGET_STORM, "pkjwt_worst": worst, "meets_target": met}
