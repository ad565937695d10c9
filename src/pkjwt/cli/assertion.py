"""pkjwt assertion: print one signed client assertion."""

from __future__ import annotations

import click

from ..assertion import AssertionFactory
from ..decode import decode_compact
from ..profiles import PROFILES
from .common import echo_json, load_cli_key


@click.command("assertion")
@click.option("--client-id", required=True, help="Your client id (NHS: the app's API key).")
@click.option("--key", "key_spec", required=True, help="Private key file, or env:VAR.")
@click.option("--kid", help="Key id registered in your JWKS (default: thumbprint or JWK kid).")
@click.option("--token-url", help="Token endpoint URL (aud for nhs and legacy).")
@click.option("--issuer", help="Issuer identifier (aud for rfc7523bis and fapi2).")
@click.option("--audience", help="Explicit aud, overriding the profile's choice.")
@click.option(
    "--profile",
    type=click.Choice(list(PROFILES)),
    default="nhs",
    show_default=True,
    help="Assertion profile.",
)
@click.option("--lifetime", type=int, help="Seconds until exp (default: the profile's).")
@click.option("--password-env", help="Env var holding the key password.")
@click.option("--json", "as_json", is_flag=True, help="Print header, claims and the JWT as JSON.")
def command(
    client_id: str,
    key_spec: str,
    kid: str | None,
    token_url: str | None,
    issuer: str | None,
    audience: str | None,
    profile: str,
    lifetime: int | None,
    password_env: str | None,
    as_json: bool,
) -> None:
    """Sign a client assertion and print it.

    \b
    Example (NHS integration environment):
      pkjwt assertion --client-id "$API_KEY" --key test-1.pem --kid test-1 \\
        --token-url https://int.api.service.nhs.uk/oauth2/token
    """
    if not (token_url or issuer or audience):
        raise click.UsageError("give one of --token-url, --issuer or --audience")
    key = load_cli_key(key_spec, kid=kid, password_env=password_env)
    factory = AssertionFactory(
        key,
        client_id=client_id,
        profile=profile,
        token_url=token_url,
        issuer=issuer,
        audience=audience,
        lifetime=lifetime,
    )
    jwt = factory.make()
    if as_json:
        decoded = decode_compact(jwt)
        echo_json({"assertion": jwt, "header": decoded.header, "claims": decoded.claims})
    else:
        click.echo(jwt)
