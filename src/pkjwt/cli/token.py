"""pkjwt token: print an access token (cached across runs), or explain why there is none."""

from __future__ import annotations

import re
import sys
import time
from typing import Any

import click

from ..client import TokenClient
from ..doctor import diagnose
from ..errors import InvalidClient, InvalidRequest, OAuthError
from .client_options import build_client, client_options, settings_from
from .common import echo_json, err
from .doctor import render_report

#: an error_description that names a rule of the table (pkjwt's own server does)
RULE_NAMED = re.compile(r"R\d{1,2} ")


@click.command("token")
@client_options
@click.option("--json", "as_json", is_flag=True, help="Print the token response as JSON.")
@click.option("--explain", is_flag=True, help="On invalid_client, run doctor on the assertion.")
def command(as_json: bool, explain: bool, no_cache: bool, **kwargs: Any) -> None:
    """Get an access token and print it (only the token, for $(pkjwt token ...)).

    Tokens are cached (0600 files in the user cache dir) and shared by concurrent runs until
    shortly before they expire. Settings come from flags, PKJWT_* variables (PKJWT_TOKEN_URL,
    PKJWT_CLIENT_ID, PKJWT_KEY, PKJWT_KID, PKJWT_PROFILE, ...) or a section of the config file
    ($PKJWT_CONFIG, default ~/.config/pkjwt/config.toml) chosen with -p NAME.

    \b
    Example:
      export TOKEN=$(pkjwt token --token-url https://int.api.service.nhs.uk/oauth2/token \\
          --client-id "$API_KEY" --key test-1.pem --kid test-1 --profile nhs)
      pkjwt token -p int --json
    """
    settings = settings_from(kwargs)
    client = build_client(settings, cache=not no_cache)
    cached = client.manager.store is not None and client.manager.store.get(client.cache_key)
    started = time.time()
    try:
        token = client.get_token()
    except (InvalidClient, InvalidRequest) as exc:
        if explain:
            _explain(client, exc)
        raise
    finally:
        client.close()
    was_cached = bool(cached) and cached.access_token == token.access_token  # type: ignore[union-attr]
    if as_json:
        out: dict[str, Any] = {
            "access_token": token.access_token,
            "token_type": token.token_type,
            "expires_in": int(token.expires_at - time.time()),
            "expires_at": int(token.expires_at),
            "scope": token.scope,
            "cached": was_cached,
            "lifetime_assumed": token.lifetime_assumed,
        }
        echo_json(out)
    else:
        if sys.stderr.isatty():
            how = "from cache" if was_cached else f"fetched in {time.time() - started:.2f} s"
            err(f"token {how}, expires in {int(token.expires_at - time.time())} s")
        click.echo(token.access_token)


def _explain(client: TokenClient, exc: OAuthError) -> None:
    plan = client.assertion_plan()
    if plan is None:
        err(f"no assertion to explain: this client authenticates with {client.auth_method}")
        return
    err(click.style("the server rejected the client assertion; doctor says:", bold=True))
    assertion = client.make_assertion()
    shape = plan.profile
    metadata = plan.metadata
    server_profile = metadata.raw.get("pkjwt_profile") if metadata is not None else None
    report = diagnose(
        assertion,
        profile=shape,
        token_url=plan.token_url,
        issuer=plan.issuer,
        client_id=client.client_id,
        # the client's own public key: checks the signature, alg and kid are self-consistent
        # (whether the server registered that key is for the server to say)
        jwks=plan.public_keys,
    )
    render_report(report, shape.name, err=True)
    named = exc.description or ""
    if isinstance(server_profile, str) and server_profile != shape.name:
        err(
            f"the server validates with the {server_profile} profile, this client signed for "
            f"{shape.name}: pass --profile {server_profile}"
        )
    if report.ok and RULE_NAMED.match(named):
        err(
            f"the server names a rule the client-side check passes: {named}\n"
            "its registration decides (the alg or kid it registered, its issuer, its profile)"
        )
    elif report.ok:
        err(
            "every rule the client can check passes: the usual remaining causes are a kid or "
            "public key not registered (or not yet visible: JWKS caches), the wrong environment's "
            "API key, or the wrong private key for the registered kid"
        )
