"""pkjwt demo: the whole story, offline, on embedded defaults."""

from __future__ import annotations

import json
import time

import click

from ..assertion import AssertionFactory
from ..decode import b64url, decode_compact
from ..doctor import diagnose
from ..keys import KeySet, generate_key, jwks
from ..profiles import NHS
from .doctor import render_report

DEMO_TOKEN_URL = "https://int.api.service.nhs.uk/oauth2/token"
DEMO_CLIENT_ID = "demo-api-key"


def _step(n: int, text: str) -> None:
    click.echo(click.style(f"\n[{n}] {text}", fg="cyan", bold=True))


@click.command("demo")
@click.option("--size", type=int, default=4096, show_default=True, help="RSA key size.")
def command(size: int) -> None:
    """Run pkjwt end to end with nothing to set up: key, JWKS, NHS assertion, doctor.

    \b
    Example:
      pkjwt demo
    """
    _step(1, f"generate an RSA-{size} key for RS512 (the NHS norm)")
    t0 = time.perf_counter()
    key = generate_key("RS512", kid="demo-1", size=size)
    click.echo(f"    {key.describe()}  ({(time.perf_counter() - t0) * 1000:.0f} ms)")

    _step(2, "the public JWKS you would register with the platform")
    published = jwks([key])
    click.echo("    " + json.dumps(published)[:110] + "...")

    _step(3, "a signed assertion in the nhs profile")
    factory = AssertionFactory(key, client_id=DEMO_CLIENT_ID, token_url=DEMO_TOKEN_URL)
    t0 = time.perf_counter()
    jwt = factory.make()
    click.echo(f"    signed in {(time.perf_counter() - t0) * 1000:.2f} ms (key parsed once)")
    decoded = decode_compact(jwt)
    click.echo(f"    header {json.dumps(decoded.header)}")
    click.echo(f"    claims {json.dumps(decoded.claims)}")

    _step(4, "doctor checks it against the NHS rules and the published JWKS")
    keyset = KeySet((key.public(),))
    report = diagnose(jwt, profile=NHS, token_url=DEMO_TOKEN_URL, jwks=keyset)
    render_report(report, "nhs", show_parts=False)
    if not report.ok:
        raise click.ClickException("the demo assertion failed its own profile (a bug)")

    _step(5, "a hand-built assertion with the classic mistakes, explained")
    now = int(time.time())
    header = {"alg": "RS512", "kid": "demo-1"}  # no typ
    claims = {"iss": DEMO_CLIENT_ID, "aud": DEMO_TOKEN_URL, "jit": "1", "exp": str(now + 3600)}
    signing_input = (
        b64url(json.dumps(header).encode()) + "." + b64url(json.dumps(claims).encode())
    ).encode()
    bad = signing_input.decode() + "." + b64url(factory.signer.sign(signing_input))
    click.echo(f"    header {json.dumps(header)}")
    click.echo(f"    claims {json.dumps(claims)}")
    bad_report = diagnose(bad, profile=NHS, token_url=DEMO_TOKEN_URL, jwks=keyset)
    render_report(bad_report, "nhs", show_parts=False)
    click.echo(click.style("\ndemo finished: all steps ran", fg="green", bold=True))
