"""The token endpoint protocol, written once: discovery, token requests, retries, clock skew and
the assertion audience.

Everything here is a flow (:mod:`pkjwt.flow`): it yields requests, signatures and sleeps and does
no I/O, so :class:`~pkjwt.client.TokenClient` runs the same code with httpx sync and async. What
the flows learn lives on :class:`TokenEndpoint`: the server's metadata, how far its clock is
from ours, and which assertion profile it accepted.

Which profile, when none is given: the NHS host gets ``nhs``; a server known only by its token
URL gets ``legacy`` (aud = token URL, all we can send); a discovered issuer gets ``rfc7523bis``
(aud = issuer), and if the server answers ``invalid_client``, ``legacy`` once, remembered per
token URL when it works (draft-ietf-oauth-rfc7523bis 4 tells servers to move to the issuer, and
many have not yet).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Protocol, runtime_checkable
from urllib.parse import urlencode, urlsplit

from . import nhs
from .client_auth import AssertionAuth, AuthContext, ClientAuth, Credentials
from .discovery import ServerMetadata, metadata_urls, parse_metadata
from .dpop_client import USE_DPOP_NONCE, DPoPSession
from .errors import ConfigError, OAuthError, PkjwtError, SignerUnavailable, TransportError
from .flow import Call, Flow, Reply, Send, Sleep
from .keys import KeySet
from .profiles import LEGACY, NHS, RFC7523BIS, Profile, get_profile
from .retry import RetryPolicy
from .skew import ClockSkew
from .telemetry import OFF, Telemetry
from .tokens import Token, parse_token_response

__all__ = ["AssertionPlan", "EndpointConfig", "TokenEndpoint"]

log = logging.getLogger("pkjwt.client")

_FORM = "application/x-www-form-urlencoded"
_NHS_HOST = "api.service.nhs.uk"
_TIME_CODES = frozenset({"exp.expired", "exp.too_far", "iat.future", "nbf.future"})


@dataclass(frozen=True, slots=True)
class EndpointConfig:
    """What a client asks of its token endpoint, fixed for the life of the client."""

    client_id: str
    token_url: str | None
    issuer: str | None
    scope: str | None
    resource: tuple[str, ...]
    #: an explicit assertion ``aud`` (it also turns the per-server profile choice off)
    audience: str | None
    extra_params: Mapping[str, str]
    #: the explicit profile, or None to choose one per server
    profile: Profile | None
    default_lifetime: float
    retry: RetryPolicy
    #: seconds one token fetch may take in all: every attempt, response included, and the
    #: waits between them
    timeout: float = 30.0


@dataclass(slots=True)
class _Tries:
    """What one token fetch has tried so far: the profile it sends, the corrections it made
    (each at most once) and what the last answer showed."""

    profile: Profile
    fell_back: bool = False
    skew_retried: bool = False
    stepped_back: bool = False
    nonce_retried: bool = False
    skew_changed: bool = False
    new_nonce: bool = False


@dataclass(frozen=True, slots=True)
class AssertionPlan:
    """What this client's assertion says, and why (``pkjwt token --explain``, diagnosis).

    ``reason`` is why ``profile`` was chosen: ``explicit``, ``NHS host``, ``remembered for this
    server``, ``issuer discovered: rfc7523bis`` or ``no issuer: legacy``. ``public_keys`` holds
    the client's own public key for self-checks (None for a Signer or a shared secret);
    ``metadata`` is the server's, when discovered.
    """

    profile: Profile
    reason: str
    token_url: str | None
    issuer: str | None
    audience: str
    alg: str
    kid: str | None
    public_keys: KeySet | None
    metadata: ServerMetadata | None


class TokenEndpoint:
    """One client's conversation with one token endpoint, as flows.

    ``auth`` contributes the credentials of each attempt; ``clock`` is the local epoch clock
    that the skew estimated from ``Date`` headers corrects; ``dpop``, when given, puts a fresh
    proof on every attempt and keeps the server's nonce.
    """

    def __init__(
        self,
        config: EndpointConfig,
        auth: ClientAuth,
        *,
        clock: Callable[[], float],
        notes: Notes | None = None,
        telemetry: Telemetry = OFF,
        dpop: DPoPSession | None = None,
    ) -> None:
        self.config = config
        self.auth = auth
        self.dpop = dpop
        self._telemetry = telemetry
        self._clock = clock
        #: where the profile that worked is remembered beyond this object (the token store)
        self._notes = notes
        self._deadline = float("inf")
        self._recalled = False
        #: the method builds its assertion here, so a refusal may be about its aud or times
        self._shaped = isinstance(auth, AssertionAuth)
        self._auto_profile = config.profile is None and config.audience is None
        self._memory: dict[str, str] = {}
        self._contexts: dict[str, AuthContext] = {}
        self._meta_lock = threading.Lock()
        #: the server's metadata, once discovered (RFC 8414)
        self.metadata: ServerMetadata | None = None
        self._skew = ClockSkew()

    @property
    def clock_offset(self) -> float:
        """Seconds to add to the local clock, estimated from the server's ``Date`` header."""
        return self._skew.offset

    @property
    def token_url(self) -> str | None:
        meta = self.metadata
        return self.config.token_url or (meta.token_endpoint if meta else None)

    def choose_profile(self) -> tuple[Profile, str]:
        """The assertion profile to send, and why (see the module docstring)."""
        if self.config.profile is not None:
            return self.config.profile, "explicit"
        url = self.token_url or ""
        remembered = self._memory.get(url)
        if remembered:
            return get_profile(remembered), "remembered for this server"
        if _NHS_HOST in urlsplit(url).netloc:
            return NHS, "NHS host"
        if self.config.issuer is None:
            # without an issuer we cannot send the rfc7523bis audience
            return LEGACY, "no issuer: legacy"
        return RFC7523BIS, "issuer discovered: rfc7523bis"

    def context(self, profile: Profile) -> AuthContext:
        """The context for ``profile`` (one per profile, rebuilt once metadata is discovered)."""
        ctx = self._contexts.get(profile.name)
        if ctx is None:
            config = self.config
            ctx = self._contexts[profile.name] = AuthContext(
                client_id=config.client_id,
                profile=profile,
                token_url=self.token_url,
                # the issuer as the server publishes it (RFC 8414 3.3), not as it was typed:
                # a trailing slash of difference fails a server that compares aud exactly
                issuer=self.metadata.issuer if self.metadata else config.issuer,
                audience=config.audience,
                metadata=self.metadata,
                clock=self.now,
            )
        return ctx

    def now(self) -> float:
        """The local clock corrected by the server's offset."""
        return self._clock() + self.clock_offset

    # -- discovery --------------------------------------------------------------------------------
    def discovery_flow(self) -> Flow[ServerMetadata | None]:
        """Fetch the issuer's metadata once (RFC 8414, then OIDC Discovery); None without one."""
        issuer = self.config.issuer
        if issuer is None or self.metadata is not None:
            return self.metadata
        problems: list[str] = []
        for url in metadata_urls(issuer):
            try:
                reply: Reply = yield Send("GET", url, {"Accept": "application/json"})
            except TransportError as exc:
                problems.append(f"{url}: {exc.message}")
                continue
            if reply.status != 200:
                problems.append(f"{url}: HTTP {reply.status}")
                continue
            meta = parse_metadata(issuer, reply.body, url=url)
            with self._meta_lock:
                self.metadata = meta
                self._contexts.clear()  # they carry the token URL and algorithms it implies
            self._check_metadata(meta)
            return meta
        raise ConfigError(
            f"could not discover the server metadata of {issuer}: " + "; ".join(problems),
            hint="check the issuer URL, or pass token_url= to skip discovery",
        )

    def _check_metadata(self, meta: ServerMetadata) -> None:
        name = self.auth.name
        if not meta.supports_method(name):
            raise ConfigError(
                f"{meta.issuer} does not list {name} in token_endpoint_auth_methods_supported "
                f"({', '.join(meta.auth_methods or ())})",
                hint="register the client for a method the server supports",
            )

    # -- assertions -------------------------------------------------------------------------------
    def assertion_flow(self) -> Flow[str]:
        """A fresh assertion as the next token request would carry it."""
        auth = self._assertion_auth()
        yield from self.discovery_flow()
        return (yield from auth.assertion(self.context(self.choose_profile()[0])))

    def plan_flow(self) -> Flow[AssertionPlan | None]:
        """What the assertion says and why; None when the method sends no assertion."""
        auth = self.auth
        if not isinstance(auth, AssertionAuth):
            return None
        yield from self.discovery_flow()
        profile, reason = self.choose_profile()
        factory = auth.factory(self.context(profile))
        return AssertionPlan(
            profile=profile,
            reason=reason,
            token_url=self.token_url,
            issuer=self.config.issuer,
            audience=factory.audience,
            alg=factory.alg,
            kid=factory.signer.kid,
            public_keys=auth.public_keys(),
            metadata=self.metadata,
        )

    def _assertion_auth(self) -> AssertionAuth:
        auth = self.auth
        if not isinstance(auth, AssertionAuth):
            raise ConfigError(
                f"{auth.name} sends no client assertion built here ({auth.identity.split(':')[0]})",
                hint="assertions are built for private_key_jwt with a key and for "
                "client_secret_jwt; a federated assertion is the token its source holds",
            )
        return auth

    # -- tokens -----------------------------------------------------------------------------------
    def token_flow(self) -> Flow[Token]:
        """Request a token: retried with backoff, corrected once for clock skew, once for a
        DPoP nonce and, when the profile was chosen here, once for the audience shape."""
        yield from self.discovery_flow()
        token_url = self.token_url
        assert token_url is not None
        yield from self._recall(token_url)
        tries = _Tries(self.choose_profile()[0])
        attempt = 0
        self._deadline = self._clock() + self.config.timeout
        while True:
            attempt += 1
            try:  # fresh credentials (a new jti) and a fresh proof on every attempt
                headers, body = yield from self._attempt(tries, token_url)
            except SignerUnavailable as exc:  # HSM/KMS or token source, not the server
                yield from self._backoff(attempt, exc, f"no credentials ({exc.message})")
                continue
            try:
                reply: Reply = yield Send("POST", token_url, headers, body, self._left())
            except TransportError as exc:
                yield from self._backoff(attempt, exc, f"token request failed ({exc.message})")
                continue
            tries.skew_changed = self._skew.observe(reply)
            # every answer's nonce is kept, a success's too: the next request sends it
            tries.new_nonce = self.dpop is not None and self.dpop.observe(token_url, reply.headers)
            try:
                token = parse_token_response(
                    reply.status,
                    reply.headers,
                    reply.body,
                    now=self._clock(),
                    default_lifetime=self.config.default_lifetime,
                )
            except OAuthError as exc:
                if self._corrected(tries, exc):
                    continue
                _point_to_nhs(exc, tries.profile)
                yield from self._backoff(attempt, exc, f"token endpoint said {exc.error}")
                continue
            except PkjwtError as exc:
                yield from self._backoff(attempt, exc)
                continue
            yield from self._landed(token_url, tries.profile, token)
            return token

    def _attempt(self, tries: _Tries, token_url: str) -> Flow[tuple[dict[str, str], bytes]]:
        """One attempt's headers and body: new credentials, and a new DPoP proof."""
        ctx = self.context(tries.profile)  # with a key ring's previous key once it stepped back
        ctx = replace(ctx, previous_key=True) if tries.stepped_back else ctx
        credentials = yield from self.auth.credentials(ctx)
        headers, body = _request(self.config, credentials)
        if self.dpop is not None:
            headers["DPoP"] = yield from self.dpop.proof("POST", token_url, now=self.now())
        return headers, body

    def _corrected(self, tries: _Tries, exc: OAuthError) -> bool:
        """Whether a refusal is one of ours to correct and retry at once (each at most once)."""
        if self._shaped and tries.skew_changed and not tries.skew_retried and _time_related(exc):
            tries.skew_retried = True
            log.info("retrying with clock corrected by %.0f s", self.clock_offset)
            return True
        if not tries.fell_back and self._falls_back(tries.profile, exc):
            tries.fell_back = True
            tries.profile = LEGACY
            log.info("invalid_client with aud = issuer; retrying with the token URL")
            return True
        if not tries.stepped_back and _steps_back(self.auth, exc):
            tries.stepped_back = True
            return True
        if exc.error == USE_DPOP_NONCE and tries.new_nonce and not tries.nonce_retried:
            # RFC 9449 8: a new proof with the server's nonce (and new credentials: a replayed
            # assertion would be refused, and rightly)
            tries.nonce_retried = True
            log.info("the token endpoint asked for a DPoP nonce; retrying with it")
            return True
        return False

    def _landed(self, token_url: str, profile: Profile, token: Token) -> Flow[None]:
        if self._auto_profile and self._memory.get(token_url) != profile.name:
            self._memory[token_url] = profile.name
            yield from self._note(token_url, profile.name)
        if self.dpop is not None:
            self.dpop.check_token(token, token_url)
        log.debug("token obtained (fp %s, %.0f s)", token.fingerprint, token.lifetime)

    def _recall(self, token_url: str) -> Flow[None]:
        """Load the profile this server took, as remembered by an earlier client or run (once:
        a client that missed its cache must not send a doomed assertion first)."""
        if self._recalled or not self._auto_profile or self._notes is None:
            return
        self._recalled = True
        try:
            name = yield Call(self._notes.get_note, _note_key(token_url))
        except Exception:  # a store that cannot read is a cache miss, not an error
            log.warning("token store note unreadable; choosing the profile afresh", exc_info=True)
            return
        if isinstance(name, str) and name in (LEGACY.name, RFC7523BIS.name):
            self._memory.setdefault(token_url, name)

    def _note(self, token_url: str, name: str) -> Flow[None]:
        try:
            if self._notes is not None:
                yield Call(self._notes.set_note, _note_key(token_url), name)
        except Exception:
            log.warning("token store note not written; kept in memory", exc_info=True)

    def _falls_back(self, profile: Profile, exc: OAuthError) -> bool:
        """invalid_client to an rfc7523bis assertion we chose: try the legacy aud instead."""
        chosen_here = self._shaped and self._auto_profile
        return chosen_here and profile is RFC7523BIS and exc.error == "invalid_client"

    def _left(self) -> float:
        """Seconds left of this fetch's timeout (the last attempt gets what remains)."""
        return max(0.001, self._deadline - self._clock())

    def _backoff(self, attempt: int, exc: PkjwtError, what: str | None = None) -> Flow[None]:
        """Sleep before the next attempt, or raise ``exc`` when the retry policy says stop or
        the wait would not leave the next attempt any time within the timeout."""
        delay = self.config.retry.delay(attempt, exc)
        if delay is not None and delay >= self._deadline - self._clock():
            note = f"no time left for another attempt within the {self.config.timeout:g} s timeout"
            exc.hint = f"{exc.hint}; {note}" if exc.hint else note
            delay = None
        self._telemetry.attempt(attempt, exc, delay)
        if delay is None:
            raise exc
        if what is not None:
            log.info("%s; retrying in %.2f s", what, delay)
        yield Sleep(delay)


