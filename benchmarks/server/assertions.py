"""What the load is made of: unique pre-signed ES256 client assertions, as request bodies."""

from __future__ import annotations

import time
from pathlib import Path
from urllib.parse import quote

import pkjwt
from pkjwt.keys import Key

from ..loadgen import write_bodies

CLIENT_ID = "bench-client-0123456789abcdef"
KID = "bench-es256-1"
ASSERTION_LIFETIME = 300

JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
BODY_PREFIX = (
    "grant_type=client_credentials&client_assertion_type="
    + quote(JWT_BEARER, safe="")
    + "&client_assertion="
)


class Assertions:
    """Signs unique ES256 assertions for one server (aud = its issuer)."""

    def __init__(self, key: Key, issuer: str) -> None:
        self.factory = pkjwt.AssertionFactory(
            key,
            client_id=CLIENT_ID,
            profile="rfc7523bis",
            issuer=issuer,
            lifetime=ASSERTION_LIFETIME,
        )

    def body(self) -> str:
        return BODY_PREFIX + self.factory.make()

    def write_pool(self, path: Path, count: int) -> float:
        """Write ``count`` fresh bodies; return the seconds it took."""
        t0 = time.perf_counter()
        write_bodies(path, (self.body() for _ in range(count)))
        return time.perf_counter() - t0
