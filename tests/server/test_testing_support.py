"""pkjwt.testing: the pytest plugin fixture and the request log."""

from __future__ import annotations

import pytest

from pkjwt.rules import Verdict
from pkjwt.testing import LocalAuthServer, local_auth_server

from .conftest import JWT_BEARER, Srv


def test_pkjwt_server_fixture_from_the_entry_point(pkjwt_server: LocalAuthServer) -> None:
    """Requesting the fixture works with no import: pytest loaded it from the pytest11 entry
    point (``pkjwt = "pkjwt.testing"``)."""
    assert pkjwt_server.profile == "nhs"
    assert pkjwt_server.token_url.endswith("/oauth2/token")
    with pkjwt_server.token_client() as client:
        token = client.get_token()
    assert token.access_token
    last = pkjwt_server.last_request
    assert last.ok
    assert last.header["typ"] == "JWT"
    assert last.header["alg"] == "RS512"
    assert last.claims["aud"] == pkjwt_server.token_url


def test_plugin_is_registered(pytestconfig: pytest.Config) -> None:
    plugin = pytestconfig.pluginmanager.get_plugin("pkjwt")
    assert plugin is not None
    assert plugin.__name__ == "pkjwt.pytest_plugin"  # imports nothing until used


def test_requests_are_recorded_with_findings() -> None:
    with local_auth_server("rfc7523bis") as server:
        with pytest.raises(AssertionError):
            _ = server.last_request
        with server.token_client() as client:
            client.get_token()
        import httpx

        from pkjwt.forge import sign

        bad = sign(
            server.key,
            {"alg": server.key.alg, "kid": server.key.kid},
            {
                "iss": server.client_id,
                "sub": server.client_id,
                "aud": server.token_url,  # strict profile: the token URL is refused (R14)
                "jti": "j1",
                "exp": 2**31,
            },
        )
        form = {
            "grant_type": "client_credentials",
            "client_assertion_type": JWT_BEARER,
            "client_assertion": bad,
        }
        response = httpx.post(server.token_url, data=form)
        assert response.status_code == 400
        requests = server.requests
    token_requests = [r for r in requests if r.endpoint == "token"]
    assert len(token_requests) >= 2
    good, failed = token_requests[0], token_requests[-1]
    assert good.ok
    assert good.status == 200
    assert good.client_id == server.client_id
    assert good.findings
    assert all(f.verdict is not Verdict.FAIL for f in good.findings)
    assert not failed.ok
    assert failed.error == "invalid_client"
    assert failed.description
    assert failed.description.startswith("R14")
    failing = [f for f in failed.findings if f.verdict is Verdict.FAIL]
    assert {f.rule for f in failing} >= {"R14", "R17"}
    assert failing[0].rule == "R14"
    assert failed.claims["jti"] == "j1"
    # the assertion itself is never kept in the log
    assert failed.form["client_assertion"] == "<redacted>"
    assert bad not in repr(failed)
    assert failed.form["grant_type"] == "client_credentials"


def test_secret_is_redacted(bis: Srv) -> None:
    response = bis.post(
        {
            "grant_type": "client_credentials",
            "client_id": "secret-client",
            "client_secret": "s3cr3t",
        }
    )
    assert response.status_code == 200
    last = bis.las.last_request
    assert last.form["client_secret"] == "<redacted>"
    assert "s3cr3t" not in repr(last)


def test_nhs_failure_is_recorded(nhs: Srv) -> None:
    response = nhs.token(nhs.assertion(header={"typ": "at+jwt"}))
    assert response.status_code == 400
    last = nhs.las.last_request
    assert last.status == 400
    assert last.error == "invalid_request"
    assert last.description == "Invalid 'typ' header in client_assertion JWT - must be 'JWT'"
    assert any(f.rule == "R12" and f.verdict is Verdict.FAIL for f in last.findings)
    assert last.form["client_assertion"] == "<redacted>"


def test_request_level_failure_is_recorded(bis: Srv) -> None:
    bis.post({"grant_type": "password"})
    last = bis.las.last_request
    assert (last.status, last.error) == (400, "unsupported_grant_type")
    assert last.findings == ()
