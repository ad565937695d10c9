"""pkjwt: OAuth 2.0 client credentials with private_key_jwt (RFC 7523), correct by default.

The public API is re-exported here; nothing is defined in this module.
"""

from .assertion import AssertionFactory, make_assertion
from .decode import DecodedJWT, decode_compact
from .doctor import diagnose
from .errors import (
    AssertionBuildError,
    ConfigError,
    InvalidClient,
    InvalidRequest,
    JWTFormatError,
    KeyLoadError,
    OAuthError,
    PkjwtError,
    TokenResponseError,
    TransportError,
)
from .keys import Key, KeyFilePermissionWarning, KeySet, generate_key, jwks, load_jwks, load_key
from .profiles import PROFILES, Profile, get_profile
from .rules import Finding, Report, RuleContext, Verdict, check
from .signing import AsyncSigner, LocalSigner, Signer

__version__ = "0.1.0"

__all__ = [
    "PROFILES",
    "AssertionBuildError",
    "AssertionFactory",
    "AsyncSigner",
    "ConfigError",
    "DecodedJWT",
    "Finding",
    "InvalidClient",
    "InvalidRequest",
    "JWTFormatError",
    "Key",
    "KeyFilePermissionWarning",
    "KeyLoadError",
    "KeySet",
    "LocalSigner",
    "OAuthError",
    "PkjwtError",
    "Profile",
    "Report",
    "RuleContext",
    "Signer",
    "TokenResponseError",
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
