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

import statistics
import time
import warnings
from collections.abc import Sequence
from typing import Any

from .client.clients import FULL, KEY_BITS, QUICK, TOKEN_DELAY, Keys, verdict
from .client.cold import bench_cold
from .client.latency import AUTHLIB_LEEWAY_D, LIFETIME, MARGIN, TARGET_P99, bench_latency
from .client.overhead import TARGET_OVERHEAD, bench_overhead
from .client.storm import TARGET_STORM, bench_storm
from .common import environment, print_versions, standalone_main, versions

NAME = "client"


def run(quick: bool = False) -> dict[str, Any]:
    """Run (a)-(d), print their tables, return a JSON-serialisable result."""
    p = QUICK if quick else FULL
    found = versions("pkjwt", "authlib", "httpx", "httpx2", "cryptography", "joserfc")
    print(
        f"== {NAME}: token clients, pkjwt vs Authlib, RSA-{KEY_BITS} RS512 "
        f"({'quick' if quick else 'full'} mode)"
    )
    print_versions(found)
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
        f"(target <= {TARGET_OVERHEAD}): {verdict(overhead['meets_target'])}"
    )
    sc = list(storm["scenarios"].values())
    print(
        f"   (c) token requests, 32 threads / 1,000 tasks: pkjwt "
        f"{max(sc[0]['pkjwt']['token_requests'])} / {max(sc[1]['pkjwt']['token_requests'])}, "
        f"authlib {statistics.median(sc[0]['authlib']['token_requests']):g} / "
        f"{statistics.median(sc[1]['authlib']['token_requests']):g} "
        f"(target {TARGET_STORM}): {verdict(storm['meets_target'])}"
    )
    print(
        f"   (d) p99 across expiry / steady: pkjwt {latency['pkjwt_worst_ratio']:.2f}x "
        f"(in-fetch only {latency['pkjwt_worst_in_fetch_ratio']:.2f}x), "
        f"authlib {latency['clients']['authlib']['ratio_p99']:.1f}x (target <= {TARGET_P99}x): "
        f"{verdict(latency['meets_target'])}"
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
        "environment": environment(found),
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
