"""The client on a bad day (issue 10, items 12-14): an outage answered from memory instead of a
new burst of retries per caller, a Retry-After of zero or less that is not a licence to hammer,
a wall clock stepped back that must not keep an expired token in service."""

from __future__ import annotations

import time

import pytest

from pkjwt import TokenManager
from pkjwt.errors import ServerError, TemporarilyUnavailable


def test_an_outage_is_remembered_briefly_not_retried_per_call(server, make_client, clock):
    server.script = [server.error(503, "temporarily_unavailable", "down")] * 100
    client = make_client(profile="legacy")
    with pytest.raises(TemporarilyUnavailable):
        client.get_token()
    sent = server.token_count
    assert sent == 3  # one burst: the retry policy's attempts
    for _ in range(10):  # ten more calls within the cooldown: no request at all
        with pytest.raises(TemporarilyUnavailable) as err:
            client.get_token()
        assert "last fetch failed" in (err.value.hint or "")
    assert server.token_count == sent
    clock.advance(6)  # past the 5 s cooldown: one new burst
    with pytest.raises(TemporarilyUnavailable):
        client.get_token()
    assert server.token_count == sent + 3


def test_a_refusal_is_not_remembered(server, make_client):
    server.script = [server.error(400, "invalid_client", "no")] + [server.ok()] * 3
    client = make_client(profile="legacy")
    with pytest.raises(Exception):  # noqa: B017, PT011
        client.get_token()
    assert client.get_token().access_token == server.issued[0]  # fixed config, next call works


@pytest.mark.parametrize("retry_after", ["0", "-5"])
def test_a_zero_or_negative_retry_after_still_backs_off(server, make_client, sleeps, retry_after):
    server.script = [
        server.error(503, "server_error", "busy", headers={"Retry-After": retry_after})
    ] * 3
    with pytest.raises(ServerError):
        make_client(profile="legacy").get_token()
    assert len(sleeps.calls) == 2
    assert all(s >= 0 for s in sleeps.calls)
    assert sum(sleeps.calls) > 0  # jittered backoff, not three requests at once


def test_a_wall_clock_stepped_back_does_not_extend_a_token(server, make_client):
    """The cache's schedule runs on a monotonic clock: the token expires when its lifetime has
    passed, whatever the wall clock says."""
    wall = [time.time()]
    schedule = [0.0]
    manager = TokenManager(clock=lambda: wall[0], schedule=lambda: schedule[0])
    server.script = [server.ok(expires_in=60)] * 3
    client = make_client(profile="legacy", manager=manager, clock=lambda: wall[0])
    first = client.get_token()
    wall[0] -= 3600  # the wall clock jumps back an hour
    schedule[0] += 61  # while 61 s really pass
    second = client.get_token()
    assert second.access_token != first.access_token
    assert server.token_count == 2
