"""Test support: a real local authorization server on a free port, with a generated client.

    from pkjwt.testing import local_auth_server

    def test_my_client():
        with local_auth_server(profile="nhs") as server:
            token = my_code_that_gets_a_token(server.token_url, server.client_id, server.key)
            assert server.last_request.ok
            assert server.last_request.header["typ"] == "JWT"

With pytest, the ``pkjwt_server`` fixture (registered automatically when pkjwt is installed,
by :mod:`pkjwt.pytest_plugin`) yields the same object for the ``nhs`` profile. The server needs
the ``server`` extra (``pip install 'pkjwt[server]'``); nothing here loads it before it is used.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .client import TokenClient
from .keys import Key, generate_key, jwks
from .profiles import get_profile
from .server.config import ServerConfig, parse_config

if TYPE_CHECKING:
    from .server.recording import RecordedRequest
    from .server.run import RunningServer

__all__ = ["LocalAuthServer", "local_auth_server"]


@dataclass
class LocalAuthServer:
    """A running server plus one registered client whose private key you hold."""

    running: RunningServer
    client_id: str
    key: Key
    profile: str

    @property
    def issuer(self) -> str:
        """The server's issuer identifier (its base URL)."""
        return self.running.issuer

    @property
    def token_url(self) -> str:
        """The token endpoint's URL."""
        return self.running.token_url

    @property
    def config(self) -> ServerConfig:
        """The server's configuration."""
        return self.running.state.config

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request the server received, oldest first, with each rule's verdict."""
        return list(self.running.state.requests)

    @property
    def last_request(self) -> RecordedRequest:
        """The most recent request the server received (AssertionError when there is none)."""
        if not self.running.state.requests:
            raise AssertionError("the local server has received no request yet")
        return self.running.state.requests[-1]

    def token_client(self, **options: Any) -> TokenClient:
        """A :class:`TokenClient` configured for this server and client."""
        settings: dict[str, Any] = {
            "client_id": self.client_id,
            "key": self.key,
            "profile": self.profile,
        }
        if get_profile(self.profile).audience.value == "issuer":
            settings["issuer"] = self.issuer
        else:
            settings["token_url"] = self.token_url
        settings.update(options)
        return TokenClient(**settings)


@contextlib.contextmanager
def local_auth_server(
    profile: str = "nhs",
    *,
    client_id: str = "test-client",
    key: Key | None = None,
    scopes: Sequence[str] = ("api:read", "api:write"),
    token_format: str = "opaque",  # noqa: S107 - a format name, not a secret
    extra: dict[str, Any] | None = None,
    clients: Sequence[dict[str, Any]] = (),
) -> Iterator[LocalAuthServer]:
    """Start ``pkjwt serve`` in-process on a free loopback port with one generated client.

    The key defaults to RSA-2048 RS512 for ``nhs`` (fast to generate; the server accepts it)
    and ES256 otherwise. ``extra`` adds server settings; ``clients`` registers more clients.
    """
    prof = get_profile(profile)
    if key is None:
        key = (
            generate_key("RS512", kid="test-1", size=2048)
            if prof.preferred_alg == "RS512"
            else generate_key("PS256" if profile == "fapi2" else "ES256", kid="test-1")
        )
    data: dict[str, Any] = {
        "profile": profile,
        "token_format": token_format,
        "replay_store": "memory://",
        "clients": [
            {"client_id": client_id, "jwks": jwks([key.public()]), "scopes": list(scopes)},
            *clients,
        ],
    }
    data.update(extra or {})
    config = parse_config(data, source="pkjwt.testing")
    from .server.run import run_in_thread  # the ASGI stack, loaded only now

    with run_in_thread(config) as running:
        yield LocalAuthServer(running, client_id, key, profile)
