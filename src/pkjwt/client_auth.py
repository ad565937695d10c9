"""Client authentication methods as objects: what each adds to a token request.

A method (RFC 7591 ``token_endpoint_auth_method``) is a :class:`ClientAuth`: its ``name``, an
``identity`` for cache keys, and a flow that yields what it needs done (a signature) and returns
the :class:`Credentials` to add to the form and headers. The token flow never asks which method
it has; a new one (DPoP proofs as an extra header, an assertion read from a file, a KMS signer)
is a new class, not a new branch.

=======================  =====================================================================
``PrivateKeyJwt``        a JWT signed with the client's private key or a Signer (RFC 7523 2.2)
``ClientSecretJwt``      a JWT MACed with the client secret, HS256 (OIDC Core 9)
``ClientSecretBasic``    HTTP Basic with the form-encoded id and secret (RFC 6749 2.3.1)
``ClientSecretPost``     ``client_id`` and ``client_secret`` in the form (RFC 6749 2.3.1)
=======================  =====================================================================

Each checks its credentials in its constructor (a public key, a missing secret) so that a bad
configuration fails before, not at, the first token request.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, Protocol, runtime_checkable
from urllib.parse import quote

from .assertion import AssertionFactory
from .certificates import header_values
from .discovery import ServerMetadata
from .errors import ConfigError
from .flow import Flow, Sign, ready
from .keys import Key, KeySet, load_key
from .profiles import JWT_BEARER, Profile
from .signers import is_key_uri, open_signer
from .signing import FlexibleSigner, Signer, require_private

__all__ = [
    "AssertionAuth",
    "AuthContext",
    "AuthMethod",
    "ClientAuth",
    "ClientSecretBasic",
    "ClientSecretJwt",
    "ClientSecretPost",
    "Credentials",
    "PrivateKeyJwt",
    "client_auth_for",
]

AuthMethod = Literal[
    "private_key_jwt", "client_secret_jwt", "client_secret_basic", "client_secret_post"
]


@dataclass(frozen=True, slots=True)
class AuthContext:
    """One token request as a method sees it.

    Who asks (``client_id``), where (``token_url``, ``issuer``), the assertion shape
    (``profile``, an explicit ``audience``), what the server published (``metadata``), and the
    clock for ``iat``/``exp``: the local clock corrected by the offset the server's ``Date``
    header showed (None: the assertion factory's own clock). A context holds no per-request
    value, so the token flow builds one per profile and reuses it for every attempt.
    """

    client_id: str
    profile: Profile
    token_url: str | None = None
    issuer: str | None = None
    audience: str | None = None
    metadata: ServerMetadata | None = None
    clock: Callable[[], float] | None = None
    #: sign with the key that was active before (a key ring retrying right after a switch)
    previous_key: bool = False


@dataclass(frozen=True, slots=True)
class Credentials:
    """What a method adds to one token request: form fields and headers (kept out of reprs:
    they hold the assertion or the secret)."""

    form: tuple[tuple[str, str], ...] = field(default=(), repr=False)
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)


@runtime_checkable
class ClientAuth(Protocol):
    """A client authentication method.

    ``name`` is the RFC 7591 method name (checked against the server's
    ``token_endpoint_auth_methods_supported``); ``identity`` names the credential in cache keys
    (another key or secret must fetch, not reuse a token) and never reveals it.
    :meth:`credentials` is a flow: it may ``yield Sign(signer, data)`` and returns what to add.
    """

    @property
    def name(self) -> str: ...

    @property
    def identity(self) -> str: ...

    def credentials(self, ctx: AuthContext) -> Flow[Credentials]: ...


@runtime_checkable
class AssertionAuth(Protocol):
    """A method whose JWT assertion is built here from the profile and the local clock.

    Its refusals can be about our choices (the ``aud`` shape, ``iat``/``exp`` against a skewed
    clock), so the token flow may correct them and retry; an assertion obtained elsewhere (a
    federated token read from a file) is not one of these.
    """

    def factory(self, ctx: AuthContext) -> AssertionFactory: ...

    def assertion(self, ctx: AuthContext) -> Flow[str]: ...

    def public_keys(self) -> KeySet | None: ...


# -- JWT assertions -------------------------------------------------------------------------------


class _JwtMethod:
    """What the two JWT methods share: an :class:`AssertionFactory` per profile, audience and
    algorithm, built once, so each assertion costs one JSON encode and one signature."""

    name: ClassVar[str]

    def __init__(
        self, source: Key | Signer, identity: str, x509_headers: tuple[str, ...] = ()
    ) -> None:
        self.source = source
        self.identity = identity
        self.x509_headers = x509_headers
        self._factories: dict[tuple[Any, ...], AssertionFactory] = {}

    def _profile(self, profile: Profile) -> Profile:
        return profile

    def factory(self, ctx: AuthContext) -> AssertionFactory:
        """The factory for this context's profile and audience (built on first use)."""
        alg = server_alg(self.source, self._profile(ctx.profile), ctx.metadata)
        slot = (ctx.profile, ctx.client_id, ctx.token_url, ctx.issuer, ctx.audience, alg)
        factory = self._factories.get(slot)
        if factory is None:
            factory = self._factories[slot] = AssertionFactory(
                self.source,
                client_id=ctx.client_id,
                profile=self._profile(ctx.profile),
                token_url=ctx.token_url,
                issuer=ctx.issuer,
                audience=ctx.audience,
                alg=alg,
                x509_headers=self.x509_headers,
            )
        return factory

    def assertion(self, ctx: AuthContext) -> Flow[str]:
        """A fresh assertion (new ``jti``) for ``ctx``: one ``Sign`` action."""
        factory = self.factory(ctx)
        data = factory.signing_input(ctx.clock() if ctx.clock is not None else None)
        signature = yield Sign(factory.signer, data)
        return factory.finish(data, signature)

    def credentials(self, ctx: AuthContext) -> Flow[Credentials]:
        assertion = yield from self.assertion(ctx)
        return Credentials(
            form=(("client_assertion_type", JWT_BEARER), ("client_assertion", assertion))
        )

    @property
    def kid(self) -> str | None:
        """The key id the assertions announce."""
        return self.source.kid

    def public_keys(self) -> KeySet | None:
        """The public half of a local key (for self-checks); None for a Signer or a secret."""
        if isinstance(self.source, Key):
            return KeySet((self.source.public(),))
        return None

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.identity}>"


