"""Issuer discovery, the rfc7523bis -> legacy audience fallback and clock-skew correction."""

from __future__ import annotations

import pytest

from pkjwt.errors import ConfigError, InvalidClient, InvalidRequest

from .conftest import CLIENT_ID

EXPLICIT_TYP = "client-authentication+jwt"


def _metadata(server, **extra):
    meta = {
        "issuer": server.issuer,
        "token_endpoint": server.token_url,
        "token_endpoint_auth_methods_supported": ["private_key_jwt", "client_secret_basic"],
        "grant_types_supported": ["client_credentials"],
    }
    meta.update(extra)
    return meta


@pytest.fixture
def discovered(make_client, drop, rsa_key):
    """A client that knows only the issuer: no token_url, no profile, unpinned RSA key."""

    def make(server, **overrides):
        kwargs = {"issuer": server.issuer, "token_url": drop, "profile": drop, "key": rsa_key}
        kwargs.update(overrides)
        return make_client(**kwargs)

    return make


# -- 4. audience fallback ------------------------------------------------------------------------


def test_audience_fallback_rfc7523bis_then_legacy_and_remembered(server, discovered):
    server.metadata = _metadata(server)

    def judge(req):
        if req.claims["aud"] != server.token_url:
            return server.error(401, "invalid_client", "client authentication failed")
        return server.ok()(req)

    server.script = [judge] * 10
    client = discovered(server)

    token = client.get_token()
    assert token.access_token == server.issued[0]
    first, second = server.token_requests
    # first the rfc7523bis shape
    assert first.claims["aud"] == server.issuer
    assert first.jwt_header["typ"] == EXPLICIT_TYP
    # then the legacy shape
    assert second.claims["aud"] == server.token_url
    assert second.jwt_header.get("typ") != EXPLICIT_TYP
    assert first.claims["jti"] != second.claims["jti"]
    for req in (first, second):
        assert req.claims["iss"] == req.claims["sub"] == CLIENT_ID

    # remembered: the next fetch goes straight to the legacy shape
    client.invalidate()
    again = client.get_token()
    assert again.access_token != token.access_token
    assert server.token_count == 3
    assert server.token_requests[2].claims["aud"] == server.token_url
    # discovery ran once
    assert len(server.meta_requests) == 1


def test_rfc7523bis_accepted_means_no_fallback(server, discovered):
    server.metadata = _metadata(server)
    discovered(server).get_token()
    [req] = server.token_requests
    assert req.claims["aud"] == server.issuer
    assert req.jwt_header["typ"] == EXPLICIT_TYP


def test_fallback_happens_once_then_invalid_client_is_raised(server, discovered, sleeps):
    server.metadata = _metadata(server)
    server.script = [server.error(401, "invalid_client", "nope")] * 5
    with pytest.raises(InvalidClient):
        discovered(server).get_token()
    auds = [r.claims["aud"] for r in server.token_requests]
    assert auds == [server.issuer, server.token_url]
    assert sleeps.calls == []


def test_explicit_profile_disables_fallback(server, discovered):
    server.metadata = _metadata(server)
    server.script = [server.error(401, "invalid_client", "nope")] * 5
    with pytest.raises(InvalidClient):
        discovered(server, profile="rfc7523bis").get_token()
    assert server.token_count == 1


# -- 5. clock skew -------------------------------------------------------------------------------


def test_clock_skew_corrected_from_date_header(server, make_client, clock):
    server.date_offset = 120  # the server's clock runs 2 minutes ahead of ours

    def judge(req):
        if abs(req.claims["iat"] - req.server_time) > 30:
            return server.error(401, "invalid_client", "iat out of range")
        return server.ok()(req)

    server.script = [judge] * 10
    client = make_client(profile="legacy")

    token = client.get_token()
    assert token.access_token == server.issued[0]
    first, second = server.token_requests
    assert first.claims["iat"] == int(clock())
    assert abs(second.claims["iat"] - (clock() + 120)) <= 2
    assert second.claims["exp"] - second.claims["iat"] == first.claims["exp"] - first.claims["iat"]
    assert first.claims["jti"] != second.claims["jti"]
    assert client.clock_offset == pytest.approx(120, abs=2)

    # later assertions start from the corrected clock: one request
    client.invalidate()
    clock.advance(10)
    client.get_token()
    assert server.token_count == 3
    assert abs(server.token_requests[2].claims["iat"] - (clock() + 120)) <= 2


def test_skew_retry_happens_only_once(server, make_client, sleeps):
    server.date_offset = 120
    server.script = [server.error(401, "invalid_client", "no")] * 5
    with pytest.raises(InvalidClient):
        make_client(profile="legacy").get_token()
    assert server.token_count == 2


def test_small_date_differences_are_not_skew(server, make_client, clock):
    server.date_offset = 1  # Date-header resolution noise
    make_client(profile="legacy").get_token()
    [req] = server.token_requests
    assert req.claims["iat"] == int(clock())


