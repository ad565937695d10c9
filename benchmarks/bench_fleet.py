"""Fleets on Redis (issue 12): what sharing tokens and the replay window through Redis costs.

(a) attaching a cached token, with the Redis token store against the memory store (target:
    within 10 %), and Authlib's cached-token path beside them. Each ``TokenClient`` keeps its
    own in-memory cache in front of any store, so a Redis store should cost nothing here:
    ``get_token()`` and the ``HttpxAuth`` step (what runs per request) are timed, interleaved
    over rounds; the Redis store is a real redis-server on loopback.
(b) token requests reaching the server from 8 processes x 16 threads starting cold together
    (server answer time 50 ms): pkjwt with the Redis store (the fleet shares one token), pkjwt
    with its default per-process cache, and Authlib (one ``OAuth2Client`` per process, as
    its documentation shows, each thread fetching when the client holds no token yet).
(c) tokens/s of ``pkjwt serve`` with the Redis replay store against the SQLite one (target:
    at least 0.9x): the server benchmark (``benchmarks.bench_server``) with ``pkjwt-sqlite``,
    ``pkjwt-redis`` and oidc-provider, same rounds and rules; redis-server runs on the
    server's CPU, so its work is counted against the server, as SQLite's is.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import httpx

import pkjwt
from pkjwt.stores import MemoryStore
from pkjwt.stores.redis import KEY_ENV, RedisTokenStore, new_store_key

from .client.clients import TOKEN_DELAY, Keys, al_client, al_fetch, auth_step, pk_client, verdict
from .common import (
    Candidate,
    environment,
    format_us,
    measure,
    print_versions,
    standalone_main,
    table,
    versions,
)
from .server.processes import OIDC, PKJWT, PKJWT_REDIS, start_redis
from .tokenserver import TokenServer

NAME = "fleet"
TARGET_ATTACH = 1.10
TARGET_SERVE = 0.9
PROCESSES, THREADS = 8, 16

_MEMBER = """
import json, sys, threading, time, warnings
warnings.simplefilter("ignore")
kind, token_url, redis_url, key_file, client_id = sys.argv[1:6]
pem = open(key_file).read()
barrier = threading.Barrier({threads})
seen = []
if kind == "authlib":
    from authlib.integrations.httpx_client import OAuth2Client
    from authlib.oauth2.rfc7523 import PrivateKeyJWT
    client = OAuth2Client(client_id, pem, token_endpoint=token_url,
                          grant_type="client_credentials",
                          token_endpoint_auth_method=PrivateKeyJWT(token_url, alg="RS512",
                                                                   headers={{"kid": "test-1"}}))
    def get():
        if not client.token:
            client.fetch_token(token_url, grant_type="client_credentials")
        return client.token["access_token"]
else:
    import pkjwt
    from pkjwt.stores import MemoryStore
    from pkjwt.stores.redis import RedisTokenStore
    store = RedisTokenStore(redis_url) if kind == "pkjwt-redis" else MemoryStore()
    tc = pkjwt.TokenClient(token_url=token_url, client_id=client_id,
                           key=pkjwt.load_key(pem, kid="test-1"), profile="nhs", store=store)
    def get():
        return tc.get_token().access_token
waits = []
def member():
    barrier.wait()
    started = time.monotonic()
    seen.append(get())
    waits.append(time.monotonic() - started)
