"""One pipelined connection to Redis for the server's replay check, on its event loop.

The replay check is one command (``SET key 1 NX PX ttl``) per token request. redis-py's
asyncio client spends about 100 µs of CPU on each (a connection taken from a pool, the
command packed, the reply parsed through its general machinery; measured on the benchmark
machine), a quarter of a whole token request, which showed as ``serve`` on Redis reaching only
0.6x of its tokens/s on SQLite. This connection does that one command and nothing else:
commands are written as they come, without waiting for earlier replies (Redis answers in
order), and each reply settles the oldest waiting request: about 16 µs per check.

What it keeps from redis-py: the URL (:func:`redis.connection.parse_url`: host, port, unix
socket, db, user and password, the ``ssl_*`` query options), so a URL means the same thing to
both. What it refuses to do: guess. A reply it cannot read, a connection lost, or a Redis
that has not answered for ``timeout`` seconds fails every request waiting on this connection
with :class:`ReplayStoreUnavailable` and drops it; the next request opens a new one. A request
whose caller stopped waiting keeps its place in the queue, so later replies still pair with
the right requests.

The deadline is kept here, not by wrapping each call in :func:`asyncio.wait_for` (a task per
call, a third of the cost): one timer per connection, armed at the oldest request's deadline,
fails the connection if that request is still unanswered then.
"""

from __future__ import annotations

import asyncio
import collections
import socket
import ssl
import time
from typing import Any, cast

from ...errors import ReplayStoreUnavailable
from ...store_url import redacted_url

__all__ = ["ReplayPipeline"]

#: a reply line longer than this is not one of the replies SET can give: a protocol error
_MAX_LINE = 4096
#: requests waiting on one connection before new ones are refused (Redis stalled, load high)
_MAX_PENDING = 10_000


class ReplayPipeline:
    """``SET NX PX`` over one pipelined connection; made per event loop (connections belong
    to one), connected lazily and again after any failure. ``timeout`` is the default
    deadline of a request, connecting included."""

    def __init__(self, url: str, *, timeout: float) -> None:
        from redis.connection import parse_url  # the redis extra, already required by the URL

        self._shown = redacted_url(url)
        self.timeout = timeout
        self._options: dict[str, Any] = parse_url(url)  # type: ignore[no-untyped-call]
        self._protocol: _Protocol | None = None
        self._connecting: asyncio.Future[_Protocol] | None = None

    async def set_nx_px(self, key: bytes, ttl_ms: int, *, within: float | None = None) -> bool:
        """Whether ``key`` was absent (and is now set, expiring in ``ttl_ms``); answered, or
        :class:`ReplayStoreUnavailable` raised, within ``within`` seconds (the default: the
        pipeline's ``timeout``)."""
        within = self.timeout if within is None else within
        protocol = self._protocol
        if protocol is None or protocol.closed:
            protocol = await self._connect(within)
        reply = await protocol.send(
            b"*6\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$1\r\n1\r\n$2\r\nNX\r\n$2\r\nPX\r\n$%d\r\n%d\r\n"
            % (len(key), key, len(str(ttl_ms)), ttl_ms),
            within,
        )
        if reply == b"+OK":
            return True
        if reply == b"$-1":  # the null reply: the key was there
            return False
        raise self._error(reply)

    async def _connect(self, within: float) -> _Protocol:
        # everyone arriving while a connection is being made waits for that one
        if self._connecting is None or self._connecting.done():
            self._connecting = asyncio.ensure_future(self._open(within))
            # retrieved here, so a failed attempt nobody still waits for is not reported
            self._connecting.add_done_callback(lambda f: f.cancelled() or f.exception())
        try:
            protocol = await asyncio.shield(self._connecting)
        except ReplayStoreUnavailable:
            raise
        except TimeoutError:
            raise ReplayStoreUnavailable(
                f"replay store {self._shown}: no connection within {within:g} s"
            ) from None
        except OSError as exc:  # refused, unreachable, TLS (ssl.SSLError is an OSError)
            raise ReplayStoreUnavailable(
                f"replay store {self._shown}: cannot connect ({type(exc).__name__})"
            ) from None
        self._protocol = protocol
        return protocol

    async def _open(self, within: float) -> _Protocol:
        loop = asyncio.get_running_loop()
        opts = self._options
        protocol: _Protocol | None = None

        def made() -> _Protocol:
            return _Protocol(self._shown)

        try:
            async with asyncio.timeout(within):
                if "path" in opts:
                    _, protocol = await loop.create_unix_connection(made, opts["path"])
                else:
                    _, protocol = await loop.create_connection(
                        made,
                        opts.get("host", "localhost"),
                        int(opts.get("port", 6379)),
                        ssl=self._tls(),
                    )
                # the handshake: credentials, then the database, each answered before any SET
                if opts.get("password"):
                    words = [b"AUTH"]
                    if opts.get("username"):
                        words.append(str(opts["username"]).encode())
                    words.append(str(opts["password"]).encode())
                    await self._handshake(protocol, words, "AUTH", within)
                if int(opts.get("db") or 0):
                    words = [b"SELECT", str(opts["db"]).encode()]
                    await self._handshake(protocol, words, "SELECT", within)
        except BaseException:
            if protocol is not None:
                protocol.fail("not connected")
            raise
        return protocol

    async def _handshake(
        self, protocol: _Protocol, words: list[bytes], name: str, within: float
    ) -> None:
        reply = await protocol.send(_command(words), within)
        if reply != b"+OK":
            # Redis's own message, which never quotes what was sent (the password)
            said = reply[1:80].decode("ascii", "replace")
            raise ReplayStoreUnavailable(f"replay store {self._shown}: {name} refused ({said})")

    def _tls(self) -> ssl.SSLContext | None:
        from redis.connection import SSLConnection

        opts = self._options
        if opts.get("connection_class") is not SSLConnection:
            return None
        context = ssl.create_default_context(cafile=opts.get("ssl_ca_certs"))
        if opts.get("ssl_certfile"):
            context.load_cert_chain(opts["ssl_certfile"], opts.get("ssl_keyfile"))
        if str(opts.get("ssl_cert_reqs", "required")).lower() in ("none", "cert_none"):
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        elif opts.get("ssl_check_hostname") is False:
            context.check_hostname = False
        return context

    def _error(self, reply: bytes) -> ReplayStoreUnavailable:
        text = reply[1:80].decode("ascii", "replace") if reply.startswith(b"-") else "bad reply"
        return ReplayStoreUnavailable(f"replay store {self._shown}: {text}")

    def close(self) -> None:
        if self._protocol is not None:
            self._protocol.fail("closed")
            self._protocol = None


