"""The Redis replay store: one replay window shared by every server using that Redis."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import math
import time
from collections.abc import Callable
from typing import Any

from ..._redis import connect_redis
from ...errors import ReplayStoreUnavailable
from ...store_url import redacted_url
from .base import blob, replay_key
from .pipeline import ReplayPipeline

__all__ = ["RedisReplayStore"]

log = logging.getLogger("pkjwt.server")


class RedisReplayStore:
    """Pairs as Redis keys that expire with them: ``SET key NX PX ttl`` is the atomic
    insert-if-absent, shared by every server using that Redis (any number of processes and
    hosts). Keys are ``pkjwt:jti:`` plus a SHA-256 of the pair, so nothing the client sent is
    stored verbatim. The TTL comes from this server's clock (``PX``, not ``PXAT``), so a Redis
    clock that runs ahead cannot shorten the window.

    A write that fails (Redis down, timeout) raises :class:`ReplayStoreUnavailable`: the server
    answers 503 rather than accept an assertion it could not record.
    """

    def __init__(
        self,
        url: str,
        *,
        prefix: str = "pkjwt:jti:",
        timeout: float = 2.0,
        clock: Callable[[], float] = time.time,
        client: Any = None,
    ) -> None:
        self.url = url
        #: a network round trip: the server calls it off its event loop, with a deadline
        self.blocking = True
        self.prefix = prefix
        self._clock = clock
        self._timeout = timeout
        self._apipeline: ReplayPipeline | None = None
        self._apipeline_loop: asyncio.AbstractEventLoop | None = None
        if client is None:
            client = connect_redis(url, timeout=timeout, what="replay store")
        self._redis = client
        #: whether this Redis keeps its data over a restart (RDB snapshots or AOF); None when
        #: it would not say (CONFIG is often forbidden to application users)
        self.persistent = _persistence(client) if client is not None else None
        if self.persistent is False:
            log.warning(
                "replay store %s has no persistence (no RDB snapshots, no AOF): a Redis restart "
                "forgets every jti and reopens the replay window; enable appendonly or save",
                redacted_url(url),
            )

    def __repr__(self) -> str:
        return f"RedisReplayStore({redacted_url(self.url)!r})"

    def add(self, client_id: str, jti: str, expires_at: float) -> bool:
        digest = hashlib.sha256(blob(replay_key(client_id, jti))).hexdigest()
        ttl_ms = max(1, math.ceil((expires_at - self._clock()) * 1000))
        try:
            return bool(self._redis.set(self.prefix + digest, b"1", nx=True, px=ttl_ms))
        except Exception as exc:  # redis.RedisError and its socket-level cousins
            raise ReplayStoreUnavailable(
                f"replay store {redacted_url(self.url)}: {type(exc).__name__}"
            ) from None

    #: :meth:`aadd` keeps the deadline it is given (the guard need not wrap it in a task)
    keeps_deadline = True

    async def aadd(
        self, client_id: str, jti: str, expires_at: float, *, within: float | None = None
    ) -> bool:
        """:meth:`add` on the server's event loop, over one pipelined connection
        (:mod:`.pipeline`): no thread hop, nothing blocked while Redis answers, and an
        answer or :class:`ReplayStoreUnavailable` within ``within`` seconds."""
        digest = hashlib.sha256(blob(replay_key(client_id, jti))).hexdigest()
        ttl_ms = max(1, math.ceil((expires_at - self._clock()) * 1000))
        key = (self.prefix + digest).encode()
        return await self._pipeline().set_nx_px(key, ttl_ms, within=within)

    def _pipeline(self) -> ReplayPipeline:
        """The running loop's connection (a connection belongs to one loop)."""
        loop = asyncio.get_running_loop()
        if self._apipeline is None or self._apipeline_loop is not loop:
            self._apipeline = ReplayPipeline(self.url, timeout=self._timeout)
            self._apipeline_loop = loop
        return self._apipeline

    async def aclose(self) -> None:
        if self._apipeline is not None:
            self._apipeline.close()
            self._apipeline = None

    def close(self) -> None:
        self._redis.close()

    def describe(self) -> str:
        note = ", no persistence: a restart forgets the jtis" if self.persistent is False else ""
        return f"redis {redacted_url(self.url)} (shared by every server using it{note})"


def _persistence(client: Any) -> bool | None:
    """True if Redis snapshots or logs its data, False if neither, None if it will not say."""
    try:
        if int(client.info("persistence").get("aof_enabled", 0)):
            return True
        save = client.config_get("save").get("save", "")
    except Exception:  # no CONFIG permission, an old server, a stand-in client in tests
        return None
    return bool(str(save).strip())