def server_alg(
    source: Key | Signer, profile: Profile, metadata: ServerMetadata | None
) -> str | None:
    """The algorithm to sign with when the server advertises its list (RFC 8414
    ``token_endpoint_auth_signing_alg_values_supported``): one the key can make, the profile
    allows and the server takes, the profile's preferred one first, then the key's own. None
    (no list, or a Signer with its one alg) leaves the choice to the profile."""
    if (
        not isinstance(source, Key | FlexibleSigner)
        or metadata is None
        or not metadata.auth_signing_algs
    ):
        return None
    server = metadata.auth_signing_algs
    usable = [a for a in dict.fromkeys((source.alg, *source.algs)) if a in profile.algs]
    both = [a for a in usable if a in server]
    if not both:
        raise ConfigError(
            f"no algorithm fits the key, the {profile.name} profile and the server: the key "
            f"signs {', '.join(source.algs)}; the profile allows {', '.join(sorted(profile.algs))};"
            f" {metadata.issuer} takes {', '.join(server)}",
            hint="use a key of a type the server lists, or another profile",
        )
    if profile.preferred_alg in both:
        return str(profile.preferred_alg)
    return both[0]


class PrivateKeyJwt(_JwtMethod):
    """``private_key_jwt``: an assertion signed with the client's private key (RFC 7523 2.2).

    ``key`` is anything :func:`~pkjwt.keys.load_key` reads (parsed once, here; a public key is
    refused now rather than at the first request) or a :class:`~pkjwt.signing.Signer` (a KMS
    or HSM), used as is.
    """

    name: ClassVar[str] = "private_key_jwt"

    def __init__(
        self,
        key: Key | Signer | Any,
        *,
        kid: str | None = None,
        alg: str | None = None,
        password: str | bytes | None = None,
        certificate: str | os.PathLike[str] | bytes | None = None,
        x509_headers: Sequence[str] = (),
    ) -> None:
        if is_key_uri(key):  # a key that stays in its HSM/KMS: its signer
            key = open_signer(key, alg=alg, kid=kid)
        headers = tuple(x509_headers)
        if isinstance(key, Signer):
            super().__init__(key, f"signer:{key.kid}:{key.alg}", headers)
            return
        loaded = load_key(key, kid=kid, password=password, alg=alg, certificate=certificate)
        require_private(loaded)
        header_values(loaded.certificates, headers)  # fail now, not at the first request
        identity = f"key:{loaded.thumbprint()}:{loaded.kid}:{loaded.alg}"
        super().__init__(loaded, identity + (f":{','.join(headers)}" if headers else ""), headers)


