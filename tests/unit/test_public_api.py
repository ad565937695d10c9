"""The public API is pinned: a change to pkjwt.__all__ must be deliberate."""

from __future__ import annotations

import pkjwt

PUBLIC_API = [
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
    "PROFILES",
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


def test_all_is_pinned() -> None:
    assert sorted(pkjwt.__all__) == PUBLIC_API
    assert len(set(pkjwt.__all__)) == len(pkjwt.__all__)


def test_every_public_name_is_importable() -> None:
    namespace: dict[str, object] = {}
    exec("from pkjwt import *", namespace)
    for name in PUBLIC_API:
        assert getattr(pkjwt, name) is not None
        if not name.startswith("_"):
            assert name in namespace


def test_errors_share_one_base() -> None:
    for name in PUBLIC_API:
        obj = getattr(pkjwt, name)
        if isinstance(obj, type) and issubclass(obj, Exception) and not issubclass(obj, Warning):
            assert issubclass(obj, pkjwt.PkjwtError), name
    assert issubclass(pkjwt.InvalidClient, pkjwt.OAuthError)
    assert issubclass(pkjwt.InvalidRequest, pkjwt.OAuthError)


def test_version() -> None:
    from importlib.metadata import version

    assert pkjwt.__version__ == version("pkjwt")


def test_profiles_exposed() -> None:
    assert sorted(pkjwt.PROFILES) == ["fapi2", "legacy", "nhs", "rfc7523bis"]
    assert pkjwt.get_profile("nhs") is pkjwt.PROFILES["nhs"]
