"""Clients registered by jwks_uri (rule R10): fetching, rotation with one rate-limited refetch,
the private-address guard, size cap and failing hosts."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from pkjwt.keys import Key, generate_key, jwks

from .conftest import JwksHost, Srv, error_of, free_port, start

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "interop"))
import nodepeers

URI_CLIENT = "uri-client"


@pytest.fixture(scope="module")
def rot_keys() -> list[Key]:
    return [generate_key("ES256", kid=f"rot-{i}") for i in (1, 2, 3)]


def _uri_assertion(srv: Srv, key: Key) -> str:
    return srv.assertion(
        key=key, header={"alg": key.alg, "kid": key.kid}, iss=URI_CLIENT, sub=URI_CLIENT
    )


def _server(es256_key: Key, uri: str, **extra: Any) -> Any:
    return start(
        "rfc7523bis",
        key=es256_key,
        clients=[{"client_id": URI_CLIENT, "jwks_uri": uri}],
        extra={"allow_private_jwks_uri": True, **extra},
    )


def test_jwks_uri_client_gets_a_token(es256_key: Key, rot_keys: list[Key]) -> None:
    with (
        nodepeers.serve_static_jwks(jwks([rot_keys[0].public()])) as url,
        _server(es256_key, url) as srv,
    ):
        response = srv.token(_uri_assertion(srv, rot_keys[0]))
        assert response.status_code == 200, response.text
        assert srv.state.fetcher.fetches == 1
        # cached: a second request does not fetch again
        assert srv.token(_uri_assertion(srv, rot_keys[0])).status_code == 200
        assert srv.state.fetcher.fetches == 1
        # a key that is not in the set is still refused
        response = srv.token(_uri_assertion(srv, rot_keys[1]))
        status, error, description = error_of(response)
        assert (status, error) == (400, "invalid_client")
        assert description.startswith("R9 "), description


def test_key_rotation_one_refetch(
    es256_key: Key,
    rot_keys: list[Key],
    jwks_host: Callable[..., JwksHost],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    old, new, unknown = rot_keys
    host = jwks_host(jwks([old.public()]))
    with _server(es256_key, host.url) as srv:
        fetcher = srv.state.fetcher
        now = [10_000.0]
        # the refetch interval (30 s) counts from the last fetch: drive the fetcher's clock
        monkeypatch.setattr(fetcher, "_clock", lambda: now[0])
        assert srv.token(_uri_assertion(srv, old)).status_code == 200
        assert (fetcher.fetches, host.hits) == (1, 1)

        host.set(jwks([old.public(), new.public()]))
        now[0] += fetcher.refetch_interval + 1  # still well within the cache lifetime
        assert srv.token(_uri_assertion(srv, old)).status_code == 200
        assert fetcher.fetches == 1  # a known kid never refetches

        response = srv.token(_uri_assertion(srv, new))
        assert response.status_code == 200, response.text
        assert (fetcher.fetches, host.hits) == (2, 2)  # exactly one unknown-kid refetch

        response = srv.token(_uri_assertion(srv, unknown))
        status, error, description = error_of(response)
        assert (status, error) == (400, "invalid_client")
        assert description.startswith("R9 "), description
        assert (fetcher.fetches, host.hits) == (2, 2)  # within the interval: no second fetch


def test_unknown_kid_floods_fetch_at_most_once_per_interval(
    es256_key: Key, rot_keys: list[Key], jwks_host: Callable[..., JwksHost]
) -> None:
    old, _new, unknown = rot_keys
    host = jwks_host(jwks([old.public()]))
    with _server(es256_key, host.url) as srv:
        assert srv.token(_uri_assertion(srv, old)).status_code == 200
        for _ in range(5):
            assert srv.token(_uri_assertion(srv, unknown)).status_code == 400
        assert srv.state.fetcher.fetches == 1
        assert host.hits == 1


@pytest.mark.parametrize("scheme", ["https", "http"])
def test_private_jwks_uri_refused_without_fetch(
    es256_key: Key, rot_keys: list[Key], jwks_host: Callable[..., JwksHost], scheme: str
) -> None:
    host = jwks_host(jwks([rot_keys[0].public()]))
    uri = host.url.replace("http://", f"{scheme}://")
    with start(
        "rfc7523bis",
        key=es256_key,
        clients=[{"client_id": URI_CLIENT, "jwks_uri": uri}],
        extra={"allow_private_jwks_uri": False},
    ) as srv:
        response = srv.token(_uri_assertion(srv, rot_keys[0]))
        status, error, description = error_of(response)
        assert (status, error) == (400, "invalid_client"), response.text
        assert description.startswith("R10 "), description
        assert srv.state.fetcher.fetches == 0
    assert host.hits == 0


def test_private_jwks_uri_refused_in_nhs_mode(rs512_key: Key) -> None:
    """NHS mode maps a refused fetch to the 403 'can't be reached' row."""
    uri = f"https://127.0.0.1:{free_port()}/jwks"
    with start(
        "nhs",
        key=rs512_key,
        clients=[{"client_id": URI_CLIENT, "jwks_uri": uri}],
    ) as srv:
        response = srv.token(srv.assertion(iss=URI_CLIENT, sub=URI_CLIENT))
        assert response.status_code == 403
        assert response.json()["error"] == "public_key error"
        assert srv.state.fetcher.fetches == 0


