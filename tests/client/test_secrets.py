"""Nothing secret leaks: tokens, assertions and key material stay out of reprs, errors, logs."""

from __future__ import annotations

import logging
import re
import traceback

import httpx
import pytest

from pkjwt import HttpxAuth
from pkjwt.errors import InvalidClient, PkjwtError, TokenResponseError


@pytest.fixture
def pem_fragments(nhs_key):
    pem = nhs_key.private_pem().decode()
    body = [line for line in pem.splitlines() if line and not line.startswith("-----")]
    private = nhs_key.jose.as_dict(private=True)
    return ["PRIVATE KEY", *body, private["d"], private["p"], private["q"]]


def _assert_clean(text: str, secrets: list[str]) -> None:
    for secret in secrets:
        assert secret, "empty secret in the list"
        assert secret not in text, f"secret leaked: {secret[:12]}..."


def _all_text(records: list[logging.LogRecord]) -> str:
    parts = []
    for record in records:
        parts.append(record.getMessage())
        parts.append(repr(record.args))
        if record.exc_info:
            parts.append("".join(traceback.format_exception(*record.exc_info)))
    return "\n".join(parts)


def _wire_secrets(server) -> list[str]:
    out = list(server.issued)
    for req in server.token_requests:
        if req.raw_assertion:
            out.append(req.raw_assertion)
            out.append(req.raw_assertion.rsplit(".", 1)[1])  # the signature alone
    return out


def test_success_path_leaks_nothing(server, make_client, caplog, pem_fragments):
    caplog.set_level(logging.DEBUG)
    server.script = [(503, {}, "busy")]  # exercise the retry log lines too
    client = make_client()
    token = client.get_token()
    with httpx.Client(auth=HttpxAuth(client)) as http:
        server.revoked.add(token.access_token)
        assert http.get(server.api_url).status_code == 200  # renewal on 401 as well

    secrets = _wire_secrets(server) + pem_fragments
    assert len(server.issued) == 2
    assert caplog.records, "expected some log records at DEBUG"
    _assert_clean(_all_text(caplog.records), secrets)
    _assert_clean(caplog.text, secrets)
    _assert_clean(repr(client), secrets)
    _assert_clean(repr(token) + str(token), secrets)
    _assert_clean(repr(client.get_token()), secrets)
    _assert_clean(repr(HttpxAuth(client)), secrets)
    _assert_clean(repr(client.manager), secrets)
    # the fingerprint identifies the token without revealing it
    assert token.fingerprint in repr(token)


@pytest.mark.parametrize(
    "response",
    [
        (401, {}, {"error": "invalid_client", "error_description": "bad signature"}),
        (400, {}, {"error": "invalid_request", "access_token": "LEAKED-IN-ERROR-BODY"}),
        (200, {"Content-Type": "text/html"}, "<html><body>login</body></html>"),
        (200, {}, {"token": "no-access-token-here"}),
    ],
    ids=["invalid_client", "error-with-token", "html", "no-token"],
)
def test_failure_path_leaks_nothing(server, make_client, caplog, pem_fragments, response):
    caplog.set_level(logging.DEBUG)
    server.script = [response]
    client = make_client()
    with pytest.raises(PkjwtError) as info:
        client.get_token()
    exc = info.value
    secrets = [*_wire_secrets(server), *pem_fragments, "LEAKED-IN-ERROR-BODY"]
    text = "\n".join(
        [
            str(exc),
            repr(exc),
            exc.message,
            exc.hint or "",
            "".join(traceback.format_exception(exc)),
            _all_text(caplog.records),
            caplog.text,
            repr(client),
        ]
    )
    _assert_clean(text, secrets)
    if isinstance(exc, InvalidClient | TokenResponseError):
        assert exc.hint


def test_transport_error_leaks_nothing(make_client, caplog, pem_fragments):
    caplog.set_level(logging.DEBUG)
    client = make_client(token_url="http://127.0.0.1:9/oauth2/token")
    with pytest.raises(PkjwtError) as info:
        client.get_token()
    text = str(info.value) + repr(info.value) + caplog.text + _all_text(caplog.records)
    _assert_clean(text, pem_fragments)
    # no assertion-shaped string (three base64url segments) anywhere
    assert not re.search(r"eyJ[\w-]+\.eyJ[\w-]+\.[\w-]+", text)


def test_make_assertion_output_is_not_logged(make_client, caplog):
    caplog.set_level(logging.DEBUG)
    assertion = make_client().make_assertion()
    assert assertion.count(".") == 2
    assert assertion not in caplog.text
