"""``GET /metrics``: the counts match what was sent, labels stay in their fixed sets, the replay
store's health shows, and collection can be switched off."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from pkjwt.errors import ReplayStoreUnavailable
from pkjwt.keys import Key
from pkjwt.server.metrics import BUCKETS, CONTENT_TYPE
from pkjwt.server.replay import MemoryReplayStore
from pkjwt.server.run import RunningServer, run_in_thread

from .conftest import FORM
from .observed import assertion, config, post_assertion, requests_total, samples


@pytest.fixture
def server(es256_key: Key) -> Iterator[RunningServer]:
    with run_in_thread(config(es256_key), record=0) as running:
        yield running


def _scrape(http: httpx.Client, issuer: str) -> str:
    response = http.get(issuer + "/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"] == CONTENT_TYPE
    return response.text


def test_metrics_count_a_mixed_run_exactly(server: RunningServer, es256_key: Key) -> None:
    issuer = server.issuer
    with httpx.Client(timeout=10) as http:
        good = [assertion(es256_key, issuer) for _ in range(3)]
        for signed in good:
            assert post_assertion(http, issuer, signed).status_code == 200
        for _ in range(2):  # R14: aud names another server
            wrong = assertion(es256_key, issuer, aud="https://elsewhere.example")
            assert post_assertion(http, issuer, wrong).status_code == 400
        assert post_assertion(http, issuer, good[0]).status_code == 400  # R19: a replay
        malformed = http.post(
            issuer + "/oauth2/token", content=b"%%%\xff", headers={"content-type": FORM}
        )
        assert malformed.status_code == 400  # R1: not a form
        unsupported = http.post(issuer + "/oauth2/token", data={"grant_type": "password"})
        assert unsupported.status_code == 400  # R3
        assert http.get(issuer + "/oauth2/token").status_code == 405
        assert http.get(issuer + "/health").status_code == 200
        assert http.get(issuer + "/no/such/path?client_id=<evil>").status_code == 404
        text = _scrape(http, issuer)

    counts = requests_total(text)
    assert counts == {
        ("token", "ok", "", ""): 3,
        ("token", "refused", "R14", "invalid_client"): 2,
        ("token", "refused", "R19", "invalid_client"): 1,
        ("token", "refused", "R1", "invalid_request"): 1,
        ("token", "refused", "R3", "unsupported_grant_type"): 1,
        ("token", "refused", "R1", ""): 1,  # 405: only POST
        ("health", "ok", "", ""): 1,
        ("other", "refused", "", ""): 1,
    }
    assert "evil" not in text
    assert "elsewhere" not in text
    found = list(samples(text))
    token_buckets = [
        (labels["le"], value)
        for name, labels, value in found
        if name == "pkjwt_server_request_duration_seconds_bucket" and labels["endpoint"] == "token"
    ]
    assert [le for le, _ in token_buckets] == [f"{b:g}" for b in BUCKETS] + ["+Inf"]
    values = [value for _, value in token_buckets]
    assert values == sorted(values)  # cumulative
    count = {
        labels["endpoint"]: value
        for name, labels, value in found
        if name == "pkjwt_server_request_duration_seconds_count"
    }
    assert count["token"] == values[-1] == 9
    gauges = {name: value for name, labels, value in found if not labels}
    assert gauges["pkjwt_server_replay_store_up"] == 1
    assert gauges["pkjwt_server_replay_store_failures_total"] == 0
    assert gauges["pkjwt_server_replay_store_entries"] == 3  # the three issued jtis
    assert "pkjwt_server_replay_store_last_failure_timestamp_seconds" not in gauges
    assert gauges["process_cpu_seconds_total"] > 0
    [(_, info, _)] = [s for s in found if s[0] == "pkjwt_server_info"]
    assert info["profile"] == "rfc7523bis"
    assert info["replay_store"] == "memory"


class _DownStore(MemoryReplayStore):
    """A store that cannot record (as Redis gone away)."""

    def add(self, client_id: str, jti: str, expires_at: float) -> bool:
        raise ReplayStoreUnavailable("replay store unreachable")

    def __len__(self) -> int:
        raise OSError("cannot count")


def test_metrics_show_a_failing_replay_store(es256_key: Key) -> None:
    with (
        run_in_thread(config(es256_key), replay=_DownStore()) as server,
        httpx.Client(timeout=10) as http,
    ):
        issuer = server.issuer
        response = post_assertion(http, issuer, assertion(es256_key, issuer))
        assert response.status_code == 503
        text = _scrape(http, issuer)
    gauges = {name: value for name, labels, value in samples(text) if not labels}
    assert gauges["pkjwt_server_replay_store_up"] == 0
    assert gauges["pkjwt_server_replay_store_failures_total"] == 1
    assert gauges["pkjwt_server_replay_store_last_failure_timestamp_seconds"] > 0
    assert "pkjwt_server_replay_store_entries" not in gauges  # it could not say
    assert requests_total(text)[("token", "unavailable", "R19", "temporarily_unavailable")] == 1


@pytest.mark.parametrize("how", ["config", "argument"])
def test_metrics_off_serves_no_metrics(es256_key: Key, how: str) -> None:
    cfg = config(es256_key, metrics=False) if how == "config" else config(es256_key)
    options = {"metrics": False} if how == "argument" else {}
    with run_in_thread(cfg, **options) as server, httpx.Client(timeout=10) as http:
        assert server.app.metrics is None
        post_assertion(http, server.issuer, assertion(es256_key, server.issuer))
        assert http.get(server.issuer + "/metrics").status_code == 404
        assert "/metrics" not in http.get(server.issuer + "/openapi.json").json()["paths"]
