"""Helpers every command shares: key loading with passwords, safe file writes, output."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import click

from .._private import write_atomic
from ..config import ClientSettings
from ..errors import ConfigError, KeyLoadError
from ..keys import Key, KeySet, load_jwks, load_key
from ..signers import RemoteSigner, is_key_uri, open_signer, redact_key_uri

PASSWORD_ENV = "PKJWT_KEY_PASSWORD"


def echo_json(obj: Any) -> None:
    click.echo(json.dumps(obj, indent=2, sort_keys=False))


def err(message: str) -> None:
    click.echo(message, err=True)


def style(text: str, **kw: Any) -> str:
    return click.style(text, **kw)


def load_cli_key(
    spec: str, *, kid: str | None = None, alg: str | None = None, password_env: str | None = None
) -> Key | RemoteSigner:
    """Load ``--key``: a path, ``env:NAME`` for a variable holding PEM/JWK text, or a key URI
    (``pkcs11:...``, ``awskms:...``) for a key that stays in its HSM or KMS.

    The password comes from ``--password-env VAR``, else ``$PKJWT_KEY_PASSWORD``, else a prompt
    when the key turns out to be encrypted and a terminal is attached.
    """
    if is_key_uri(spec):
        return open_signer(spec, alg=alg, kid=kid)
    return _load_local_key(spec, kid=kid, alg=alg, password_env=password_env)


def load_local_cli_key(
    spec: str, *, kid: str | None = None, alg: str | None = None, password_env: str | None = None
) -> Key:
    """``--key`` where the command needs the key itself, not only its signatures."""
    if is_key_uri(spec):
        raise KeyLoadError(
            f"{redact_key_uri(spec)} stays in its HSM/KMS; this command needs a local key file",
        )
    return _load_local_key(spec, kid=kid, alg=alg, password_env=password_env)


def _load_local_key(
    spec: str, *, kid: str | None, alg: str | None, password_env: str | None
) -> Key:
    env_name = spec[4:] if spec.startswith("env:") else None
    source: Any = None if env_name else spec
    password = os.environ.get(password_env or PASSWORD_ENV) or None
    if password_env and password is None:
        raise KeyLoadError(f"environment variable {password_env} (the key password) is not set")
    try:
        key = load_key(source, password=password, kid=kid, alg=alg, env=env_name)
    except KeyLoadError as exc:
        if "no password was given" not in exc.message or not sys.stdin.isatty():
            raise
        password = click.prompt("Key password", hide_input=True, err=True)
        key = load_key(source, password=password, kid=kid, alg=alg, env=env_name)
    if alg is None and env_name is None and not key.alg_pinned:
        key = _alg_from_published_jwks(key, Path(spec))
    return key


#: where keygen's JWKS usually sits beside the key: the published alg is the one to sign with
_JWKS_NAMES = ("jwks.json", "{stem}.jwks.json", "{stem}.json")


def _alg_from_published_jwks(key: Key, key_path: Path) -> Key:
    """A PEM file does not say which alg it was made for (RS512 and RS256 keys look alike);
    the JWKS published next to it (``pkjwt keygen --jwks``) does. Pin that one, and say so."""
    for pattern in _JWKS_NAMES:
        candidate = key_path.with_name(pattern.format(stem=key_path.stem))
        if candidate == key_path or not candidate.is_file():
            continue
        try:
            published = load_jwks(candidate)
        except KeyLoadError:
            continue
        for jwk in published.keys:
            if jwk.alg_pinned and jwk.thumbprint() == key.thumbprint():
                err(
                    f"note: signing with {jwk.alg}, the alg {candidate.name} publishes for this key"
                )
                return key.with_alg(jwk.alg)
    return key


def write_file(path: Path, data: bytes, *, force: bool, mode: int) -> None:
    """Write a file atomically with ``mode``; never leave a half-written file behind."""
    check_writable(path, force=force)
    write_atomic(path, data, mode=mode)


def check_writable(path: Path, *, force: bool) -> None:
    """Refuse, before anything is written, a path that cannot take a new file: an existing file
    without ``force``, a directory, or a parent that is a file or not writable."""
    if path.is_dir():
        raise ConfigError(f"{path} is a directory", hint="give a file name, e.g. key.pem")
    if path.exists() and not force:
        raise ConfigError(f"{path} exists", hint="pass --force to overwrite it")
    parent = next((p for p in path.parents if p.exists()), Path("."))
    if not parent.is_dir():
        raise ConfigError(f"cannot write {path}: {parent} is a file, not a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ConfigError(f"cannot write {path}: {parent} is not writable")


def write_private_file(path: Path, data: bytes, *, force: bool) -> None:
    """A secret (a private key): mode 0600 from the first byte."""
    write_file(path, data, force=force, mode=0o600)


def write_public_file(path: Path, text: str, *, force: bool) -> None:
    write_file(path, text.encode(), force=force, mode=0o644)


def read_jwks(source: str, settings: ClientSettings, what: str) -> KeySet:
    """A JWKS from a file, or from a URL fetched once with the settings' TLS trust (what a
    server registered for the client: --jwks, pkjwt rotate's check)."""
    if "://" not in source:
        try:
            return load_jwks(Path(source))
        except KeyLoadError as exc:
            raise ConfigError(f"{what} {source}: {exc.message}", hint=exc.hint) from None
    import httpx

    from ..transport import tls_context
    from ..urls import endpoint_url

    endpoint_url(source, f"{what} URL")
    verify = tls_context("system" if settings.trust == "system" else "certifi", settings.ca_bundle)
    try:
        response = httpx.get(source, timeout=settings.timeout or 30.0, verify=verify)
    except httpx.HTTPError as exc:
        raise ConfigError(f"{what} {source}: cannot fetch it ({type(exc).__name__})") from None
    if response.status_code != 200 or len(response.content) > 1 << 20:
        raise ConfigError(f"{what} {source}: HTTP {response.status_code}, not a JWKS")
    try:
        return load_jwks(response.content)
    except KeyLoadError as exc:
        raise ConfigError(f"{what} {source}: {exc.message}", hint=exc.hint) from None
