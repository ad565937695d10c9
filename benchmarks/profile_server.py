"""Where a token request's time goes inside ``pkjwt serve`` (in-process, no sockets).

``python -m benchmarks.profile_server [--requests N] [--replay sqlite|memory] [--top K]``

Builds the same app as ``bench_server`` (profile rfc7523bis, opaque tokens, one ES256 client)
and drives it through its ASGI interface directly, with unique pre-signed assertions: no
uvicorn, no sockets, no HTTP parsing. Prints

1. a cost breakdown per request (median of interleaved batches): the whole ASGI app, then
   each layer on its own (``authenticate``, ``rules.check``, the signature verify, the replay
   insert, form parsing, token minting), so that the layers' shares can be read directly;
2. a cProfile of the whole app over N requests, sorted by own time and by cumulative time.

Not a benchmark of record (it is not run by ``python -m benchmarks``): a tool to explain the
numbers ``bench_server`` prints.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import pstats
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import pkjwt
from pkjwt.decode import decode_compact
from pkjwt.keys import generate_key, jwks
from pkjwt.server.app import create_app
from pkjwt.server.config import parse_config
from pkjwt.server.dialects import STANDARD
from pkjwt.server.token_request import AssertionCredentials

from .server.assertions import BODY_PREFIX, CLIENT_ID, KID

ISSUER = "http://127.0.0.1:8080"
TOKEN_PATH = "/oauth2/token"


def build(replay: str, workdir: Path) -> tuple[Any, Callable[[], str]]:
    key = generate_key("ES256", kid=KID)
    store = "memory://" if replay == "memory" else f"sqlite:///{workdir / 'replay.sqlite3'}"
    config = parse_config(
        {
            "profile": "rfc7523bis",
            "token_format": "opaque",
            "replay_store": store,
            "clients": [{"client_id": CLIENT_ID, "alg": "ES256", "jwks": jwks([key.public()])}],
        }
    )
    app = create_app(config, issuer=ISSUER)
    factory = pkjwt.AssertionFactory(
        key, client_id=CLIENT_ID, profile="rfc7523bis", issuer=ISSUER, lifetime=300
    )
    return app, lambda: BODY_PREFIX + factory.make()


def _scope(body_len: int) -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": TOKEN_PATH,
        "raw_path": TOKEN_PATH.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [
            (b"host", b"127.0.0.1:8080"),
            (b"content-type", b"application/x-www-form-urlencoded"),
            (b"accept", b"application/json"),
            (b"content-length", str(body_len).encode()),
        ],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8080),
        "state": {},
    }


async def call_app(app: Any, body: bytes) -> int:
    sent: list[dict[str, Any]] = []
    done = False

    async def receive() -> dict[str, Any]:
        nonlocal done
        if done:
            return {"type": "http.disconnect"}
        done = True
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(_scope(len(body)), receive, send)
    status: int = sent[0]["status"]
    return status


def breakdown(app: Any, make: Callable[[], str], batches: int, per_batch: int) -> list[str]:
    state = app.state.pkjwt
    auth = state.auth
    loop = asyncio.new_event_loop()
    key = auth.config.clients[0].keys.keys[0]

    from joserfc.jws import JWSRegistry

    from pkjwt.rules import check

    es256 = JWSRegistry.algorithms["ES256"]

    def prepare(n: int) -> list[str]:
        return [make() for _ in range(n)]

    # each candidate gets its own fresh assertions (the replay store must see new jtis)
    def asgi(bodies: list[str]) -> Callable[[int], object]:
        raw = [b.encode() for b in bodies]
        return lambda i: loop.run_until_complete(call_app(app, raw[i]))

    def authenticate(bodies: list[str]) -> Callable[[int], object]:
        creds = [AssertionCredentials(dict(parse_qsl(b))["client_assertion"], None) for b in bodies]
        return lambda i: loop.run_until_complete(auth.authenticate(creds[i], STANDARD))

    def rules(bodies: list[str]) -> Callable[[int], object]:
        jwts = [decode_compact(dict(parse_qsl(b))["client_assertion"]) for b in bodies]
        client = auth.config.clients[0]
        ctx = replace(auth._context(client, None, client.keys), replay=state.replay.add)
        return lambda i: check(jwts[i], replace(ctx, now=time.time()))

    def decode(bodies: list[str]) -> Callable[[int], object]:
        tokens = [dict(parse_qsl(b))["client_assertion"] for b in bodies]
        return lambda i: decode_compact(tokens[i])

    def verify(bodies: list[str]) -> Callable[[int], object]:
        jwts = [decode_compact(dict(parse_qsl(b))["client_assertion"]) for b in bodies]
        return lambda i: es256.verify(jwts[i].signing_input, jwts[i].signature, key.jose)

    def replay_add(bodies: list[str]) -> Callable[[int], object]:
        jtis = [f"bench-{time.time_ns()}-{i}" for i in range(len(bodies))]
        return lambda i: state.replay.add(CLIENT_ID, jtis[i], time.time() + 300)

    def parse_form(bodies: list[str]) -> Callable[[int], object]:
        from pkjwt.server.http import parse_form as _parse_form

        raw = [b.encode() for b in bodies]
        return lambda i: _parse_form(raw[i])

    def mint(bodies: list[str]) -> Callable[[int], object]:
        return lambda i: state.tokens.issue(CLIENT_ID, None, None)

    candidates: list[tuple[str, Callable[[list[str]], Callable[[int], object]]]] = [
        ("ASGI app, whole token request", asgi),
        ("  auth.authenticate (decode + rules + replay)", authenticate),
        ("    rules.check (R5-R19 incl. verify + replay)", rules),
        ("      decode_compact", decode),
        ("      ES256 verify (joserfc)", verify),
        ("      replay_store.add", replay_add),
        ("  _parse_form", parse_form),
        ("  tokens.issue (opaque)", mint),
    ]
    samples: dict[str, list[float]] = {name: [] for name, _ in candidates}
    for b in range(batches):
        for k in range(len(candidates)):
            name, factory = candidates[(b + k) % len(candidates)]
            fn = factory(prepare(per_batch))
            t0 = time.perf_counter_ns()
            for i in range(per_batch):
                fn(i)
            samples[name].append((time.perf_counter_ns() - t0) / per_batch / 1000)
    loop.close()
    whole = statistics.median(samples[candidates[0][0]])
    width = max(len(n) for n, _ in candidates)
    out = [f"{'layer'.ljust(width)}  us/request  share of whole", "-" * (width + 28)]
    for name, _ in candidates:
        med = statistics.median(samples[name])
        out.append(f"{name.ljust(width)}  {med:10.1f}  {100 * med / whole:13.0f}%")
    return out


def profile(app: Any, make: Callable[[], str], n: int, top: int) -> str:
    bodies = [make().encode() for _ in range(n)]
    loop = asyncio.new_event_loop()
    for b in bodies[:50]:
        loop.run_until_complete(call_app(app, b))
    prof = cProfile.Profile()
    statuses: list[int] = []
    prof.enable()
    for b in bodies[50:]:
        statuses.append(loop.run_until_complete(call_app(app, b)))
    prof.disable()
    loop.close()
    bad = sum(1 for s in statuses if s != 200)
    buf = io.StringIO()
    stats = pstats.Stats(prof, stream=buf)
    stats.strip_dirs()
    buf.write(f"{len(statuses)} requests profiled, {bad} non-200\n")
    stats.sort_stats("tottime").print_stats(top)
    stats.sort_stats("cumulative").print_stats(top)
    return buf.getvalue()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.profile_server")
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--replay", choices=("sqlite", "memory"), default="sqlite")
    parser.add_argument("--top", type=int, default=35)
    parser.add_argument("--batches", type=int, default=7)
    parser.add_argument("--per-batch", type=int, default=300)
    parser.add_argument("--no-profile", action="store_true")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="pkjwt-profile-") as tmp:
        app, make = build(args.replay, Path(tmp))
        print(f"== per-request cost by layer (replay {args.replay}; median of batches)")
        print("\n".join(breakdown(app, make, args.batches, args.per_batch)))
        print()
        if not args.no_profile:
            print(profile(app, make, args.requests, args.top))
        app.state.pkjwt.replay.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
