"""TokenClient.assertion_plan(): what the assertion says and why that profile."""

from __future__ import annotations

import pytest

from pkjwt import LocalSigner, TokenClient
from pkjwt.errors import ConfigError

NHS_URL = "https://int.api.service.nhs.uk/oauth2/token"


def _metadata(server):
    return {
        "issuer": server.issuer,
        "token_endpoint": server.token_url,
        "token_endpoint_auth_methods_supported": ["private_key_jwt"],
    }


@pytest.mark.parametrize(
    ("overrides", "profile", "reason"),
    [
        ({}, "nhs", "explicit"),
        ({"token_url": NHS_URL, "profile": None}, "nhs", "NHS host"),
        ({"profile": None}, "legacy", "no issuer: legacy"),
    ],
)
def test_reason_without_discovery(make_client, drop, server, overrides, profile, reason):
    overrides = {k: (drop if v is None else v) for k, v in overrides.items()}
    plan = make_client(**overrides).assertion_plan()
    assert plan is not None
    assert (plan.profile.name, plan.reason) == (profile, reason)
    assert plan.metadata is None
    assert server.meta_requests == []
    assert server.token_requests == []


def test_plan_after_discovery_and_fallback(server, make_client, drop, rsa_key):
    server.metadata = _metadata(server)
    server.script = [server.error(401, "invalid_client", "aud = issuer refused"), server.ok()]
    client = make_client(issuer=server.issuer, token_url=drop, profile=drop, key=rsa_key)
    plan = client.assertion_plan()
    assert plan is not None
    assert (plan.profile.name, plan.reason) == ("rfc7523bis", "issuer discovered: rfc7523bis")
    assert plan.audience == server.issuer
    assert plan.metadata is client.server_metadata is not None
    assert plan.public_keys is not None
    assert plan.public_keys.kids == [rsa_key.kid]
    assert plan.kid == rsa_key.kid

    client.get_token()
    plan = client.assertion_plan()
    assert (plan.profile.name, plan.reason) == ("legacy", "remembered for this server")
    assert plan.audience == server.token_url


def test_plan_for_a_signer_has_no_public_keys(make_client, nhs_key):
    plan = make_client(key=LocalSigner(nhs_key)).assertion_plan()
    assert plan is not None
    assert plan.public_keys is None
    assert (plan.alg, plan.kid) == ("RS512", nhs_key.kid)


def test_no_plan_and_no_assertion_for_a_shared_secret(server):
    client = TokenClient(token_url=server.token_url, client_id="app", client_secret="s3cret")
    assert client.assertion_plan() is None
    with pytest.raises(ConfigError, match="sends no client assertion"):
        client.make_assertion()
