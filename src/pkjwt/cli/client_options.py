"""Options shared by ``pkjwt token`` and ``pkjwt call``, and the client they build."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any, TypeVar

import click

from ..client import TokenClient
from ..config import ClientSettings, resolve_settings
from ..errors import ConfigError
from ..profiles import PROFILES
from ..stores import FileStore
from .common import load_cli_key

F = TypeVar("F", bound=Callable[..., Any])

_OPTIONS = [
    click.option("-p", "--use", "use", metavar="NAME", help="Named section of the config file."),
    click.option("--token-url", help="Token endpoint URL."),
    click.option("--issuer", help="Issuer URL (metadata is discovered)."),
    click.option("--client-id", help="Client id (NHS: the app's API key)."),
    click.option("--key", help="Private key file, or env:VAR holding PEM/JWK text."),
    click.option("--kid", help="Key id registered in your JWKS."),
    click.option("--alg", help="Signing algorithm (default: the profile's, else the key's)."),
    click.option("--profile", type=click.Choice(list(PROFILES)), help="Assertion profile."),
    click.option("--scope", help="Scope to request (space-separated)."),
    click.option("--resource", help="Resource indicator (RFC 8707)."),
    click.option("--audience", help="Explicit assertion aud."),
    click.option("--password-env", help="Env var holding the key password."),
    click.option(
        "--client-secret-env", help="Env var holding a client secret (client_secret_* methods)."
    ),
    click.option(
        "--auth-method",
        type=click.Choice(
            ["private_key_jwt", "client_secret_jwt", "client_secret_basic", "client_secret_post"]
        ),
        help="Client authentication method (default: private_key_jwt with --key).",
    ),
    click.option("--timeout", type=float, help="Seconds per request (default 30)."),
    click.option("--no-cache", is_flag=True, help="Do not read or write the token cache."),
]


def client_options(func: F) -> F:
    for option in reversed(_OPTIONS):
        func = option(func)
    return func


def settings_from(kwargs: dict[str, Any]) -> ClientSettings:
    use = kwargs.pop("use", None)
    settings = resolve_settings(kwargs, use)
    missing = settings.missing()
    if missing:
        raise click.UsageError(
            "missing " + ", ".join(missing) + " (as flags, PKJWT_* variables, or -p NAME)"
        )
    return settings


def build_client(settings: ClientSettings, *, cache: bool) -> TokenClient:
    secret = None
    if settings.client_secret_env:
        secret = os.environ.get(settings.client_secret_env)
        if not secret:
            raise ConfigError(f"environment variable {settings.client_secret_env} is not set")
    key = (
        load_cli_key(
            settings.key, kid=settings.kid, alg=settings.alg, password_env=settings.password_env
        )
        if settings.key
        else None
    )
    return TokenClient(
        token_url=settings.token_url,
        issuer=settings.issuer,
        client_id=settings.client_id or "",
        key=key,
        client_secret=secret,
        auth_method=settings.auth_method,  # type: ignore[arg-type]
        profile=settings.profile,
        scope=settings.scope,
        resource=settings.resource,
        audience=settings.audience,
        timeout=settings.timeout or 30.0,
        store=FileStore() if cache else None,
    )
