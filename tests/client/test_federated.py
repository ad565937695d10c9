"""Federated assertions (issue 13, item 2): no client key at all; the client sends an identity
token another issuer gave the workload, read from a file (re-read when replaced, as kubelet
does), a variable, a program, or a loopback stand-in for the GitHub Actions OIDC endpoint.
The tokens are minted with PyJWT (an issuer we did not write) and accepted by a real
``pkjwt serve`` that trusts the issuer's JWKS."""

from __future__ import annotations

import json
import os
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jwt as pyjwt
import pytest
from click.testing import CliRunner

from pkjwt import TokenClient
from pkjwt.assertion_sources import (
    EnvSource,
    ExecSource,
    FederatedAssertion,
    FileSource,
    GithubActionsSource,
    parse_assertion_source,
)
from pkjwt.cli.main import cli
from pkjwt.errors import AssertionSourceError, ConfigError, CredentialsRejected
from pkjwt.flow import run
from pkjwt.keys import Key, generate_key
from pkjwt.server.config import parse_config
from pkjwt.server.run import RunningServer, run_in_thread
from publishing import publish

CLUSTER = "https://kubernetes.default.svc.cluster.local"
WORKLOAD = "system:serviceaccount:payments:billing"
AUDIENCE = "pkjwt-test"


@pytest.fixture(scope="module")
def issuer_key() -> Key:
    return generate_key("RS256", kid="cluster-1")


def mint(key: Key, **claims: Any) -> str:
    """An identity token as a Kubernetes API server would issue it (PyJWT, RS256)."""
    now = int(time.time())
    body = {
        "iss": CLUSTER,
        "sub": WORKLOAD,
        "aud": [AUDIENCE],
        "iat": now,
        "nbf": now,
        "exp": now + 3600,
        "jti": str(uuid.uuid4()),
    }
    body.update(claims)
    body = {k: v for k, v in body.items() if v is not None}
    pem = key.private_pem()
    return pyjwt.encode(body, pem, algorithm="RS256", headers={"kid": key.kid})


@pytest.fixture
def server(tmp_path: Path, issuer_key: Key) -> Iterator[RunningServer]:
    path = tmp_path / "cluster-jwks.json"
    publish(path, issuer_key)
    config = parse_config(
        {
            "replay_store": "memory://",
            "jwks_file_check_seconds": 0,
            "clients": [
                {
                    "client_id": "billing",
                    "federated": [
                        {
                            "issuer": CLUSTER,
                            "subject": WORKLOAD,
                            "audience": AUDIENCE,
                            "jwks_file": str(path),
                            "max_lifetime": 7200,
                        }
                    ],
                }
            ],
        }
    )
    with run_in_thread(config) as running:
        yield running


def client_for(server: RunningServer, source: Any, **options: Any) -> TokenClient:
    return TokenClient(
        token_url=server.token_url,
        client_id="billing",
        assertion_source=source,
        profile="rfc7523bis",
        **options,
    )


def write_token(path: Path, token: str) -> None:
    aside = path.with_name(path.name + ".new")
    aside.write_text(token)
    os.replace(aside, path)


# -- the file source against pkjwt serve -----------------------------------------------------


def test_a_projected_token_file_is_reread_when_replaced(server, issuer_key, tmp_path):
    path = tmp_path / "token"
    write_token(path, mint(issuer_key))
    with client_for(server, f"file:{path}") as client:
        assert client.fetch_token().access_token
        first = server.state.requests[-1]
        assert first.ok
        assert first.claims["sub"] == WORKLOAD

        # the file is replaced mid-run by one the server refuses: the next request sent it
        write_token(path, mint(issuer_key, aud=["another-audience"]))
        with pytest.raises(CredentialsRejected) as refused:
            client.fetch_token()
        assert "aud" in str(refused.value)
        assert server.state.requests[-1].claims["aud"] == ["another-audience"]

        # and by a good one again: accepted, no restart, no new client
        fresh = mint(issuer_key)
        write_token(path, fresh)
        assert client.fetch_token().access_token
        assert (
            server.state.requests[-1].claims["jti"]
            == pyjwt.decode(fresh, options={"verify_signature": False})["jti"]
        )


