"""What a DPoP-bound token (RFC 9449) costs per API request: attaching a cached DPoP token (the
``Authorization: DPoP`` header and a fresh ES256 proof with ``ath``) against attaching a
cached bearer token, with pkjwt and with ``requests-oauth2client``'s ``DPoPToken``, in one
process with the same key type.

Each sample is one auth step, no transport (what runs between building a request and sending
it):

* ``pkjwt-httpx-bearer`` / ``pkjwt-httpx-dpop``: ``HttpxAuth``'s sync flow up to the request
  it yields, for a client without and with ``dpop=True``.
* ``pkjwt-requests-bearer`` / ``pkjwt-requests-dpop``: ``RequestsAuth`` on a copy of a
  prepared request (the copy is ``requests-copy``, timed alone).
* ``roc-bearer`` / ``roc-dpop``: ``requests_oauth2client.BearerToken`` and ``DPoPToken``
  (an ES256 ``DPoPKey.generate()``) on the same copies.
* ``es256-sign``: one ES256 signature by the key pkjwt's proofs use, the floor of a proof.

Informational: never gates CI.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import httpx
import requests
from requests_oauth2client import BearerToken
from requests_oauth2client.dpop import DPoPKey as RocDPoPKey

import pkjwt
from pkjwt.integrations.requests import RequestsAuth
from pkjwt.signing import LocalSigner

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

NAME = "dpop"
TOKEN_URL = "https://as.example/token"
API_URL = "https://api.example/things/42?view=full"
FULL = (30, 200)  # rounds, calls per round
QUICK = (6, 50)


def _token_endpoint(request: httpx.Request) -> httpx.Response:
    kind = "DPoP" if "dpop" in request.headers else "Bearer"
    return httpx.Response(
        200, json={"access_token": "t" * 40, "token_type": kind, "expires_in": 3600}
    )


def _client(dpop: bool) -> pkjwt.TokenClient:
    client = pkjwt.TokenClient(
        token_url=TOKEN_URL,
        client_id="bench",
        client_secret="s",
        http_client=httpx.Client(transport=httpx.MockTransport(_token_endpoint)),
        telemetry=False,
        dpop=dpop,
    )
    assert client.get_token().is_dpop is dpop
    return client


def _on_copy(prepared: requests.PreparedRequest, auth: Any) -> Callable[[], object]:
    return lambda: auth(prepared.copy())


def _candidates(per_round: int) -> tuple[list[Candidate], list[pkjwt.TokenClient]]:
    bearer, bound = _client(False), _client(True)
    request = httpx.Request("GET", API_URL)
    prepared = requests.Request("GET", API_URL).prepare()
    roc_key = RocDPoPKey.generate(alg="ES256")
    roc_bearer = BearerToken("t" * 40, expires_in=3600)
    roc_dpop = roc_key.dpop_token_class("t" * 40, _dpop_key=roc_key, expires_in=3600)
    assert bound.dpop is not None
    signer = bound.dpop.key.signer
    assert isinstance(signer, LocalSigner)
    data = bound.dpop.key.signing_input("GET", API_URL, access_token="t" * 40)
    fns: dict[str, Callable[[], object]] = {
        "pkjwt-httpx-bearer": auth_step(pkjwt.HttpxAuth(bearer), request),
        "pkjwt-httpx-dpop": auth_step(pkjwt.HttpxAuth(bound), request),
        "requests-copy": prepared.copy,
        "pkjwt-requests-bearer": _on_copy(prepared, RequestsAuth(bearer)),
        "pkjwt-requests-dpop": _on_copy(prepared, RequestsAuth(bound)),
        "roc-bearer": _on_copy(prepared, roc_bearer),
        "roc-dpop": _on_copy(prepared, roc_dpop),
        "es256-sign": lambda: signer.sign(data),
    }
    return [Candidate(n, f, per_round, 20) for n, f in fns.items()], [bearer, bound]


def run(quick: bool = False) -> dict[str, Any]:
    rounds, per_round = QUICK if quick else FULL
    mode = "quick" if quick else "full"
    print(f"== {NAME}: attaching a cached DPoP token vs a bearer token ({mode}, {rounds} rounds)")
    print_versions(versions("pkjwt", "httpx", "requests", "requests-oauth2client", "cryptography"))
    candidates, clients = _candidates(per_round)
    stats = measure(candidates, rounds)
    print(format_table(stats, "pkjwt-httpx-bearer", title="per request (auth step, no transport)"))
    us = {n: s.median_ns / 1000 for n, s in stats.items()}
    copy = us["requests-copy"]
    # requests candidates: the prepared-request copy each sample makes is not the auth's cost
    net = {n: (v - copy if n.endswith(("-bearer", "-dpop")) and "httpx" not in n else v)
           for n, v in us.items() if n != "requests-copy"}  # fmt: skip
    rows = [(n, f"{v:.1f}") for n, v in net.items()]
    print(table(("candidate", "µs per request (median, copy removed)"), rows))
    ratios = {
        "pkjwt_httpx_dpop_over_bearer": net["pkjwt-httpx-dpop"] / net["pkjwt-httpx-bearer"],
        "pkjwt_requests_dpop_over_bearer": net["pkjwt-requests-dpop"]
        / net["pkjwt-requests-bearer"],
        "roc_dpop_over_bearer": net["roc-dpop"] / net["roc-bearer"],
        "pkjwt_over_roc_dpop": net["pkjwt-requests-dpop"] / net["roc-dpop"],
        "pkjwt_dpop_sign_share": net["es256-sign"] / net["pkjwt-httpx-dpop"],
    }
    extra_httpx = net["pkjwt-httpx-dpop"] - net["pkjwt-httpx-bearer"]
    print(
        f"   DPoP adds {extra_httpx:.1f} µs per request to HttpxAuth "
        f"({ratios['pkjwt_httpx_dpop_over_bearer']:.1f}x a bearer token); the ES256 signature "
        f"is {ratios['pkjwt_dpop_sign_share']:.0%} of it"
    )
    print(
        f"   pkjwt RequestsAuth DPoP / requests-oauth2client DPoPToken: "
        f"{ratios['pkjwt_over_roc_dpop']:.2f}x ({net['pkjwt-requests-dpop']:.1f} vs "
        f"{net['roc-dpop']:.1f} µs)"
    )
    print()
    for client in clients:
        client.close()
    return {
        "benchmark": NAME,
        "mode": mode,
        "environment": environment(),
        "us_per_request": net,
        "ratios": ratios,
        "candidates": [s.as_dict() for s in stats.values()],
    }


def main(argv: Sequence[str] | None = None) -> int:
    return standalone_main("bench_dpop", __doc__, NAME, run, argv)


if __name__ == "__main__":
    raise SystemExit(main())
