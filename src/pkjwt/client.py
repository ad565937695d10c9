"""TokenClient: get client-credentials tokens, sync or async, from one definition.

The protocol lives in generator "flows" that yield actions (send this request, sign these
bytes, sleep this long) and receive their results. Two small drivers run a flow: one with
``httpx.Client`` and ``time.sleep``, one with ``httpx.AsyncClient`` and ``asyncio.sleep`` (and
an async signer when there is one). Retry, audience fallback and clock-skew correction are
written once, in the flow.
"""

from __future__ import annotations

import asyncio
import base64
import email.utils
import functools
import hashlib
import hmac
import logging
import ssl
import threading
import time
from collections.abc import Callable, Generator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeVar
from urllib.parse import quote, urlencode, urlsplit

import httpx

from . import nhs
from .assertion import AssertionFactory
from .decode import b64url
from .discovery import ServerMetadata, metadata_urls, parse_metadata
from .errors import ConfigError, OAuthError, PkjwtError, TransportError
from .keys import Key, load_key
from .manager import CacheKey, TokenManager
from .profiles import JWT_BEARER, LEGACY, NHS, RFC7523BIS, Profile, get_profile
from .retry import RetryPolicy
from .signing import Signer, asign, require_private
from .stores import TokenStore
from .tokens import DEFAULT_LIFETIME, Token, parse_token_response

__all__ = ["AuthMethod", "TokenClient"]

log = logging.getLogger("pkjwt.client")

AuthMethod = Literal[
    "private_key_jwt", "client_secret_jwt", "client_secret_basic", "client_secret_post"
]
_FORM = "application/x-www-form-urlencoded"
_NHS_HOST = "api.service.nhs.uk"
#: clock offsets smaller than this are Date-header noise (1 s resolution), not skew
_SKEW_THRESHOLD = 2.0

T = TypeVar("T")


# -- flow actions --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Send:
    method: str
    url: str
    headers: Mapping[str, str]
    body: bytes | None = None


@dataclass(frozen=True, slots=True)
class _Reply:
    status: int
    headers: Mapping[str, str]
    body: bytes
    sent_at: float
    received_at: float


@dataclass(frozen=True, slots=True)
class _Sign:
    signer: Signer
    data: bytes


@dataclass(frozen=True, slots=True)
class _Sleep:
    seconds: float


_Action = _Send | _Sign | _Sleep
Flow = Generator[_Action, Any, T]


class _HmacSigner:
    """client_secret_jwt: the assertion is MACed with the client secret (RFC 7523 + OIDC 9)."""

    def __init__(self, secret: str, alg: str = "HS256") -> None:
        self._digest = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}[
            alg
        ]
        self._secret = secret.encode()
        self.alg = alg
        self.kid: str | None = None

    def sign(self, data: bytes) -> bytes:
        return hmac.new(self._secret, data, self._digest).digest()

    async def asign(self, data: bytes) -> bytes:
        return self.sign(data)

    def __repr__(self) -> str:
        return f"<HmacSigner {self.alg}>"


