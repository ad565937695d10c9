"""A Redis token store: one token for a whole fleet of processes and hosts.

Every :class:`~pkjwt.client.TokenClient` keeps its own in-memory cache first (attaching a
cached token stays a dict lookup and a clock read); this store is the second level, asked only
when that cache misses or a refresh is due. What it adds:

* one fetch for the whole fleet: :meth:`RedisTokenStore.lock` is a lease (``SET NX PX`` with
  a random owner, released only by its owner through a compare-and-delete script). Whoever
  holds it fetches; the others wait (bounded by the lease) and then read the token it wrote.
  A holder that dies blocks no one beyond the lease.
* encryption at rest: a token is stored AES-GCM encrypted with a key the fleet shares
  (``key=`` or ``$PKJWT_STORE_KEY``, 32 bytes, base64), bound to its Redis key, so whoever can
  read Redis gets no bearer token.
* never an outage: every call has a short socket timeout; a Redis down or slow is a cache miss
  (the manager logs and bypasses it), said once in the log, not once per call.
* notes: small facts the fleet shares (the assertion shape a server took, a cooldown after a
  429), in plain text: none of them is a secret.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import logging
import os
import secrets
import threading
import time
from collections.abc import Hashable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any

from .._redis import connect_redis
from ..errors import ConfigError
from ..store_url import redacted_url
from ..tokens import Token

__all__ = ["KEY_ENV", "RedisTokenStore", "new_store_key"]

log = logging.getLogger("pkjwt.stores")

KEY_ENV = "PKJWT_STORE_KEY"

#: compare-and-delete: only the lease's owner may release it
_RELEASE = (
    "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0"
)


def new_store_key() -> str:
    """A fresh store key (32 random bytes, base64), for ``$PKJWT_STORE_KEY``."""
    return base64.b64encode(secrets.token_bytes(32)).decode("ascii")


def _store_key(key: str | bytes | None) -> bytes:
    raw = key if key is not None else os.environ.get(KEY_ENV)
    if raw is None or raw == "":
        raise ConfigError(
            "a Redis token store encrypts tokens and needs a key shared by the fleet",
            hint=f"set ${KEY_ENV} (or pass key=) to 32 random bytes in base64: python -c "
            '"import pkjwt.stores.redis as r; print(r.new_store_key())"',
        )
    if isinstance(raw, bytes) and len(raw) == 32:
        return raw
    try:
        decoded = base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError):
        decoded = b""
    if len(decoded) != 32:
        raise ConfigError(f"the token store key must be 32 bytes in base64 (${KEY_ENV})")
    return decoded


class RedisTokenStore:
    """Tokens in Redis, encrypted, with a fleet-wide lease per cache key.

    ``url`` is ``redis://``, ``rediss://`` (TLS) or ``unix://``; ``timeout`` bounds every
    Redis call (a slow Redis is a miss, not a wait); ``lease`` is how long a fetch may hold the
    fleet's lock (longer than a token request takes; a dead holder blocks no longer);
    ``prefix`` separates this fleet's keys from other users of the same Redis.
    """

    def __init__(
        self,
        url: str,
        *,
        key: str | bytes | None = None,
        prefix: str = "pkjwt:token:",
        timeout: float = 0.5,
        lease: float = 30.0,
        client: Any = None,
    ) -> None:
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        self.url = url
        self.prefix = prefix
        self.lease = lease
        self._aead = AESGCM(_store_key(key))
        self._redis = client if client is not None else _connect(url, timeout)
        self._release = self._redis.register_script(_RELEASE)
        self._failing = False
        self._mutex = threading.Lock()

    #: it says itself, once, when Redis goes away and comes back (the manager need not)
    reports_failures = True

    def __repr__(self) -> str:
        return f"<RedisTokenStore {redacted_url(self.url)}>"

    def _name(self, kind: str, key: tuple[Hashable, ...] | str) -> str:
        text = key if isinstance(key, str) else json.dumps([str(k) for k in key])
        return f"{self.prefix}{kind}:{hashlib.sha256(text.encode()).hexdigest()[:32]}"

    # -- tokens -----------------------------------------------------------------------------
    def get(self, key: tuple[Hashable, ...]) -> Token | None:
        name = self._name("t", key)
        raw = self._call(self._redis.get, name)
        if not raw or len(raw) < 13:
            return None
        try:
            plain = self._aead.decrypt(raw[:12], raw[12:], name.encode())
            return Token.from_json(json.loads(plain))
        except Exception:  # another key, a corrupt value: a miss, replaced by the next fetch
            return None

    def set(self, key: tuple[Hashable, ...], token: Token) -> None:
        name = self._name("t", key)
        ttl_ms = int((token.expires_at - time.time()) * 1000)
        if ttl_ms <= 0:
            return
        nonce = secrets.token_bytes(12)
        sealed = self._aead.encrypt(nonce, json.dumps(token.to_json()).encode(), name.encode())
        self._call(self._redis.set, name, nonce + sealed, px=ttl_ms)

    def delete(self, key: tuple[Hashable, ...]) -> None:
        self._call(self._redis.delete, self._name("t", key))

    def lock(self, key: tuple[Hashable, ...]) -> AbstractContextManager[object]:
        """The fleet's lease for ``key``: held by one process at a time, for at most
        ``lease`` seconds; waited for at most as long, and no longer than it takes the holder
        to write a new token (a waiter then reads it instead of queueing for the lease)."""
        return self._lease(self._name("l", key), self._name("t", key))

    @contextmanager
    def _lease(self, name: str, token_name: str) -> Iterator[object]:
        owner = secrets.token_hex(16)
        lease_ms = int(self.lease * 1000)
        deadline = time.monotonic() + self.lease
        pause = 0.02
        held = False
        before: object = None
        while True:
            if self._call(self._redis.set, name, owner, nx=True, px=lease_ms):
                held = True
                break
            if time.monotonic() >= deadline:
                break  # the holder is stuck or gone: fetch anyway, as the lease says
            # the value, not its presence: a refresh replaces a token that is still there
            now = self._call(self._redis.get, token_name)
            if before is None:
                before = now or b""
            elif now and now != before:
                break  # the holder wrote a new token: go and read it
            time.sleep(pause)
            pause = min(pause * 2, 0.1)
        try:
            yield self
        finally:
            if held:
                self._call(self._release, keys=[name], args=[owner])

    # -- notes ------------------------------------------------------------------------------
    def get_note(self, name: str) -> str | None:
        raw = self._call(self._redis.get, self._name("n", name))
        return raw.decode("utf-8", "replace") if isinstance(raw, bytes) else None

    def set_note(self, name: str, value: str, *, ttl: float | None = None) -> None:
        px = int(ttl * 1000) if ttl is not None and ttl > 0 else None
        self._call(self._redis.set, self._name("n", name), value.encode(), px=px)

    # -- failures ---------------------------------------------------------------------------
    def _call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        """A Redis call; a failure is said once (and the recovery once) and re-raised for the
        manager, which treats it as a miss."""
        try:
            result = fn(*args, **kwargs)
        except Exception as exc:
            with self._mutex:
                first = not self._failing
                self._failing = True
            if first:
                log.warning(
                    "token store %s unavailable (%s): fetching without it until it is back",
                    redacted_url(self.url),
                    type(exc).__name__,
                )
            raise
        if self._failing:
            with self._mutex:
                self._failing = False
            log.warning("token store %s is back", redacted_url(self.url))
        return result

    def close(self) -> None:
        self._redis.close()


def _connect(url: str, timeout: float) -> Any:
    # no ping: a Redis down at start is a cache miss like any other, not a refusal to start
    return connect_redis(url, timeout=timeout, what="token store", ping=False)
