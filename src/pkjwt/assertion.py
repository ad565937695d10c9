"""Build and sign client assertions exactly as a profile says.

:class:`AssertionFactory` does all the per-client work once (algorithm choice, header encoding,
audience resolution, checks of extra claims), so each :meth:`~AssertionFactory.make` costs a
``uuid4``, a small JSON encode and one signature.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from .certificates import header_values
from .decode import b64url, compact
from .errors import AssertionBuildError
from .keys import Key, load_key
from .profiles import AudienceKind, Profile, get_profile
from .signing import FlexibleSigner, Signer, as_signer, asign

__all__ = ["RESERVED_CLAIMS", "RESERVED_HEADERS", "AssertionFactory", "make_assertion"]

RESERVED_CLAIMS = frozenset({"iss", "sub", "aud", "jti", "exp", "iat", "nbf"})
RESERVED_HEADERS = frozenset(
    {"alg", "kid", "typ", "crit", "jwk", "jku", "x5u", "x5c", "x5t", "x5t#S256"}
)

Clock = Callable[[], float]


def _uuid_jti() -> str:
    return str(uuid.uuid4())


def _choose_alg(source: Key | Signer, profile: Profile, alg: str | None) -> str:
    if not isinstance(source, Key | FlexibleSigner):
        chosen = alg or source.alg
    elif alg:
        chosen = alg
    else:
        usable = [a for a in source.algs if a in profile.algs]
        if profile.preferred_alg in usable:
            chosen = str(profile.preferred_alg)
        elif source.alg in usable:
            chosen = source.alg
        elif usable:
            chosen = usable[0]
        else:
            need = profile.preferred_alg or ", ".join(sorted(profile.algs))
            kind = "an RSA key" if need.startswith(("RS", "PS")) else "a suitable key"
            what = f"{source.curve or source.kty} key" if isinstance(source, Key) else "signer"
            raise AssertionBuildError(
                f"the {profile.name} profile signs with {need}, which this {what} cannot do "
                f"(it signs {', '.join(source.algs)})",
                hint=f"use {kind}: pkjwt keygen --alg {need.split(',')[0]}",
            )
    if chosen not in profile.algs:
        raise AssertionBuildError(
            f"alg {chosen} is not allowed by the {profile.name} profile",
            hint="allowed: " + ", ".join(sorted(profile.algs)),
        )
    return chosen


class AssertionFactory:
    """Makes fresh assertions for one client, key and audience.

    >>> factory = AssertionFactory(key, client_id="my-api-key", token_url=URL, profile="nhs")
    >>> jwt = factory.make()          # fresh jti, exp = now + 240
    """

    __slots__ = (
        "_claims_static",
        "_clock",
        "_header_b64",
        "_jti",
        "_send_iat",
        "alg",
        "audience",
        "client_id",
        "clock_offset",
        "lifetime",
        "profile",
        "signer",
    )

    def __init__(
        self,
        key: Key | Signer | Any,
        *,
        client_id: str,
        profile: str | Profile = "nhs",
        token_url: str | None = None,
        issuer: str | None = None,
        audience: str | None = None,
        alg: str | None = None,
        lifetime: int | None = None,
        extra_claims: Mapping[str, Any] | None = None,
        extra_headers: Mapping[str, Any] | None = None,
        x509_headers: Sequence[str] = (),
        clock: Clock = time.time,
        jti_factory: Callable[[], str] = _uuid_jti,
    ) -> None:
        self.profile = prof = get_profile(profile)
        if not client_id or not isinstance(client_id, str):
            raise AssertionBuildError("client_id must be a non-empty string")
        source: Key | Signer = key if isinstance(key, Signer) else load_key(key)
        self.alg = _choose_alg(source, prof, alg)
        self.signer = as_signer(source, self.alg)
        self.client_id = client_id
        self.audience = self._resolve_audience(prof, token_url, issuer, audience)
        self.lifetime = prof.lifetime if lifetime is None else int(lifetime)
        if not 0 < self.lifetime <= prof.max_lifetime:
            raise AssertionBuildError(
                f"lifetime {self.lifetime} s is outside 1..{prof.max_lifetime} s for the "
                f"{prof.name} profile",
                hint="assertions should be short-lived: 60 s is plenty",
            )
        self._clock = clock
        self._jti = jti_factory
        self._send_iat = prof.send_iat
        #: seconds to add to the local clock (set from the server's Date header by the client)
        self.clock_offset = 0.0

        header: dict[str, Any] = {"alg": self.alg}
        if prof.typ:
            header["typ"] = prof.typ
        kid = self.signer.kid
        if prof.send_kid or prof.kid_required:
            if not kid:
                raise AssertionBuildError(
                    f"the {prof.name} profile needs a kid and the signer has none",
                    hint="pass kid= when loading the key (the kid registered in your JWKS)",
                )
            header["kid"] = kid
        if x509_headers:  # x5t#S256 / x5t / x5c from the key's checked certificate chain
            chain = source.certificates if isinstance(source, Key) else ()
            header.update(header_values(chain, x509_headers))
        for name, value in (extra_headers or {}).items():
            if name in RESERVED_HEADERS:
                raise AssertionBuildError(
                    f"extra header {name!r} would override what the {prof.name} profile sets",
                    hint="alg, typ and kid come from the profile and the key; x5t#S256/x5t/"
                    "x5c from its certificate (x509_headers=); jwk/jku/x5u are never trusted",
                )
            header[name] = value
        self._header_b64 = b64url(json.dumps(header, separators=(",", ":")).encode())

        static: dict[str, Any] = {"iss": client_id, "sub": client_id, "aud": self.audience}
        for name, value in (extra_claims or {}).items():
            if name in RESERVED_CLAIMS:
                raise AssertionBuildError(
                    f"extra claim {name!r} would override what the {prof.name} profile sets",
                    hint="iss, sub, aud, jti, exp, iat and nbf are built by pkjwt",
                )
            static[name] = value
        self._claims_static = static

    @staticmethod
    def _resolve_audience(
        prof: Profile, token_url: str | None, issuer: str | None, audience: str | None
    ) -> str:
        if audience:
            return audience
        if prof.audience is AudienceKind.ISSUER:
            if issuer:
                return issuer
            raise AssertionBuildError(
                f"the {prof.name} profile puts the issuer identifier in aud, and no issuer "
                "was given",
                hint="pass issuer= (the server's issuer URL), or use profile='legacy' "
                "to send the token URL",
            )
        if token_url:
            return token_url
        raise AssertionBuildError(
            f"the {prof.name} profile puts the token endpoint URL in aud, and no token_url "
            "was given",
            hint="pass token_url= (e.g. https://int.api.service.nhs.uk/oauth2/token)",
        )

    def claims(self, now: float | None = None) -> dict[str, Any]:
        """The claims of a new assertion (fresh ``jti``)."""
        t = int((self._clock() if now is None else now) + self.clock_offset)
        claims = dict(self._claims_static)
        claims["jti"] = self._jti()
        if self._send_iat:
            claims["iat"] = t
        claims["exp"] = t + self.lifetime
        return claims

    def signing_input(self, now: float | None = None) -> bytes:
        """``BASE64URL(header) '.' BASE64URL(claims)`` of a new assertion (fresh ``jti``): the
        bytes a signer signs (RFC 7515 5.1). Flows that sign elsewhere (a KMS, an async
        driver) pass the signature to :meth:`finish`."""
        payload = json.dumps(self.claims(now), separators=(",", ":")).encode()
        return f"{self._header_b64}.{b64url(payload)}".encode("ascii")

    @staticmethod
    def finish(signing_input: bytes, signature: bytes) -> str:
        """The compact JWS for a signing input and its signature."""
        return compact(signing_input, signature)

    def make(self, now: float | None = None) -> str:
        """A new signed assertion (compact JWS)."""
        data = self.signing_input(now)
        return self.finish(data, self.signer.sign(data))

    async def amake(self, now: float | None = None) -> str:
        """A new signed assertion, awaiting an async signer (KMS/HSM) when there is one."""
        data = self.signing_input(now)
        return self.finish(data, await asign(self.signer, data))

    def __repr__(self) -> str:
        return (
            f"<AssertionFactory profile={self.profile.name} client_id={self.client_id!r} "
            f"aud={self.audience!r} alg={self.alg} kid={self.signer.kid!r}>"
        )


def make_assertion(
    key: Key | Signer | Any,
    *,
    client_id: str,
    profile: str | Profile = "nhs",
    token_url: str | None = None,
    issuer: str | None = None,
    audience: str | None = None,
    **options: Any,
) -> str:
    """One signed client assertion. For repeated use keep an :class:`AssertionFactory`."""
    return AssertionFactory(
        key,
        client_id=client_id,
        profile=profile,
        token_url=token_url,
        issuer=issuer,
        audience=audience,
        **options,
    ).make()
