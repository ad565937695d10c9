"""pkjwt conformance: test a server's client assertion validation against the catalogue."""

from __future__ import annotations

import datetime
import sys
from pathlib import Path

import click

from ..conformance import CASES, CaseResult, Conformance, RunInfo, summarize
from ..conformance.report import as_html, as_json, as_junit, as_markdown, verdict
from ..profiles import PROFILES, get_profile
from .common import err, load_local_cli_key, write_public_file


@click.command("conformance")
@click.option("--issuer", help="The server's issuer (its metadata is read).")
@click.option("--token-url", help="The token endpoint (without --issuer).")
@click.option("--client-id", required=True, help="A client registered for private_key_jwt.")
@click.option("--key", required=True, help="That client's private key file (or env:VAR).")
@click.option("--kid", help="The kid registered for the key.")
@click.option("--alg", help="Pin the signing alg (default: the profile's and the server's).")
@click.option("--password-env", help="Env var holding the key password.")
@click.option(
    "--profile",
    type=click.Choice(list(PROFILES)),
    default="rfc7523bis",
    show_default=True,
    help="What the server should enforce (nhs: the NHS platform's checks).",
)
@click.option(
    "--rate", type=click.FloatRange(0.1, 50), default=2.0, show_default=True,
    help="Requests per second (the NHS platform allows 5).",
)  # fmt: skip
@click.option("--json", "as_json_", is_flag=True, help="Print the results as a JSON array.")
@click.option("--junit", type=click.Path(dir_okay=False, path_type=Path), help="JUnit XML here.")
@click.option(
    "--report",
    type=click.Path(dir_okay=False, path_type=Path),
    help="A report to attach to a ticket: .html, else Markdown.",
)
@click.option("--force", is_flag=True, help="Overwrite --junit/--report files.")
@click.option("--list", "list_only", is_flag=True, help="List the catalogue and send nothing.")
def command(
    issuer: str | None,
    token_url: str | None,
    client_id: str,
    key: str,
    kid: str | None,
    alg: str | None,
    password_env: str | None,
    profile: str,
    rate: float,
    as_json_: bool,
    junit: Path | None,
    report: Path | None,
    force: bool,
    list_only: bool,
) -> None:
    """Check that a server refuses what it must (and accepts what it must) in client assertions.

    Sends a catalogue of token requests to one endpoint, each with a fresh jti: a valid
    baseline, the OpenID conformance suite's negative list, audience-injection shapes,
    algorithm confusion, key-header injection, replay, tolerances. Each case names its rule,
    source and severity; the exit code is 0 only when no MUST-level case fails.

    \b
    Example:
      pkjwt conformance --issuer https://as.example.com --client-id test \\
          --key test.pem --kid test-1 --report report.html --junit conformance.xml
    """
    if not issuer and not token_url:
        raise click.UsageError("give --issuer URL or --token-url URL")
    prof = get_profile(profile)
    signing_key = load_local_cli_key(key, kid=kid, alg=alg, password_env=password_env)
    runner = Conformance(
        client_id=client_id,
        key=signing_key,
        profile=prof,
        token_url=token_url,
        issuer=issuer,
        rate=rate,
    )
    planned = runner.planned()
    if list_only:
        _list(runner)
        return
    for path in (junit, report):
        if path is not None and path.exists() and not force:
            raise click.UsageError(f"{path} exists (pass --force to overwrite it)")
    started = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    try:
        runner.discover()
        ctx = runner.context()
        where = runner.token_url or ""
        err(
            f"{len(planned)} cases, {runner.request_count()} token requests to {where} only, "
            f"at most {rate:g}/s (~{runner.request_count() / rate:.0f} s); profile {prof.name}, "
            f"alg {ctx.alg}"
        )
        results = []
        for n, result in enumerate(runner.run(), 1):
            results.append(result)
            if not as_json_:
                err(f"  [{n:>2}/{len(planned)}] {verdict(result):<5} {result.case.id}")
    finally:
        runner.close()
    info = RunInfo(where, runner.issuer, client_id, prof.name, ctx.alg, started)
    summary = summarize(results)
    if as_json_:
        click.echo(as_json(results))
    else:
        _table(results)
        click.echo(summary.line())
    _write(results, info, junit, report)
    sys.exit(0 if summary.ok else 1)


def _write(
    results: list[CaseResult], info: RunInfo, junit: Path | None, report: Path | None
) -> None:
    if junit is not None:
        write_public_file(junit, as_junit(results, info), force=True)
    if report is not None:
        html = report.suffix in (".html", ".htm")
        text = as_html(results, info) if html else as_markdown(results, info)
        write_public_file(report, text, force=True)


def _list(runner: Conformance) -> None:
    for case, expect in runner.planned():
        click.echo(
            f"{case.id:<24} {expect.severity.value:<9} {expect.label:<6} {case.rule_id:<4} "
            f"{case.title}"
        )


def _table(results: list[CaseResult]) -> None:
    width = max(len(r.case.id) for r in results) if results else 10
    for r in results:
        severity = r.severity.value if r.severity else "-"
        expected = r.expect.label if r.expect else "-"
        answer = f"{r.http_status} {r.error or ''}".strip() if r.http_status else r.detail
        click.echo(f"{verdict(r):<5} {r.case.id:<{width}} {severity:<9} {expected:<6} {answer}")


__all__ = ["CASES", "command"]