def _command(words: list[bytes]) -> bytes:
    out = [b"*%d\r\n" % len(words)]
    for word in words:
        out.append(b"$%d\r\n%s\r\n" % (len(word), word))
    return b"".join(out)


class _Protocol(asyncio.Protocol):
    """Replies, one line each (``+OK``, ``$-1``, ``-ERR ...``), paired in order with the
    requests waiting for them."""

    def __init__(self, shown: str) -> None:
        self._shown = shown
        self._transport: asyncio.Transport | None = None
        # (the caller's future, its deadline on the monotonic clock, its wait in seconds)
        self._waiting: collections.deque[tuple[asyncio.Future[bytes], float, float]] = (
            collections.deque()
        )
        self._watchdog: asyncio.TimerHandle | None = None
        self._buffer = bytearray()
        # commands made in one turn of the event loop go out in one write (one system call,
        # and one read for Redis) instead of one each
        self._outbox: list[bytes] = []
        self._skip_bulk = -1  # bytes of a bulk reply's body still to skip (and its CRLF)
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not subclasses of asyncio's, only alike
        self._transport = cast(asyncio.Transport, transport)
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)

    def send(self, data: bytes, within: float) -> asyncio.Future[bytes]:
        if self.closed or self._transport is None:
            raise ReplayStoreUnavailable(f"replay store {self._shown}: connection closed")
        if len(self._waiting) >= _MAX_PENDING:
            raise ReplayStoreUnavailable(
                f"replay store {self._shown}: too many requests waiting for Redis"
            )
        loop = asyncio.get_running_loop()
        future: asyncio.Future[bytes] = loop.create_future()
        self._waiting.append((future, time.monotonic() + within, within))
        if self._watchdog is None:
            self._watchdog = loop.call_later(within, self._watch)
        if not self._outbox:
            loop.call_soon(self._flush)
        self._outbox.append(data)
        return future

    def _flush(self) -> None:
        if self._transport is not None and not self.closed:
            self._transport.write(b"".join(self._outbox))
        self._outbox.clear()

    def _watch(self) -> None:
        """At the oldest request's deadline: unanswered means Redis is not answering on this
        connection (paused, or gone without a reset): drop it. Answered: wait for the next."""
        self._watchdog = None
        if self.closed or not self._waiting:
            return
        _future, deadline, within = self._waiting[0]
        left = deadline - time.monotonic()
        if left <= 0:
            self.fail(f"gave no answer within {within:g} s")
        else:
            self._watchdog = asyncio.get_running_loop().call_later(left, self._watch)

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        while self._buffer:
            if self._skip_bulk >= 0:
                if len(self._buffer) < self._skip_bulk + 2:
                    return
                del self._buffer[: self._skip_bulk + 2]
                self._skip_bulk = -1
                continue
            end = self._buffer.find(b"\r\n")
            if end < 0:
                if len(self._buffer) > _MAX_LINE:
                    self.fail("unreadable reply")
                return
            line = bytes(self._buffer[:end])
            del self._buffer[: end + 2]
            if line.startswith(b"$") and line != b"$-1":
                # a bulk string: not a reply SET NX gives; read past it and report it as such
                try:
                    self._skip_bulk = int(line[1:])
                except ValueError:
                    self.fail("unreadable reply")
                    return
                if not 0 <= self._skip_bulk <= _MAX_LINE:
                    self.fail("unreadable reply")
                    return
                line = b"?"
            if not self._waiting:
                self.fail("a reply nobody asked for")
                return
            future, _deadline, _within = self._waiting.popleft()
            if not future.done():  # its caller may have stopped waiting: the reply is dropped
                future.set_result(line)

    def connection_lost(self, exc: Exception | None) -> None:
        self.fail("connection lost")

    def fail(self, why: str) -> None:
        """Drop the connection; everyone still waiting on it gets a 503."""
        if self.closed:
            return
        self.closed = True
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
        if self._transport is not None:
            self._transport.abort()
        error = f"replay store {self._shown}: {why}"
        while self._waiting:
            future, _deadline, _within = self._waiting.popleft()
            if not future.done():
                future.set_exception(ReplayStoreUnavailable(error))
