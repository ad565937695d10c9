"""Profiles: what a client sends and what a server enforces, side by side, as data.

A profile is not a code path. :mod:`pkjwt.assertion` reads the client half to build an
assertion; :mod:`pkjwt.rules` reads the server half to check one. Keeping both halves in one
record means the client can never drift from what the matching server accepts (a property test
holds them to it).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any, Literal

from .errors import ConfigError

__all__ = [
    "ALL_SIGNING_ALGS",
    "FAPI2",
    "LEGACY",
    "NHS",
    "PROFILES",
    "RFC7523BIS",
    "AudienceKind",
    "AudiencePolicy",
    "Profile",
    "ProfileName",
    "TypPolicy",
    "get_profile",
]

ALL_SIGNING_ALGS = frozenset(
    {
        "RS256",
        "RS384",
        "RS512",
        "PS256",
        "PS384",
        "PS512",
        "ES256",
        "ES384",
        "ES512",
        "EdDSA",
        "Ed25519",
    }
)
JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
EXPLICIT_TYP = "client-authentication+jwt"


class AudienceKind(StrEnum):
    """What the client puts in ``aud``."""

    ISSUER = "issuer"
    TOKEN_ENDPOINT = "token_endpoint"


class AudiencePolicy(StrEnum):
    """What the server accepts in ``aud`` (rule R14)."""

    #: a string equal to the issuer identifier, nothing else (rfc7523bis, FAPI 2.0)
    STRICT = "strict"
    #: the issuer as a string or as a one-element array
    ISSUER_STRING_OR_ARRAY = "issuer_string_or_array"
    #: issuer or token endpoint URL, as a string or within an array
    LEGACY = "legacy"
    #: exactly the token endpoint URL, character for character (NHS)
    TOKEN_ENDPOINT = "token_endpoint"


class TypPolicy(StrEnum):
    """What the server accepts in the ``typ`` header (rule R12)."""

    #: absent, ``JWT`` or ``client-authentication+jwt``; any other explicit type rejected
    LENIENT = "lenient"
    #: only ``client-authentication+jwt`` (with or without ``application/``)
    EXPLICIT = "explicit"
    #: ``JWT`` required, case-insensitive (NHS)
    JWT = "jwt"


@dataclass(frozen=True, slots=True)
class Profile:
    """One assertion profile. Times are seconds."""

    name: str
    summary: str
    # -- what the client sends ----------------------------------------------------------------
    #: the algorithm the client prefers when its key can do it
    preferred_alg: str | None
    #: header ``typ`` the client sends (None: no ``typ``)
    typ: str | None
    audience: AudienceKind
    #: ``exp`` = now + lifetime
    lifetime: int
    send_iat: bool
    send_kid: bool
    # -- what the server enforces -------------------------------------------------------------
    algs: frozenset[str]
    audience_policy: AudiencePolicy
    typ_policy: TypPolicy
    #: largest accepted ``exp - now`` (rule R17)
    max_lifetime: int
    #: tolerance for ``exp`` in the past and ``iat``/``nbf`` in the future (R15, R16)
    skew: int
    #: FAPI 2.0: ``iat``/``nbf`` this far ahead are rejected outright regardless of ``skew``
    max_future_iat: int | None = None
    kid_required: bool = False
    #: tolerance for ``exp`` in the past (R15); None: ``skew`` (the NHS platform allows none)
    expiry_leeway: int | None = None
    #: JOSE headers that name a key and are refused outright (R9); the NHS platform ignores them
    untrusted_key_headers: tuple[str, ...] = ("jwk", "jku", "x5u")
    #: whether a future ``iat`` is rejected (the NHS platform checks only ``nbf``)
    check_iat: bool = True
    min_rsa_bits: int = 2048
    max_jti_length: int = 256
    #: largest accepted compact JWS (rule R5)
    max_assertion_bytes: int = 16 * 1024
    #: how long a used ``jti`` is remembered beyond ``exp`` (0: until exp + skew)
    jti_memory: int = 0
    #: tokens must be sender-constrained: every token request carries a DPoP proof
    require_dpop: bool = False
    #: the fix shown when ``exp`` is too far ahead (R17), when the profile words it its own way
    lifetime_hint: str | None = None
    #: how the local server orders, words and answers failures and successes
    #: (:mod:`pkjwt.server.dialects`): ``standard`` (RFC 6749 5.2) or ``nhs`` (the platform's)
    dialect: str = "standard"
    #: extra notes shown by the doctor
    notes: tuple[str, ...] = field(default_factory=tuple)

    def with_overrides(self, **changes: Any) -> Profile:
        """A copy with some limits changed (server configuration uses this)."""
        try:
            return replace(self, **changes)
        except TypeError as exc:
            raise ConfigError(f"profile {self.name}: {exc}") from None


RFC7523BIS = Profile(
    name="rfc7523bis",
    summary="draft-ietf-oauth-rfc7523bis: aud = issuer (string), explicit typ",
    preferred_alg=None,
    typ=EXPLICIT_TYP,
    audience=AudienceKind.ISSUER,
    lifetime=60,
    send_iat=True,
    send_kid=True,
    algs=ALL_SIGNING_ALGS,
    audience_policy=AudiencePolicy.STRICT,
    typ_policy=TypPolicy.LENIENT,
    max_lifetime=300,
    skew=30,
)

FAPI2 = replace(
    RFC7523BIS,
    name="fapi2",
    summary="FAPI 2.0 Security Profile: rfc7523bis, PS256/ES256/EdDSA only, DPoP-bound tokens",
    preferred_alg="PS256",
    algs=frozenset({"PS256", "ES256", "EdDSA", "Ed25519"}),
    skew=10,
    max_future_iat=60,
    # FAPI 2.0 5.3.2.1: sender-constrained access tokens (DPoP here; mTLS is not offered)
    require_dpop=True,
)

LEGACY = replace(
    RFC7523BIS,
    name="legacy",
    summary="RFC 7523 as deployed before 2025: aud = token endpoint, typ JWT",
    typ="JWT",
    audience=AudienceKind.TOKEN_ENDPOINT,
    audience_policy=AudiencePolicy.LEGACY,
)

NHS = Profile(
    name="nhs",
    summary="NHS England API Platform signed JWT authentication",
    preferred_alg="RS512",
    typ="JWT",
    audience=AudienceKind.TOKEN_ENDPOINT,
    # not the documented now + 300: the platform refuses exp more than 310 s ahead of its own
    # clock, so 300 fails once the client's clock runs 11 s fast. 240 survives a clock 70 s
    # fast, and 60 s slow still leaves three minutes (the client also corrects from Date)
    lifetime=240,
    send_iat=False,
    send_kid=True,
    algs=frozenset({"RS512"}),
    audience_policy=AudiencePolicy.TOKEN_ENDPOINT,
    typ_policy=TypPolicy.JWT,
    # the platform accepts exp up to 310 s ahead (300 s plus a 10 s allowance)
    max_lifetime=310,
    skew=10,
    kid_required=True,
    # the platform's check is `now > exp`, with no allowance (its 10 s apply to nbf only)
    expiry_leeway=0,
    # it takes the key from the app's registered JWKS URL and never reads jku/jwk/x5u
    untrusted_key_headers=(),
    check_iat=False,
    jti_memory=30 * 24 * 3600,
    lifetime_hint="the NHS platform allows exp at most 5 minutes (310 s) ahead of its clock: "
    "int(time()) + 240 leaves room for a clock that runs fast",
    dialect="nhs",
    notes=(
        "jti values are remembered for 30 days; a failed attempt still uses up its jti",
        "the JWKS is cached for an hour: publish a new kid at least an hour before using it",
    ),
)

PROFILES: dict[str, Profile] = {p.name: p for p in (RFC7523BIS, FAPI2, LEGACY, NHS)}
#: the profiles by name, for type checkers (``profile="nhs"``)
ProfileName = Literal["nhs", "rfc7523bis", "fapi2", "legacy"]


def get_profile(profile: str | Profile) -> Profile:
    """A profile by name (``nhs``, ``rfc7523bis``, ``fapi2``, ``legacy``) or the profile itself."""
    if isinstance(profile, Profile):
        return profile
    try:
        return PROFILES[profile]
    except KeyError:
        raise ConfigError(
            f"unknown profile {profile!r}", hint="choose one of " + ", ".join(PROFILES)
        ) from None
