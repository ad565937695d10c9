"""What a newcomer gets wrong in the first hour, each answered with a message that names it
(issue 9): token URL mistakes that can never work (refused before any request, never retried),
a redirect, a clock far off (a warning; a hostile Date is not believed), a bad --timeout."""

from __future__ import annotations

import logging

import pytest

from pkjwt import TokenClient
from pkjwt.errors import ConfigError, TokenResponseError

from .conftest import CLIENT_ID


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("int.api.service.nhs.uk/oauth2/token", "no scheme"),
        ("https://int.api.service.nhs.uk/oauth2/token ", "whitespace"),
        ("https://int.api.service.nhs.uk/oauth2/\ntoken", "whitespace"),
        ("http://int.api.service.nhs.uk/oauth2/token", "plain http"),
        ("ftp://example.com/token", "not an http(s) URL"),
    ],
)
def test_token_url_mistakes_are_named(rsa_key, url, words):
    with pytest.raises(ConfigError) as err:
        TokenClient(token_url=url, client_id=CLIENT_ID, key=rsa_key, profile="legacy")
    assert words in err.value.message


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1", "[::1]"])
def test_plain_http_to_a_local_server_is_fine(rsa_key, host):
    TokenClient(token_url=f"http://{host}:8080/token", client_id=CLIENT_ID, key=rsa_key,
                profile="legacy")  # fmt: skip


def test_a_redirect_is_named_and_not_retried(server, make_client, sleeps):
    location = server.token_url + "/"
    server.script = [server.error(301, "moved", "", headers={"Location": location})] * 5
    with pytest.raises(TokenResponseError) as err:
        make_client(profile="legacy").get_token()
    assert "redirect" in err.value.message
    assert location in (err.value.hint or "")
    assert server.token_count == 1
    assert sleeps.calls == []


def test_a_clock_far_off_is_corrected_with_a_warning(server, make_client, caplog):
    caplog.set_level(logging.WARNING, logger="pkjwt.client")
    server.date_offset = 120
    server.script = [server.ok()] * 3
    client = make_client(profile="legacy")
    client.get_token()
    assert client.clock_offset == pytest.approx(120, abs=2)
    warnings = [r.getMessage() for r in caplog.records if "clock" in r.getMessage()]
    assert len(warnings) == 1
    assert "fix the clock" in warnings[0]


def test_a_date_in_year_9999_is_not_believed(server, make_client, caplog):
    """Issue 10 item 13: a hostile or broken Date must not move our exp with it."""
    caplog.set_level(logging.WARNING, logger="pkjwt.client")
    server.date_offset = 2.5e11
    server.script = [server.error(401, "invalid_client", "no")] + [server.ok()] * 3
    client = make_client(profile="legacy")
    with pytest.raises(Exception):  # noqa: B017, PT011 - whatever the refusal, no correction
        client.get_token()
    assert client.clock_offset == 0.0
    assert any("beyond the 600 s" in r.getMessage() for r in caplog.records)
