"""Fixtures for the local authorization server tests: running servers over loopback, and
header/claims builders (``Srv.header``, ``Srv.claims``, ``DROP``) that, signed with
:mod:`pkjwt.forge`, produce every malformed case.

Each server is started once per session (``local_auth_server`` in a uvicorn thread on a free
loopback port); tests that need special configuration start their own.
"""

from __future__ import annotations

import contextlib
import http.server
import json
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest

from pkjwt.dpop import DPoPKey
from pkjwt.forge import sign
from pkjwt.keys import Key, generate_key, jwks
from pkjwt.profiles import get_profile
from pkjwt.testing import LocalAuthServer, local_auth_server

JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
FORM = "application/x-www-form-urlencoded"
#: RFC 6749 5.2: error_description is limited to %x20-21 / %x23-5B / %x5D-7E
ALLOWED_DESCRIPTION = frozenset(
    chr(c) for c in (0x20, 0x21, *range(0x23, 0x5C), *range(0x5D, 0x7F))
)


class _Drop:
    def __repr__(self) -> str:
        return "DROP"


#: as an override value: remove the member from the header or the claims
DROP: Any = _Drop()


def apply(base: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for name, value in overrides.items():
        if value is DROP:
            out.pop(name, None)
        else:
            out[name] = value
    return out


#: the DPoP key the helpers prove possession of where the profile requires DPoP (fapi2)
_DPOP_KEY = DPoPKey()


@dataclass
class Srv:
    """A running local server plus helpers that build requests for its main client."""

    las: LocalAuthServer
    http: httpx.Client = field(repr=False)

    @property
    def profile(self) -> str:
        return self.las.profile

    @property
    def issuer(self) -> str:
        return self.las.issuer

    @property
    def token_url(self) -> str:
        return self.las.token_url

    @property
    def client_id(self) -> str:
        return self.las.client_id

    @property
    def key(self) -> Key:
        return self.las.key

    @property
    def state(self) -> Any:
        return self.las.running.state

    @property
    def aud(self) -> str:
        return self.token_url if self.profile in ("nhs", "legacy") else self.issuer

    def header(self, **overrides: Any) -> dict[str, Any]:
        base: dict[str, Any] = {"alg": self.key.alg, "kid": self.key.kid}
        if self.profile in ("nhs", "legacy"):
            base["typ"] = "JWT"
        else:
            base["typ"] = "client-authentication+jwt"
        return apply(base, overrides)

    def claims(self, **overrides: Any) -> dict[str, Any]:
        now = int(time.time())
        base: dict[str, Any] = {
            "iss": self.client_id,
            "sub": self.client_id,
            "aud": self.aud,
            "jti": str(uuid.uuid4()),
        }
        if self.profile == "nhs":
            base["exp"] = now + 300
        else:
            base["iat"] = now
            base["exp"] = now + 60
        return apply(base, overrides)

    def assertion(
        self,
        header: Mapping[str, Any] | None = None,
        key: Key | None = None,
        alg: str | None = None,
        **claims: Any,
    ) -> str:
        return sign(key or self.key, self.header(**(header or {})), self.claims(**claims), alg=alg)

    def form(self, assertion: str | None = None, **extra: Any) -> dict[str, str]:
        base: dict[str, Any] = {
            "grant_type": "client_credentials",
            "client_assertion_type": JWT_BEARER,
            "client_assertion": assertion if assertion is not None else self.assertion(),
        }
        return {k: v for k, v in apply(base, extra).items()}

    def post(
        self,
        form: Mapping[str, str] | None = None,
        *,
        content: bytes | str | None = None,
        headers: Mapping[str, Any] | None = None,
        path: str | None = None,
    ) -> httpx.Response:
        """POST to the token endpoint (or ``path``): a form (sent with exactly
        ``Content-Type: application/x-www-form-urlencoded``) or raw ``content``."""
        hdrs: dict[str, Any] = {"Content-Type": FORM}
        if form is not None:
            content = urlencode(form)
        hdrs.update(headers or {})
        url = self.issuer + path if path else self.token_url
        if url == self.token_url and get_profile(self.profile).require_dpop and "DPoP" not in hdrs:
            # fapi2 tokens are DPoP-bound: a valid proof, so only the assertion is under test
            hdrs["DPoP"] = _DPOP_KEY.sign_now("POST", self.token_url)
        return self.http.post(url, content=content, headers=hdrs)

    def token(self, assertion: str | None = None, **extra: Any) -> httpx.Response:
        return self.post(self.form(assertion, **extra))


def start(
    profile: str,
    *,
    key: Key | None = None,
    extra: dict[str, Any] | None = None,
    clients: list[dict[str, Any]] | None = None,
    token_format: str = "opaque",
) -> contextlib.AbstractContextManager[Srv]:
    @contextlib.contextmanager
    def run() -> Iterator[Srv]:
        with (
            local_auth_server(
                profile,
                key=key,
                extra=extra,
                clients=clients or (),
                token_format=token_format,
            ) as las,
            httpx.Client(timeout=30) as client,
        ):
            yield Srv(las, client)

    return run()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# -- keys (session: RSA generation is slow) --------------------------------------------------------


@pytest.fixture(scope="session")
def es256_key() -> Key:
    return generate_key("ES256", kid="test-1")


@pytest.fixture(scope="session")
def ps256_key() -> Key:
    return generate_key("PS256", kid="test-1", size=2048)


@pytest.fixture(scope="session")
def rs512_key() -> Key:
    return generate_key("RS512", kid="test-1", size=2048)


@pytest.fixture(scope="session")
def attacker_es256() -> Key:
    return generate_key("ES256", kid="test-1")


@pytest.fixture(scope="session")
def attacker_rs512() -> Key:
    return generate_key("RS512", kid="test-1", size=2048)


SECRET_CLIENT = {"client_id": "secret-client", "client_secret": "s3cr3t", "scopes": ["api:read"]}


def _generic_clients(key: Key) -> list[dict[str, Any]]:
    public = jwks([key.public()])
    return [
        dict(SECRET_CLIENT),
        {"client_id": "no-cc-client", "jwks": public, "grant_types": []},
        {"client_id": "resource-client", "jwks": public, "resources": ["https://api.example/"]},
    ]


# -- servers (session) ----------------------------------------------------------------------------


@pytest.fixture(scope="session")
def bis(es256_key: Key) -> Iterator[Srv]:
    with start("rfc7523bis", key=es256_key, clients=_generic_clients(es256_key)) as srv:
        yield srv


@pytest.fixture(scope="session")
def fapi(ps256_key: Key) -> Iterator[Srv]:
    with start("fapi2", key=ps256_key, clients=_generic_clients(ps256_key)) as srv:
        yield srv


@pytest.fixture(scope="session")
def legacy(es256_key: Key) -> Iterator[Srv]:
    with start("legacy", key=es256_key, clients=_generic_clients(es256_key)) as srv:
        yield srv


@pytest.fixture(scope="session")
def nhs(rs512_key: Key) -> Iterator[Srv]:
    public = jwks([rs512_key.public()])
    clients = [
        {"client_id": "nhs-no-grant", "jwks": public, "grant_types": []},
        {"client_id": "nhs-unreachable", "jwks_uri": f"http://127.0.0.1:{free_port()}/jwks"},
        {"client_id": "nhs-no-key", "client_secret": "not-a-key"},
    ]
    with start(
        "nhs", key=rs512_key, clients=clients, extra={"allow_private_jwks_uri": True}
    ) as srv:
        yield srv


@pytest.fixture(params=["rfc7523bis", "fapi2"])
def strict(request: pytest.FixtureRequest) -> Srv:
    """The two strict profiles."""
    name = "bis" if request.param == "rfc7523bis" else "fapi"
    srv: Srv = request.getfixturevalue(name)
    return srv


@pytest.fixture(params=["rfc7523bis", "fapi2", "legacy"])
def generic(request: pytest.FixtureRequest) -> Srv:
    """Every non-NHS profile."""
    name = {"rfc7523bis": "bis", "fapi2": "fapi", "legacy": "legacy"}[request.param]
    srv: Srv = request.getfixturevalue(name)
    return srv


# -- a JWKS host whose content and status can change ----------------------------------------------


class JwksHost:
    """Serves ``self.body`` (JSON) with ``self.status`` on 127.0.0.1; counts hits."""

    def __init__(self, body: Mapping[str, Any] | bytes) -> None:
        self.set(body)
        self.status = 200
        self.hits = 0
        host = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                host.hits += 1
                data = host.body
                self.send_response(host.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/jwks.json"
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    def set(self, body: Mapping[str, Any] | bytes) -> None:
        self.body = body if isinstance(body, bytes) else json.dumps(body).encode()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


@pytest.fixture
def jwks_host() -> Iterator[Callable[[Mapping[str, Any] | bytes], JwksHost]]:
    hosts: list[JwksHost] = []

    def make(body: Mapping[str, Any] | bytes) -> JwksHost:
        host = JwksHost(body)
        hosts.append(host)
        return host

    yield make
    for host in hosts:
        host.close()


def error_of(response: httpx.Response) -> tuple[int, str, str]:
    body = response.json()
    return response.status_code, body.get("error", ""), body.get("error_description", "")


from .redis_fixture import redis_url  # noqa: E402, F401  (a real redis-server, session-wide)