class ClientSecretJwt(_JwtMethod):
    """``client_secret_jwt``: an assertion MACed with the client secret (RFC 7523, OIDC Core
    9), HS256 and no ``kid`` whatever the profile prefers (a secret has no key id)."""

    name: ClassVar[str] = "client_secret_jwt"

    def __init__(self, secret: str) -> None:
        _require_secret(self.name, secret)
        super().__init__(_HmacSigner(secret), _secret_identity(secret))

    def _profile(self, profile: Profile) -> Profile:
        return profile.with_overrides(algs=frozenset({"HS256"}), send_kid=False)


class _HmacSigner:
    """Signs with HMAC-SHA-2 keyed by the client secret (RFC 7518 3.2)."""

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


# -- shared secrets -------------------------------------------------------------------------------


class _SharedSecret:
    """A method keyed by the client secret; its identity is a digest, never the secret."""

    name: ClassVar[str]

    def __init__(self, secret: str) -> None:
        _require_secret(self.name, secret)
        self._secret = secret
        self.identity = _secret_identity(secret)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.identity}>"


class ClientSecretBasic(_SharedSecret):
    """``client_secret_basic``: HTTP Basic authentication. RFC 6749 2.3.1 form-encodes the id
    and the secret before base64 (many clients forget; a ``:`` or ``+`` then breaks login)."""

    name: ClassVar[str] = "client_secret_basic"

    def credentials(self, ctx: AuthContext) -> Flow[Credentials]:
        pair = f"{quote(ctx.client_id, safe='')}:{quote(self._secret, safe='')}"
        basic = "Basic " + base64.b64encode(pair.encode()).decode()
        return ready(Credentials(headers={"Authorization": basic}))


class ClientSecretPost(_SharedSecret):
    """``client_secret_post``: ``client_id`` and ``client_secret`` in the form body (RFC 6749
    2.3.1, which recommends Basic instead)."""

    name: ClassVar[str] = "client_secret_post"

    def credentials(self, ctx: AuthContext) -> Flow[Credentials]:
        form = (("client_id", ctx.client_id), ("client_secret", self._secret))
        return ready(Credentials(form=form))


def _require_secret(method: str, secret: str | None) -> None:
    if not secret:
        raise ConfigError(f"{method} needs client_secret=")


def _secret_identity(secret: str) -> str:
    # a digest, never the secret: cache keys name files and may be shown
    return "secret:" + hashlib.sha256(secret.encode()).hexdigest()[:16]


_SECRET_METHODS: dict[str, Callable[[str], ClientAuth]] = {
    "client_secret_jwt": ClientSecretJwt,
    "client_secret_basic": ClientSecretBasic,
    "client_secret_post": ClientSecretPost,
}


def client_auth_for(
    auth_method: str | None = None,
    *,
    key: Key | Signer | Any = None,
    kid: str | None = None,
    alg: str | None = None,
    key_password: str | bytes | None = None,
    client_secret: str | None = None,
    certificate: str | os.PathLike[str] | bytes | None = None,
    x509_headers: Sequence[str] = (),
) -> ClientAuth:
    """The method for :class:`~pkjwt.client.TokenClient`'s arguments: ``private_key_jwt`` when
    a key is given, else ``client_secret_basic``, unless ``auth_method`` names one."""
    if isinstance(key, ClientAuth):  # a method already (a KeyRing)
        return key
    # a key is parsed (and a public one refused) whatever the method, as it always was
    signing = (
        PrivateKeyJwt(
            key,
            kid=kid,
            alg=alg,
            password=key_password,
            certificate=certificate,
            x509_headers=x509_headers,
        )
        if key is not None
        else None
    )
    method = auth_method or ("private_key_jwt" if key is not None else "client_secret_basic")
    if method == PrivateKeyJwt.name:
        if signing is None:
            raise ConfigError("private_key_jwt needs key= (a key file, Key or Signer)")
        return signing
    make = _SECRET_METHODS.get(method)
    if make is None:
        raise ConfigError(
            f"unknown auth_method {method!r}",
            hint="use private_key_jwt, client_secret_jwt, client_secret_basic or "
            "client_secret_post",
        )
    return make(client_secret or "")