class TokenClient:
    """Gets, caches and renews OAuth 2.0 client-credentials tokens.

    >>> client = TokenClient(token_url=NHS_INT, client_id=API_KEY, key="test-1.pem",
    ...                      kid="test-1", profile="nhs")
    >>> client.get_token().access_token            # sync
    >>> (await client.aget_token()).access_token   # async, same cache

    With ``issuer=`` the token endpoint, auth methods and algorithms come from the server's
    metadata (RFC 8414 / OIDC discovery); with no ``profile`` the client then sends the
    ``rfc7523bis`` shape (aud = issuer) and, if the server answers ``invalid_client``, retries
    once in the ``legacy`` shape (aud = token URL) and remembers which one worked.
    """

    def __init__(
        self,
        *,
        client_id: str,
        token_url: str | None = None,
        issuer: str | None = None,
        key: Key | Signer | str | Any = None,
        kid: str | None = None,
        alg: str | None = None,
        key_password: str | bytes | None = None,
        client_secret: str | None = None,
        auth_method: AuthMethod | None = None,
        profile: str | Profile | None = None,
        scope: str | Sequence[str] | None = None,
        resource: str | Sequence[str] | None = None,
        audience: str | None = None,
        extra_params: Mapping[str, str] | None = None,
        timeout: float = 30.0,
        retry: RetryPolicy | None = None,
        store: TokenStore | None = None,
        manager: TokenManager | None = None,
        clock: Callable[[], float] = time.time,
        default_lifetime: float = DEFAULT_LIFETIME,
        http_client: httpx.Client | None = None,
        async_http_client: httpx.AsyncClient | None = None,
        sleep: Callable[[float], None] = time.sleep,
        asleep: Callable[[float], Any] = asyncio.sleep,
    ) -> None:
        if not client_id:
            raise ConfigError("client_id is required")
        if not token_url and not issuer:
            raise ConfigError(
                "give token_url= or issuer=",
                hint="NHS: token_url='https://int.api.service.nhs.uk/oauth2/token'; "
                "other servers: issuer='https://login.example.com' (discovered)",
            )
        self.client_id = client_id
        self.issuer = issuer
        self._token_url = token_url
        self.scope: str | None = (
            scope if isinstance(scope, str) or scope is None else " ".join(scope)
        )
        self.resource: tuple[str, ...] = (
            (resource,) if isinstance(resource, str) else tuple(resource or ())
        )
        self.audience = audience
        self.extra_params = dict(extra_params or {})
        self.timeout = timeout
        self.retry = retry or RetryPolicy()
        self.default_lifetime = default_lifetime
        self._clock = clock
        self._sleep = sleep
        self._asleep = asleep
        self.manager = manager or TokenManager(store=store, clock=clock)

        # credentials: parsed once, here
        self._secret = client_secret
        self._key: Key | None = None
        self._signer: Signer | None = None
        if key is not None:
            if isinstance(key, Signer):
                self._signer = key
            else:
                self._key = load_key(key, kid=kid, password=key_password, alg=alg)
                require_private(self._key)
        self.auth_method: AuthMethod = auth_method or (
            "private_key_jwt" if key is not None else "client_secret_basic"
        )
        if self.auth_method == "private_key_jwt" and key is None:
            raise ConfigError("private_key_jwt needs key= (a key file, Key or Signer)")
        if self.auth_method != "private_key_jwt" and not client_secret:
            raise ConfigError(f"{self.auth_method} needs client_secret=")

        # which assertion shape: explicit profile, or chosen per server
        self._explicit_profile = get_profile(profile) if profile is not None else None
        self._auto_shape = self._explicit_profile is None and audience is None
        self._shape_memory: dict[str, str] = {}
        self._factories: dict[str, AssertionFactory] = {}
        self._metadata: ServerMetadata | None = None
        self._meta_lock = threading.Lock()
        self.clock_offset = 0.0

        self._http = http_client
        self._own_http = http_client is None
        self._ahttp = async_http_client
        self._own_ahttp = async_http_client is None
        self._ahttp_loop: asyncio.AbstractEventLoop | None = None
        self._http_lock = threading.Lock()

        #: what a cached token is for: every input that changes the token, the credential
        #: included (another key, kid or secret must fetch, not reuse what the old one got)
        self.cache_key: CacheKey = (
            self._token_url or self.issuer or "",
            self.client_id,
            self.scope or "",
            self.resource,
            self.audience or "",
            self.auth_method,
            tuple(sorted(self.extra_params.items())),
            self._credential_id(),
        )

    def _credential_id(self) -> str:
        if self._key is not None:
            return f"key:{self._key.thumbprint()}:{self._key.kid}:{self._key.alg}"
        if self._signer is not None:
            return f"signer:{self._signer.kid}:{self._signer.alg}"
        # a digest, never the secret: cache keys name files and may be shown
        return "secret:" + hashlib.sha256((self._secret or "").encode()).hexdigest()[:16]

    # -- public API -----------------------------------------------------------------------------
    @property
    def token_url(self) -> str | None:
        return self._token_url or (self._metadata.token_endpoint if self._metadata else None)

    def get_token(self, *, force: bool = False, stale: Token | None = None) -> Token:
        """A valid token, from the cache when possible. ``force`` renews (after a 401)."""
        return self.manager.get(self.cache_key, self.fetch_token, force=force, stale=stale)

    async def aget_token(self, *, force: bool = False, stale: Token | None = None) -> Token:
        """Async twin of :meth:`get_token`, sharing its cache and in-flight fetches."""
        return await self.manager.aget(self.cache_key, self.afetch_token, force=force, stale=stale)

    def fetch_token(self) -> Token:
        """Request a new token now, bypassing the cache."""
        return self._run_sync(self._token_flow())

    async def afetch_token(self) -> Token:
        return await self._run_async(self._token_flow())

    def invalidate(self) -> None:
        """Forget the cached token (the next call fetches)."""
        self.manager.invalidate(self.cache_key)

    def make_assertion(self) -> str:
        """A fresh assertion as this client would send it (for diagnosis)."""
        return self._run_sync(self._assertion_only_flow())

    def close(self) -> None:
        if self._http is not None and self._own_http:
            self._http.close()
            self._http = None

    async def aclose(self) -> None:
        self.close()
        if self._ahttp is not None and self._own_ahttp:
            await self._ahttp.aclose()
            self._ahttp = None

    def __enter__(self) -> TokenClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def __aenter__(self) -> TokenClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        where = self._token_url or self.issuer
        return f"<TokenClient {self.auth_method} client_id={self.client_id!r} at {where}>"

    # -- the protocol, once -----------------------------------------------------------------------
    def _discovery_flow(self) -> Flow[ServerMetadata | None]:
        if self.issuer is None or self._metadata is not None:
            return self._metadata
        problems: list[str] = []
        for url in metadata_urls(self.issuer):
            try:
                reply: _Reply = yield _Send("GET", url, {"Accept": "application/json"})
            except TransportError as exc:
                problems.append(f"{url}: {exc.message}")
                continue
            if reply.status != 200:
                problems.append(f"{url}: HTTP {reply.status}")
                continue
            meta = parse_metadata(self.issuer, reply.body, url=url)
            with self._meta_lock:
                self._metadata = meta
            self._check_metadata(meta)
            return meta
        raise ConfigError(
            f"could not discover the server metadata of {self.issuer}: " + "; ".join(problems),
            hint="check the issuer URL, or pass token_url= to skip discovery",
        )

    def _check_metadata(self, meta: ServerMetadata) -> None:
        if not meta.supports_method(self.auth_method):
            raise ConfigError(
                f"{meta.issuer} does not list {self.auth_method} in "
                "token_endpoint_auth_methods_supported "
                f"({', '.join(meta.auth_methods or ())})",
                hint="register the client for a method the server supports",
            )

    def _shape(self) -> Profile:
        if self._explicit_profile is not None:
            return self._explicit_profile
        url = self.token_url or ""
        remembered = self._shape_memory.get(url)
        if remembered:
            return get_profile(remembered)
        if _NHS_HOST in urlsplit(url).netloc:
            return NHS
        if self.issuer is None:
            # without an issuer we cannot send the rfc7523bis audience
            return LEGACY
        return RFC7523BIS

    def _factory(self, profile: Profile) -> AssertionFactory:
        factory = self._factories.get(profile.name)
        if factory is None:
            source: Key | Signer
            if self.auth_method == "client_secret_jwt":
                assert self._secret is not None
                source = _HmacSigner(self._secret)
                profile = profile.with_overrides(algs=frozenset({"HS256"}), send_kid=False)
            else:
                source = self._key if self._key is not None else self._signer  # type: ignore[assignment]
            alg = self._server_alg(source)
            factory = AssertionFactory(
                source,
                client_id=self.client_id,
                profile=profile,
                token_url=self.token_url,
                issuer=self.issuer,
                audience=self.audience,
                alg=alg,
                clock=self._clock,
            )
            self._factories[profile.name] = factory
        factory.clock_offset = self.clock_offset
        return factory

    def _server_alg(self, source: Key | Signer) -> str | None:
        """Pick the key's algorithm the server advertises, when it advertises any."""
        meta = self._metadata
        if not isinstance(source, Key) or meta is None or not meta.auth_signing_algs:
            return None
        for alg in (source.alg, *source.algs):
            if alg in meta.auth_signing_algs:
                return alg
        return None

    def _assertion_only_flow(self) -> Flow[str]:
        yield from self._discovery_flow()
        factory = self._factory(self._shape())
        data = factory._signing_input(None)
        signature = yield _Sign(factory.signer, data)
        return f"{data.decode('ascii')}.{b64url(signature)}"

    def _token_request(self, assertion: str | None) -> tuple[dict[str, str], bytes]:
        form: list[tuple[str, str]] = [("grant_type", "client_credentials")]
        headers = {"Content-Type": _FORM, "Accept": "application/json"}
        if assertion is not None:
            form += [("client_assertion_type", JWT_BEARER), ("client_assertion", assertion)]
        elif self.auth_method == "client_secret_basic":
            assert self._secret is not None
            # RFC 6749 2.3.1: form-encode each part before base64
            pair = f"{quote(self.client_id, safe='')}:{quote(self._secret, safe='')}"
            headers["Authorization"] = "Basic " + base64.b64encode(pair.encode()).decode()
        else:
            assert self._secret is not None
            form += [("client_id", self.client_id), ("client_secret", self._secret)]
        if self.scope:
            form.append(("scope", self.scope))
        form += [("resource", r) for r in self.resource]
        form += list(self.extra_params.items())
        return headers, urlencode(form).encode("ascii")

    def _token_flow(self) -> Flow[Token]:
        yield from self._discovery_flow()
        token_url = self.token_url
        assert token_url is not None
        shape = self._shape()
        fell_back = skew_retried = False
        attempt = 0
        while True:
            attempt += 1
            assertion = None
            if self.auth_method in ("private_key_jwt", "client_secret_jwt"):
                factory = self._factory(shape)
                data = factory._signing_input(None)  # a fresh jti on every attempt
                signature = yield _Sign(factory.signer, data)
                assertion = f"{data.decode('ascii')}.{b64url(signature)}"
            headers, body = self._token_request(assertion)
            try:
                reply: _Reply = yield _Send("POST", token_url, headers, body)
            except TransportError as exc:
                delay = self.retry.delay(attempt, exc)
                if delay is None:
                    raise
                log.info("token request failed (%s); retrying in %.2f s", exc.message, delay)
                yield _Sleep(delay)
                continue
            skew_changed = self._observe_date(reply)
            try:
                token = parse_token_response(
                    reply.status,
                    reply.headers,
                    reply.body,
                    now=self._clock(),
                    default_lifetime=self.default_lifetime,
                )
            except OAuthError as exc:
                timing = assertion is not None and _time_related(exc)
                if timing and skew_changed and not skew_retried:
                    skew_retried = True
                    log.info("retrying with clock corrected by %.0f s", self.clock_offset)
                    continue
                audience_shape = exc.error == "invalid_client" and assertion is not None
                if audience_shape and self._auto_shape and shape is RFC7523BIS and not fell_back:
                    fell_back = True
                    shape = LEGACY
                    log.info("invalid_client with aud = issuer; retrying with the token URL")
                    continue
                delay = self.retry.delay(attempt, exc)
                if delay is None:
                    raise
                log.info("token endpoint said %s; retrying in %.2f s", exc.error, delay)
                yield _Sleep(delay)
                continue
            except PkjwtError as exc:
                delay = self.retry.delay(attempt, exc)
                if delay is None:
                    raise
                yield _Sleep(delay)
                continue
            if self._auto_shape:
                self._shape_memory[token_url] = shape.name
            log.debug("token obtained (fp %s, %.0f s)", token.fingerprint, token.lifetime)
            return token

    def _observe_date(self, reply: _Reply) -> bool:
        """Estimate clock skew from the server's ``Date`` header; True when it changed."""
        date = next((v for k, v in reply.headers.items() if k.lower() == "date"), None)
        if not date:
            return False
        try:
            server = email.utils.parsedate_to_datetime(date).timestamp() + 0.5
        except (TypeError, ValueError, IndexError):
            return False
        local = (reply.sent_at + reply.received_at) / 2
        offset = server - local
        new = offset if abs(offset) >= _SKEW_THRESHOLD else 0.0
        changed = abs(new - self.clock_offset) >= _SKEW_THRESHOLD
        if changed:
            log.info("server clock differs from ours by %.1f s; correcting iat/exp", offset)
            self.clock_offset = new
            for factory in self._factories.values():
                factory.clock_offset = new
        return changed

    # -- drivers ----------------------------------------------------------------------------------
    def _sync_http(self) -> httpx.Client:
        with self._http_lock:
            if self._http is None:
                self._http = httpx.Client(
                    timeout=self.timeout, follow_redirects=False, verify=_tls_context()
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
                timeout=self.timeout, follow_redirects=False, verify=_tls_context()
            )
            self._ahttp_loop = loop
        return self._ahttp

    def _run_sync(self, flow: Flow[T]) -> T:
        value: Any = None
        error: BaseException | None = None
        while True:
            action, result = _advance(flow, value, error)
            if action is None:
                return result  # type: ignore[return-value]
            value, error = None, None
            if isinstance(action, _Sign):
                value = action.signer.sign(action.data)
            elif isinstance(action, _Sleep):
                self._sleep(action.seconds)
            else:
                sent = self._clock()
                try:
                    resp = self._sync_http().request(
                        action.method, action.url, headers=dict(action.headers), content=action.body
                    )
                except httpx.HTTPError as exc:
                    error = _transport_error(action.url, exc)
                else:
                    value = _reply(resp, sent, self._clock())

    async def _run_async(self, flow: Flow[T]) -> T:
        value: Any = None
        error: BaseException | None = None
        while True:
            action, result = _advance(flow, value, error)
            if action is None:
                return result  # type: ignore[return-value]
            value, error = None, None
            if isinstance(action, _Sign):
                value = await asign(action.signer, action.data)
            elif isinstance(action, _Sleep):
                await self._asleep(action.seconds)
            else:
                sent = self._clock()
                try:
                    resp = await self._async_http().request(
                        action.method, action.url, headers=dict(action.headers), content=action.body
                    )
                except httpx.HTTPError as exc:
                    error = _transport_error(action.url, exc)
                else:
                    value = _reply(resp, sent, self._clock())


