"""The token issuer's memory of live tokens: lookup, expiry, revocation (RFC 7009 owner check),
JWT tokens, and interned grants that are forgotten with their last token."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pkjwt.decode import decode_compact
from pkjwt.server.issuing import TokenIssuer

NOW = 1_800_000_000.0


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> float:
        return self.now


def _issuer(clock: Clock, token_format: str = "opaque") -> TokenIssuer:
    return TokenIssuer(
        issuer="https://as.test", lifetime=600, token_format=token_format, clock=clock
    )


@pytest.mark.parametrize("token_format", ["opaque", "jwt"])
def test_a_token_is_looked_up_as_it_was_issued(token_format):
    clock = Clock()
    issuer = _issuer(clock, token_format)
    token, issued = issuer.issue("c1", "api:read api:write", ("https://r1", "https://r2"))
    assert issued.issued_at == NOW
    assert issued.expires_at == NOW + 600
    assert issuer.lookup(token) == issued
    if token_format == "jwt":
        assert decode_compact(token).claims["jti"] == issued.jti
    other, second = issuer.issue("c2", None, None, lifetime=5)
    assert issuer.lookup(other) == second
    assert second.jti != issued.jti


@pytest.mark.parametrize("token_format", ["opaque", "jwt"])
def test_an_expired_or_unknown_token_is_not_found(token_format):
    clock = Clock()
    issuer = _issuer(clock, token_format)
    token, _ = issuer.issue("c1", None, None)
    clock.now += 599
    assert issuer.lookup(token) is not None
    clock.now += 1
    assert issuer.lookup(token) is None
    for garbage in ("", "x", token[:-2], "a.b.c", "\ud800"):
        assert issuer.lookup(garbage) is None


def test_a_jwt_that_was_not_ours_is_not_found():
    clock = Clock()
    issuer = _issuer(clock, "jwt")
    token, _ = issuer.issue("c1", None, None)
    head, body, signature = token.split(".")
    assert issuer.lookup(f"{head}.{body}.{signature[::-1]}") is None


@pytest.mark.parametrize("token_format", ["opaque", "jwt"])
def test_only_the_client_a_token_was_issued_to_revokes_it(token_format):
    clock = Clock()
    issuer = _issuer(clock, token_format)
    token, _ = issuer.issue("c1", None, None)
    assert not issuer.revoke(token, client_id="c2")
    assert not issuer.revoke(token, client_id=None)
    assert issuer.lookup(token) is not None
    assert issuer.revoke(token, client_id="c1")
    assert issuer.lookup(token) is None
    assert not issuer.revoke("never-issued", client_id="c1")


def test_grants_are_interned_and_forgotten_with_their_last_token():
    clock = Clock()
    issuer = _issuer(clock)
    for i in range(3000):
        issuer.issue("c1", "read" + " read" * (i % 500), None, lifetime=10)
    assert len(issuer._grants) == 500  # a client varying its scope string: one per spelling
    tokens = [issuer.issue("c1", "read", None)[0] for _ in range(100)]
    clock.now += 20
    issuer._live.purge(clock.now)
    assert len(issuer._grants) == 1  # the expired tokens' grants went with them
    assert all(issuer.lookup(t) is not None for t in tokens)


def test_many_live_tokens_are_all_found():
    clock = Clock()
    issuer = _issuer(clock)
    issued = [issuer.issue(f"c{i % 3}", None, f"https://r{i % 7}") for i in range(20_000)]
    assert all(issuer.lookup(token) == record for token, record in issued)
    assert len(issuer._grants) == 21


@settings(max_examples=60, deadline=None)
@given(
    steps=st.lists(
        st.one_of(
            st.tuples(st.just("issue"), st.sampled_from(["c1", "c2"]), st.integers(1, 30)),
            st.tuples(st.just("revoke"), st.sampled_from(["c1", "c2"]), st.integers(0, 99)),
            st.tuples(st.just("wait"), st.just(""), st.integers(0, 20)),
        ),
        max_size=120,
    )
)
def test_the_issuer_answers_as_a_dict_would(steps):
    clock = Clock()
    issuer = _issuer(clock)
    issued: list[tuple[str, str, int]] = []  # token, client, expiry
    revoked: set[str] = set()
    for op, client, n in steps:
        if op == "issue":
            token, record = issuer.issue(client, None, None, lifetime=n)
            issued.append((token, client, record.expires_at))
        elif op == "revoke" and issued:
            token, owner, expires_at = issued[n % len(issued)]
            done = issuer.revoke(token, client_id=client)
            assert done == (expires_at > clock.now and owner == client)  # (again: still True)
            if done:
                revoked.add(token)
        else:
            clock.now += n
    for token, _client, expires_at in issued:
        found = issuer.lookup(token)
        assert (found is not None) == (expires_at > clock.now and token not in revoked)
