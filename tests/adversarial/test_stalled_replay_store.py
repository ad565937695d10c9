"""Attack (or a bad day): the replay store stops answering, a Redis paused for 15 s or a shared
SQLite file whose writer lock another process holds (issue 10, item 2). A token request waits
at most the deadline and answers 503; every other endpoint, /health included, keeps answering
meanwhile, and /health shows the store failing; when the store is back, so is the server."""

from __future__ import annotations

import concurrent.futures
import os
import signal
import sqlite3
from pathlib import Path

import httpx

from pkjwt.keys import Key
from server.conftest import error_of, start
from server.redis_fixture import redis_server


def test_a_paused_redis_costs_one_deadline_and_nothing_else(es256_key: Key, tmp_path: Path) -> None:
    with redis_server(tmp_path) as (proc, url):
        extra = {"replay_store": url, "replay_timeout": 0.3}
        with start("rfc7523bis", key=es256_key, extra=extra) as srv:
            assert srv.token().status_code == 200
            os.kill(proc.pid, signal.SIGSTOP)
            try:
                status, error, _ = error_of(srv.token())
                assert (status, error) == (503, "temporarily_unavailable")
                health = srv.http.get(srv.issuer + "/health", timeout=2)
                assert health.status_code == 503
                assert health.json()["replay_store"]["state"] == "failing"
                assert "no answer within 0.3 s" in health.json()["replay_store"]["last_error"]
            finally:
                os.kill(proc.pid, signal.SIGCONT)
            assert srv.token().status_code == 200
            assert srv.http.get(srv.issuer + "/health").json()["replay_store"]["state"] == "ok"


def test_a_held_sqlite_writer_lock_stalls_no_other_endpoint(es256_key: Key, tmp_path: Path) -> None:
    db = tmp_path / "replay.sqlite3"
    extra = {"replay_store": f"sqlite:///{db}?commit_interval=0", "replay_timeout": 3.0}
    with start("rfc7523bis", key=es256_key, extra=extra) as srv:
        assert srv.token().status_code == 200
        other = sqlite3.connect(db, isolation_level=None)  # another process's writer
        other.execute("BEGIN IMMEDIATE")
        try:
            with concurrent.futures.ThreadPoolExecutor(1) as pool:
                pending = pool.submit(srv.token)
                # while that request waits on the lock, the server answers everything else
                for path in ("/health", "/.well-known/oauth-authorization-server", "/jwks"):
                    response = httpx.get(srv.issuer + path, timeout=2)
                    assert response.status_code in (200, 503), (path, response.status_code)
                assert not pending.done()
                assert error_of(pending.result(timeout=10))[:2] == (503, "temporarily_unavailable")
        finally:
            other.execute("ROLLBACK")
            other.close()
        assert srv.token().status_code == 200
