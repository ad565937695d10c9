"""pkjwt's assertions verified by libraries pkjwt does not use (jwcrypto, PyJWT).

pkjwt signs with joserfc + cryptography; here jwcrypto and PyJWT, given only the public JWK,
must accept every algorithm's signature and read the claims pkjwt meant to send.
"""

from __future__ import annotations

import json
import time

import jwt as pyjwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwcrypto import jwk as jwcrypto_jwk
from jwcrypto import jwt as jwcrypto_jwt
from jwcrypto.common import JWException

from pkjwt import AssertionFactory, Key, load_key

ALGS = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"]
ISSUER = "https://as.example.com"
TOKEN_URL = "https://int.api.service.nhs.uk/oauth2/token"
CLIENT_ID = "interop-client"


@pytest.fixture(scope="module")
def keys() -> dict[str, Key]:
    rsa_native = rsa.generate_private_key(65537, 2048)
    natives = {
        "ES256": ec.generate_private_key(ec.SECP256R1()),
        "ES384": ec.generate_private_key(ec.SECP384R1()),
        "ES512": ec.generate_private_key(ec.SECP521R1()),
        "EdDSA": ed25519.Ed25519PrivateKey.generate(),
    }
    out: dict[str, Key] = {}
    for alg in ALGS:
        native = natives.get(alg, rsa_native)
        out[alg] = load_key(native, kid=f"kid-{alg}", alg=alg)
    return out


def _pyjwt_supports(alg: str) -> bool:
    return alg in pyjwt.algorithms.get_default_algorithms()


def _assertion(key: Key) -> str:
    factory = AssertionFactory(key, client_id=CLIENT_ID, profile="rfc7523bis", issuer=ISSUER)
    return factory.make()


@pytest.mark.parametrize("alg", ALGS)
def test_jwcrypto_verifies(keys: dict[str, Key], alg: str) -> None:
    key = keys[alg]
    token = _assertion(key)
    public = jwcrypto_jwk.JWK(**key.public_jwk())
    assert not public.has_private
    verified = jwcrypto_jwt.JWT(
        key=public,
        jwt=token,
        algs=[alg],
        check_claims={"iss": CLIENT_ID, "sub": CLIENT_ID, "aud": ISSUER, "exp": None},
    )
    header = json.loads(verified.header)
    claims = json.loads(verified.claims)
    assert header == {"alg": alg, "typ": "client-authentication+jwt", "kid": f"kid-{alg}"}
    assert claims["exp"] == claims["iat"] + 60
    assert abs(claims["iat"] - time.time()) < 60


@pytest.mark.parametrize("alg", ALGS)
def test_jwcrypto_rejects_tampered(keys: dict[str, Key], alg: str) -> None:
    key = keys[alg]
    h, p, s = _assertion(key).split(".")
    other_payload = _assertion(key).split(".")[1]  # a different jti
    assert other_payload != p
    with pytest.raises(JWException):
        jwcrypto_jwt.JWT(
            key=jwcrypto_jwk.JWK(**key.public_jwk()), jwt=f"{h}.{other_payload}.{s}", algs=[alg]
        )


@pytest.mark.parametrize("alg", ALGS)
def test_pyjwt_verifies(keys: dict[str, Key], alg: str) -> None:
    if not _pyjwt_supports(alg):
        pytest.skip(f"PyJWT has no {alg}")
    key = keys[alg]
    token = _assertion(key)
    public = pyjwt.PyJWK(key.public_jwk(), algorithm=alg)
    claims = pyjwt.decode(
        token,
        key=public,
        algorithms=[alg],
        audience=ISSUER,
        issuer=CLIENT_ID,
        options={"require": ["iss", "sub", "aud", "exp", "iat", "jti"]},
    )
    assert claims["sub"] == CLIENT_ID
    assert pyjwt.get_unverified_header(token)["typ"] == "client-authentication+jwt"
    # the wrong key fails
    wrong = keys["ES256"] if alg != "ES256" else keys["ES384"]
    with pytest.raises(pyjwt.PyJWTError):
        pyjwt.decode(
            token,
            key=pyjwt.PyJWK(wrong.public_jwk(), algorithm=wrong.alg),
            algorithms=[alg],
            audience=ISSUER,
        )


def test_nhs_assertion_with_pyjwt_and_jwcrypto(keys: dict[str, Key]) -> None:
    """The NHS platform's own tooling uses PyJWT: it must read pkjwt's NHS assertion as meant."""
    key = load_key(keys["RS512"], kid="test-1")
    token = AssertionFactory(key, client_id=CLIENT_ID, token_url=TOKEN_URL).make()
    header = pyjwt.get_unverified_header(token)
    assert header == {"alg": "RS512", "typ": "JWT", "kid": "test-1"}
    claims = pyjwt.decode(
        token,
        key=pyjwt.PyJWK(key.public_jwk(), algorithm="RS512"),
        algorithms=["RS512"],
        audience=TOKEN_URL,
        issuer=CLIENT_ID,
        options={"require": ["iss", "sub", "aud", "exp", "jti"]},
    )
    assert set(claims) == {"iss", "sub", "aud", "jti", "exp"}
    assert 0 < claims["exp"] - time.time() <= 300
    verified = jwcrypto_jwt.JWT(
        key=jwcrypto_jwk.JWK(**key.public_jwk()),
        jwt=token,
        algs=["RS512"],
        check_claims={"aud": TOKEN_URL, "iss": CLIENT_ID, "sub": CLIENT_ID},
    )
    assert json.loads(verified.claims) == claims
