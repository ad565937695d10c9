"""pkjwt doctor: explain a client assertion rule by rule, with the fix for each failure."""

from __future__ import annotations

import functools
import json
import sys
from typing import Any

import click

from ..doctor import diagnose, diagnose_proof, explain, guess_profile, is_dpop_proof
from ..keys import load_jwks
from ..profiles import PROFILES, Profile, get_profile
from ..rules import Report, Verdict
from ..server.dialects import dialect_for
from .common import echo_json

_COLOR = {Verdict.PASS: "green", Verdict.FAIL: "red", Verdict.SKIP: "bright_black"}


def render_report(
    report: Report,
    profile: Profile | str,
    *,
    show_parts: bool = True,
    err: bool = False,
    title: str | None = None,
) -> None:
    """Human-readable verdicts, one line per rule, the fix under each failure, and how a
    server of the profile's dialect answers it."""
    echo = functools.partial(click.echo, err=err)
    prof = get_profile(profile)
    dialect = dialect_for(prof)
    if show_parts and (report.header or report.claims):
        echo(click.style("header (untrusted): ", bold=True) + json.dumps(report.header))
        echo(click.style("claims (untrusted): ", bold=True) + json.dumps(report.claims))
    echo(click.style(title or f"rules ({prof.name} profile):", bold=True))
    for f in report.findings:
        seen = explain(f, dialect.public_answer)
        color = _COLOR[f.verdict]
        line = f"  {click.style(seen.mark, fg=color, bold=True)} {seen.rule:<4} {seen.title}"
        if seen.failed:
            line += f"\n         expected {seen.expected}\n         got      {seen.got}"
            if seen.fix:
                line += "\n         " + click.style("fix: ", fg="yellow") + seen.fix
            line += f"\n         ({seen.note})"
        elif f.verdict is Verdict.SKIP:
            line += click.style(f"  ({seen.aside})", fg="bright_black")
        elif seen.aside:
            line += click.style(f"  {seen.aside}", fg="bright_black")
        echo(line)
    failures = report.failures
    if failures:
        echo(click.style(f"verdict: {len(failures)} rule(s) fail", fg="red", bold=True))
    else:
        skipped = [f.rule for f in report.findings if f.verdict is Verdict.SKIP]
        note = f" ({', '.join(skipped)} not checked here)" if skipped else ""
        echo(click.style("verdict: acceptable", fg="green", bold=True) + note)


@click.command("doctor")
@click.argument("jwt")
@click.option("--profile", type=click.Choice(list(PROFILES)), help="Profile (default: guessed).")
@click.option("--token-url", help="The token URL the assertion is for.")
@click.option("--issuer", help="The authorization server's issuer identifier.")
@click.option("--client-id", help="The client id the server expects.")
@click.option("--jwks", "jwks_path", help="Verify the signature against this JWKS file.")
@click.option("--htm", help="DPoP proof: the method of the request it was made for.")
@click.option("--htu", help="DPoP proof: the URL of the request it was made for.")
@click.option("--access-token", help="DPoP proof at an API: the token it accompanies (ath).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable findings.")
def command(
    jwt: str,
    profile: str | None,
    token_url: str | None,
    issuer: str | None,
    client_id: str | None,
    jwks_path: str | None,
    htm: str | None,
    htu: str | None,
    access_token: str | None,
    as_json: bool,
) -> None:
    """Explain why a server would accept or reject JWT (use - to read it from stdin).

    Decodes without trusting, runs the rule table and prints a verdict per rule with the fix.
    Exit code 0 only when no rule fails.

    \b
    Example:
      pkjwt doctor "$JWT" --profile nhs \\
        --token-url https://int.api.service.nhs.uk/oauth2/token --jwks jwks.json
    """
    if jwt == "-":
        jwt = sys.stdin.read(1 << 24)
    jwt = _bare_jwt(jwt)
    if is_dpop_proof(jwt):  # a DPoP proof, not an assertion: the D rules judge it
        _proof(jwt, htm, htu or token_url, access_token, as_json)
        return
    prof = get_profile(profile) if profile else guess_profile(jwt)
    keys = load_jwks(jwks_path) if jwks_path else None
    for name, why in keys.ignored if keys is not None else ():
        click.echo(f"note: {jwks_path}: member {name} ignored ({why})", err=True)
    report = diagnose(
        jwt, profile=prof, token_url=token_url, issuer=issuer, jwks=keys, client_id=client_id
    )
    if as_json:
        out: dict[str, Any] = {
            "ok": report.ok,
            "profile": prof.name,
            "profile_guessed": profile is None,
            "header": report.header,
            "claims": report.claims,
            "findings": [f.as_dict() for f in report.findings],
        }
        echo_json(out)
    else:
        if profile is None:
            click.echo(f"profile: {prof.name} (guessed; pass --profile to choose)")
        render_report(report, prof)
    sys.exit(0 if report.ok else 1)


def _proof(
    proof: str, htm: str | None, htu: str | None, access_token: str | None, as_json: bool
) -> None:
    report = diagnose_proof(proof, htm=htm, htu=htu, access_token=access_token)
    if as_json:
        echo_json(
            {
                "ok": report.ok,
                "kind": "dpop_proof",
                "header": report.header,
                "claims": report.claims,
                "findings": [f.as_dict() for f in report.findings],
            }
        )
    else:
        click.echo("a DPoP proof (typ dpop+jwt): judged by the DPoP rules D1-D12")
        render_report(report, "rfc7523bis", title="DPoP proof rules (RFC 9449):")
    sys.exit(0 if report.ok else 1)


def _bare_jwt(text: str) -> str:
    """The JWT in what was pasted: without quotes, an ``Authorization: Bearer`` prefix, or the
    form around a ``client_assertion=...`` (a request body copied from a log)."""
    text = text.strip().strip("'\"").strip()
    if text.lower().startswith("authorization:"):
        text = text.split(":", 1)[1].strip()
    if text.lower().startswith("bearer "):
        text = text[7:].strip()
    if text.lower().startswith("dpop:"):  # a DPoP header line copied as is
        text = text[5:].strip()
    if "client_assertion=" in text:
        from urllib.parse import parse_qsl

        text = dict(parse_qsl(text.strip(), keep_blank_values=True)).get("client_assertion", text)
    return text.strip()
