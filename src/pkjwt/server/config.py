"""Server configuration: TOML in, typed data out, validated at start with the path named.

Example::

    issuer = "http://127.0.0.1:8080"        # default: derived from host and port
    profile = "nhs"                          # rfc7523bis (default), fapi2, legacy, nhs
    token_format = "opaque"                  # or "jwt" (RFC 9068, signed by the server key)
    token_lifetime = 599
    replay_store = "sqlite:////var/tmp/pkjwt-replay.db"   # or "memory://", "redis://host:6379/0"
    allow_private_jwks_uri = false           # true lets jwks_uri point at loopback (dev)

    [[clients]]
    client_id = "my-api-key"
    jwks_file = "jwks.json"                  # exactly one of jwks, jwks_file, jwks_uri
    scopes = ["api:read"]

    [[clients.federated]]                    # tokens another issuer gives a workload
    issuer = "https://kubernetes.default.svc"
    subject = "system:serviceaccount:payments:billing"
    audience = "pkjwt"                       # or a list
    jwks_file = "cluster-jwks.json"          # or jwks, or jwks_uri (the issuer's)
    max_lifetime = 86400                     # largest exp - now accepted
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigError, KeyLoadError
from ..federation import DEFAULT_MAX_LIFETIME, FederatedTrust
from ..keys import KeySet, load_jwks
from ..profiles import PROFILES, AudiencePolicy, Profile, get_profile
from .replay import parse_replay_url

__all__ = ["ClientConfig", "ServerConfig", "load_config", "parse_config"]

_CLIENT_KEYS = {
    "client_id",
    "jwks",
    "jwks_file",
    "jwks_uri",
    "alg",
    "scopes",
    "grant_types",
    "resources",
    "client_secret",
    "client_secret_env",
    "federated",
    "require_dpop",
}
_TRUST_KEYS = {"issuer", "subject", "audience", "jwks", "jwks_file", "jwks_uri", "max_lifetime"}
_SERVER_KEYS = {
    "issuer",
    "profile",
    "token_format",
    "token_lifetime",
    "replay_store",
    "clients",
    "allow_private_jwks_uri",
    "require_explicit_typ",
    "skew",
    "max_assertion_lifetime",
    "signing_alg",
    "jwks_cache_seconds",
    "jwks_timeout",
    "jwks_max_bytes",
    "jwks_file_check_seconds",
    "audience_policy",
    "replay_timeout",
    "request_timeout",
    "keep_alive_timeout",
    "max_connections",
    "dpop",
    "dpop_nonce",
    "dpop_nonce_lifetime",
    "dpop_max_age",
    "metrics",
}


@dataclass(frozen=True, slots=True)
class ClientConfig:
    client_id: str
    keys: KeySet | None = None
    jwks_uri: str | None = None
    #: where ``keys`` came from when a file: re-read when it changes (a rotation rehearsal)
    jwks_file: Path | None = None
    alg: str | None = None
    scopes: tuple[str, ...] = ()
    grant_types: tuple[str, ...] = ("client_credentials",)
    resources: tuple[str, ...] = ()
    client_secret: str | None = field(default=None, repr=False)
    #: identity tokens from other issuers this client may present (federated credentials)
    federated: tuple[FederatedTrust, ...] = ()
    #: every token request must carry a DPoP proof (sender-constrained tokens only)
    require_dpop: bool = False

    @property
    def auth_methods(self) -> tuple[str, ...]:
        methods = []
        if self.keys is not None or self.jwks_uri or self.federated:
            methods.append("private_key_jwt")
        if self.client_secret:
            methods += ["client_secret_basic", "client_secret_post"]
        return tuple(methods)


@dataclass(frozen=True, slots=True)
class ServerConfig:
    profile: Profile
    clients: tuple[ClientConfig, ...] = ()
    issuer: str | None = None
    token_format: str = "opaque"
    token_lifetime: int = 599
    #: may carry a password (redis://:pw@host): kept out of the repr
    replay_store: str = field(default="sqlite:///", repr=False)
    allow_private_jwks_uri: bool = False
    require_explicit_typ: bool = False
    signing_alg: str = "ES256"
    jwks_cache_seconds: tuple[int, int] = (60, 3600)
    jwks_timeout: float = 5.0
    #: how often a client's jwks_file is looked at for changes (SIGHUP: at once)
    jwks_file_check_seconds: float = 1.0
    jwks_max_bytes: int = 64 * 1024
    #: seconds a token request waits for the replay store before it answers 503
    replay_timeout: float = 0.5
    #: seconds a request has to arrive whole (headers and body) once it starts
    request_timeout: float = 10.0
    #: seconds an idle keep-alive connection stays open after a response
    keep_alive_timeout: float = 5.0
    #: open connections beyond this are closed at once (with a log line)
    max_connections: int = 1000
    #: DPoP proofs accepted at the token endpoint (RFC 9449); the NHS dialect ignores them
    dpop: bool = True
    #: every proof must carry the server's nonce (``use_dpop_nonce`` hands it out)
    dpop_nonce: bool = False
    dpop_nonce_lifetime: float = 300.0
    #: how old a proof's ``iat`` may be
    dpop_max_age: float = 300.0
    #: serve /metrics and count every request for it (``pkjwt serve --no-metrics`` overrides)
    metrics: bool = True
    source: str = "<config>"

    def client(self, client_id: str) -> ClientConfig | None:
        for c in self.clients:
            if c.client_id == client_id:
                return c
        return None


def _where(source: str, path: str) -> str:
    return f"{source}: {path}"


def _str_list(value: Any, where: str) -> tuple[str, ...]:
    if isinstance(value, str):
        return tuple(value.split())
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{where} must be a list of strings")
    return tuple(value)


def _client(raw: Any, i: int, source: str, base: Path) -> ClientConfig:
    where = _where(source, f"clients[{i}]")
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where} must be a table ([[clients]])")
    _refuse_unknown(raw, _CLIENT_KEYS, where)
    client_id = raw.get("client_id")
    if not isinstance(client_id, str) or not client_id:
        raise ConfigError(f"{where}.client_id is required (a non-empty string)")
    secret = raw.get("client_secret")
    if "client_secret_env" in raw:
        secret = os.environ.get(str(raw["client_secret_env"]))
        if not secret:
            raise ConfigError(f"{where}.client_secret_env: ${raw['client_secret_env']} is not set")
    federated = _trusts(raw.get("federated", []), where, base)
    if not any(k in raw for k in ("jwks", "jwks_file", "jwks_uri")) and not (secret or federated):
        raise ConfigError(
            f"{where}: no credentials",
            hint="give one of jwks, jwks_file, jwks_uri (or a secret, or [[clients.federated]])",
        )
    keys, jwks_uri, jwks_file = _key_source(raw, where, base)
    alg = raw.get("alg")
    if alg is not None and not isinstance(alg, str):
        raise ConfigError(f"{where}.alg must be a string")
    return ClientConfig(
        client_id=client_id,
        keys=keys,
        jwks_uri=jwks_uri,
        jwks_file=jwks_file,
        alg=alg,
        scopes=_str_list(raw.get("scopes", []), f"{where}.scopes"),
        grant_types=_str_list(
            raw.get("grant_types", ["client_credentials"]), f"{where}.grant_types"
        ),
        resources=_str_list(raw.get("resources", []), f"{where}.resources"),
        client_secret=secret if isinstance(secret, str) else None,
        federated=federated,
        require_dpop=_bool(raw, "require_dpop", where),
    )


def _refuse_unknown(raw: Mapping[str, Any], known: set[str], where: str) -> None:
    unknown = set(raw) - known
    if unknown:
        raise ConfigError(
            f"{where}: unknown key(s) {', '.join(sorted(unknown))}",
            hint="known: " + ", ".join(sorted(known)),
        )


def _key_source(
    raw: Mapping[str, Any], where: str, base: Path
) -> tuple[KeySet | None, str | None, Path | None]:
    """Public keys from at most one of ``jwks`` (inline), ``jwks_file`` or ``jwks_uri``."""
    sources = [k for k in ("jwks", "jwks_file", "jwks_uri") if k in raw]
    if len(sources) > 1:
        raise ConfigError(f"{where}: give exactly one of jwks, jwks_file, jwks_uri (got {sources})")
    try:
        if "jwks" in raw:
            value = raw["jwks"]
            return load_jwks(value if isinstance(value, Mapping) else str(value)), None, None
        if "jwks_file" in raw:
            path = Path(str(raw["jwks_file"])).expanduser()
            path = path if path.is_absolute() else base / path
            return load_jwks(path), None, path
    except KeyLoadError as exc:
        raise ConfigError(f"{where}.{sources[0]}: {exc.message}", hint=exc.hint) from None
    if "jwks_uri" in raw:
        jwks_uri = str(raw["jwks_uri"])
        if not jwks_uri.startswith(("https://", "http://")):
            raise ConfigError(f"{where}.jwks_uri must be an http(s) URL")
        return None, jwks_uri, None
    return None, None, None


def _trusts(raw: Any, where: str, base: Path) -> tuple[FederatedTrust, ...]:
    if not isinstance(raw, list):
        raise ConfigError(f"{where}.federated must be an array of tables ([[clients.federated]])")
    return tuple(_trust(item, f"{where}.federated[{i}]", base) for i, item in enumerate(raw))


def _trust(raw: Any, where: str, base: Path) -> FederatedTrust:
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where} must be a table")
    _refuse_unknown(raw, _TRUST_KEYS, where)
    for name in ("issuer", "subject"):
        if not isinstance(raw.get(name), str) or not raw[name]:
            raise ConfigError(f"{where}.{name} is required (a non-empty string)")
    audiences = raw.get("audience")
    audiences = [audiences] if isinstance(audiences, str) else audiences
    if not audiences or not isinstance(audiences, list):
        raise ConfigError(
            f"{where}.audience is required: the aud the issuer puts in the token",
            hint='e.g. audience = "api://AzureADTokenExchange" or the server\'s issuer URL',
        )
    keys, jwks_uri, jwks_file = _key_source(raw, where, base)
    if keys is None and jwks_uri is None:
        raise ConfigError(f"{where}: the issuer's keys are needed (jwks, jwks_file or jwks_uri)")
    lifetime = raw.get("max_lifetime", DEFAULT_MAX_LIFETIME)
    if isinstance(lifetime, bool) or not isinstance(lifetime, int) or lifetime < 1:
        raise ConfigError(f"{where}.max_lifetime must be a positive number of seconds")
    return FederatedTrust(
        issuer=raw["issuer"],
        subject=raw["subject"],
        audiences=_str_list(audiences, f"{where}.audience"),
        keys=keys,
        jwks_uri=jwks_uri,
        jwks_file=jwks_file,
        max_lifetime=lifetime,
    )


def parse_config(
    data: Mapping[str, Any], *, source: str = "<config>", base: Path | None = None
) -> ServerConfig:
    """Validate a config mapping (as read from TOML)."""
    base = base or Path.cwd()
    unknown = set(data) - _SERVER_KEYS
    if unknown:
        raise ConfigError(
            f"{source}: unknown key(s) {', '.join(sorted(unknown))}",
            hint="known: " + ", ".join(sorted(_SERVER_KEYS)),
        )
    name = data.get("profile", "rfc7523bis")
    if name not in PROFILES:
        raise ConfigError(
            f"{source}: profile {name!r} unknown", hint="one of " + ", ".join(PROFILES)
        )
    profile = get_profile(str(name))
    overrides: dict[str, Any] = {}
    for key, attr in (("skew", "skew"), ("max_assertion_lifetime", "max_lifetime")):
        if key in data:
            value = data[key]
            if not isinstance(value, int) or value < 0:
                raise ConfigError(f"{source}: {key} must be a non-negative integer")
            overrides[attr] = value
    if "audience_policy" in data:
        try:
            overrides["audience_policy"] = AudiencePolicy(str(data["audience_policy"]))
        except ValueError:
            raise ConfigError(
                f"{source}: audience_policy must be one of "
                + ", ".join(p.value for p in AudiencePolicy)
            ) from None
    if overrides:
        profile = profile.with_overrides(**overrides)
    token_format = data.get("token_format", "opaque")
    if token_format not in ("opaque", "jwt"):
        raise ConfigError(f"{source}: token_format must be 'opaque' or 'jwt'")
    lifetime = data.get("token_lifetime", 599)
    if not isinstance(lifetime, int) or not 1 <= lifetime <= 86400:
        raise ConfigError(f"{source}: token_lifetime must be an integer from 1 to 86400")
    replay = data.get("replay_store", "sqlite:///")
    parse_replay_url(replay, what=f"{source}: replay_store")
    issuer = data.get("issuer")
    if issuer is not None and (not isinstance(issuer, str) or not issuer.startswith("http")):
        raise ConfigError(f"{source}: issuer must be an http(s) URL")
    raw_clients = data.get("clients", [])
    if not isinstance(raw_clients, list):
        raise ConfigError(f"{source}: clients must be an array of tables ([[clients]])")
    clients = tuple(_client(raw, i, source, base) for i, raw in enumerate(raw_clients))
    ids = [c.client_id for c in clients]
    dupes = {i for i in ids if ids.count(i) > 1}
    if dupes:
        raise ConfigError(f"{source}: duplicate client_id(s) {', '.join(sorted(dupes))}")
    signing_alg = data.get("signing_alg", "ES256")
    if signing_alg not in ("ES256", "RS256", "PS256", "EdDSA"):
        raise ConfigError(f"{source}: signing_alg must be ES256, RS256, PS256 or EdDSA")
    return ServerConfig(
        profile=profile,
        clients=clients,
        issuer=issuer.rstrip("/") if isinstance(issuer, str) else None,
        token_format=str(token_format),
        token_lifetime=lifetime,
        replay_store=replay,
        allow_private_jwks_uri=_bool(data, "allow_private_jwks_uri", source),
        require_explicit_typ=_bool(data, "require_explicit_typ", source),
        signing_alg=str(signing_alg),
        jwks_timeout=float(_number(data, "jwks_timeout", 5.0, source, 0.1, 60)),
        jwks_file_check_seconds=float(
            _number(data, "jwks_file_check_seconds", 1.0, source, 0, 86400)
        ),
        jwks_max_bytes=int(_number(data, "jwks_max_bytes", 64 * 1024, source, 1024, 1 << 22)),
        replay_timeout=_number(data, "replay_timeout", 0.5, source, 0.01, 30),
        request_timeout=_number(data, "request_timeout", 10.0, source, 0.1, 300),
        keep_alive_timeout=_number(data, "keep_alive_timeout", 5.0, source, 0.1, 300),
        max_connections=int(_number(data, "max_connections", 1000, source, 1, 100_000)),
        jwks_cache_seconds=_cache_bounds(data, source),
        **_dpop(data, source, profile),
        metrics=_bool(data, "metrics", source, default=True),
        source=source,
    )


def _dpop(data: Mapping[str, Any], source: str, profile: Profile) -> dict[str, Any]:
    return {
        # the NHS platform has no DPoP: its dialect ignores the header unless asked
        "dpop": _bool(data, "dpop", source, default=profile.dialect != "nhs"),
        "dpop_nonce": _bool(data, "dpop_nonce", source),
        "dpop_nonce_lifetime": _number(data, "dpop_nonce_lifetime", 300.0, source, 10, 86400),
        "dpop_max_age": _number(data, "dpop_max_age", 300.0, source, 5, 3600),
    }


def _bool(data: Mapping[str, Any], key: str, source: str, *, default: bool = False) -> bool:
    value = data.get(key, default)
    if not isinstance(value, bool):
        raise ConfigError(f"{source}: {key} must be true or false (got {value!r})")
    return value


def _number(
    data: Mapping[str, Any], key: str, default: float, source: str, low: float, high: float
) -> float:
    value = data.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise ConfigError(f"{source}: {key} must be a number from {low:g} to {high:g}")
    return float(value)


def _cache_bounds(data: Mapping[str, Any], source: str) -> tuple[int, int]:
    value = data.get("jwks_cache_seconds", [60, 3600])
    if isinstance(value, int) and not isinstance(value, bool):
        value = [value, value]
    if (
        not isinstance(value, list)
        or len(value) != 2
        or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in value)
        or value[0] > value[1]
    ):
        raise ConfigError(
            f"{source}: jwks_cache_seconds must be [min, max] seconds (or one number)"
        )
    return int(value[0]), int(value[1])


def load_config(path: str | os.PathLike[str]) -> ServerConfig:
    p = Path(path)
    try:
        text = p.read_text("utf-8")
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {p}") from None
    except OSError as exc:
        raise ConfigError(f"cannot read config file {p}: {exc.strerror}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{p}: not valid TOML: {exc}") from None
    return parse_config(data, source=str(p), base=p.parent)