def test_a_kubernetes_style_symlink_swap_is_seen(issuer_key, tmp_path):
    # kubelet writes ..2026_11_29_X/token, then swaps the ..data link: the path stays the same
    first, second = tmp_path / "v1", tmp_path / "v2"
    first.mkdir()
    second.mkdir()
    (first / "token").write_text(mint(issuer_key, jti="one"))
    (second / "token").write_text(mint(issuer_key, jti="two"))
    data = tmp_path / "..data"
    data.symlink_to(first)
    (tmp_path / "token").symlink_to(data / "token")
    source = FileSource(tmp_path / "token")
    assert _claims(run(source.assertion(time.time()), _do))["jti"] == "one"
    tmp_link = tmp_path / "..data_tmp"
    tmp_link.symlink_to(second)
    os.replace(tmp_link, data)
    assert _claims(run(source.assertion(time.time()), _do))["jti"] == "two"


def test_the_same_token_is_presented_again_while_valid(server, issuer_key, tmp_path):
    # a federated token is the workload's credential until it expires: no replay check
    path = tmp_path / "token"
    write_token(path, mint(issuer_key))
    with client_for(server, f"file:{path}") as client:
        client.fetch_token()
        client.fetch_token()
    assert [r.ok for r in list(server.state.requests)[-2:]] == [True, True]
    assert server.state.requests[-1].claims["jti"] == server.state.requests[-2].claims["jti"]


def test_an_expired_token_in_the_file_is_not_sent(server, issuer_key, tmp_path):
    path = tmp_path / "token"
    write_token(path, mint(issuer_key, iat=int(time.time()) - 7200, exp=int(time.time()) - 60))
    before = len(server.state.requests)
    client = client_for(server, f"file:{path}", timeout=2)
    with client, pytest.raises(AssertionSourceError) as err:
        client.fetch_token()
    assert "expired" in err.value.message
    assert "file:" in err.value.message
    assert "stopped refreshing" in (err.value.hint or "")
    assert len(server.state.requests) == before  # nothing went to the server


def test_a_missing_file_says_so_without_the_path_being_a_secret(tmp_path):
    source = FileSource(tmp_path / "absent")
    with pytest.raises(AssertionSourceError, match="no such file"):
        run(source.assertion(time.time()), _do)


def test_a_file_that_is_not_a_jwt(tmp_path):
    path = tmp_path / "token"
    path.write_text("not a token at all")
    with pytest.raises(AssertionSourceError, match="does not hold a JWT"):
        run(FileSource(path).assertion(time.time()), _do)


# -- what the server checks ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("claims", "rule", "words"),
    [
        ({"iss": "https://other.issuer"}, "R13", "iss"),
        ({"sub": "system:serviceaccount:payments:other"}, "R13", "sub"),
        ({"aud": "pkjwt-other"}, "R14", "aud"),
        ({"exp": int(time.time()) + 3 * 86400}, "R17", "exp"),
    ],
)
def test_tokens_outside_the_trust_are_refused(server, issuer_key, tmp_path, claims, rule, words):
    path = tmp_path / "token"
    write_token(path, mint(issuer_key, **claims))
    with client_for(server, f"file:{path}") as client, pytest.raises(CredentialsRejected):
        client.fetch_token()
    seen = server.state.requests[-1]
    assert not seen.ok
    failed = _failed(seen)
    assert failed[0].rule == rule
    assert words in failed[0].expected


def test_another_issuers_key_is_refused(server, tmp_path):
    impostor = generate_key("RS256", kid="cluster-1")  # same kid, other key
    path = tmp_path / "token"
    write_token(path, mint(impostor))
    with client_for(server, f"file:{path}") as client, pytest.raises(CredentialsRejected):
        client.fetch_token()
    assert _failed(server.state.requests[-1])[0].rule == "R11"


def test_a_new_issuer_key_is_picked_up_from_the_jwks_file(server, tmp_path):
    # the cluster rotates its service-account signing key: the trust's jwks_file is re-read
    rotated = generate_key("RS256", kid="cluster-2")
    jwks_path = server.state.config.clients[0].federated[0].jwks_file
    assert jwks_path is not None
    publish(jwks_path, rotated)
    path = tmp_path / "token"
    write_token(path, mint(rotated))
    with client_for(server, f"file:{path}") as client:
        assert client.fetch_token().access_token


