"""The NHS England API Platform's token endpoint, as data.

One table, two readers: the client maps an NHS error response to a hint (by meaning, since the
wording has changed before), and the local server's ``nhs`` mode answers with exactly these
statuses, codes and strings, in this order. Source: shared/spec/nhs-signed-jwt.md.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "ENVIRONMENTS",
    "NHS_ASSERTION_ERRORS",
    "NHS_REQUEST_ERRORS",
    "NhsError",
    "hint_for",
    "row_for",
]

ENVIRONMENTS: dict[str, str] = {
    "sandbox": "https://sandbox.api.service.nhs.uk/oauth2/token",
    "dev": "https://dev.api.service.nhs.uk/oauth2/token",
    "int": "https://int.api.service.nhs.uk/oauth2/token",
    "internal-dev": "https://internal-dev.api.service.nhs.uk/oauth2/token",
    "prod": "https://api.service.nhs.uk/oauth2/token",
}


@dataclass(frozen=True, slots=True)
class NhsError:
    """One NHS error row. ``codes`` are the rule-table finding codes that produce it."""

    status: int
    error: str
    description: str
    codes: tuple[str, ...]
    #: words that identify the row in a response even if the wording drifts
    match: tuple[str, ...]
    hint: str


CONTENT_TYPE = NhsError(
    415,
    "invalid_request",
    "Content-Type header must be application/x-www-form-urlencoded",
    ("request.content_type",),
    ("content-type",),
    "send exactly 'Content-Type: application/x-www-form-urlencoded' (no charset parameter)",
)

NHS_REQUEST_ERRORS: tuple[NhsError, ...] = (
    NhsError(
        400,
        "invalid_request",
        "grant_type is missing",
        ("request.grant_type_missing",),
        ("grant_type is missing",),
        "send grant_type=client_credentials",
    ),
    NhsError(
        400,
        "unsupported_grant_type",
        "grant_type is invalid",
        ("request.grant_type_invalid",),
        ("grant_type is invalid",),
        "grant_type must be client_credentials",
    ),
    NhsError(
        400,
        "invalid_request",
        "Missing or invalid client_assertion_type - must be "
        "'urn:ietf:params:oauth:client-assertion-type:jwt-bearer'",
        ("request.assertion_type",),
        ("client_assertion_type",),
        "send client_assertion_type=urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
    ),
    NhsError(
        400,
        "invalid_request",
        "Missing client_assertion",
        ("request.assertion_missing",),
        ("missing client_assertion",),
        "send the signed JWT as client_assertion",
    ),
    NhsError(
        400,
        "invalid_request",
        "Malformed JWT in client_assertion",
        (
            "jws.size",
            "jws.compact",
            "jws.jwe",
            "jws.base64",
            "json.header",
            "json.payload",
            "jws.crit",
        ),
        ("malformed jwt",),
        "client_assertion must be a compact signed JWT (header.payload.signature)",
    ),
)

_P = "client_assertion JWT"

#: Header and claim checks, in the platform's order: the first failing one wins. ``None`` marks
#: the point where the platform records the jti; the checks after it answer 401.
NHS_ASSERTION_ERRORS: tuple[NhsError | None, ...] = (
    NhsError(
        400,
        "invalid_request",
        f"Invalid 'alg' header in {_P} - unsupported JWT algorithm - must be 'RS512'",
        ("alg.missing", "alg.none", "alg.hmac", "alg.not_allowed"),
        ("'alg' header",),
        "sign with RS512 (RSASSA-PKCS1-v1_5 with SHA-512) and an RSA key",
    ),
    NhsError(
        400,
        "invalid_request",
        f"Invalid 'exp' claim in {_P} - JWT has expired",
        ("exp.expired",),
        ("has expired",),
        "make a fresh assertion per request with exp = now + 300; check your clock",
    ),
    NhsError(
        400,
        "invalid_request",
        f"Missing 'kid' header in {_P}",
        ("kid.missing",),
        ("missing 'kid'",),
        "put the kid of your registered public key in the JWT header",
    ),
    NhsError(
        400,
        "invalid_request",
        f"Invalid 'typ' header in {_P} - must be 'JWT'",
        ("typ.missing", "typ.wrong"),
        ("'typ' header",),
        'add "typ": "JWT" to the header (some libraries drop it when given extra headers)',
    ),
    NhsError(
        400,
        "invalid_request",
        f"Missing 'exp' claim in {_P}",
        ("exp.missing",),
        ("missing 'exp'",),
        "add exp = int(time.time()) + 300",
    ),
    NhsError(
        400,
        "invalid_request",
        f"Invalid 'exp' claim in {_P} - must be an integer",
        ("exp.type", "exp.integer"),
        ("must be an integer",),
        "exp must be a JSON integer (seconds), not a string",
    ),
    NhsError(
        400,
        "invalid_request",
        f"Missing or non-matching 'iss'/'sub' claims in {_P}",
        ("iss.missing", "sub.missing", "iss_sub.mismatch"),
        ("non-matching 'iss'",),
        "set both iss and sub to your application's API key",
    ),
    NhsError(
        400,
        "invalid_request",
        f"Missing 'jti' claim in {_P}",
        ("jti.missing",),
        ("missing 'jti'",),
        "add a jti (str(uuid.uuid4())); check for the 'jit' typo",
    ),
    NhsError(
        400,
        "invalid_request",
        f"Invalid 'jti' claim in {_P} - must be a unique string value such as a GUID",
        ("jti.type", "jti.length"),
        ("invalid 'jti'",),
        "jti must be a string GUID",
    ),
    None,
    NhsError(
        400,
        "invalid_request",
        f"Non-unique 'jti' claim in {_P}",
        ("jti.replay",),
        ("non-unique 'jti'",),
        "never reuse a jti (they are remembered for 30 days, even from failed attempts); "
        "make a new assertion for every attempt",
    ),
    NhsError(
        400,
        "invalid_request",
        f"Invalid 'exp' claim in {_P} - more than 5 minutes in future",
        ("exp.too_far",),
        ("more than 5 minutes",),
        "exp may be at most 5 minutes ahead: int(time.time()) + 300; check your clock",
    ),
    NhsError(
        401,
        "invalid_request",
        f"Invalid 'iss'/'sub' claims in {_P}",
        ("client.unknown", "iss.wrong", "client.body_mismatch"),
        ("invalid 'iss'/'sub'",),
        "iss/sub must be the API key of an app registered in this environment "
        "(apps and keys are per environment)",
    ),
    NhsError(
        401,
        "invalid_request",
        f"Missing or invalid 'aud' claim in {_P}",
        ("aud.missing", "aud.wrong", "aud.array", "aud.token_endpoint"),
        ("'aud' claim",),
        "aud must be exactly the token URL you POST to, e.g. "
        "https://int.api.service.nhs.uk/oauth2/token",
    ),
    NhsError(
        401,
        "invalid_request",
        f"Invalid 'kid' header in {_P} - no matching public key",
        ("kid.unknown", "kid.type", "key.type_mismatch", "key.too_small", "key.untrusted_header"),
        ("no matching public key",),
        "the kid must be in the JWKS registered for this app; the platform caches JWKS for "
        "an hour, so publish new keys an hour before using them",
    ),
    NhsError(
        401,
        "public_key error",
        "JWT signature verification failed",
        ("signature.invalid",),
        ("signature verification failed",),
        "the JWT was not signed by the private key matching the registered public key for this kid",
    ),
    NhsError(
        401,
        "unauthorized_client",
        "you have tried to request authorization but your application is not configured "
        "to use this authorization grant type",
        ("grant.unauthorized",),
        ("not configured to use this authorization grant",),
        "enable signed JWT (application-restricted) access for this app on the platform",
    ),
)

PUBLIC_KEY_MISSING = NhsError(
    403,
    "public_key error",
    "You need to register a public key to use this authentication method - please contact "
    "support to configure",
    ("jwks.unregistered",),
    ("register a public key",),
    "register your JWKS URL (or upload the JWKS) for this app in the developer portal",
)
JWKS_UNREACHABLE = NhsError(
    403,
    "public_key error",
    "The JWKS endpoint, for your client_assertion can't be reached",
    ("jwks.fetch",),
    ("can't be reached",),
    "the platform cannot fetch your JWKS URL: it must be public HTTPS and serve the JWKS",
)
_RATE_LIMIT_HINT = (
    "the app exceeded its quota (300 requests/minute on the NHS platform); reuse tokens until "
    "shortly before expiry instead of fetching per call"
)

_ALL: tuple[NhsError, ...] = (
    CONTENT_TYPE,
    *NHS_REQUEST_ERRORS,
    *(e for e in NHS_ASSERTION_ERRORS if e is not None),
    PUBLIC_KEY_MISSING,
    JWKS_UNREACHABLE,
)


def row_for(code: str) -> NhsError | None:
    """The NHS error row a rule-table finding code produces, if any."""
    for row in _ALL:
        if code in row.codes:
            return row
    return None


def hint_for(status: int | None, error: str | None, description: str | None) -> str | None:
    """The likely cause and fix for an NHS error response, matched by meaning."""
    text = (description or "").lower()
    if status == 429 or "rate limited" in text or "exceeded its quota" in text:
        return _RATE_LIMIT_HINT
    for row in _ALL:
        if any(m in text for m in row.match):
            return row.hint
    return None
