"""Connection limits for ``pkjwt serve``: a deadline per request and a cap on connections.

uvicorn closes a keep-alive connection that idles after a response, but not one that never
sends a complete request: measured, 300 idle connections, 300 sending headers a byte at a time
(slowloris) and 100 sending a body slowly were all still open after 30 s, and about 1,000 of
them exhaust the process's file descriptors. Here every request must arrive whole (headers and
body) within ``request_timeout`` seconds of its first byte (or of the connection, for the first
request), and connections past ``max_connections`` are closed at once, with a log line.
"""

from __future__ import annotations

import asyncio
import logging
import resource
import time
from typing import Any

from ..errors import missing_extra

try:
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
except ImportError as exc:  # a client-only install, or no httptools wheel for this platform
    raise missing_extra("server", "the local authorization server", exc) from None

__all__ = ["limited_protocol", "raise_open_file_limit"]

log = logging.getLogger("pkjwt.server")


class _LimitedProtocol(HttpToolsProtocol):
    request_timeout: float = 10.0
    max_connections: int = 1000
    _last_refusal_log = 0.0

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)
        if len(self.connections) > self.max_connections:
            self._refuse()
            return
        self._deadline: asyncio.TimerHandle | None = None
        self._arm()

    def _refuse(self) -> None:
        now = time.monotonic()
        cls = type(self)
        if now - cls._last_refusal_log >= 10:  # one line per 10 s, not one per connection
            cls._last_refusal_log = now
            log.warning(
                "connection limit reached (%d open): closing new connections; raise "
                "max_connections in the config if this load is expected",
                self.max_connections,
            )
        self.transport.close()

    def _arm(self) -> None:
        if getattr(self, "_deadline", None) is None:
            self._deadline = self.loop.call_later(self.request_timeout, self._expired)

    def _disarm(self) -> None:
        deadline = getattr(self, "_deadline", None)
        if deadline is not None:
            deadline.cancel()
            self._deadline = None

    def _expired(self) -> None:
        self._deadline = None
        if not self.transport.is_closing():
            who = f"{self.client[0]}:{self.client[1]}" if self.client else "a client"
            log.info(
                "closed the connection from %s: no complete request within %g s",
                who,
                self.request_timeout,
            )
            self.transport.close()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._arm()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._disarm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)


def limited_protocol(*, request_timeout: float, max_connections: int) -> type[Any]:
    """uvicorn's httptools protocol with a per-request deadline and a connection cap."""
    return type(
        "PkjwtHttpProtocol",
        (_LimitedProtocol,),
        {"request_timeout": request_timeout, "max_connections": max_connections},
    )


def raise_open_file_limit(wanted: int) -> int:
    """Lift the soft limit on open files towards ``wanted`` (bounded by the hard limit), so the
    connection cap, not the descriptor table, is what runs out first. Returns the limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError):
            return soft
        return target
    return soft
