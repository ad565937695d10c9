"""Store URLs: the one parser for ``memory://``, ``sqlite:///PATH?opt=v`` and ``redis://...``.

The server's replay store and the client's token stores are named the same way, in code, in
config files and in ``PKJWT_*`` variables. Parsing checks the scheme and the options, so a typo
fails at start with the option named, not at the first request. A URL may carry a password
(``redis://:pw@host``): :func:`redacted_url` is what may be shown.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import parse_qsl

from .errors import ConfigError

__all__ = ["REDIS_SCHEMES", "StoreURL", "parse_store_url", "redacted_url"]

#: redis-py's own schemes: plain, TLS, and a Unix socket
REDIS_SCHEMES = ("redis://", "rediss://", "unix://")


def redacted_url(url: str) -> str:
    """The URL with its userinfo (a Redis URL may carry a password) replaced by ``***``.

    Done on the text, not with a URL parser: a password may hold ``/``, ``?`` or ``#``, which
    would end a parser's idea of the authority before the ``@``.
    """
    scheme, sep, rest = url.partition("://")
    if not sep or "@" not in rest:
        return url
    return f"{scheme}://***@{rest.rpartition('@')[2]}"


@dataclass(frozen=True, slots=True)
class StoreURL:
    """A parsed store URL. ``kind`` is ``memory``, ``sqlite`` or ``redis``; for SQLite, ``path``
    is the file ("" for the default file) and ``options`` the query's settings."""

    kind: str
    url: str = field(repr=False)
    path: str = ""
    options: Mapping[str, str] = field(default_factory=dict)

    def __repr__(self) -> str:
        return f"StoreURL({redacted_url(self.url)!r})"


def parse_store_url(
    url: str,
    *,
    what: str = "store",
    sqlite_options: frozenset[str] = frozenset(),
    option_hint: str = "",
) -> StoreURL:
    """Check ``url``'s scheme (and a SQLite URL's options against ``sqlite_options``)."""
    if not isinstance(url, str):
        raise ConfigError(f"{what} must be a URL string")
    if url.startswith("memory://"):
        return StoreURL("memory", url)
    if url.startswith(REDIS_SCHEMES):
        return StoreURL("redis", url)
    if url.startswith("sqlite://"):
        rest, _, query = url[len("sqlite://") :].partition("?")
        options = dict(parse_qsl(query, keep_blank_values=True))
        unknown = sorted(set(options) - sqlite_options)
        if unknown:
            raise ConfigError(f"{what}: unknown option {unknown[0]!r}", hint=option_hint or None)
        # sqlite:///relative.db and sqlite:////absolute/path.db, as SQLAlchemy spells them;
        # sqlite:/// alone is the default file
        path = "" if rest in ("", "/") else (rest[1:] if rest.startswith("/") else rest)
        return StoreURL("sqlite", url, path, options)
    raise ConfigError(
        f"unsupported {what} {redacted_url(url)!r}",
        hint="use memory://, sqlite:///PATH or redis://HOST:PORT/DB",
    )
