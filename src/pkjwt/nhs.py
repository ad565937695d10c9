"""The NHS England API Platform's token endpoint, as data.

One table, two readers: the client maps an NHS error response to a hint (by meaning, since the
wording has changed before), and the local server's ``nhs`` mode answers with exactly these
statuses, codes and strings, in this order. Source: shared/spec/nhs-signed-jwt.md, corrected
from the platform's own code (NHSDigital/identity-service-api), which wins where they differ;
each row names where in that code it comes from.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "ENVIRONMENTS",
    "NHS_ASSERTION_ERRORS",
    "NHS_REQUEST_ERRORS",
    "NhsError",
    "about_the_assertion",
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
    #: where the platform answers it: NHSDigital/identity-service-api, proxies/live/apiproxy
    #: (``flow`` is proxies/default.xml; ``claims.js`` is validate-client-assertion-claims.js,
    #: its checks numbered in their order; ``e2e`` is e2e/tests/oauth/test_client_credentials.py)
    source: str = ""


CONTENT_TYPE = NhsError(
    415,
    "invalid_request",
    "Content-Type header must be application/x-www-form-urlencoded",
    ("request.content_type",),
    ("content-type",),
    "send exactly 'Content-Type: application/x-www-form-urlencoded' (no charset parameter)",
    "flow Flow.PostTokenInvalidMediaType: Content-Type compared as a literal string",
)

NHS_REQUEST_ERRORS: tuple[NhsError, ...] = (
    NhsError(
        400,
        "invalid_request",
        "grant_type is missing",
        ("request.grant_type_missing",),
        ("grant_type is missing",),
        "send grant_type=client_credentials",
        "flow Flow.PostTokenMissingGrantType; e2e test_missing_or_invalid_payload",
    ),
    NhsError(
        400,
        "unsupported_grant_type",
        "grant_type is invalid",
        ("request.grant_type_invalid",),
        ("grant_type is invalid",),
        "grant_type must be client_credentials",
        "flow Flow.PostTokenInvalidGrantType; e2e test_missing_or_invalid_payload",
    ),
    NhsError(
        400,
        "invalid_request",
        "Missing or invalid client_assertion_type - must be "
        "'urn:ietf:params:oauth:client-assertion-type:jwt-bearer'",
        ("request.assertion_type",),
        ("client_assertion_type",),
        "send client_assertion_type=urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        "flow RaiseFault.MissingOrInvalidClientAssertionType (before decoding)",
    ),
    NhsError(
        400,
        "invalid_request",
        "Missing client_assertion",
        ("request.assertion_missing",),
        ("missing client_assertion",),
        "send the signed JWT as client_assertion",
        "flow FaultRule missing_client_assertion (DecodeJWT: nothing to decode)",
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
        "flow FaultRule failed_decoding_jwt_client_assertion (DecodeJWT)",
    ),
)

_P = "client_assertion JWT"

#: the platform's catch-all (an Apigee fault no rule maps): a not-yet-valid nbf lands here
UNKNOWN_ERROR = NhsError(
    401,
    "unknown_error",
    "An unknown error occurred processing this request. Contact us for assistance diagnosing "
    "this issue: https://digital.nhs.uk/developer/help-and-support quoting Message ID",
    ("nbf.future", "nbf.type"),
    ("an unknown error occurred",),
    "nbf (not before) is more than 10 s ahead of the platform's clock: drop nbf, or check your "
    "clock",
    "flow DefaultFaultRule: VerifyJWT's nbf check (10 s allowance) has no rule of its own",
)

PUBLIC_KEY_MISSING = NhsError(
    403,
    "public_key error",
    "You need to register a public key to use this authentication method - please contact "
    "support to configure",
    ("jwks.unregistered",),
    ("register a public key",),
    "register your JWKS URL (or upload the JWKS) for this app in the developer portal",
    "flow RaiseFault.PublicKeyMisconfigured: no jwks-resource-url",
)
JWKS_UNREACHABLE = NhsError(
    403,
    "public_key error",
    "The JWKS endpoint, for your client_assertion can't be reached",
    ("jwks.fetch",),
    ("can't be reached",),
    "the platform cannot fetch your JWKS URL: it must be public HTTPS and serve the JWKS",
    "flow FaultRule public_key_misconfigured: the JWKS ServiceCallout failed",
)

#: The assertion checks, in the platform's order (identity-service-api: its claim-checking script,
#: then the proxy flow): the first failing one wins. ``None`` marks where the platform records the
#: jti (30 days), after every claim check passed and before the app, its JWKS and the signature
#: are looked at: a failure after it still uses the jti up.
NHS_ASSERTION_ERRORS: tuple[NhsError | None, ...] = (
    NhsError(
        400,
        "invalid_request",
        f"Invalid 'alg' header in {_P} - unsupported JWT algorithm - must be 'RS512'",
        ("alg.missing", "alg.none", "alg.hmac", "alg.not_allowed"),
        ("'alg' header",),
        "sign with RS512 (RSASSA-PKCS1-v1_5 with SHA-512) and an RSA key",
        "claims.js check 1: alg != 'RS512' (a missing alg included)",
    ),
    NhsError(
        400,
        "invalid_request",
        f"Invalid 'exp' claim in {_P} - JWT has expired",
        ("exp.expired",),
        ("has expired",),
        "make a fresh assertion per request with exp = now + 240; check your clock",
        "claims.js check 2: now > exp, no allowance",
    ),
    NhsError(
        400,
        "invalid_request",
        f"Missing 'kid' header in {_P}",
        ("kid.missing",),
        ("missing 'kid'",),
        "put the kid of your registered public key in the JWT header",
        "claims.js check 3: !kid (an empty kid is missing)",
    ),
    NhsError(
        400,
        "invalid_request",
        f"Invalid 'typ' header in {_P} - must be 'JWT'",
        ("typ.missing", "typ.wrong"),
        ("'typ' header",),
        'add "typ": "JWT" to the header (some libraries drop it when given extra headers)',
        "claims.js check 4: typ not a string or typ.toLowerCase() != 'jwt'",
    ),
    NhsError(
        400,
        "invalid_request",
        f"Missing 'exp' claim in {_P}",
        ("exp.missing",),
        ("missing 'exp'",),
        "add exp = int(time.time()) + 240",
        "claims.js check 5: !exp",
    ),
    NhsError(
        400,
        "invalid_request",
        f"Invalid 'exp' claim in {_P} - must be an integer",
        ("exp.type",),
        ("must be an integer",),
        "exp must be a JSON integer (seconds), not a string",
        "claims.js check 6: typeof exp != 'number' (a float passes)",
    ),
    NhsError(
        400,
        "invalid_request",
        f"Missing or non-matching 'iss'/'sub' claims in {_P}",
        ("iss.missing", "sub.missing", "iss_sub.mismatch", "iss.length"),
        ("non-matching 'iss'",),
        "set both iss and sub to your application's API key",
        "claims.js check 7: !iss || !sub || iss != sub",
    ),
    NhsError(
        400,
        "invalid_request",
        f"Missing 'jti' claim in {_P}",
        ("jti.missing",),
        ("missing 'jti'",),
        "add a jti (str(uuid.uuid4())); check for the 'jit' typo",
        "claims.js check 8: !jti (an empty jti is missing)",
    ),
    NhsError(
        400,
        "invalid_request",
        f"Invalid 'jti' claim in {_P} - must be a unique string value such as a GUID",
        ("jti.type", "jti.length"),
        ("invalid 'jti'",),
        "jti must be a string GUID",
        "claims.js check 9: typeof jti != 'string'",
    ),
    NhsError(
        400,
        "invalid_request",
        f"Non-unique 'jti' claim in {_P}",
        ("jti.replay",),
        ("non-unique 'jti'",),
        "never reuse a jti (they are remembered for 30 days, even from failed attempts); "
        "make a new assertion for every attempt",
        "claims.js check 10: (sub, jti) found by LookupCache.JTIClaim",
    ),
    NhsError(
        400,
        "invalid_request",
        f"Invalid 'exp' claim in {_P} - more than 5 minutes in future",
        ("exp.too_far",),
        ("more than 5 minutes",),
        "exp may be at most 310 s ahead of the platform's clock: int(time.time()) + 240 leaves "
        "room for a clock that runs fast",
        "claims.js check 11: exp - now > 310",
    ),
    None,
    NhsError(
        401,
        "invalid_request",
        f"Invalid 'iss'/'sub' claims in {_P}",
        ("client.unknown", "iss.wrong", "client.body_mismatch"),
        ("invalid 'iss'/'sub'",),
        "iss/sub must be the API key of an app registered in this environment "
        "(apps and keys are per environment)",
        "flow VerifyAPIKey.FromJWT on sub, after PopulateCache.JTIClaim",
    ),
    PUBLIC_KEY_MISSING,
    JWKS_UNREACHABLE,
    NhsError(
        401,
        "invalid_request",
        f"Missing or invalid 'aud' claim in {_P}",
        ("aud.missing", "aud.wrong", "aud.array", "aud.token_endpoint", "aud.foreign"),
        ("'aud' claim",),
        "aud must be exactly the token URL you POST to, e.g. "
        "https://int.api.service.nhs.uk/oauth2/token",
        "flow VerifyJWT.ClientCredentials: aud != the request URL",
    ),
    NhsError(
        401,
        "invalid_request",
        f"Invalid 'kid' header in {_P} - no matching public key",
        (
            "kid.unknown",
            "kid.type",
            "key.type_mismatch",
            "key.too_small",
            "key.untrusted_header",
            "key.unusable",
        ),
        ("no matching public key",),
        "the kid must be in the JWKS registered for this app; the platform caches JWKS for "
        "an hour, so publish new keys an hour before using them",
        "flow VerifyJWT.ClientCredentials: NoMatchingPublicKey",
    ),
    NhsError(
        401,
        "public_key error",
        "JWT signature verification failed",
        ("signature.invalid",),
        ("signature verification failed",),
        "the JWT was not signed by the private key matching the registered public key for this kid",
        "flow VerifyJWT.ClientCredentials: InvalidToken",
    ),
    UNKNOWN_ERROR,
    NhsError(
        401,
        "unauthorized_client",
        "you have tried to request authorization but your application is not configured "
        "to use this authorization grant type",
        ("grant.unauthorized",),
        ("not configured to use this authorization grant",),
        "enable signed JWT (application-restricted) access for this app on the platform",
        "flow RaiseFault.VerifyAccessLevel: no product scope urn:nhsd:apim:app:level3:",
    ),
)

_RATE_LIMIT_HINT = (
    "the app exceeded its quota (300 requests/minute on the NHS platform); reuse tokens until "
    "shortly before expiry instead of fetching per call"
)

_ALL: tuple[NhsError, ...] = (
    CONTENT_TYPE,
    *NHS_REQUEST_ERRORS,
    *(e for e in NHS_ASSERTION_ERRORS if e is not None),
)


def row_for(code: str) -> NhsError | None:
    """The NHS error row a rule-table finding code produces, if any."""
    for row in _ALL:
        if code in row.codes:
            return row
    return None


#: the rows that refuse the client's assertion (not the request around it)
_ASSERTION_ROWS = tuple(
    row for row in NHS_ASSERTION_ERRORS if row is not None and row.error != "unknown_error"
)


def about_the_assertion(status: int | None, error: str | None, description: str | None) -> bool:
    """Whether an NHS-style error response refuses the client assertion itself (matched by
    meaning, as :func:`hint_for` does): those are refused credentials, whatever their code."""
    if error in ("invalid_client", "unauthorized_client"):
        return False  # already refusals of the credentials by their code
    text = (description or "").lower()
    return any(m in text for row in _ASSERTION_ROWS for m in row.match)


def hint_for(status: int | None, error: str | None, description: str | None) -> str | None:
    """The likely cause and fix for an NHS error response, matched by meaning."""
    text = (description or "").lower()
    if status == 429 or "rate limited" in text or "exceeded its quota" in text:
        return _RATE_LIMIT_HINT
    for row in _ALL:
        if any(m in text for m in row.match):
            return row.hint
    return None
