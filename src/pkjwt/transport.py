"""The HTTP drivers: run a client flow with ``httpx.Client`` or ``httpx.AsyncClient``.

:class:`HttpTransport` owns the httpx clients it creates (one ``AsyncClient`` per event loop,
since pooled connections belong to the loop that opened them), shares one verifying TLS context
per process, and maps httpx errors to :class:`~pkjwt.errors.TransportError`, whose message
names the URL and never the request body (it carries the client assertion or secret).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import ssl
import threading
from collections.abc import Callable
from typing import Any, Literal, TypeVar

import httpx

from ._bounded import BodyTooLarge, BoundedBody
from .errors import ConfigError, TokenResponseError, TransportError, missing_extra
from .flow import Action, Call, Flow, Reply, Send, Sign, Sleep, arun, run
from .signing import asign

__all__ = ["HttpTransport", "Trust", "tls_context"]

T = TypeVar("T")


class HttpTransport:
    """Does a flow's actions: HTTP with httpx, signing, sleeping, blocking calls.

    ``http_client``/``async_http_client`` are used as given and never closed here; without
    them the transport creates its own (``follow_redirects=False``: a token endpoint that
    redirects would have the assertion re-posted elsewhere) and closes them in :meth:`close`
    and :meth:`aclose`. ``clock`` stamps each reply for clock-skew estimation.
    """

    def __init__(
        self,
        http_client: httpx.Client | None,
        async_http_client: httpx.AsyncClient | None,
        *,
        timeout: float,
        clock: Callable[[], float],
        sleep: Callable[[float], None],
        asleep: Callable[[float], Any],
        verify: ssl.SSLContext | None = None,
    ) -> None:
        self.timeout = timeout
        self._verify = verify if verify is not None else tls_context()
        self._clock = clock
        self._sleep = sleep
        self._asleep = asleep
        self._http = http_client
        self._own_http = http_client is None
        self._ahttp = async_http_client
        self._own_ahttp = async_http_client is None
        self._ahttp_loop: asyncio.AbstractEventLoop | None = None
        self._http_lock = threading.Lock()
        self._pool: concurrent.futures.ThreadPoolExecutor | None = None

    # -- drivers ----------------------------------------------------------------------------------
    def run(self, flow: Flow[T]) -> T:
        """Run ``flow`` here, blocking."""
        return run(flow, self._perform)

    async def arun(self, flow: Flow[T]) -> T:
        """Run ``flow`` on the running event loop."""
        return await arun(flow, self._aperform)

    def _perform(self, action: Action) -> Any:
        if isinstance(action, Send):
            return self._send(action)
        if isinstance(action, Sign):
            return action.signer.sign(action.data)
        return self._sleep(action.seconds) if isinstance(action, Sleep) else action.fn(*action.args)

    async def _aperform(self, action: Action) -> Any:
        if isinstance(action, Send):
            return await self._asend(action)
        if isinstance(action, Sign):
            return await asign(action.signer, action.data)
        if isinstance(action, Call):
            return await asyncio.to_thread(action.fn, *action.args)
        return await self._asleep(action.seconds)

    def _send(self, action: Send) -> Reply:
        """One exchange within ``action.timeout`` in total. A blocking socket cannot be given
        a deadline for a whole response (each read restarts its timer: a server sending a byte
        a second keeps it alive), so the exchange runs on a worker thread and this one waits
        at most the budget; past it, the connection is closed under the worker."""
        sent = self._clock()
        budget = action.timeout or self.timeout
        future = self._worker().submit(self._exchange, self._sync_http(), action)
        try:
            status, headers, body = future.result(timeout=budget)
        except concurrent.futures.TimeoutError:
            self._drop_sync_http()
            raise _too_slow(action.url, budget) from None
        except httpx.HTTPError as exc:
            raise _transport_error(action.url, exc) from None
        return Reply(status, headers, body, sent, self._clock())

    @staticmethod
    def _exchange(client: httpx.Client, action: Send) -> tuple[int, httpx.Headers, bytes]:
        with client.stream(action.method, action.url, **_options(action)) as response:
            if response.is_stream_consumed:  # built in memory (a MockTransport in your tests)
                return response.status_code, response.headers, _in_memory(action.url, response)
            body = _bounded(action.url, response.headers)
            for chunk in response.iter_raw():
                _feed(action.url, body, chunk)
            return response.status_code, response.headers, body.value()

    async def _asend(self, action: Send) -> Reply:
        sent = self._clock()
        budget = action.timeout or self.timeout
        client = self._async_http()
        try:
            async with asyncio.timeout(budget):
                async with client.stream(action.method, action.url, **_options(action)) as r:
                    if r.is_stream_consumed:  # built in memory (a MockTransport in your tests)
                        content = _in_memory(action.url, r)
                    else:
                        body = _bounded(action.url, r.headers)
                        async for chunk in r.aiter_raw():
                            _feed(action.url, body, chunk)
                        content = body.value()
        except TimeoutError:
            raise _too_slow(action.url, budget) from None
        except httpx.HTTPError as exc:
            raise _transport_error(action.url, exc) from None
        return Reply(r.status_code, r.headers, content, sent, self._clock())

    def _worker(self) -> concurrent.futures.ThreadPoolExecutor:
        with self._http_lock:
            if self._pool is None:
                self._pool = concurrent.futures.ThreadPoolExecutor(
                    max_workers=4, thread_name_prefix="pkjwt-http"
                )
            return self._pool

    def _drop_sync_http(self) -> None:
        """Close the client a late exchange still uses (its worker then fails at once) and
        start afresh next time; a client given by the caller is theirs to close."""
        with self._http_lock:
            if self._http is not None and self._own_http:
                self._http.close()
                self._http = None

    # -- httpx clients ----------------------------------------------------------------------------
    def _sync_http(self) -> httpx.Client:
        with self._http_lock:
            if self._http is None:
                self._http = httpx.Client(
                    timeout=self.timeout, follow_redirects=False, verify=self._verify
                )
            return self._http

    def _async_http(self) -> httpx.AsyncClient:
        if not self._own_ahttp:
            assert self._ahttp is not None
            return self._ahttp
        # pooled connections belong to one event loop: a new loop gets a new client
        loop = asyncio.get_running_loop()
        if self._ahttp is None or self._ahttp_loop is not loop:
            self._ahttp = httpx.AsyncClient(
                timeout=self.timeout, follow_redirects=False, verify=self._verify
            )
            self._ahttp_loop = loop
        return self._ahttp

    def close(self) -> None:
        """Close the sync client if this transport created it."""
        if self._http is not None and self._own_http:
            self._http.close()
            self._http = None
        if self._pool is not None:
            self._pool.shutdown(wait=False)
            self._pool = None

    async def aclose(self) -> None:
        """Close both clients this transport created."""
        self.close()
        if self._ahttp is not None and self._own_ahttp:
            await self._ahttp.aclose()
            self._ahttp = None


#: the largest response body read (a token response is a few kB; NHS's, under 200 bytes)
MAX_RESPONSE = 1 << 20


def _options(action: Send) -> dict[str, Any]:
    # identity: a compressed body is inflated only within the cap (see pkjwt._bounded)
    return {"headers": {"Accept-Encoding": "identity", **action.headers}, "content": action.body}


def _bounded(url: str, headers: httpx.Headers) -> BoundedBody:
    try:
        return BoundedBody(MAX_RESPONSE, headers.get("content-encoding"))
    except BodyTooLarge as exc:
        raise TokenResponseError(f"{url} answered with {exc}") from None


def _in_memory(url: str, response: httpx.Response) -> bytes:
    """The body of a response made in memory (its stream already read, its content decoded),
    held to the same cap as one read from the network."""
    body = BoundedBody(MAX_RESPONSE, None)
    _feed(url, body, response.content)
    return body.value()


def _feed(url: str, body: BoundedBody, chunk: bytes) -> None:
    try:
        body.feed(chunk)
    except BodyTooLarge as exc:
        raise TokenResponseError(
            f"{url} answered with {exc}: not a token response",
            hint="check the URL: a token response is a few kilobytes",
        ) from None


def _too_slow(url: str, budget: float) -> TransportError:
    return TransportError(
        f"timed out talking to {url}: no whole answer within {budget:g} s",
        hint="the timeout bounds each attempt and all attempts together; the NHS recommends "
        "15-30 s",
    )


Trust = Literal["certifi", "system"]


@functools.cache
def tls_context(trust: Trust = "certifi", ca_bundle: str | None = None) -> ssl.SSLContext:
    """A verifying TLS context, one per setting per process (loading a CA store costs ~25 ms).

    ``certifi`` (httpx's default, ``SSL_CERT_FILE`` honoured) or ``system``: the OS trust store
    through ``truststore`` (corporate machines usually trust their TLS-inspecting proxy there).
    ``ca_bundle`` adds a PEM file of CAs (a proxy's, a self-signed development server's).
    """
    if trust == "system":
        try:
            import truststore
        except ImportError as exc:
            raise missing_extra("truststore", "the OS trust store (trust='system')", exc) from None
        ctx: ssl.SSLContext = truststore.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    elif ca_bundle is None:
        return httpx.create_ssl_context()
    else:
        import certifi

        ctx = ssl.create_default_context(cafile=certifi.where())
    if ca_bundle is not None:
        try:
            ctx.load_verify_locations(cafile=ca_bundle)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(
                f"CA bundle {ca_bundle}: {getattr(exc, 'strerror', None) or exc}",
                hint="give a PEM file holding the CA certificate(s) to trust",
            ) from None
    return ctx


def _tls_failure(exc: BaseException) -> ssl.SSLError | None:
    """The TLS error somewhere in ``exc``'s chain (httpx wraps what ssl raised)."""
    seen: BaseException | None = exc
    for _ in range(8):
        if seen is None:
            return None
        if isinstance(seen, ssl.SSLError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def _transport_error(url: str, exc: httpx.HTTPError) -> TransportError:
    tls = _tls_failure(exc)
    if isinstance(tls, ssl.SSLCertVerificationError):
        why = tls.verify_message or tls.reason or "verification failed"
        return TransportError(
            f"TLS: the certificate of {httpx.URL(url).host} is not trusted ({why})",
            hint="a self-signed certificate, or a proxy that inspects TLS (common on corporate "
            "networks): trust its CA with --ca-bundle FILE (ca_bundle=), or use the OS trust "
            "store with --trust system (trust='system'; pip install 'pkjwt[truststore]')",
        )
    if tls is not None:
        return TransportError(
            f"TLS handshake with {httpx.URL(url).host} failed ({tls.reason or type(tls).__name__})",
            hint="check the URL's port and protocol (an http port reached with https?)",
        )
    if isinstance(exc, httpx.TimeoutException):
        return TransportError(
            f"timed out talking to {url}",
            hint="the server did not answer in time; the NHS recommends 15-30 s timeouts",
        )
    if isinstance(exc, httpx.ConnectError):
        return TransportError(
            f"cannot connect to {url}", hint="check the URL, DNS, proxy and firewall settings"
        )
    return TransportError(f"HTTP error talking to {url}: {type(exc).__name__}")
