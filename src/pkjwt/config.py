"""Client settings for the CLI: named sections of a TOML file, ``PKJWT_*`` variables, flags.

Precedence: command-line flags, then environment variables, then the named section
(``--section NAME``: a ``[sections.NAME]`` table; ``[profiles.NAME]`` from 0.1 is still read)
of the config file, then the file's ``[default]`` section.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from .errors import ConfigError
from .profiles import PROFILES

__all__ = [
    "ClientSettings",
    "config_path",
    "resolve_settings",
    "resolve_with_sources",
    "section_names",
]

ENV_PREFIX = "PKJWT_"
PROFILE_NAMES = frozenset(PROFILES)


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
    ca_bundle: str | None = None
    trust: str | None = None
    #: the JWKS the server has registered for this client (a file or URL), for --explain
    jwks: str | None = None
    #: where tokens are shared: a store URL (default: the user's cache folder)
    store: str | None = None
    #: the key's X.509 chain (PEM), when the key file does not hold it
    certificate: str | None = None
    #: certificate headers to send, comma-separated: x5t#S256, x5t, x5c
    cert_headers: str | None = None
    #: a federated assertion instead of a key: file:PATH, env:VAR, exec:COMMAND, github-actions
    assertion_source: str | None = None
    #: DPoP-bound tokens (RFC 9449): true/false (PKJWT_DPOP=1/0)
    dpop: bool | None = None

    def missing(self) -> list[str]:
        out = []
        if not (self.token_url or self.issuer):
            out.append("--token-url or --issuer")
        if not self.client_id:
            out.append("--client-id")
        if not self.key and not self.client_secret_env and not self.assertion_source:
            out.append("--key (or --assertion-source)")
        return out


_FIELDS = {f.name for f in fields(ClientSettings)}


#: the tables that hold named sections: [sections.NAME] (from 0.2), [profiles.NAME] (0.1,
#: still read: "profile" now means only the assertion profile, as in the library)
_SECTION_TABLES = ("sections", "profiles")


def _section(data: Mapping[str, Any], name: str, path: Path) -> tuple[dict[str, Any], str]:
    """Section ``name`` and where it was found (for messages and --verbose)."""
    for table in _SECTION_TABLES:
        sections = data.get(table, {})
        if not isinstance(sections, dict):
            raise ConfigError(f"{path}: [{table}] must be a table")
        if name in sections:
            section = sections[name]
            if not isinstance(section, dict):
                raise ConfigError(f"{path}: [{table}.{name}] must be a table")
            return section, f"[{table}.{name}] in {path}"
    known = sorted({n for t in _SECTION_TABLES for n in data.get(t, {}) or {}})
    hint = f"add a [sections.{name}] table with token_url, client_id and key"
    if name in PROFILE_NAMES:
        hint = f"{name!r} is an assertion profile: pass --profile {name} (--section picks a table)"
    raise ConfigError(
        f"{path}: no config section named {name!r} (known: {', '.join(known) or 'none'})",
        hint=hint,
    )


def section_names(path: Path | None = None) -> list[str]:
    """The named sections of the config file (for the hint when --profile names one)."""
    path = path or config_path()
    try:
        data = tomllib.loads(path.read_text("utf-8"))
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError):
        return []
    return sorted({n for t in _SECTION_TABLES if isinstance(data.get(t), dict) for n in data[t]})


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
        elif key in _BOOLEANS:
            out[key] = _boolean(value, f"{where}: {key}")
        elif not isinstance(value, str):
            raise ConfigError(f"{where}: {key} must be a string")
        elif key == "trust" and value not in ("certifi", "system"):
            raise ConfigError(f"{where}: trust must be certifi or system (got {value!r})")
        else:
            expand = key in ("key", "ca_bundle") or (key == "jwks" and "://" not in value)
            out[key] = os.path.expanduser(value) if expand else value
    return out


#: settings that are switches: a TOML boolean, or a word in a PKJWT_* variable
_BOOLEANS = frozenset({"dpop"})
_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})


def _boolean(value: Any, what: str) -> bool:
    if isinstance(value, bool):
        return value
    word = value.strip().lower() if isinstance(value, str) else None
    if word in _TRUE or word in _FALSE:
        return word in _TRUE
    raise ConfigError(f"{what} must be true or false (1/0, yes/no)")


def resolve_settings(flags: Mapping[str, Any], use: str | None = None) -> ClientSettings:
    """Merge the config file section ``use``, the environment and the flags."""
    return resolve_with_sources(flags, use)[0]


def resolve_with_sources(
    flags: Mapping[str, Any], use: str | None = None
) -> tuple[ClientSettings, dict[str, str]]:
    """The merged settings and, for each one set, where it came from (``--verbose`` shows it:
    an environment variable overriding a config section is otherwise invisible)."""
    merged: dict[str, Any] = {}
    sources: dict[str, str] = {}

    def take(values: Mapping[str, Any], where: str) -> None:
        checked = _checked(values, where)
        merged.update(checked)
        sources.update(dict.fromkeys(checked, where))

    path = config_path()
    data: dict[str, Any] = {}
    if path.is_file():
        try:
            data = tomllib.loads(path.read_text("utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{path}: not valid TOML ({exc})") from None
        default = data.get("default", {})
        if isinstance(default, dict):
            take(default, f"[default] in {path}")
    elif use:
        raise ConfigError(
            f"--section {use}: config file {path} does not exist",
            hint="create it with a [sections.NAME] table, or set PKJWT_CONFIG",
        )
    if use:
        section, where = _section(data, use, path)
        take(section, where)
    for name in _FIELDS:
        env = os.environ.get(ENV_PREFIX + name.upper())
        if env:
            take({name: env}, f"${ENV_PREFIX}{name.upper()}")
    for name, value in flags.items():
        if value is not None and name in _FIELDS:
            merged[name] = value
            sources[name] = f"--{name.replace('_', '-')}"
    return ClientSettings(**merged), sources
