"""pkjwt: OAuth 2.0 client credentials with private_key_jwt (RFC 7523), correct by default.

The public API is re-exported here; nothing is defined in this module.
"""

from typing import TYPE_CHECKING, Any

from .assertion import AssertionFactory, make_assertion
from .client import TokenClient
from .decode import DecodedJWT, decode_compact
from .doctor import diagnose
from .errors import (
    AssertionBuildError,
    AssertionRefused,
    ConfigError,
    CredentialsRejected,
    InvalidClient,
    InvalidRequest,
    JWTFormatError,
    KeyLoadError,
    MissingExtra,
    OAuthError,
    PkjwtError,
    SignerUnavailable,
    TokenResponseError,
    TransportError,
)
from .integrations.httpx import HttpxAuth
from .key_ring import KeyRing, RingKey
from .keys import Key, KeyFilePermissionWarning, KeySet, generate_key, jwks, load_jwks, load_key
from .manager import TokenManager
from .profiles import PROFILES, Profile, get_profile
from .retry import RetryPolicy
from .rules import Finding, Report, RuleContext, Verdict, check
from .signing import AsyncSigner, LocalSigner, Signer
from .stores import FileStore, MemoryStore, TokenStore
from .tokens import Token

if TYPE_CHECKING:
    from .integrations.requests import RequestsAuth

__version__ = "0.1.0"

__all__ = [
    "PROFILES",
    "AssertionBuildError",
    "AssertionFactory",
    "AssertionRefused",
    "AsyncSigner",
    "ConfigError",
    "CredentialsRejected",
    "DecodedJWT",
    "FileStore",
    "Finding",
    "HttpxAuth",
    "InvalidClient",
    "InvalidRequest",
    "JWTFormatError",
    "Key",
    "KeyFilePermissionWarning",
    "KeyLoadError",
    "KeyRing",
    "KeySet",
    "LocalSigner",
    "MemoryStore",
    "MissingExtra",
    "OAuthError",
    "PkjwtError",
    "Profile",
    "Report",
    "RequestsAuth",
    "RetryPolicy",
    "RingKey",
    "RuleContext",
    "Signer",
    "SignerUnavailable",
    "Token",
    "TokenClient",
    "TokenManager",
    "TokenResponseError",
    "TokenStore",
    "TransportError",
    "Verdict",
    "__version__",
    "check",
    "decode_compact",
    "diagnose",
    "generate_key",
    "get_profile",
    "jwks",
    "load_jwks",
    "load_key",
    "make_assertion",
]


def __getattr__(name: str) -> Any:
    # requests is an optional extra: import its integration only when asked for
    if name == "RequestsAuth":
        from .integrations.requests import RequestsAuth

        return RequestsAuth
    raise AttributeError(f"module 'pkjwt' has no attribute {name!r}")
