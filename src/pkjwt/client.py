"""TokenClient: get client-credentials tokens, sync or async, from one definition.

The client is a composition of four parts, each in its own module:

* the authentication method (:mod:`pkjwt.client_auth`): what each request carries;
* the token endpoint flows (:mod:`pkjwt.token_flow`): discovery, retries, audience fallback and
  clock-skew correction, written once as generators that yield actions and do no I/O;
* the transport (:mod:`pkjwt.transport`): runs a flow with ``httpx.Client`` and ``time.sleep``
  or with ``httpx.AsyncClient`` and ``asyncio.sleep`` (awaiting an async signer when there is
  one);
* the :class:`~pkjwt.manager.TokenManager`: cache, early refresh and single-flight.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any

import httpx

from .assertion_sources import AssertionSource, FederatedAssertion
from .certificates import X509Header
from .client_auth import AuthMethod, ClientAuth, client_auth_for
from .discovery import ServerMetadata
from .dpop import DPoPKey
from .dpop_client import DPoPSession, dpop_for
from .errors import ConfigError
from .keys import KeySource
from .manager import CacheKey, TokenManager
from .profiles import Profile, ProfileName, get_profile
from .retry import RetryPolicy
from .signing import Signer
from .stores import TokenStore, open_token_store
from .telemetry import Telemetry, telemetry_for
from .token_flow import AssertionPlan, EndpointConfig, Notes, TokenEndpoint
from .tokens import DEFAULT_LIFETIME, Token
from .transport import HttpTransport, Trust, tls_context
from .urls import endpoint_url

__all__ = ["AuthMethod", "TokenClient"]


def _cache_key(config: EndpointConfig, auth: ClientAuth, dpop: DPoPSession | None) -> CacheKey:
    """Every input that changes the token, the credential included (another key, kid or
    secret must fetch, not reuse what the old one got), and the DPoP key a token is bound to
    (a token bound to another key is useless here)."""
    key: CacheKey = (
        config.token_url or config.issuer or "",
        config.client_id,
        config.scope or "",
        config.resource,
        config.audience or "",
        auth.name,
        tuple(sorted(config.extra_params.items())),
        auth.identity,
    )
    return key if dpop is None else (*key, f"dpop:{dpop.jkt}")


class TokenClient:
    """Gets, caches and renews OAuth 2.0 client-credentials tokens.

    >>> client = TokenClient(token_url=NHS_INT, client_id=API_KEY, key="test-1.pem",
    ...                      kid="test-1", profile="nhs")
    >>> client.get_token().access_token            # sync
    >>> (await client.aget_token()).access_token   # async, same cache

    With ``issuer=`` the token endpoint, auth methods and algorithms come from the server's
    metadata (RFC 8414 / OIDC discovery); with no ``profile`` the client then sends the
    ``rfc7523bis`` shape (aud = issuer) and, if the server answers ``invalid_client``, retries
    once in the ``legacy`` shape (aud = token URL) and remembers which one worked (in the
    token store too, when there is one).

    Parameters (all keyword-only):

    * ``client_id``: the client's id (NHS: the application's API key); required.
    * ``token_url`` / ``issuer``: where tokens come from; one is required. An issuer is
      discovered (RFC 8414, then OIDC). Plain http is refused except to loopback.
    * ``key``: the private key for ``private_key_jwt``: a path, PEM/JWK text, a JWK dict, a
      ``cryptography`` key, a :class:`~pkjwt.keys.Key`, or a :class:`~pkjwt.signing.Signer`
      (KMS/HSM). Parsed once, here; a public key is refused here.
    * ``kid`` / ``alg``: the key id registered in your JWKS, and an algorithm to pin (default:
      the profile's preferred one the key can make, narrowed to what the server advertises).
    * ``key_password``: for an encrypted key file.
    * ``certificate`` / ``x509_headers``: the key's X.509 chain (PEM; not needed when the key
      file holds it: PKCS#12, or PEM with both) and which certificate headers to send:
      ``"x5t#S256"``, ``"x5t"`` (Entra ID's certificate credentials), ``"x5c"``.
    * ``client_secret`` / ``auth_method``: for ``client_secret_basic`` (the default without a
      key), ``client_secret_post`` or ``client_secret_jwt``.
    * ``assertion_source``: no key at all: send an identity token someone else issued as
      the assertion (a federated credential): ``"file:PATH"`` (a Kubernetes projected
      token, re-read when it changes), ``"env:VAR"``, ``"exec:COMMAND"`` or
      ``"github-actions[:AUDIENCE]"``, or an :class:`~pkjwt.assertion_sources.AssertionSource`.
    * ``profile``: ``"nhs"``, ``"rfc7523bis"``, ``"fapi2"``, ``"legacy"`` or a
      :class:`~pkjwt.profiles.Profile`; None chooses per server (above).
    * ``scope``, ``resource`` (RFC 8707; several allowed), ``audience`` (an explicit assertion
      ``aud``), ``extra_params`` (more form fields): what the token request asks for; all of
      them are part of the cache key.
    * ``timeout``: seconds a token fetch may take in all (default 30; the NHS recommends
      15-30): each attempt, its response included, gets what is left of it, and a retry whose
      wait would not fit is not made. A server that dribbles its answer is cut off at it.
    * ``ca_bundle`` / ``trust``: TLS trust. A PEM file of extra CAs (a TLS-inspecting proxy's,
      a development server's), and ``"certifi"`` (default) or ``"system"`` for the OS trust
      store (``pip install 'pkjwt[truststore]'``).
    * ``retry``: the :class:`~pkjwt.retry.RetryPolicy` (3 attempts, full jitter, Retry-After).
    * ``store`` / ``manager``: share tokens beyond this object: a
      :class:`~pkjwt.stores.TokenStore` or a store URL (``memory://``, ``file:///DIR``,
      ``redis://HOST:PORT/DB``: one token for a fleet), or a whole
      :class:`~pkjwt.manager.TokenManager`.
    * ``clock``, ``sleep``, ``asleep``: injected time (tests).
    * ``default_lifetime``: assumed when a response has no usable ``expires_in`` (300 s).
    * ``http_client`` / ``async_http_client``: your own httpx clients (proxies, TLS settings);
      not closed by :meth:`close`.
    * ``dpop``: DPoP-bound tokens (RFC 9449): True for an ephemeral ES256 key (bound tokens
      die with the process), or the key to prove possession of: a
      :class:`~pkjwt.dpop.DPoPKey`, a :class:`~pkjwt.keys.Key`, a key file, PEM or JWK, a
      Signer with ``public_key()``, or a key URI as for ``key``. Every token request carries
      a fresh proof (the server's ``DPoP-Nonce`` included once it gave one); ``HttpxAuth`` and
      ``RequestsAuth`` send ``Authorization: DPoP`` with a proof per API request.
    * ``telemetry``: spans and metrics (:mod:`pkjwt.telemetry`): None (default) reports
      through OpenTelemetry when ``pkjwt[otel]`` is installed, False never, or a
      :class:`~pkjwt.otel.OtelTelemetry` with your own providers.
    """

    def __init__(
        self,
        *,
        client_id: str,
        token_url: str | None = None,
        issuer: str | None = None,
        key: Signer | KeySource = None,
        kid: str | None = None,
        alg: str | None = None,
        key_password: str | bytes | None = None,
        certificate: str | os.PathLike[str] | bytes | None = None,
        x509_headers: Sequence[X509Header] = (),
        client_secret: str | None = None,
        auth_method: AuthMethod | None = None,
        assertion_source: AssertionSource | str | None = None,
        profile: ProfileName | Profile | None = None,
        scope: str | Sequence[str] | None = None,
        resource: str | Sequence[str] | None = None,
        audience: str | None = None,
        extra_params: Mapping[str, str] | None = None,
        timeout: float = 30.0,
        retry: RetryPolicy | None = None,
        store: TokenStore | str | None = None,
        manager: TokenManager | None = None,
        clock: Callable[[], float] = time.time,
        default_lifetime: float = DEFAULT_LIFETIME,
        ca_bundle: str | os.PathLike[str] | None = None,
        trust: Trust = "certifi",
        http_client: httpx.Client | None = None,
        async_http_client: httpx.AsyncClient | None = None,
        telemetry: Telemetry | bool | None = None,
        dpop: bool | DPoPKey | Signer | KeySource = None,
        sleep: Callable[[float], None] = time.sleep,
        asleep: Callable[[float], Any] = asyncio.sleep,
    ) -> None:
        _check_where(client_id, token_url, issuer)
        shared_store = open_token_store(store) if store is not None else None
        self.manager = manager or TokenManager(store=shared_store, clock=clock)
        auth = (  # credentials: parsed once, here
            _federated(assertion_source, key, client_secret, clock)
            if assertion_source is not None
            else client_auth_for(
                auth_method,
                key=key,
                kid=kid,
                alg=alg,
                key_password=key_password,
                client_secret=client_secret,
                certificate=certificate,
                x509_headers=x509_headers,
            )
        )
        config = _endpoint_config(
            client_id, token_url, issuer, scope, resource, audience, extra_params, profile
        )
        config = replace(config, default_lifetime=default_lifetime, timeout=timeout)
        config = replace(config, retry=retry) if retry is not None else config
        self._telemetry = _watching(telemetry, self.manager)
        if dpop is None and config.profile is not None and config.profile.require_dpop:
            dpop = True  # the profile wants sender-constrained tokens (fapi2): on by default
        session = dpop_for(dpop)  # the proof key: made or parsed once, here
        self._endpoint = TokenEndpoint(
            config,
            auth,
            clock=clock,
            notes=_notes(self.manager),
            telemetry=self._telemetry,
            dpop=session,
        )
        self._transport = HttpTransport(
            http_client,
            async_http_client,
            timeout=timeout,
            clock=clock,
            sleep=sleep,
            asleep=asleep,
            verify=tls_context(trust, os.fspath(ca_bundle) if ca_bundle else None),
        )
        #: what a cached token is for: every input that changes the token
        self.cache_key: CacheKey = _cache_key(config, auth, session)

    # -- configuration (read-only: the cache key is made from it) -------------------------------
    @property
    def client_id(self) -> str:
        """The client id sent (NHS: the application's API key)."""
        return self._endpoint.config.client_id

    @property
    def issuer(self) -> str | None:
        """The issuer given, whose metadata is discovered; None with ``token_url=``."""
        return self._endpoint.config.issuer

    @property
    def token_url(self) -> str | None:
        """The configured token URL, else the discovered one (None before discovery)."""
        return self._endpoint.token_url

    @property
    def scope(self) -> str | None:
        """The scope requested, if any."""
        return self._endpoint.config.scope

    @property
    def resource(self) -> tuple[str, ...]:
        """The resource indicators requested (RFC 8707)."""
        return self._endpoint.config.resource

    @property
    def audience(self) -> str | None:
        """An explicit assertion ``aud``, overriding the profile's choice."""
        return self._endpoint.config.audience

    @property
    def extra_params(self) -> Mapping[str, str]:
        """Extra form parameters sent with every token request."""
        return self._endpoint.config.extra_params

    @property
    def retry(self) -> RetryPolicy:
        """The retry policy of a token fetch."""
        return self._endpoint.config.retry

    @property
    def default_lifetime(self) -> float:
        """The lifetime assumed when a response has no usable ``expires_in``."""
        return self._endpoint.config.default_lifetime

    @property
    def timeout(self) -> float:
        """Seconds a whole token fetch may take, retries included."""
        return self._transport.timeout

    @property
    def auth_method(self) -> str:
        """The RFC 7591 name of the client authentication method."""
        return self._endpoint.auth.name

    @property
    def dpop(self) -> DPoPSession | None:
        """The DPoP key and the servers' nonces (None: bearer tokens)."""
        return self._endpoint.dpop

    @property
    def clock_offset(self) -> float:
        """Seconds the server's clock is ahead of ours, from its ``Date`` header (0 if < 2 s)."""
        return self._endpoint.clock_offset

    @property
    def server_metadata(self) -> ServerMetadata | None:
        """The server's discovered metadata (RFC 8414); None without ``issuer=`` or before the
        first request."""
        return self._endpoint.metadata

    # -- tokens -----------------------------------------------------------------------------------
    def get_token(self, *, force: bool = False, stale: Token | None = None) -> Token:
        """A valid token, from the cache when possible. ``force`` renews (after a 401)."""
        return self.manager.get(self.cache_key, self.fetch_token, force=force, stale=stale)

    async def aget_token(self, *, force: bool = False, stale: Token | None = None) -> Token:
        """Async twin of :meth:`get_token`, sharing its cache and in-flight fetches."""
        return await self.manager.aget(self.cache_key, self.afetch_token, force=force, stale=stale)

    def fetch_token(self) -> Token:
        """Request a new token now, bypassing the cache."""
        with self._telemetry.fetch(self._where, self.auth_method):
            return self._transport.run(self._endpoint.token_flow())

    async def afetch_token(self) -> Token:
        """Async twin of :meth:`fetch_token`."""
        with self._telemetry.fetch(self._where, self.auth_method):
            return await self._transport.arun(self._endpoint.token_flow())

    @property
    def _where(self) -> str | None:
        return self._endpoint.token_url or self._endpoint.config.issuer

    def invalidate(self) -> None:
        """Forget the cached token (the next call fetches)."""
        self.manager.invalidate(self.cache_key)

    # -- diagnosis --------------------------------------------------------------------------------
    def make_assertion(self) -> str:
        """A fresh assertion as this client would send it (for diagnosis)."""
        return self._transport.run(self._endpoint.assertion_flow())

    def assertion_plan(self) -> AssertionPlan | None:
        """What this client's assertion says and why: profile (and the reason it was chosen),
        audience, alg, kid, its public key for self-checks. None for a method that sends no
        assertion. Discovers the server's metadata first when an issuer is given."""
        return self._transport.run(self._endpoint.plan_flow())

    # -- lifecycle --------------------------------------------------------------------------------
    def close(self) -> None:
        """Close the HTTP clients this client opened."""
        self._transport.close()

    async def aclose(self) -> None:
        """Async twin of :meth:`close`."""
        await self._transport.aclose()

    def __enter__(self) -> TokenClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def __aenter__(self) -> TokenClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        config = self._endpoint.config
        where = config.token_url or config.issuer
        return f"<TokenClient {self.auth_method} client_id={self.client_id!r} at {where}>"


def _endpoint_config(
    client_id: str,
    token_url: str | None,
    issuer: str | None,
    scope: str | Sequence[str] | None,
    resource: str | Sequence[str] | None,
    audience: str | None,
    extra_params: Mapping[str, str] | None,
    profile: ProfileName | Profile | None,
) -> EndpointConfig:
    """What the client asks of its endpoint, normalised (scopes joined, resources a tuple)."""
    return EndpointConfig(
        client_id=client_id,
        token_url=token_url,
        issuer=issuer,
        scope=scope if isinstance(scope, str) or scope is None else " ".join(scope),
        resource=(resource,) if isinstance(resource, str) else tuple(resource or ()),
        audience=audience,
        extra_params=dict(extra_params or {}),
        profile=get_profile(profile) if profile is not None else None,
        default_lifetime=DEFAULT_LIFETIME,
        retry=RetryPolicy(),
    )


def _notes(manager: TokenManager) -> Notes | None:
    """The profile a server took is remembered where tokens are (a store's notes)."""
    return manager.store if isinstance(manager.store, Notes) else None


def _watching(setting: Telemetry | bool | None, manager: TokenManager) -> Telemetry:
    telemetry = telemetry_for(setting)
    telemetry.watch(manager)
    return telemetry


def _federated(
    source: AssertionSource | str, key: object, secret: str | None, clock: Callable[[], float]
) -> ClientAuth:
    if key is not None or secret:
        raise ConfigError(
            "give assertion_source= or a key/secret, not both",
            hint="a federated assertion replaces the key: the identity token is the credential",
        )
    return FederatedAssertion(source, clock=clock)


def _check_where(client_id: str, token_url: str | None, issuer: str | None) -> None:
    """Refuse, before anything is sent, what can never get a token."""
    if not client_id:
        raise ConfigError("client_id is required")
    if not token_url and not issuer:
        raise ConfigError(
            "give token_url= or issuer=",
            hint="NHS: token_url='https://int.api.service.nhs.uk/oauth2/token'; "
            "other servers: issuer='https://login.example.com' (discovered)",
        )
    if token_url:
        endpoint_url(token_url, "token URL")
    if issuer:
        endpoint_url(issuer, "issuer")