def _advance(
    flow: Flow[T], value: Any, error: BaseException | None
) -> tuple[_Action | None, T | None]:
    """Step a flow: the next action, or (None, its result) when it has finished."""
    try:
        return (flow.throw(error) if error is not None else flow.send(value)), None
    except StopIteration as stop:
        return None, stop.value


def _reply(resp: httpx.Response, sent: float, received: float) -> _Reply:
    return _Reply(resp.status_code, resp.headers, resp.content, sent, received)


@functools.cache
def _tls_context() -> ssl.SSLContext:
    """One verifying TLS context per process: loading the CA store costs ~25 ms per client."""
    return httpx.create_ssl_context()  # httpx's own default: certifi, SSL_CERT_FILE honoured


_TIME_CODES = frozenset({"exp.expired", "exp.too_far", "iat.future", "nbf.future"})


def _time_related(exc: OAuthError) -> bool:
    """Could a clock difference explain this refusal? (invalid_client, or an NHS exp error)"""
    if exc.error == "invalid_client":
        return True
    text = (exc.description or "").lower()
    return any(
        row is not None
        and _TIME_CODES.intersection(row.codes)
        and any(m in text for m in row.match)
        for row in nhs.NHS_ASSERTION_ERRORS
    )


def _transport_error(url: str, exc: httpx.HTTPError) -> TransportError:
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
