"""Attack: fill the server's replay memory without ever authenticating (issue 10, item 1). In
the NHS dialect the jti is recorded before the signature is checked, as the platform does, and
was kept 30 days for any sub: 20,000 unsigned requests for a client that does not exist added
182 MB of memory and 218 MB of SQLite.

Now: a sub that names no client records nothing; a known client's assertion whose signature did
not verify is remembered only until it expires (after that it fails as expired before its jti
is looked at, so the platform's observable order holds); every recorded field is bounded
(sub/iss and jti at most 256 characters, the assertion at most 16 kB)."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import pytest

from pkjwt import forge
from pkjwt.keys import Key
from pkjwt.server.replay import SqliteReplayStore
from server.conftest import Srv, start

REQUESTS = 500  # bounded; the measured attack sent 20,000


def _unsigned(srv: Srv, sub: str, jti: str) -> str:
    now = int(time.time())
    header = {"alg": "RS512", "typ": "JWT", "kid": "test-1"}
    claims = {"iss": sub, "sub": sub, "aud": srv.token_url, "jti": jti, "exp": now + 300}
    return forge.unsigned(header, claims, b"\x00" * 256)


@pytest.fixture
def nhs_sqlite(rs512_key: Key, tmp_path: Path) -> Srv:
    db = tmp_path / "replay.sqlite3"
    with start("nhs", key=rs512_key, extra={"replay_store": f"sqlite:///{db}"}) as srv:
        yield srv


def test_a_client_that_does_not_exist_makes_the_server_remember_nothing(nhs_sqlite: Srv) -> None:
    store = nhs_sqlite.state.replay
    before = len(store)
    for i in range(REQUESTS):
        sub = f"nobody-{i}-" + "x" * 200
        response = nhs_sqlite.token(_unsigned(nhs_sqlite, sub, "j" * 256))
        assert response.status_code == 401
    assert len(store) == before


def test_forged_assertions_for_a_real_client_are_forgotten_when_they_expire(
    nhs_sqlite: Srv,
) -> None:
    store = nhs_sqlite.state.replay
    assert isinstance(store, SqliteReplayStore)
    for _ in range(200):
        response = nhs_sqlite.token(_unsigned(nhs_sqlite, nhs_sqlite.client_id, str(uuid.uuid4())))
        assert response.status_code == 401  # the signature; its jti is recorded first
    horizon = time.time() + 300 + 10 + 5 + 1  # (the index rounds expiries up to the second)
    assert max(store._seen.expiries(time.time())) <= horizon  # not 30 days
    # a signed, accepted assertion is still remembered for the platform's 30 days
    assert nhs_sqlite.token().status_code == 200
    assert max(store._seen.expiries(time.time())) > time.time() + 29 * 24 * 3600


def test_oversized_identifiers_are_refused_before_anything_is_recorded(nhs_sqlite: Srv) -> None:
    store = nhs_sqlite.state.replay
    before = len(store)
    long_sub = "a" * 300
    response = nhs_sqlite.token(_unsigned(nhs_sqlite, long_sub, "j"))
    assert response.status_code == 400
    long_jti = nhs_sqlite.assertion(jti="j" * 300)
    assert nhs_sqlite.token(long_jti).status_code == 400
    assert len(store) == before