def test_without_client_id_the_workload_names_no_client(server, issuer_key):
    # the body's client_id picks the client; without it the sub names no registered client
    import httpx

    form = {
        "grant_type": "client_credentials",
        "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        "client_assertion": mint(issuer_key),
    }
    answer = httpx.post(server.token_url, data=form)
    assert answer.status_code in (400, 401)
    assert answer.json()["error"] == "invalid_client"


def test_server_config_errors_name_the_path(tmp_path):
    base = {"client_id": "c", "federated": [{"issuer": CLUSTER, "subject": WORKLOAD}]}
    with pytest.raises(ConfigError, match=r"clients\[0\]\.federated\[0\]\.audience is required"):
        parse_config({"clients": [base]})
    missing_keys = {"issuer": CLUSTER, "subject": WORKLOAD, "audience": "a"}
    with pytest.raises(ConfigError, match="the issuer's keys are needed"):
        parse_config({"clients": [{"client_id": "c", "federated": [missing_keys]}]})
    unknown = {**missing_keys, "jwks_uri": "https://x/jwks", "subjects": []}
    with pytest.raises(ConfigError, match="unknown key"):
        parse_config({"clients": [{"client_id": "c", "federated": [unknown]}]})


# -- env, exec, GitHub Actions -------------------------------------------------------------------


def test_the_env_source(server, issuer_key, monkeypatch):
    monkeypatch.setenv("WORKLOAD_TOKEN", mint(issuer_key))
    with client_for(server, "env:WORKLOAD_TOKEN") as client:
        assert client.fetch_token().access_token
    monkeypatch.delenv("WORKLOAD_TOKEN")
    client = client_for(server, "env:WORKLOAD_TOKEN")
    with client, pytest.raises(AssertionSourceError, match=r"\$WORKLOAD_TOKEN is not set"):
        client.fetch_token()


def _script(tmp_path: Path, body: str) -> str:
    script = tmp_path / "get_token.py"
    script.write_text(body)
    return f"exec:{sys.executable} {script}"


def test_the_exec_source_is_run_once_until_the_token_nears_expiry(server, issuer_key, tmp_path):
    token_file, calls = tmp_path / "t", tmp_path / "calls"
    token_file.write_text(mint(issuer_key))
    spec = _script(
        tmp_path,
        f"import json, pathlib\n"
        f"p = pathlib.Path({str(calls)!r})\n"
        "p.write_text(p.read_text() + 'x' if p.exists() else 'x')\n"
        f"print(json.dumps({{'token': pathlib.Path({str(token_file)!r}).read_text()}}))\n",
    )
    with client_for(server, spec) as client:
        client.fetch_token()
        client.fetch_token()
    assert calls.read_text() == "x"  # the program's token was kept (exp is an hour away)
    assert all(r.ok for r in list(server.state.requests)[-2:])


def test_an_exec_failure_is_typed_and_never_shows_a_token(issuer_key, tmp_path):
    leaked = mint(issuer_key)
    spec = _script(tmp_path, f"import sys\nsys.stderr.write('bad {leaked}\\n')\nsys.exit(3)\n")
    source = parse_assertion_source(spec)
    with pytest.raises(AssertionSourceError) as err:
        run(source.assertion(time.time()), _do)
    assert "exited with 3" in err.value.message
    assert leaked not in str(err.value)
    assert "<token>" in err.value.message
    assert err.value.retryable


def test_an_exec_source_that_hangs_is_cut_off(tmp_path):
    spec = _script(tmp_path, "import time\ntime.sleep(30)\n")
    source = ExecSource(spec.removeprefix("exec:"), timeout=0.5)
    started = time.monotonic()
    with pytest.raises(AssertionSourceError, match="no answer within"):
        run(source.assertion(time.time()), _do)
    assert time.monotonic() - started < 10


