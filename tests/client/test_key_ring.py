"""A key ring rotating against a real ``pkjwt serve`` (in-process, a client registered by
``jwks_file``, which the server re-reads when it changes): the switch at a set time, the one
retry with the previous key when the server does not know the new one yet, and no retry
outside the grace period (issue 13, item 4)."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from pkjwt import InvalidClient, KeyRing, RingKey, TokenClient
from pkjwt.errors import ConfigError
from pkjwt.keys import Key, generate_key
from pkjwt.server.config import parse_config
from pkjwt.server.run import run_in_thread
from publishing import publish

ISSUER = "http://pkjwt.test"


@pytest.fixture(scope="module")
def old() -> Key:
    return generate_key("ES256", kid="int-1")


@pytest.fixture(scope="module")
def new() -> Key:
    return generate_key("ES256", kid="int-2")


class Clock:
    def __init__(self) -> None:
        self.now = datetime.now(UTC).timestamp()

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def server(tmp_path: Path, old: Key):
    path = tmp_path / "jwks.json"
    publish(path, old)
    config = parse_config(
        {
            "issuer": ISSUER,
            "replay_store": "memory://",
            "jwks_file_check_seconds": 0,
            "clients": [{"client_id": "c1", "jwks_file": str(path)}],
        }
    )
    with run_in_thread(config) as running:
        yield running, path


def _client(server, ring: KeyRing) -> TokenClient:
    return TokenClient(
        token_url=server[0].base_url + "/oauth2/token",
        audience=ISSUER,
        client_id="c1",
        key=ring,
        profile="rfc7523bis",
        store=None,
    )


def _kid_sent(server) -> str:
    return str(server[0].state.log.requests[-1].header["kid"])


def test_the_ring_switches_at_the_set_time(server, old: Key, new: Key) -> None:
    clock = Clock()
    switch = datetime.fromtimestamp(clock.now, UTC) + timedelta(hours=1)
    ring = KeyRing(RingKey(old), RingKey(new, active_from=switch), clock=clock)
    assert ring.active_kid == "int-1"
    publish(server[1], old, new)  # published ahead of the switch, as a rotation does
    client = _client(server, ring)
    assert client.get_token(force=True).access_token
    assert _kid_sent(server) == "int-1"
    clock.now += 3601
    assert ring.active_kid == "int-2"
    assert client.get_token(force=True).access_token
    assert _kid_sent(server) == "int-2"


def test_a_refusal_right_after_the_switch_is_retried_once_with_the_previous_key(
    server, old: Key, new: Key, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, "pkjwt")
    clock = Clock()
    ring = KeyRing(RingKey(old), RingKey(new), clock=clock)  # switched now; JWKS not updated
    client = _client(server, ring)
    token = client.get_token()
    assert token.access_token  # no failed token request: the old key stood in
    assert _kid_sent(server) == "int-1"
    said = [r.getMessage() for r in caplog.records if "refused key int-2" in r.getMessage()]
    assert len(said) == 1
    assert "retrying once with int-1" in said[0]

    publish(server[1], old, new)  # the JWKS catches up: the new key is used
    assert client.get_token(force=True).access_token
    assert _kid_sent(server) == "int-2"


def test_outside_the_grace_period_a_refusal_is_not_retried(server, old: Key, new: Key) -> None:
    clock = Clock()
    ring = KeyRing(RingKey(old), RingKey(new), grace=60, clock=clock)
    clock.now += 61
    with pytest.raises(InvalidClient):
        _client(server, ring).get_token()
    assert _kid_sent(server) == "int-2"  # the old key was not tried blindly


def test_a_ring_needs_distinct_kids_and_aware_times(old: Key) -> None:
    with pytest.raises(ConfigError, match="kid of its own"):
        KeyRing(RingKey(old), RingKey(old))
    with pytest.raises(ConfigError, match="time zone"):
        KeyRing(RingKey(old), RingKey(generate_key("ES256", kid="x"), active_from=datetime.now()))
    with pytest.raises(ConfigError, match="at least one"):
        KeyRing()


def test_the_ring_publishes_every_key_and_hides_them_in_its_repr(old: Key, new: Key) -> None:
    ring = KeyRing(RingKey(old), RingKey(new))
    published = ring.public_keys()
    assert published is not None
    assert sorted(published.kids) == ["int-1", "int-2"]
    assert repr(ring) == "<KeyRing [int-1, int-2] active=int-2>"