def test_nhs_skew_exp_too_far_is_corrected(server, make_client, clock):
    """Our clock 120 s ahead of the NHS platform: exp looks 420 s away; the platform says
    invalid_request 'more than 5 minutes in future'. The Date header shows the skew, so the
    client should retry once with a corrected clock (it does so only for invalid_client)."""
    server.date_offset = -120
    too_far = "Invalid 'exp' claim in client_assertion JWT - more than 5 minutes in future"

    def judge(req):
        if req.claims["exp"] - req.server_time > 310:
            return server.error(400, "invalid_request", too_far)
        return server.ok()(req)

    server.script = [judge] * 5
    client = make_client(profile="nhs")
    try:
        token = client.get_token()
    except InvalidRequest as exc:
        pytest.fail(f"skew not corrected for the NHS exp error: {exc}")
    assert token.access_token
    assert server.token_count == 2
    assert server.token_requests[1].claims["exp"] - server.token_requests[1].server_time <= 310


# -- 6. discovery --------------------------------------------------------------------------------


def test_discovery_uses_metadata_token_endpoint(server, discovered):
    server.metadata = _metadata(server, token_endpoint=server.base_url + "/custom/token")
    client = discovered(server)
    client.get_token()
    [meta] = server.meta_requests
    assert meta.method == "GET"
    assert meta.path == "/.well-known/oauth-authorization-server"
    [req] = server.token_requests
    assert req.path == "/custom/token"
    assert client.token_url == server.base_url + "/custom/token"


def test_discovery_only_client_secret_basic_is_config_error(server, discovered):
    server.metadata = _metadata(
        server, token_endpoint_auth_methods_supported=["client_secret_basic"]
    )
    with pytest.raises(ConfigError) as info:
        discovered(server).get_token()
    assert "private_key_jwt" in info.value.message
    assert info.value.hint
    assert server.token_count == 0


def test_discovery_issuer_mismatch_is_config_error(server, discovered):
    server.metadata = _metadata(server, issuer="https://evil.example")
    with pytest.raises(ConfigError) as info:
        discovered(server).get_token()
    assert "issuer" in info.value.message
    assert server.token_count == 0


def test_discovery_no_metadata_is_config_error(server, discovered):
    server.metadata = None
    with pytest.raises(ConfigError) as info:
        discovered(server).get_token()
    assert info.value.hint
    paths = [r.path for r in server.meta_requests]
    assert paths == [
        "/.well-known/oauth-authorization-server",
        "/.well-known/openid-configuration",
    ]
    assert server.token_count == 0


def test_discovery_picks_advertised_alg_for_unpinned_rsa_key(server, discovered):
    server.metadata = _metadata(server, token_endpoint_auth_signing_alg_values_supported=["PS256"])
    discovered(server).get_token()
    [req] = server.token_requests
    assert req.jwt_header["alg"] == "PS256"


def test_discovery_picks_advertised_alg_es_then_rs512(server, discovered):
    server.metadata = _metadata(
        server, token_endpoint_auth_signing_alg_values_supported=["ES256", "RS512"]
    )
    discovered(server).get_token()
    [req] = server.token_requests
    assert req.jwt_header["alg"] == "RS512"


@pytest.mark.anyio
async def test_async_discovery_and_fallback(server, discovered):
    server.metadata = _metadata(server)

    def judge(req):
        if req.claims["aud"] != server.token_url:
            return server.error(401, "invalid_client", "client authentication failed")
        return server.ok()(req)

    server.script = [judge] * 10
    client = discovered(server)
    try:
        token = await client.aget_token()
    finally:
        await client.aclose()
    assert token.access_token == server.issued[0]
    assert [r.claims["aud"] for r in server.token_requests] == [server.issuer, server.token_url]


@pytest.mark.parametrize(
    ("profile", "advertised", "expected"),
    [
        ("fapi2", ["RS256", "PS256"], "PS256"),  # the key's default RS256 is not FAPI
        ("nhs", ["RS256", "RS512"], "RS512"),
        ("rfc7523bis", ["RS384", "PS512"], "RS384"),  # the server's order, the key can do both
    ],
)
def test_alg_is_profile_and_server_and_key(server, discovered, profile, advertised, expected):
    """Issue 9 item 1: the alg comes from profile ∩ server ∩ key, not the key's first alg."""
    server.metadata = _metadata(server, token_endpoint_auth_signing_alg_values_supported=advertised)
    overrides = {"profile": profile}
    if profile == "nhs":
        overrides["token_url"] = server.token_url
    discovered(server, **overrides).get_token()
    assert server.token_requests[0].jwt_header["alg"] == expected


def test_no_alg_fits_key_profile_and_server(server, discovered):
    server.metadata = _metadata(server, token_endpoint_auth_signing_alg_values_supported=["ES256"])
    with pytest.raises(ConfigError) as err:
        discovered(server, profile="fapi2").get_token()
    assert "no algorithm fits" in err.value.message
    assert "ES256" in err.value.message


def test_the_fallback_is_remembered_by_the_store_for_the_next_client(server, discovered, tmp_path):
    """Issue 9 item 7: a new client (or CLI run) that misses the token cache must not send the
    doomed rfc7523bis assertion again: the profile that worked is noted in the store."""
    from pkjwt import FileStore

    server.metadata = _metadata(server)

    def judge(req):
        if req.claims["aud"] != server.token_url:
            return server.error(401, "invalid_client", "client authentication failed")
        return server.ok()(req)

    server.script = [judge] * 10
    store = FileStore(tmp_path / "cache")
    discovered(server, store=store).get_token()
    assert [r.claims["aud"] for r in server.token_requests] == [server.issuer, server.token_url]
    store.clear()  # the token is gone; the note stays
    discovered(server, store=FileStore(tmp_path / "cache")).get_token()
    assert [r.claims["aud"] for r in server.token_requests[2:]] == [server.token_url]
