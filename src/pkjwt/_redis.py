"""Connecting to Redis, for the server's replay store and the client's token stores alike.

redis-py is an optional extra (``pkjwt[redis]``); this module imports it only when a Redis
URL is used, says which pip command installs it when it is missing, and never lets a password
from the URL reach a message (redis-py's own messages may quote the URL, so they are not shown).
"""

from __future__ import annotations

from typing import Any

from .errors import ConfigError, missing_extra
from .store_url import redacted_url

__all__ = ["connect_redis"]


def connect_redis(url: str, *, timeout: float, what: str, ping: bool = True) -> Any:
    """A ``redis.Redis`` for ``url`` that has answered a ping (unless ``ping=False``: a store
    that must work without Redis connects lazily); ``what`` names the setting in errors
    (``replay store``, ``token store``). Socket operations time out after ``timeout``."""
    shown = redacted_url(url)
    try:
        import redis
    except ImportError as exc:
        raise missing_extra("redis", f"a redis:// {what}", exc) from None
    try:
        client = redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)
    except ValueError:  # its message may quote part of the URL, password included
        raise ConfigError(
            f"{what} {shown}: not a valid Redis URL", hint="redis://[:PASSWORD@]HOST:PORT/DB"
        ) from None
    if not ping:
        return client
    try:
        client.ping()  # fail at start, not at the first request
    except redis.RedisError as exc:
        client.close()
        raise ConfigError(
            f"{what} {shown}: {type(exc).__name__}",
            hint="is redis-server running there? (redis://HOST:PORT/DB)",
        ) from None
    return client
