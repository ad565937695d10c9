"""``pkjwt rotate`` (issue 13, item 4): the guided, resumable rotation, and a scripted rotation
against a real ``pkjwt serve`` that reads the client's keys from a ``jwks_uri`` (a loopback
static file server, as a team's web host would be), with a client requesting tokens the whole
time: not one request fails across the switch."""

from __future__ import annotations

import functools
import json
import threading
import time
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from pkjwt import TokenClient
from pkjwt.cli.client_options import build_client
from pkjwt.cli.main import cli
from pkjwt.config import resolve_settings
from pkjwt.keys import generate_key, load_jwks, load_key
from pkjwt.rotation import RotationState, next_kid, switch_config
from pkjwt.server.config import parse_config
from pkjwt.server.run import RunningServer, run_in_thread
from publishing import publish

WAITING = 75


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def web(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A static web host for the JWKS: what is in ``site/`` is served at its URL."""
    site = tmp_path / "site"
    site.mkdir()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(site)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_port}/jwks.json", site / "jwks.json"
    httpd.shutdown()


@pytest.fixture
def setup(tmp_path: Path, web, monkeypatch) -> Iterator[dict[str, Any]]:
    url, served = web
    key = generate_key("ES256", kid="int-1")
    key_path = tmp_path / "keys" / "int-1.pem"
    key_path.parent.mkdir()
    key_path.write_bytes(key.private_pem())
    key_path.chmod(0o600)
    publish(served, key)
    config = parse_config(
        {
            "replay_store": "memory://",
            "allow_private_jwks_uri": True,
            "jwks_cache_seconds": [1, 1],
            "clients": [{"client_id": "app", "jwks_uri": url}],
        }
    )
    with run_in_thread(config) as running:
        config_file = tmp_path / "config.toml"
        config_file.write_text(
            "# my clients\n"
            "[sections.int]\n"
            f'issuer = "{running.issuer}"\n'
            'client_id = "app"\n'
            f'key = "{key_path}"\n'
            'kid = "int-1"   # registered at the portal\n'
            'profile = "rfc7523bis"\n'
            f'jwks = "{url}"\n'
            "\n[sections.other]\n"
            'kid = "untouched"\n'
        )
        monkeypatch.setenv("PKJWT_CONFIG", str(config_file))
        yield {
            "server": running,
            "url": url,
            "served": served,
            "key_path": key_path,
            "config": config_file,
        }


def rotate(*args: str) -> Any:
    return CliRunner().invoke(cli, ["rotate", "-s", "int", *args])


class Requester(threading.Thread):
    """A client that rereads its config section for every request, as a fleet of short-lived
    processes does, and asks for a fresh token every few milliseconds."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.results: list[tuple[str, bool, str]] = []
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            settings = resolve_settings({}, "int")
            client: TokenClient = build_client(settings, cache=False)
            try:
                client.fetch_token()
                self.results.append((str(settings.kid), True, ""))
            except Exception as exc:
                self.results.append((str(settings.kid), False, repr(exc)))
            finally:
                client.close()
            time.sleep(0.02)


def test_a_scripted_rotation_fails_no_token_request(setup):
    requester = Requester()
    requester.start()
    try:
        time.sleep(0.3)
        result = rotate(
            "--publish", str(setup["served"]), "--cache-seconds", "2", "--retire-after", "1",
            "--wait", "--json",
        )  # fmt: skip
        time.sleep(0.5)
    finally:
        requester.stop.set()
        requester.join(5)
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["complete"]
    assert list(report["done"]) == ["new_key", "published", "seen", "waited", "switched", "retired"]

    failures = [r for r in requester.results if not r[1]]
    assert failures == []
    kids = [r[0] for r in requester.results]
    assert kids.count("int-1") > 5
    assert kids.count("int-2") > 5  # requests were made on both sides of the switch
    assert kids.index("int-2") > kids.index("int-1")

    assert load_jwks(setup["served"]).kids == ["int-2"]  # the old kid retired
    text = setup["config"].read_text()
    assert 'kid = "int-2"' in text
    assert "int-2.pem" in text
    assert "# my clients" in text
    assert 'kid = "untouched"' in text  # another section is left alone
    new_key = setup["key_path"].with_name("int-2.pem")
    assert new_key.stat().st_mode & 0o777 == 0o600
    assert load_key(new_key).alg == "ES256"


def test_each_run_does_what_is_due_and_says_what_is_next(setup, tmp_path):
    # publish to a file the web host does not serve: the check waits for the user
    aside = tmp_path / "to-upload.json"
    first = rotate("--publish", str(aside), "--cache-seconds", "3600")
    assert first.exit_code == WAITING, first.output
    assert "done     new_key" in first.output
    assert "done     published" in first.output
    assert "does not list kid 'int-2' yet" in first.output
    assert "next: do the above" in first.output
    assert set(load_jwks(aside).kids) == {"int-1", "int-2"}

    # a second run is resumable: the key written before is kept, not regenerated
    new_key = setup["key_path"].with_name("int-2.pem")
    before = new_key.read_bytes()
    again = rotate("--json")
    assert again.exit_code == WAITING
    assert json.loads(again.output)["next"]["step"] == "seen"
    assert new_key.read_bytes() == before

    # the user uploads the file; now it waits for the server's JWKS cache, with a time
    setup["served"].write_text(aside.read_text())
    timed = rotate("--json")
    assert timed.exit_code == WAITING
    pending = json.loads(timed.output)["next"]
    assert pending["step"] == "waited"
    assert pending["ready_at"]
    assert 'kid = "int-1"' in setup["config"].read_text()  # not switched before the wait

    # stop after a step on request
    state_path = setup["key_path"].with_name("int-1.pem.rotation.json")
    state = RotationState.load(state_path)
    state.done["seen"] -= 3600  # as if the hour had passed
    state.save(state_path)
    switched = rotate("--until", "switched")
    assert switched.exit_code == 0, switched.output
    assert "stopped after --until" in switched.output
    assert 'kid = "int-2"' in setup["config"].read_text()


def test_a_key_set_outside_a_config_file_is_switched_by_hand(tmp_path, monkeypatch):
    key = generate_key("ES256", kid="ci-7")
    key_path = tmp_path / "ci-7.pem"
    key_path.write_bytes(key.private_pem())
    key_path.chmod(0o600)
    monkeypatch.setenv("PKJWT_CONFIG", str(tmp_path / "absent.toml"))
    monkeypatch.setenv("PKJWT_KEY", str(key_path))
    monkeypatch.setenv("PKJWT_KID", "ci-7")
    args = ["rotate", "--cache-seconds", "0", "--retire-after", "0"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == WAITING, result.output
    assert "switch by hand" in result.output
    assert "ci-8" in result.output
    done = CliRunner().invoke(cli, [*args, "--switched"])
    assert done.exit_code == 0, done.output
    assert "complete" in done.output
    assert load_jwks(tmp_path / "jwks.json").kids == ["ci-8"]


def test_refusals_are_clear(tmp_path, monkeypatch):
    monkeypatch.setenv("PKJWT_CONFIG", str(tmp_path / "absent.toml"))
    monkeypatch.setenv("PKJWT_KEY", "pkcs11:token=t;object=o")
    result = CliRunner().invoke(cli, ["rotate"])
    assert result.exit_code == 2
    assert "needs the section's key as a file" in result.output
    key_path = tmp_path / "k.pem"
    key_path.write_bytes(generate_key("ES256").private_pem())
    monkeypatch.setenv("PKJWT_KEY", str(key_path))
    result = CliRunner().invoke(cli, ["rotate"])
    assert result.exit_code == 2
    assert "no kid" in result.output
    (tmp_path / "k.pem.rotation.json").write_text("{not json")
    monkeypatch.setenv("PKJWT_KID", "k-1")
    result = CliRunner().invoke(cli, ["rotate"])
    assert result.exit_code == 2
    assert "unreadable" in result.output


@pytest.mark.parametrize(
    ("kid", "after"),
    [("int-1", "int-2"), ("test-9", "test-10"), ("2026", "2027"), ("prod", "prod-2")],
)
def test_next_kid(kid, after):
    assert next_kid(kid) == after


def test_switch_config_adds_a_missing_kid_line_and_keeps_the_rest(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('[default]\ntimeout = 5\n\n[sections.a]\nkey = "old.pem"\n\n[sections.b]\n')
    path.chmod(0o600)
    switch_config(path, "a", "/keys/new.pem", "new-1")
    assert path.read_text() == (
        '[default]\ntimeout = 5\n\n[sections.a]\nkey = "/keys/new.pem"\n\nkid = "new-1"\n'
        "[sections.b]\n"
    )
    assert path.stat().st_mode & 0o777 == 0o600


def test_a_rotation_keeps_other_published_kids(setup, tmp_path):
    other = generate_key("ES256", kid="team-b-1")
    publish_to = tmp_path / "shared.json"
    publish(publish_to, other)
    rotate("--publish", str(publish_to), "--until", "published")
    assert set(load_jwks(publish_to).kids) == {"team-b-1", "int-1", "int-2"}


def test_the_server_rotation_is_seen_by_a_running_server(setup):
    # sanity of the harness: the server fetched the JWKS from the loopback web host
    running: RunningServer = setup["server"]
    with build_client(resolve_settings({}, "int"), cache=False) as client:
        assert client.fetch_token().access_token
    assert running.state.requests[-1].ok


def test_a_registered_jwks_not_there_yet_is_waited_for_not_an_error(setup, tmp_path):
    result = rotate("--registered", str(tmp_path / "not-yet.json"), "--json")
    assert result.exit_code == WAITING, result.output
    pending = json.loads(result.output)["next"]
    assert pending["step"] == "seen"
    assert "No such file" in pending["reason"]
