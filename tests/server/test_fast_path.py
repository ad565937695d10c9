"""The token route as served (``create_app``'s fast path), driven through raw ASGI messages: the
cases a socket cannot produce on demand (chunking, a disconnect in the middle of a body)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from pkjwt.server.app import create_app
from pkjwt.server.http import MAX_BODY
from pkjwt.server.replay import MemoryReplayStore

from .conftest import FORM, Srv


def _call(
    app: Any, method: str, path: str, chunks: list[bytes], *, disconnect_after: int | None = None
) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = [
        {"type": "http.request", "body": c, "more_body": i < len(chunks) - 1}
        for i, c in enumerate(chunks)
    ]
    if disconnect_after is not None:
        messages = [*messages[:disconnect_after], {"type": "http.disconnect"}]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "method": method,
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "headers": [(b"content-type", FORM.encode()), (b"host", b"127.0.0.1")],
        "http_version": "1.1",
        "scheme": "http",
        "root_path": "",
        "client": ("127.0.0.1", 5000),
        "server": ("127.0.0.1", 80),
    }
    asyncio.run(app(scope, receive, send))
    return sent


@pytest.fixture
def served(bis: Srv) -> Any:
    return create_app(bis.state.config, issuer=bis.issuer, replay=MemoryReplayStore())


def _reply(sent: list[dict[str, Any]]) -> tuple[int, dict[str, str], dict[str, Any]]:
    start, body = sent
    headers = {k.decode(): v.decode() for k, v in start["headers"]}
    assert int(headers["content-length"]) == len(body["body"])
    return start["status"], headers, json.loads(body["body"] or b"{}")


def test_a_token_in_several_chunks(served: Any, bis: Srv) -> None:
    body = "&".join(f"{k}={v}" for k, v in bis.form().items()).encode()
    status, headers, payload = _reply(_call(served, "POST", "/oauth2/token", [body[:7], body[7:]]))
    assert status == 200, payload
    assert headers["cache-control"] == "no-store"
    assert payload["token_type"] == "Bearer"


@pytest.mark.parametrize(
    "chunks",
    [
        [b"a" * (MAX_BODY + 1)],  # one chunk just over
        [b"a" * 200_000],  # one chunk far over
        [b"a" * 40_000, b"b" * 40_000, b"c" * 120_000],  # over only in total
    ],
)
def test_a_body_over_the_limit_is_refused_as_too_large(served: Any, chunks: list[bytes]) -> None:
    status, _, payload = _reply(_call(served, "POST", "/oauth2/token", chunks))
    assert status == 400
    assert payload == {"error": "invalid_request", "error_description": "R1 request body too large"}


def test_a_body_at_the_limit_is_read_whole(served: Any) -> None:
    body = b"grant_type=client_credentials&pad=" + b"x" * (MAX_BODY - 34)
    assert len(body) == MAX_BODY
    status, _, payload = _reply(_call(served, "POST", "/oauth2/token", [body[:1000], body[1000:]]))
    assert status != 500
    assert "too large" not in payload.get("error_description", "")


def test_other_verbs_get_405_with_allow(served: Any) -> None:
    sent = _call(served, "GET", "/oauth2/token", [b""])
    assert sent[0]["status"] == 405
    assert (b"allow", b"POST") in sent[0]["headers"]


def test_a_client_gone_mid_body_gets_no_answer(served: Any) -> None:
    assert _call(served, "POST", "/oauth2/token", [b"a=1", b"b=2"], disconnect_after=1) == []


def test_other_paths_reach_the_framework(served: Any) -> None:
    status, _, payload = _reply(_call(served, "GET", "/health", [b""]))
    assert status == 200
    assert payload["status"] == "ok"


def test_the_request_log_cannot_be_forged_by_what_a_client_sends(
    bis: Srv, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO", logger="pkjwt.server")
    served = create_app(bis.state.config, issuer=bis.issuer, replay=MemoryReplayStore())
    body = b"grant_type=x%0AINFO:     token 200 client=admin issued%1b[31m"
    status, _, _ = _reply(_call(served, "POST", "/oauth2/token", [body]))
    assert status == 400
    [line] = [r.getMessage() for r in caplog.records if r.getMessage().startswith("token ")]
    assert "\n" not in line
    assert "\x1b" not in line
    assert line.startswith("token 400 client=- unsupported_grant_type: R3 grant_type")


def test_an_empty_store_passed_in_is_the_store_used(bis: Srv) -> None:
    store = MemoryReplayStore()  # empty, so falsy by __len__: must still be used
    app = create_app(bis.state.config, issuer=bis.issuer, replay=store)
    assert app.state.pkjwt.replay is store
