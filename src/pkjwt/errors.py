"""One exception tree for everything pkjwt raises.

    PkjwtError                      every error carries a message and, where we know one, a hint
    ├── KeyLoadError                a key could not be read, parsed or used (never shows key bytes)
    ├── ConfigError                 bad configuration: names the file/key/path and the reason
    ├── MissingExtra                an optional extra is not installed (also an ImportError)
    ├── AssertionBuildError         the assertion asked for would break its profile
    ├── JWTFormatError              a string that is not a compact JWS (doctor, server)
    ├── ReplayStoreUnavailable      the local server's replay store could not record a jti
    ├── TransportError              the token endpoint could not be reached (connect, timeout)
    ├── TokenResponseError          the endpoint answered something that is not a token response
    └── OAuthError                  the endpoint answered an OAuth error (RFC 6749 5.2)
        ├── CredentialsRejected     the server refused our credentials, whatever its code:
        │   ├── InvalidClient       invalid_client (RFC 6749)
        │   ├── AssertionRefused    an assertion refused with another code (the NHS platform's
        │   │                       invalid_request / "public_key error"); also an InvalidRequest
        │   │                       when that is its code
        │   └── UnauthorizedClient
        ├── InvalidRequest, InvalidGrant, UnsupportedGrantType, InvalidScope, InvalidTarget,
        ├── AccessDenied
        └── ServerError, TemporarilyUnavailable, RateLimited

Messages never contain private keys, assertions, tokens or client secrets; where something must
be identified, a short fingerprint is shown instead.
"""

from __future__ import annotations

__all__ = [
    "AccessDenied",
    "AssertionBuildError",
    "AssertionRefused",
    "AssertionSourceError",
    "ConfigError",
    "CredentialsRejected",
    "InvalidClient",
    "InvalidGrant",
    "InvalidRequest",
    "InvalidRequestAssertion",
    "InvalidScope",
    "InvalidTarget",
    "JWTFormatError",
    "KeyLoadError",
    "MissingExtra",
    "OAuthError",
    "PkjwtError",
    "RateLimited",
    "ReplayStoreUnavailable",
    "ServerError",
    "SignerUnavailable",
    "TemporarilyUnavailable",
    "TokenResponseError",
    "TransportError",
    "UnauthorizedClient",
    "UnsupportedGrantType",
    "missing_extra",
    "oauth_error_class",
]


class PkjwtError(Exception):
    """Base of every pkjwt error. ``hint`` says what to do about it."""

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        if self.hint:
            return f"{self.message} (hint: {self.hint})"
        return self.message


class KeyLoadError(PkjwtError):
    """A key could not be loaded or is unfit for the requested use."""


class ConfigError(PkjwtError):
    """Configuration is invalid; the message names where."""


class MissingExtra(PkjwtError, ImportError):
    """A feature needs an optional extra that is not installed; ``hint`` is the pip command.
    An ``ImportError`` too, so code that guards an optional import keeps working."""


def missing_extra(extra: str, feature: str, exc: ImportError) -> MissingExtra:
    """The error for ``feature`` failing to import ``exc.name``, which ``pkjwt[extra]`` brings."""
    what = exc.name or "a package"
    return MissingExtra(
        f"{feature} needs the {extra!r} extra ({what} is not installed)",
        hint=f"pip install 'pkjwt[{extra}]'",
    )


class AssertionBuildError(PkjwtError):
    """The requested assertion would violate its profile."""


class JWTFormatError(PkjwtError):
    """Input is not a well-formed compact JWS."""


class SignerUnavailable(PkjwtError):
    """The HSM or KMS holding the key could not sign: unreachable, timed out, or it refused us
    (denied, disabled key, wrong PIN). Nothing was sent to the token endpoint: this is about
    our key's custodian, not about the authorization server. ``retryable`` when waiting may
    help (a network error, throttling), not when access is denied."""

    def __init__(self, message: str, *, hint: str | None = None, retryable: bool = False):
        super().__init__(message, hint=hint)
        self.retryable = retryable


class AssertionSourceError(SignerUnavailable):
    """A federated assertion (an identity token from a file, a variable, a program or the
    GitHub Actions endpoint) could not be had, or the one found has expired. Like a signer that
    cannot sign, nothing was sent to the token endpoint; ``retryable`` when waiting may help (a
    projected token about to be rewritten, an endpoint that answered 5xx)."""