class _ActionsEndpoint(BaseHTTPRequestHandler):
    token = ""
    seen: list[tuple[str, str]] = []

    def do_GET(self) -> None:
        self.seen.append((self.path, self.headers.get("Authorization", "")))
        if self.headers.get("Authorization") != "bearer runner-request-token":
            self.send_response(401)
            self.end_headers()
            return
        body = json.dumps({"count": 1, "value": self.token}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def actions(monkeypatch, issuer_key) -> Iterator[type[_ActionsEndpoint]]:
    handler = type("Handler", (_ActionsEndpoint,), {"seen": []})
    handler.token = mint(issuer_key, iss="https://token.actions.githubusercontent.com")
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv(
        "ACTIONS_ID_TOKEN_REQUEST_URL", f"http://127.0.0.1:{httpd.server_port}/token?api=2"
    )
    monkeypatch.setenv("ACTIONS_ID_TOKEN_REQUEST_TOKEN", "runner-request-token")
    yield handler
    httpd.shutdown()


@pytest.fixture
def actions_server(tmp_path, issuer_key) -> Iterator[RunningServer]:
    trust = {
        "issuer": "https://token.actions.githubusercontent.com",
        "subject": WORKLOAD,
        "audience": [AUDIENCE],
        "jwks": {"keys": [issuer_key.public_jwk()]},
    }
    config = parse_config(
        {"replay_store": "memory://", "clients": [{"client_id": "billing", "federated": [trust]}]}
    )
    with run_in_thread(config) as running:
        yield running


def test_the_github_actions_source_asks_for_the_audience(actions, actions_server):
    with client_for(actions_server, f"github-actions:{AUDIENCE}") as client:
        assert client.fetch_token().access_token
        client.fetch_token()
    assert len(actions.seen) == 1  # asked once: the token is an hour from expiry
    path, auth = actions.seen[0]
    assert path == f"/token?api=2&audience={AUDIENCE}"
    assert auth == "bearer runner-request-token"


@pytest.mark.anyio
async def test_the_github_actions_source_async(actions, actions_server):
    async with client_for(actions_server, f"github-actions:{AUDIENCE}") as client:
        assert (await client.afetch_token()).access_token


def test_the_github_actions_source_outside_actions(monkeypatch):
    monkeypatch.delenv("ACTIONS_ID_TOKEN_REQUEST_URL", raising=False)
    with pytest.raises(AssertionSourceError) as err:
        run(GithubActionsSource("x").assertion(time.time()), _do)
    assert "id-token: write" in (err.value.hint or "")


# -- configuration ---------------------------------------------------------------------------------


def test_specs_parse_and_name_no_secret():
    assert isinstance(parse_assertion_source("file:/var/run/token"), FileSource)
    assert isinstance(parse_assertion_source("env:T"), EnvSource)
    gha = parse_assertion_source("github-actions")
    assert isinstance(gha, GithubActionsSource)
    assert gha.audience is None
    secretive = parse_assertion_source("exec:get-token --password hunter2")
    assert "hunter2" not in secretive.name
    assert "hunter2" not in repr(secretive)
    assert "hunter2" not in FederatedAssertion(secretive).identity
    for bad in ("ftp:x", "file:", "env:", "token"):
        with pytest.raises(ConfigError, match="assertion source"):
            parse_assertion_source(bad)


def test_a_key_and_a_source_together_are_refused(issuer_key):
    with pytest.raises(ConfigError, match="not both"):
        TokenClient(
            token_url="https://as.example/token",
            client_id="c",
            key=issuer_key,
            assertion_source="env:T",
        )


def test_the_cli_and_its_config_key(server, issuer_key, tmp_path, monkeypatch):
    path = tmp_path / "token"
    write_token(path, mint(issuer_key))
    args = ["token", "--token-url", server.token_url, "--client-id", "billing", "--no-cache"]
    args += ["--profile", "rfc7523bis", "--json"]
    result = CliRunner().invoke(cli, [*args, "--assertion-source", f"file:{path}"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["token_type"].lower() == "bearer"

    config = tmp_path / "config.toml"
    config.write_text(f'[sections.k8s]\nassertion_source = "file:{path}"\n')
    monkeypatch.setenv("PKJWT_CONFIG", str(config))
    result = CliRunner().invoke(cli, [*args, "--section", "k8s"])
    assert result.exit_code == 0, result.output

    write_token(path, mint(issuer_key, exp=int(time.time()) - 100, iat=int(time.time()) - 900))
    result = CliRunner().invoke(cli, [*args, "--section", "k8s", "--timeout", "1"])
    assert result.exit_code != 0
    assert "expired" in result.output
    assert "Traceback" not in result.output


# -- helpers ---------------------------------------------------------------------------------------


def _do(action: Any) -> Any:
    from pkjwt.flow import Call

    assert isinstance(action, Call), action
    return action.fn(*action.args)


def _failed(seen: Any) -> list[Any]:
    return [f for f in seen.findings if f.verdict == "fail"]


def _claims(token: str) -> dict[str, Any]:
    return pyjwt.decode(token, options={"verify_signature": False})