def test_oversized_jwks_refused(
    es256_key: Key, rot_keys: list[Key], jwks_host: Callable[..., JwksHost]
) -> None:
    keys = jwks([rot_keys[0].public()])
    keys["padding"] = "x" * 4096
    host = jwks_host(keys)
    with _server(es256_key, host.url, jwks_max_bytes=1024) as srv:
        response = srv.token(_uri_assertion(srv, rot_keys[0]))
        status, error, description = error_of(response)
        assert (status, error) == (400, "invalid_client"), response.text
        assert description.startswith("R10 "), description
        assert "1024" in description


@pytest.mark.parametrize("status", [500, 404, 302])
def test_jwks_uri_error_status(
    es256_key: Key, rot_keys: list[Key], jwks_host: Callable[..., JwksHost], status: int
) -> None:
    host = jwks_host(jwks([rot_keys[0].public()]))
    host.status = status
    with _server(es256_key, host.url) as srv:
        response = srv.token(_uri_assertion(srv, rot_keys[0]))
        got_status, error, description = error_of(response)
        assert (got_status, error) == (400, "invalid_client"), response.text
        assert description.startswith("R10 "), description
        assert str(status) in description


@pytest.mark.parametrize(
    "body",
    [b"not json", b"[]", b'{"keys": []}', b'{"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}'],
    ids=["not-json", "array", "empty", "private-oct"],
)
def test_jwks_uri_bad_content(
    es256_key: Key, rot_keys: list[Key], jwks_host: Callable[..., JwksHost], body: bytes
) -> None:
    host = jwks_host(body)
    with _server(es256_key, host.url) as srv:
        response = srv.token(_uri_assertion(srv, rot_keys[0]))
        status, error, description = error_of(response)
        assert (status, error) == (400, "invalid_client"), response.text
        assert description.startswith("R10 "), description


def test_jwks_uri_unreachable(es256_key: Key, rot_keys: list[Key]) -> None:
    with _server(es256_key, f"http://127.0.0.1:{free_port()}/jwks") as srv:
        response = srv.token(_uri_assertion(srv, rot_keys[0]))
        status, error, description = error_of(response)
        assert (status, error) == (400, "invalid_client"), response.text
        assert description.startswith("R10 "), description


def test_jwks_cache_seconds_setting_reaches_the_fetcher(es256_key: Key) -> None:
    """jwks_cache_seconds is an accepted config key; it must not be silently ignored."""
    with _server(es256_key, "https://jwks.example/jwks", jwks_cache_seconds=[5, 10]) as srv:
        assert tuple(srv.state.fetcher.cache_bounds) == (5, 10)


def test_a_jwks_uri_with_members_pkjwt_cannot_use_still_works(
    es256_key: Key, rot_keys: list[Key], jwks_host: Callable[..., JwksHost], caplog: Any
) -> None:
    """Issue 9 item 3: an X25519 or post-quantum member used to fail the whole set."""
    import logging

    caplog.set_level(logging.WARNING, logger="pkjwt.server")
    odd = [
        {"kty": "OKP", "crv": "X25519", "x": "hSDwCYkwp1R0i33ctD73Wg2_Og0mOBr066SpjqqbTmo",
         "kid": "x"},
        {"kty": "AKP", "alg": "ML-DSA-44", "pub": "AAAA", "kid": "pq"},
    ]  # fmt: skip
    host = jwks_host({"keys": [*odd, rot_keys[0].public().public_jwk()]})
    with _server(es256_key, host.url) as srv:
        for _ in range(2):
            response = srv.token(_uri_assertion(srv, rot_keys[0]))
            assert response.status_code == 200, response.text
    warnings = [r.getMessage() for r in caplog.records if "ignored" in r.getMessage()]
    assert len(warnings) == 2  # one line per member, not one per request


def test_inline_jwks_with_unusable_members_starts(es256_key: Key, caplog: Any) -> None:
    import logging

    caplog.set_level(logging.WARNING, logger="pkjwt.server")
    odd = {"kty": "AKP", "alg": "ML-DSA-44", "pub": "AAAA", "kid": "pq"}
    clients = [{"client_id": "mixed", "jwks": {"keys": [odd, es256_key.public().public_jwk()]}}]
    with start("rfc7523bis", key=es256_key, clients=clients) as srv:
        assertion = srv.assertion(iss="mixed", sub="mixed")
        assert srv.token(assertion).status_code == 200
    assert any("mixed: JWKS member pq ignored" in r.getMessage() for r in caplog.records)
