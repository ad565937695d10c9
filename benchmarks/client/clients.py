"""The clients under test, configured as their documentation shows, and the run sizes."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import httpx2
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

import pkjwt
from pkjwt.integrations.httpx2 import Httpx2Auth

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from authlib.integrations.httpx_client import OAuth2Client
    from authlib.oauth2.rfc7523 import PrivateKeyJWT

KEY_BITS = 4096
KID = "test-1"
CLIENT_ID = "bench-api-key-0123456789abcdef"
#: the token server's answer time in (c) and (d), to imitate a real server
TOKEN_DELAY = 0.05


@dataclass(frozen=True, slots=True)
class Params:
    cold_rounds: int
    cold_fast: int  # pkjwt fetches per round
    cold_slow: int  # Authlib fetches per round
    mock_rounds: int
    mock_per_round: int
    loop_rounds: int
    loop_per_round: int
    storm_trials: int
    latency_segments: int
    segment_seconds: float


FULL = Params(8, 10, 2, 20, 200, 10, 100, 3, 4, 6.0)
QUICK = Params(3, 5, 1, 5, 100, 4, 50, 1, 1, 3.5)


class Keys:
    """One RSA-4096 key: PEM text for Authlib (as its docs), a pkjwt Key loaded once."""

    def __init__(self) -> None:
        native = rsa.generate_private_key(public_exponent=65537, key_size=KEY_BITS)
        self.pem_text = native.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode("ascii")
        self.key = pkjwt.load_key(self.pem_text, kid=KID)


def pk_client(keys: Keys, token_url: str, **kw: Any) -> pkjwt.TokenClient:
    return pkjwt.TokenClient(
        token_url=token_url, client_id=CLIENT_ID, key=keys.key, profile="nhs", **kw
    )


def al_client(keys: Keys, token_url: str, cls: Any = OAuth2Client, **kw: Any) -> Any:
    """Authlib as documented: PEM text as client secret, PrivateKeyJWT(token_url, alg)."""
    return cls(
        CLIENT_ID,
        keys.pem_text,
        token_endpoint_auth_method=PrivateKeyJWT(token_url, alg="RS512", headers={"kid": KID}),
        token_endpoint=token_url,
        grant_type="client_credentials",
        **kw,
    )


def al_fetch(client: Any, token_url: str) -> Any:
    return client.fetch_token(token_url, grant_type="client_credentials")


def pk_http(tc: pkjwt.TokenClient, lib: str, *, asynchronous: bool = False) -> Any:
    """An HTTP client with pkjwt's auth: ``pkjwt`` = ``HttpxAuth`` on httpx, ``pkjwt/httpx2`` =
    ``Httpx2Auth`` on httpx2 (Authlib's HTTP stack)."""
    if lib == "pkjwt":
        cls: Any = httpx.AsyncClient if asynchronous else httpx.Client
        return cls(auth=pkjwt.HttpxAuth(tc), timeout=60)
    cls = httpx2.AsyncClient if asynchronous else httpx2.Client
    return cls(auth=Httpx2Auth(tc), timeout=60)


def auth_step(auth: Any, request: Any) -> Callable[[], Any]:
    """The auth step alone: an ``Auth``'s sync flow up to the request it yields (what runs
    between building a request and sending it)."""

    def step() -> Any:
        flow = auth.sync_auth_flow(request)
        sent = next(flow)
        flow.close()
        return sent

    return step


def verdict(ok: bool) -> str:
    return "MET" if ok else "NOT MET"
