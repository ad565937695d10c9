"""pkjwt token: print an access token (cached across runs), or explain why there is none."""

from __future__ import annotations

import re
import sys
import time
from typing import Any

import click

from ..client import TokenClient
from ..config import ClientSettings
from ..doctor import diagnose
from ..errors import CredentialsRejected, InvalidRequest, OAuthError
from ..keys import KeySet
from .client_options import build_client, client_options, settings_from
from .common import echo_json, err, read_jwks
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
    ($PKJWT_CONFIG, default ~/.config/pkjwt/config.toml) chosen with -s NAME; -v shows
    where each setting came from. --dpop asks for a DPoP-bound token (its key kept 0600 in
    the state dir, so the cached token stays usable by pkjwt call --dpop).

    \b
    Example:
      export TOKEN=$(pkjwt token --token-url https://int.api.service.nhs.uk/oauth2/token \\
          --client-id "$API_KEY" --key test-1.pem --kid test-1 --profile nhs)
      pkjwt token -s int --json
    """
    settings = settings_from(kwargs)
    client = build_client(settings, cache=not no_cache)
    cached = client.manager.store is not None and client.manager.store.get(client.cache_key)
    started = time.time()
    try:
        token = client.get_token()
    except (CredentialsRejected, InvalidRequest) as exc:
        if explain:
            _explain(client, exc, settings)
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
        if client.dpop is not None:  # the key a DPoP token is bound to (its thumbprint)
            out["dpop_jkt"] = client.dpop.jkt
        echo_json(out)
    else:
        if sys.stderr.isatty():
            how = "from cache" if was_cached else f"fetched in {time.time() - started:.2f} s"
            err(f"token {how}, expires in {int(token.expires_at - time.time())} s")
        click.echo(token.access_token)


def _explain(client: TokenClient, exc: OAuthError, settings: ClientSettings) -> None:
    plan = client.assertion_plan()
    if plan is None:
        err(f"no assertion to explain: this client authenticates with {client.auth_method}")
        return
    err(click.style("the server rejected the client assertion; doctor says:", bold=True))
    assertion = client.make_assertion()
    shape = plan.profile
    metadata = plan.metadata
    server_profile = metadata.raw.get("pkjwt_profile") if metadata is not None else None
    registered = read_jwks(settings.jwks, settings, "--jwks") if settings.jwks else None
    if registered is not None and plan.public_keys is not None:
        _compare_with_registration(plan.public_keys, registered, plan.kid)
    report = diagnose(
        assertion,
        profile=shape,
        token_url=plan.token_url,
        issuer=plan.issuer,
        client_id=client.client_id,
        # the registered JWKS when given (what the server checks with); else the client's own
        # public key, which checks only that the signature, alg and kid are self-consistent
        jwks=registered if registered is not None else plan.public_keys,
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


def _compare_with_registration(own: KeySet, registered: KeySet, kid: str | None) -> None:
    """Say plainly when the key we sign with is not the one registered under our kid."""
    mine = own.keys[0]
    theirs = registered.get(kid)
    if theirs is None:
        err(
            f"the registered JWKS has no key with kid {kid!r} (it has: "
            f"{', '.join(registered.kids)}): register this key, or sign with a kid it has"
        )
    elif theirs.thumbprint() != mine.thumbprint():
        err(
            f"the registered JWKS's key {kid!r} is not this private key's public half "
            f"(thumbprints {theirs.fingerprint} vs {mine.fingerprint}): a different key is "
            "registered under this kid"
        )
