"""Helpers every command shares: key loading with passwords, safe file writes, output."""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import click

from ..errors import ConfigError, KeyLoadError
from ..keys import Key, load_key

PASSWORD_ENV = "PKJWT_KEY_PASSWORD"


def echo_json(obj: Any) -> None:
    click.echo(json.dumps(obj, indent=2, sort_keys=False))


def err(message: str) -> None:
    click.echo(message, err=True)


def style(text: str, **kw: Any) -> str:
    return click.style(text, **kw)


def load_cli_key(
    spec: str, *, kid: str | None = None, alg: str | None = None, password_env: str | None = None
) -> Key:
    """Load ``--key``: a path, or ``env:NAME`` for a variable holding PEM/JWK text.

    The password comes from ``--password-env VAR``, else ``$PKJWT_KEY_PASSWORD``, else a prompt
    when the key turns out to be encrypted and a terminal is attached.
    """
    env_name = spec[4:] if spec.startswith("env:") else None
    source: Any = None if env_name else spec
    password = os.environ.get(password_env or PASSWORD_ENV) or None
    if password_env and password is None:
        raise KeyLoadError(f"environment variable {password_env} (the key password) is not set")
    try:
        return load_key(source, password=password, kid=kid, alg=alg, env=env_name)
    except KeyLoadError as exc:
        if "no password was given" not in exc.message or not sys.stdin.isatty():
            raise
    password = click.prompt("Key password", hide_input=True, err=True)
    return load_key(source, password=password, kid=kid, alg=alg, env=env_name)


def write_file(path: Path, data: bytes, *, force: bool, mode: int) -> None:
    """Write a file atomically with ``mode``; never leave a half-written file behind."""
    check_writable(path, force=force)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        raise ConfigError(f"cannot write {path}: {exc.strerror}") from None
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise ConfigError(f"cannot write {path}: {exc.strerror}") from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


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
