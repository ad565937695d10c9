"""Client settings for the CLI: named sections of a TOML file, ``PKJWT_*`` variables, flags.

Precedence: command-line flags, then environment variables, then the named section
(``-p NAME``) of the config file, then the file's ``[default]`` section.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from .errors import ConfigError

__all__ = ["ClientSettings", "config_path", "resolve_settings"]

ENV_PREFIX = "PKJWT_"


def config_path() -> Path:
    import platformdirs

    env = os.environ.get("PKJWT_CONFIG")
    return Path(env) if env else Path(platformdirs.user_config_dir("pkjwt")) / "config.toml"


@dataclass(frozen=True, slots=True)
class ClientSettings:
    token_url: str | None = None
    issuer: str | None = None
    client_id: str | None = None
    key: str | None = None
    kid: str | None = None
    alg: str | None = None
    profile: str | None = None
    scope: str | None = None
    resource: str | None = None
    audience: str | None = None
    auth_method: str | None = None
    client_secret_env: str | None = None
    password_env: str | None = None
    timeout: float | None = None

    def missing(self) -> list[str]:
        out = []
        if not (self.token_url or self.issuer):
            out.append("--token-url or --issuer")
        if not self.client_id:
            out.append("--client-id")
        if not self.key and not self.client_secret_env:
            out.append("--key")
        return out


_FIELDS = {f.name for f in fields(ClientSettings)}


def _section(data: Mapping[str, Any], name: str, path: Path) -> dict[str, Any]:
    sections = data.get("profiles", {})
    if not isinstance(sections, dict):
        raise ConfigError(f"{path}: [profiles] must be a table")
    if name not in sections:
        known = ", ".join(sorted(sections)) or "none"
        raise ConfigError(
            f"{path}: no profile named {name!r} (known: {known})",
            hint=f"add a [profiles.{name}] table with token_url, client_id and key",
        )
    section = sections[name]
    if not isinstance(section, dict):
        raise ConfigError(f"{path}: [profiles.{name}] must be a table")
    return section


def _checked(values: Mapping[str, Any], where: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in values.items():
        if key not in _FIELDS:
            raise ConfigError(
                f"{where}: unknown setting {key!r}", hint="known: " + ", ".join(sorted(_FIELDS))
            )
        if key == "timeout":
            try:
                number = float(value)  # env values are strings: "15" is fine
            except (TypeError, ValueError):
                number = -1.0
            if isinstance(value, bool) or not 0 < number <= 600:
                raise ConfigError(f"{where}: timeout must be a number of seconds (0-600]")
            out[key] = number
        elif not isinstance(value, str):
            raise ConfigError(f"{where}: {key} must be a string")
        else:
            out[key] = os.path.expanduser(value) if key == "key" else value
    return out


def resolve_settings(flags: Mapping[str, Any], use: str | None = None) -> ClientSettings:
    """Merge the config file section ``use``, the environment and the flags."""
    merged: dict[str, Any] = {}
    path = config_path()
    data: dict[str, Any] = {}
    if path.is_file():
        try:
            data = tomllib.loads(path.read_text("utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{path}: not valid TOML ({exc})") from None
        default = data.get("default", {})
        if isinstance(default, dict):
            merged.update(_checked(default, f"{path} [default]"))
    elif use:
        raise ConfigError(
            f"-p {use}: config file {path} does not exist",
            hint="create it with a [profiles.NAME] table, or set PKJWT_CONFIG",
        )
    if use:
        merged.update(_checked(_section(data, use, path), f"{path} [profiles.{use}]"))
    for name in _FIELDS:
        env = os.environ.get(ENV_PREFIX + name.upper())
        if env:
            merged.update(_checked({name: env}, f"${ENV_PREFIX}{name.upper()}"))
    merged.update({k: v for k, v in flags.items() if v is not None and k in _FIELDS})
    return ClientSettings(**merged)