threads = [threading.Thread(target=member) for _ in range({threads})]
for t in threads: t.start()
for t in threads: t.join()
print(json.dumps({{"tokens": sorted(set(seen)), "longest": max(waits)}}), flush=True)
"""


def _attach(keys: Keys, redis_url: str, rounds: int) -> dict[str, Any]:
    print("-- (a) attaching a cached token: Redis token store vs memory store (and Authlib)")
    with TokenServer(expires_in=3600) as server:
        memory = pk_client(keys, server.token_url, store=MemoryStore())
        redis_store = RedisTokenStore(redis_url)
        shared = pk_client(keys, server.token_url, store=redis_store)
        memory.get_token()
        shared.get_token()
        al = al_client(keys, server.token_url)
        al_fetch(al, server.token_url)
        request = httpx.Request("GET", server.api_url)

        def step(client: pkjwt.TokenClient) -> Callable[[], object]:
            return auth_step(pkjwt.HttpxAuth(client), request)

        def authlib() -> object:
            if not al.ensure_active_token(al.token):
                raise AssertionError("authlib: token not active")
            return al.token["access_token"]

        per_round = 2000
        cands = [
            Candidate("memory get_token", memory.get_token, per_round, 200,
                      "TokenClient(store=MemoryStore()).get_token(), token cached"),
            Candidate("redis get_token", shared.get_token, per_round, 200,
                      "TokenClient(store=RedisTokenStore(url)).get_token(), token cached"),
            Candidate("memory HttpxAuth", step(memory), per_round, 200,
                      "HttpxAuth(memory client) flow up to the request it sends"),
            Candidate("redis HttpxAuth", step(shared), per_round, 200,
                      "HttpxAuth(Redis client) flow up to the request it sends"),
            Candidate("authlib cached", authlib, per_round, 200,
                      "authlib OAuth2Client.ensure_active_token(token) + the token"),
        ]  # fmt: skip
        stats = measure(cands, rounds)
        tokens = server.token_requests
        for closer in (memory.close, shared.close, al.close, redis_store.close):
            closer()
    if tokens != 2 + 1:  # the warm-up fetches: memory, Redis, Authlib
        raise AssertionError(f"{tokens} token requests: a cached path fetched")

    def paired(a: str, b: str) -> float:
        ratios = [
            x / y for x, y in zip(stats[a].round_medians_ns, stats[b].round_medians_ns, strict=True)
        ]
        return float(statistics.median(ratios))

    get_ratio = paired("redis get_token", "memory get_token")
    auth_ratio = paired("redis HttpxAuth", "memory HttpxAuth")
    rows = [
        (s.name, str(s.calls), format_us(s.median_ns), format_us(s.p10_ns), format_us(s.p90_ns))
        for s in stats.values()
    ]
    print(table(("candidate", "calls", "median us", "p10 us", "p90 us"), rows))
    for s in stats.values():
        print(f"   {s.name}: {s.note}")
    worst = max(get_ratio, auth_ratio)
    print(
        f"   Redis / memory (paired per round): get_token {get_ratio:.3f}x, HttpxAuth step "
        f"{auth_ratio:.3f}x (target <= {TARGET_ATTACH:.2f}x) -> {verdict(worst <= TARGET_ATTACH)}"
    )
    al_ratio = paired("redis get_token", "authlib cached")
    print(f"   pkjwt get_token (Redis store) / Authlib's cached-token check: {al_ratio:.2f}x")
    print()
    return {
        "redis_over_memory_get_token": get_ratio,
        "redis_over_memory_auth_step": auth_ratio,
        "redis_get_token_over_authlib": al_ratio,
        "target": TARGET_ATTACH,
        "meets_target": worst <= TARGET_ATTACH,
        "candidates": [s.as_dict() for s in stats.values()],
    }


def _fleet(keys: Keys, redis_url: str, workdir: Path) -> dict[str, Any]:
    print(
        f"-- (b) {PROCESSES} processes x {THREADS} threads starting cold together "
        f"(server answer time {TOKEN_DELAY * 1000:.0f} ms): token requests reaching the server"
    )
    key_file = workdir / "key.pem"
    key_file.write_text(keys.pem_text)
    key_file.chmod(0o600)
    script = _MEMBER.format(threads=THREADS)
    env = {**os.environ, KEY_ENV: new_store_key()}
    rows, out = [], {}
    with TokenServer(expires_in=3600, token_delay=TOKEN_DELAY) as server:
        for kind, note in (
            ("pkjwt-redis", "TokenClient(store=RedisTokenStore(url)): one token for the fleet"),
            ("pkjwt-memory", "TokenClient(store=MemoryStore()): one token per process"),
            ("authlib", "one OAuth2Client per process, threads fetch while it has no token"),
        ):
            server.reset()
            started = time.perf_counter()
            procs = [
                subprocess.Popen(
                    [
                        sys.executable,
                        "-c",
                        script,
                        kind,
                        server.token_url,
                        redis_url,
                        str(key_file),
                        "bench-api-key-0123456789abcdef",
                    ],
                    stdout=subprocess.PIPE,
                    text=True,
                    env=env,
                )
                for _ in range(PROCESSES)
            ]
            distinct: set[str] = set()
            longest = 0.0
            for proc in procs:
                stdout, _ = proc.communicate(timeout=300)
                if proc.returncode != 0:
                    raise AssertionError(f"{kind}: a fleet member failed")
                said = json.loads(stdout)
                distinct.update(said["tokens"])
                longest = max(longest, said["longest"])
            elapsed = time.perf_counter() - started
            requests = server.token_requests
            rows.append(
                (kind, str(requests), str(len(distinct)), f"{longest:.3f}", f"{elapsed:.1f}", note)
            )
            out[kind] = {
                "token_requests": requests,
                "distinct_tokens": len(distinct),
                "longest_wait_s": longest,
                "wall_s_with_start_up": elapsed,
                "note": note,
            }
    headers = ("fleet", "token requests", "distinct tokens", "longest wait s", "wall s", "how")
    print(table(headers, rows))
    print(
        "   longest wait: the slowest get_token() of any thread (from its first call); wall: the "
        "whole run, process start-up (imports, key loading) included"
    )
    one = out["pkjwt-redis"]["token_requests"] == 1
    print(f"   target for the Redis store: 1 request -> {verdict(one)}")
    print()
    return out


def _serve(quick: bool) -> dict[str, Any]:
    from . import bench_server

    print("-- (c) pkjwt serve: Redis replay store vs SQLite (the server benchmark, 3 servers)")
    result = bench_server.run(quick=quick, include=(PKJWT, PKJWT_REDIS, OIDC))
    if "skipped" in result:
        return {"skipped": result["skipped"]}
    by_name = {s["name"]: s for s in result["servers"]}
    sqlite, redis_ = by_name[PKJWT], by_name[PKJWT_REDIS]
    per_round = [
        r["run"]["tokens_per_s"] / s["run"]["tokens_per_s"]
        for r, s in zip(redis_["rounds"], sqlite["rounds"], strict=False)
    ]
    ratio = redis_["tokens_per_s_median"] / sqlite["tokens_per_s_median"]
    spread = f" (per round {min(per_round):.2f}x..{max(per_round):.2f}x)" if per_round else ""
    print(
        f"   pkjwt-redis / pkjwt-sqlite tokens/s = {ratio:.2f}x{spread} (target >= "
        f"{TARGET_SERVE:.1f}x) -> {verdict(ratio >= TARGET_SERVE)}; p99 "
        f"{redis_['p99_ms_median']:.1f} ms vs {sqlite['p99_ms_median']:.1f} ms"
    )
    print()
    return {
        "redis_over_sqlite_tokens_per_s": ratio,
        "per_round": per_round,
        "target": TARGET_SERVE,
        "meets_target": ratio >= TARGET_SERVE,
        "server_benchmark": result,
    }


def run(
    quick: bool = False, *, sections: Sequence[str] = ("attach", "fleet", "serve")
) -> dict[str, Any]:
    found = versions("pkjwt", "redis", "authlib", "httpx", "cryptography")
    label = "quick" if quick else "full"
    print(f"== {NAME}: tokens and the replay window shared through Redis ({label} mode)")
    print_versions(found)
    results: dict[str, Any] = {"benchmark": NAME, "mode": "quick" if quick else "full"}
    workdir = Path(tempfile.mkdtemp(prefix="pkjwt-bench-fleet-"))
    try:
        redis_proc, redis_url = start_redis(workdir / "redis", None, durable=False)
    except RuntimeError as exc:
        print(f"   skipped: {exc}")
        return {**results, "skipped": str(exc)}
    os.environ.setdefault(KEY_ENV, new_store_key())
    try:
        keys = Keys()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            if "attach" in sections:
                results["attach"] = _attach(keys, redis_url, 5 if quick else 20)
            if "fleet" in sections:
                results["fleet"] = _fleet(keys, redis_url, workdir)
    finally:
        redis_proc.terminate()
        redis_proc.wait(timeout=10)
    if "serve" in sections:
        results["serve"] = _serve(quick)
    results["environment"] = environment(found)
    return results


def main(argv: Sequence[str] | None = None) -> int:
    return standalone_main("python -m benchmarks.bench_fleet", __doc__, NAME, run, argv)


if __name__ == "__main__":
    raise SystemExit(main())
