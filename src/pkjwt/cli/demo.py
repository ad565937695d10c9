"""pkjwt demo: the whole story, offline, on embedded defaults.

Starts the local server in NHS mode on a free loopback port, registers a freshly generated
key, gets a token through the library, calls a protected API with it, then sends a broken
assertion and lets the doctor explain the server's refusal.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
import httpx

from .. import forge
from ..client import TokenClient
from ..doctor import diagnose
from ..integrations.httpx import HttpxAuth
from ..keys import Key, KeySet, generate_key, jwks
from ..profiles import JWT_BEARER, NHS
from ..server.config import parse_config

if TYPE_CHECKING:
    from ..server.run import RunningServer
from .doctor import render_report

DEMO_CLIENT_ID = "demo-api-key"


def _step(n: int, text: str) -> None:
    click.echo(click.style(f"\n[{n}] {text}", fg="cyan", bold=True))


def _show(label: str, obj: Any) -> None:
    click.echo(f"    {label:<8} {json.dumps(obj)}")


def _short(secret: str) -> str:
    return secret[:6] + "..." + f"({len(secret)} chars)"


@click.command("demo")
@click.option("--size", type=int, default=4096, show_default=True, help="RSA key size.")
@click.option("--keep", is_flag=True, help="Keep the temporary folder (key, JWKS, config).")
def command(size: int, keep: bool) -> None:
    """Run pkjwt end to end with nothing to set up (no network beyond loopback).

    \b
    1. generate an RSA key and its JWKS     4. call a protected API with the token
    2. start the local server in NHS mode    5. send a broken assertion; doctor explains
    3. get a token with the library (nhs profile)

    \b
    Example:
      pkjwt demo
    """
    from ..server.run import run_in_thread  # the ASGI stack: the 'server' extra

    workdir = Path(tempfile.mkdtemp(prefix="pkjwt-demo-"))
    key, published = _make_key(workdir, size)
    config = parse_config(
        {
            "profile": "nhs",
            "replay_store": f"sqlite:///{workdir / 'replay.sqlite3'}",
            "clients": [{"client_id": DEMO_CLIENT_ID, "jwks": published}],
        },
        source="demo",
    )
    with run_in_thread(config) as server:
        _step(2, "local authorization server running in NHS mode")
        click.echo(
            f"    token endpoint {server.token_url}  (replay store: SQLite, 30-day jti memory)"
        )
        with TokenClient(
            token_url=server.token_url, client_id=DEMO_CLIENT_ID, key=key, profile="nhs"
        ) as client:
            _get_token(server, client)
            _call_api(server, client)
        _refused(server, key)
    if keep:
        click.echo(f"\nfiles kept in {workdir}")
    else:
        for path in workdir.iterdir():
            path.unlink()
        workdir.rmdir()
    click.echo(click.style("\ndemo finished: every step ran", fg="green", bold=True))


def _make_key(workdir: Path, size: int) -> tuple[Key, dict[str, Any]]:
    _step(1, f"generate an RSA-{size} key for RS512 (the NHS norm) and its public JWKS")
    t0 = time.perf_counter()
    key = generate_key("RS512", kid="demo-1", size=size)
    published = jwks([key])
    (workdir / "jwks.json").write_text(json.dumps(published, indent=2))
    click.echo(f"    {key.describe()}  ({(time.perf_counter() - t0) * 1000:.0f} ms)")
    click.echo(f"    JWKS to register: {workdir / 'jwks.json'} (public members only)")
    return key, published


def _get_token(server: RunningServer, client: TokenClient) -> None:
    _step(3, "get a token with the library: TokenClient(profile='nhs')")
    t0 = time.perf_counter()
    token = client.get_token()
    fetched_ms = (time.perf_counter() - t0) * 1000
    seen = server.state.requests[-1]
    _show("header", seen.header)
    _show("claims", seen.claims)
    raw = dict(token.raw)
    raw["access_token"] = _short(token.access_token)
    _show("response", raw)
    click.echo(
        f"    fetched in {fetched_ms:.0f} ms; expires in "
        f"{token.expires_at - time.time():.0f} s; the next get_token() is a cache hit: "
        f"{client.get_token() is token}"
    )


def _call_api(server: RunningServer, client: TokenClient) -> None:
    _step(4, "call the protected echo API with the token attached (HttpxAuth)")
    with httpx.Client(auth=HttpxAuth(client)) as http:
        response = http.get(server.issuer + "/echo")
    click.echo(f"    GET /echo -> HTTP {response.status_code}")
    _show("body", response.json())


def _refused(server: RunningServer, key: Key) -> None:
    _step(5, "a hand-built assertion with the classic mistakes, and the server's answer")
    token_url = server.token_url
    header = {"alg": "RS512", "kid": "demo-1"}  # no typ
    claims = {
        "iss": DEMO_CLIENT_ID,
        "aud": token_url,
        "jit": "1",
        "exp": str(int(time.time()) + 3600),
    }
    bad = forge.sign(key, header, claims)
    _show("header", header)
    _show("claims", claims)
    refused = httpx.post(
        token_url,
        content=(
            f"grant_type=client_credentials&client_assertion_type={JWT_BEARER}"
            f"&client_assertion={bad}"
        ).encode(),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    click.echo(f"    server -> HTTP {refused.status_code} {refused.json()['error_description']}")
    click.echo("    the platform names only the first problem; doctor names them all:")
    report = diagnose(bad, profile=NHS, token_url=token_url, jwks=KeySet((key.public(),)))
    render_report(report, NHS, show_parts=False)