def _request(config: EndpointConfig, credentials: Credentials) -> tuple[dict[str, str], bytes]:
    headers = {"Content-Type": _FORM, "Accept": "application/json", **credentials.headers}
    form = [("grant_type", "client_credentials"), *credentials.form]
    if config.scope:
        form.append(("scope", config.scope))
    form += [("resource", r) for r in config.resource]
    form += list(config.extra_params.items())
    return headers, urlencode(form).encode("ascii")


def _steps_back(auth: object, exc: OAuthError) -> bool:
    """A key ring refused right after its switch: retry once with the previous key."""
    step_back = getattr(auth, "step_back", None)
    return step_back is not None and bool(step_back(exc))


def _point_to_nhs(exc: OAuthError, profile: Profile) -> None:
    """A server that answers in the NHS platform's words while we signed for another profile
    (a local ``pkjwt serve`` in NHS mode, an NHS host behind another name) wants ``nhs``."""
    if profile is not NHS and nhs.about_the_assertion(exc.status, exc.error, exc.description):
        nudge = "this server answers like the NHS platform: use profile='nhs' (--profile nhs)"
        exc.hint = f"{nudge}; {exc.hint}" if exc.hint else nudge


def _note_key(token_url: str) -> str:
    return f"assertion-profile {token_url}"


@runtime_checkable
class Notes(Protocol):
    """Small facts remembered beside the tokens, shared like them (a token store's notes)."""

    def get_note(self, name: str) -> str | None: ...

    def set_note(self, name: str, value: str) -> None: ...


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