class ReplayStoreUnavailable(PkjwtError):
    """The replay store could not record a jti (Redis down, SQLite locked or failing): the
    server answers 503 rather than accept an assertion it could not remember."""


class TransportError(PkjwtError):
    """The token endpoint could not be reached or did not answer in time."""


class TokenResponseError(PkjwtError):
    """The token endpoint answered, but not with a usable token response."""

    def __init__(self, message: str, *, status: int | None = None, hint: str | None = None):
        super().__init__(message, hint=hint)
        self.status = status


class OAuthError(PkjwtError):
    """An OAuth 2.0 error response (RFC 6749 section 5.2).

    ``error`` is the OAuth code, ``description`` the server's ``error_description``, ``status``
    the HTTP status, ``retry_after`` seconds when the server sent ``Retry-After``.
    """

    error: str = "unknown_error"
    #: errors worth retrying with a fresh assertion (transient on the server side)
    retryable: bool = False

    def __init__(
        self,
        description: str | None = None,
        *,
        error: str | None = None,
        status: int | None = None,
        hint: str | None = None,
        retry_after: float | None = None,
        body: dict[str, object] | None = None,
    ) -> None:
        if error is not None:
            self.error = error
        self.description = description
        self.status = status
        self.retry_after = retry_after
        self.body = body or {}
        where = f"HTTP {status} " if status is not None else ""
        text = f"{where}{self.error}"
        if description:
            text += f": {description}"
        super().__init__(text, hint=hint)


class CredentialsRejected(OAuthError):
    """The server refused our client authentication, whatever code it answered with: catch
    this one for "the credentials do not work" (``pkjwt token --explain`` says why)."""


class InvalidRequest(OAuthError):
    """``invalid_request``: the request is malformed (a missing or repeated parameter); the NHS
    platform also answers most assertion failures with it (see :class:`AssertionRefused`)."""

    error = "invalid_request"


class InvalidClient(CredentialsRejected):
    """``invalid_client``: client authentication failed (the assertion, its key or the client
    id); ``pkjwt token --explain`` or :func:`pkjwt.diagnose` says which rule."""

    error = "invalid_client"


class AssertionRefused(CredentialsRejected):
    """The assertion was refused with a code other than ``invalid_client`` (the NHS platform
    answers ``invalid_request`` for most assertion failures, ``public_key error`` for a bad
    signature)."""


class InvalidRequestAssertion(InvalidRequest, AssertionRefused):
    """An ``invalid_request`` that is about the assertion: both kinds of error at once."""


class InvalidGrant(OAuthError):
    """``invalid_grant``: the grant is invalid or expired (not expected for client credentials)."""

    error = "invalid_grant"


class UnauthorizedClient(CredentialsRejected):
    """``unauthorized_client``: the client may not use this grant (the NHS platform: the
    application is not enabled for signed JWT authentication)."""

    error = "unauthorized_client"


class UnsupportedGrantType(OAuthError):
    """``unsupported_grant_type``: the server does not support ``client_credentials``."""

    error = "unsupported_grant_type"


class InvalidScope(OAuthError):
    """``invalid_scope``: a requested scope is unknown or not allowed for this client."""

    error = "invalid_scope"


class InvalidTarget(OAuthError):
    """``invalid_target``: a requested resource (RFC 8707) is not allowed for this client."""

    error = "invalid_target"


class AccessDenied(OAuthError):
    """``access_denied``: the server refused the request."""

    error = "access_denied"


class ServerError(OAuthError):
    """``server_error``: the server failed; retried."""

    error = "server_error"
    retryable = True


class TemporarilyUnavailable(OAuthError):
    """``temporarily_unavailable``: the server is overloaded or down for a moment; retried."""

    error = "temporarily_unavailable"
    retryable = True


class RateLimited(OAuthError):
    """HTTP 429: the client exceeded its quota; ``retry_after`` says when to come back."""

    error = "rate_limited"
    retryable = True


_BY_CODE: dict[str, type[OAuthError]] = {
    cls.error: cls
    for cls in (
        InvalidRequest,
        InvalidClient,
        InvalidGrant,
        UnauthorizedClient,
        UnsupportedGrantType,
        InvalidScope,
        InvalidTarget,
        AccessDenied,
        ServerError,
        TemporarilyUnavailable,
    )
}


def oauth_error_class(code: str | None) -> type[OAuthError]:
    """The exception class for an OAuth ``error`` code; unknown codes map to ``OAuthError``."""
    return _BY_CODE.get(code or "", OAuthError)
