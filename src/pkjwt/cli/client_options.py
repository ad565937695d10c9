"""Options shared by ``pkjwt token`` and ``pkjwt call``, and the client they build."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any, TypeVar

import click

from ..certificates import X509_HEADERS, X509Header
from ..client import TokenClient
from ..config import ClientSettings, resolve_with_sources, section_names
from ..errors import ConfigError
from ..profiles import PROFILES, get_profile
from ..signers import redact_key_uri
from ..stores import FileStore
from .common import load_cli_key
from .dpop_key import cli_dpop

F = TypeVar("F", bound=Callable[..., Any])

_OPTIONS = [
    click.option(
        "-s", "--section", metavar="NAME", help="A [sections.NAME] table of the config file."
    ),
    # 0.1's spelling: "-p" read as --profile to everyone, so it became --section
    click.option("-p", "--use", "use", metavar="NAME", hidden=True),
    click.option("--token-url", help="Token endpoint URL."),
    click.option("--issuer", help="Issuer URL (metadata is discovered)."),
    click.option("--client-id", help="Client id (NHS: the app's API key)."),
    click.option("--key", help="Private key file, or env:VAR holding PEM/JWK text."),
    click.option("--kid", help="Key id registered in your JWKS."),
    click.option(
        "--cert",
        "--certificate",
        "certificate",
        metavar="FILE",
        help="The key's X.509 certificate chain (PEM), if the key file does not hold it.",
    ),
    click.option(
        "--cert-headers",
        metavar="x5t#S256,x5t,x5c",
        help="Certificate headers to send (Entra ID certificate credentials want x5t).",
    ),
    click.option(
        "--assertion-source",
        metavar="SPEC",
        help="No key: send a workload identity token (federated credential) from "
        "file:PATH, env:VAR, exec:COMMAND or github-actions[:AUDIENCE].",
    ),
    click.option("--alg", help="Signing algorithm (default: the profile's, else the key's)."),
    click.option(
        "--profile", metavar="|".join(PROFILES), help="Assertion profile (what the JWT says)."
    ),
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
    click.option(
        "--timeout",
        type=click.FloatRange(0, 600, min_open=True),
        help="Seconds per request (default 30).",
    ),
    click.option("--ca-bundle", help="PEM file of extra CAs to trust (a TLS-inspecting proxy's)."),
    click.option(
        "--trust",
        type=click.Choice(["certifi", "system"]),
        help="TLS trust store: certifi (default) or system (the OS's; needs pkjwt[truststore]).",
    ),
    click.option(
        "--store",
        metavar="URL",
        help="Where tokens are shared: file:///DIR (default: the user cache), redis://HOST/DB.",
    ),
    click.option("--no-cache", is_flag=True, help="Do not read or write the token cache."),
    click.option(
        "--dpop/--no-dpop",
        default=None,
        help="DPoP-bound tokens (RFC 9449): a proof with every request. The key is kept "
        "0600 in the state dir while the cache is used (ephemeral with --no-cache).",
    ),
    click.option(
        "--jwks",
        metavar="FILE|URL",
        help="The JWKS registered for this client at the server (--explain checks against it).",
    ),
    click.option(
        "-v", "--verbose", is_flag=True, help="Say where each setting came from (never a secret)."
    ),
]


def client_options(func: F) -> F:
    for option in reversed(_OPTIONS):
        func = option(func)
    return func


def settings_from(kwargs: dict[str, Any]) -> ClientSettings:
    section = kwargs.pop("section", None)
    use = kwargs.pop("use", None)
    verbose = kwargs.pop("verbose", False)
    if use is not None:
        click.echo(
            "warning: -p/--use is now -s/--section (--profile is the assertion profile)", err=True
        )
        section = section or use
    profile = kwargs.get("profile")
    if profile is not None and profile not in PROFILES:
        hint = "choose one of " + ", ".join(PROFILES)
        if profile in section_names():
            hint = f"{profile!r} is a config section: pass --section {profile}"
        raise ConfigError(f"unknown assertion profile {profile!r}", hint=hint)
    settings, sources = resolve_with_sources(kwargs, section)
    if verbose:
        show_sources(settings, sources)
    missing = settings.missing()
    if missing:
        raise click.UsageError(
            "missing " + ", ".join(missing) + " (as flags, PKJWT_* variables, or --section NAME)"
        )
    return settings


def show_sources(settings: ClientSettings, sources: dict[str, str]) -> None:
    """Each setting and where it came from, on stderr; values that name secrets are shown only
    as the variable that holds them."""
    click.echo("settings (flags > PKJWT_* variables > config section > [default]):", err=True)
    for name, where in sorted(sources.items()):
        value = getattr(settings, name)
        if isinstance(value, str):
            value = redact_key_uri(value)  # a pkcs11: URI may carry its PIN
        click.echo(f"  {name:<18} {value!s:<48} from {where}", err=True)


def _cert_headers(text: str | None) -> tuple[X509Header, ...]:
    names = [n.strip() for n in (text or "").split(",") if n.strip()]
    unknown = [n for n in names if n not in X509_HEADERS]
    if unknown:
        raise ConfigError(
            f"--cert-headers: unknown {', '.join(unknown)}", hint="use x5t#S256, x5t and/or x5c"
        )
    return tuple(n for n in X509_HEADERS if n in names)


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
        assertion_source=settings.assertion_source,
        certificate=settings.certificate,
        x509_headers=_cert_headers(settings.cert_headers),
        client_secret=secret,
        auth_method=settings.auth_method,  # type: ignore[arg-type]
        profile=get_profile(settings.profile) if settings.profile else None,
        scope=settings.scope,
        resource=settings.resource,
        audience=settings.audience,
        timeout=settings.timeout or 30.0,
        ca_bundle=settings.ca_bundle,
        trust="system" if settings.trust == "system" else "certifi",
        store=(settings.store or FileStore()) if cache else None,
        dpop=cli_dpop(settings, persist=cache),
    )
