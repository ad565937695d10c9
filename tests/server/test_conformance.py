"""The OpenID conformance suite's negative list for client assertions (assertion-rules.md),
plus replay, against real servers over loopback."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from pkjwt.errors import ConfigError
from pkjwt.forge import sign, unsigned
from pkjwt.keys import Key, jwks
from pkjwt.server.config import parse_config
from pkjwt.server.run import run_in_thread

from .conftest import DROP, JWT_BEARER, Srv, error_of, free_port, start

# Each case: (name, build(srv) -> form, expected error, rule id named in error_description).
Case = tuple[str, Callable[[Srv], dict[str, str]], str, str]


def _now() -> int:
    return int(time.time())


def _common_cases() -> list[Case]:
    return [
        (
            "no assertion",
            lambda s: {"grant_type": "client_credentials"},
            "invalid_client",
            "R4",
        ),
        (
            "client_assertion_type missing",
            lambda s: s.form(client_assertion_type=DROP),
            "invalid_request",
            "R4",
        ),
        (
            "client_assertion_type wrong",
            lambda s: s.form(
                client_assertion_type="urn:ietf:params:oauth:client-assertion-type:saml2-bearer"
            ),
            "invalid_request",
            "R4",
        ),
        ("sub missing", lambda s: s.form(s.assertion(sub=DROP)), "invalid_client", "R7"),
        ("sub wrong", lambda s: s.form(s.assertion(sub="someone-else")), "invalid_client", "R7"),
        ("iss missing", lambda s: s.form(s.assertion(iss=DROP)), "invalid_client", "R13"),
        ("iss wrong", lambda s: s.form(s.assertion(iss="someone-else")), "invalid_client", "R13"),
        ("aud missing", lambda s: s.form(s.assertion(aud=DROP)), "invalid_client", "R14"),
        (
            "aud unrelated URL",
            lambda s: s.form(s.assertion(aud="https://unrelated.example/oauth2/token")),
            "invalid_client",
            "R14",
        ),
        (
            "exp in the past",
            lambda s: s.form(s.assertion(iat=_now() - 600, exp=_now() - 300)),
            "invalid_client",
            "R15",
        ),
        (
            "iat 90 s ahead",
            lambda s: s.form(s.assertion(iat=_now() + 90, exp=_now() + 120)),
            "invalid_client",
            "R16",
        ),
        (
            "nbf 90 s ahead",
            lambda s: s.form(s.assertion(nbf=_now() + 90, exp=_now() + 120)),
            "invalid_client",
            "R16",
        ),
        (
            "client_assertion missing, type present",
            lambda s: s.form(client_assertion=DROP),
            "invalid_request",
            "R4",
        ),
        ("jti missing", lambda s: s.form(s.assertion(jti=DROP)), "invalid_client", "R18"),
        ("jti a number", lambda s: s.form(s.assertion(jti=42)), "invalid_client", "R18"),
        ("jti too long", lambda s: s.form(s.assertion(jti="j" * 300)), "invalid_client", "R18"),
        (
            "typ at+jwt",
            lambda s: s.form(s.assertion(header={"typ": "at+jwt"})),
            "invalid_client",
            "R12",
        ),
        (
            "lifetime over the cap",
            lambda s: s.form(s.assertion(exp=_now() + 900)),
            "invalid_client",
            "R17",
        ),
        (
            "alg none",
            lambda s: s.form(unsigned(s.header(alg="none"), s.claims())),
            "invalid_client",
            "R8",
        ),
        (
            "bad signature",
            lambda s: s.form(s.assertion()[:-8] + "AAAAAAAA"),
            "invalid_client",
            "R11",
        ),
    ]


_STRICT_ONLY: list[Case] = [
    (
        "aud is the token endpoint",
        lambda s: s.form(s.assertion(aud=s.token_url)),
        "invalid_client",
        "R14",
    ),
    (
        "aud is an array holding the issuer",
        lambda s: s.form(s.assertion(aud=[s.issuer])),
        "invalid_client",
        "R14",
    ),
]


def _ids(cases: list[Case]) -> list[str]:
    return [c[0] for c in cases]


def _check_rejected(
    srv: Srv, build: Callable[[Srv], dict[str, str]], error: str, rule: str
) -> None:
    response = srv.post(build(srv))
    status, got_error, description = error_of(response)
    assert status == 400, response.text
    assert got_error == error, response.text
    assert description.startswith(rule + " "), description
    assert "access_token" not in response.json()


@pytest.mark.parametrize(
    ("name", "build", "error", "rule"),
    _common_cases() + _STRICT_ONLY,
    ids=_ids(_common_cases() + _STRICT_ONLY),
)
def test_negative_list_strict_profiles(
    strict: Srv, name: str, build: Callable[[Srv], dict[str, str]], error: str, rule: str
) -> None:
    _check_rejected(strict, build, error, rule)


@pytest.mark.parametrize(
    ("name", "build", "error", "rule"), _common_cases(), ids=_ids(_common_cases())
)
def test_negative_list_legacy(
    legacy: Srv, name: str, build: Callable[[Srv], dict[str, str]], error: str, rule: str
) -> None:
    _check_rejected(legacy, build, error, rule)


def test_fapi2_rejects_rs256(fapi: Srv) -> None:
    response = fapi.token(fapi.assertion(header={"alg": "RS256"}, alg=fapi.key.alg))
    status, error, description = error_of(response)
    assert (status, error) == (400, "invalid_client")
    assert description.startswith("R8 "), description
    assert "RS256" in description


def test_rfc7523bis_allows_the_rs256_alg(bis: Srv, ps256_key: Key) -> None:
    """Control for the FAPI case: the generic profile allows RS256 (with a key registered for
    it), so the FAPI rejection is about the alg list, not the key."""
    # the bis client's key is ES256; a PS256-pinned key cannot be used by it: only check R8 passes
    response = bis.token(bis.assertion(header={"alg": "RS256"}, key=ps256_key, alg="PS256"))
    _status, _error, description = error_of(response)
    assert not description.startswith("R8"), description


@pytest.mark.parametrize("claim", ["iat", "nbf"])
def test_iat_nbf_8_seconds_ahead_accepted(generic: Srv, claim: str) -> None:
    now = _now()
    response = generic.token(generic.assertion(**{claim: now + 8, "exp": now + 60}))
    assert response.status_code == 200, response.text
    assert response.json()["token_type"] == ("DPoP" if generic.profile == "fapi2" else "Bearer")


def test_fapi2_accepts_30_seconds_ahead(fapi: Srv) -> None:
    """FAPI 2.0 5.3.2.1-13: accept up to 10 s ahead, reject beyond 60 s; in between allowed."""
    now = _now()
    response = fapi.token(fapi.assertion(iat=now + 30, exp=now + 90))
    assert response.status_code == 200, response.text


def test_legacy_accepts_token_endpoint_and_issuer_array(legacy: Srv) -> None:
    for aud in (legacy.token_url, legacy.issuer, [legacy.issuer], [legacy.token_url]):
        response = legacy.token(legacy.assertion(aud=aud))
        assert response.status_code == 200, (aud, response.text)
    # an array that also names another server is refused (issue 11: audience injection)
    response = legacy.token(legacy.assertion(aud=[legacy.token_url, "x"]))
    assert error_of(response)[:2] == (400, "invalid_client")
    assert "aud" in error_of(response)[2]


def test_valid_assertion_accepted(generic: Srv) -> None:
    response = generic.token()
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["token_type"] == ("DPoP" if generic.profile == "fapi2" else "Bearer")
    assert isinstance(body["expires_in"], int)
    assert "refresh_token" not in body


# -- replay (R19) ---------------------------------------------------------------------------------


def test_replay_rejected(generic: Srv) -> None:
    assertion = generic.assertion()
    first = generic.token(assertion)
    assert first.status_code == 200, first.text
    second = generic.token(assertion)
    status, error, description = error_of(second)
    assert (status, error) == (400, "invalid_client")
    assert description.startswith("R19 "), description


def test_failed_assertion_does_not_use_up_its_jti(bis: Srv) -> None:
    """R19 runs last: a jti is recorded only when everything else passed."""
    jti = "fixed-" + str(time.time_ns())
    bad = bis.token(bis.assertion(jti=jti, aud="https://unrelated.example"))
    assert error_of(bad)[2].startswith("R14")
    good = bis.token(bis.assertion(jti=jti))
    assert good.status_code == 200, good.text


@pytest.mark.parametrize("default_file", [False, True])
def test_sqlite_replay_store_survives_restart(
    tmp_path: Path, es256_key: Key, default_file: bool
) -> None:
    """Use an assertion, stop the server, start a new one on the same SQLite file (and port, so
    the issuer and aud are the same): the assertion is still rejected. With the default file
    (``sqlite:///``) too; a second server running alongside falls back to a file of its own."""
    db = tmp_path / "r.db"
    cfg = parse_config(
        {
            "profile": "rfc7523bis",
            "replay_store": "sqlite:///" if default_file else f"sqlite:///{db}",
            "clients": [{"client_id": "c1", "jwks": jwks([es256_key.public()])}],
        }
    )
    state = {"state_dir": tmp_path / "state"}
    port = free_port()
    issuer = f"http://127.0.0.1:{port}"
    now = _now()
    assertion = sign(
        es256_key,
        {"alg": "ES256", "kid": es256_key.kid, "typ": "client-authentication+jwt"},
        {"iss": "c1", "sub": "c1", "aud": issuer, "jti": "once", "iat": now, "exp": now + 120},
    )
    form = {
        "grant_type": "client_credentials",
        "client_assertion_type": JWT_BEARER,
        "client_assertion": assertion,
    }
    with run_in_thread(cfg, port=port, **state) as first:
        assert first.issuer == issuer
        response = httpx.post(first.token_url, data=form, timeout=30)
        assert response.status_code == 200, response.text
        again = httpx.post(first.token_url, data=form, timeout=30)
        assert error_of(again)[2].startswith("R19 ")
    files = sorted(p.name for p in (tmp_path / "state").glob("*.sqlite3"))
    assert db.exists() != default_file
    assert len(files) == int(default_file)
    with run_in_thread(cfg, port=port, **state) as second:
        response = httpx.post(second.token_url, data=form, timeout=30)
        if default_file:  # another issuer alongside: the shared file is taken, so its own
            with run_in_thread(cfg, port=free_port(), **state):
                pass
        else:  # one named file, write-behind: one process only, and it says so
            with (
                pytest.raises(ConfigError, match="in use by another process"),
                run_in_thread(cfg, port=free_port(), **state),
            ):
                pass
    assert len(list((tmp_path / "state").glob("*.sqlite3"))) == 2 * int(default_file)
    status, error, description = error_of(response)
    assert (status, error) == (400, "invalid_client"), response.text
    assert description.startswith("R19 "), description


@pytest.mark.parametrize("store", ["memory", "sqlite"])
def test_concurrent_replay_exactly_one_wins(tmp_path: Path, es256_key: Key, store: str) -> None:
    """R19 is an atomic insert-if-absent: the same assertion sent 12 times at once buys one
    token, with either replay store."""
    url = "memory://" if store == "memory" else f"sqlite:///{tmp_path / 'c.db'}"
    with start("rfc7523bis", key=es256_key, extra={"replay_store": url}) as srv:
        form = srv.form()
        barrier = threading.Barrier(12)

        def post(_: int) -> int:
            barrier.wait()
            return httpx.post(srv.token_url, data=form, timeout=30).status_code

        with ThreadPoolExecutor(12) as pool:
            statuses = sorted(pool.map(post, range(12)))
    assert statuses == [200] + [400] * 11, statuses


def test_require_explicit_typ(es256_key: Key) -> None:
    with start("rfc7523bis", key=es256_key, extra={"require_explicit_typ": True}) as srv:
        assert srv.token().status_code == 200  # client-authentication+jwt
        for typ in ("JWT", DROP):
            status, error, description = error_of(srv.token(srv.assertion(header={"typ": typ})))
            assert (status, error) == (400, "invalid_client")
            assert description.startswith("R12 "), description


def test_audience_policy_issuer_string_or_array(es256_key: Key) -> None:
    extra = {"audience_policy": "issuer_string_or_array"}
    with start("rfc7523bis", key=es256_key, extra=extra) as srv:
        assert srv.token(srv.assertion(aud=[srv.issuer])).status_code == 200
        assert srv.token(srv.assertion(aud=srv.issuer)).status_code == 200
        response = srv.token(srv.assertion(aud=srv.token_url))
        assert error_of(response)[2].startswith("R14 ")


def test_registered_alg_is_enforced(rsa_unpinned: Key) -> None:
    clients = [{"client_id": "pinned", "jwks": jwks([rsa_unpinned.public()]), "alg": "PS256"}]
    with start("rfc7523bis", key=rsa_unpinned, clients=clients) as srv:
        ok = srv.token(srv.assertion(header={"alg": "PS256"}, iss="pinned", sub="pinned"))
        assert ok.status_code == 200, ok.text
        bad = srv.token(srv.assertion(header={"alg": "RS256"}, iss="pinned", sub="pinned"))
        status, error, description = error_of(bad)
        assert (status, error) == (400, "invalid_client")
        assert description.startswith("R8 "), description
        # the unpinned main client may use either
        assert srv.token(srv.assertion(header={"alg": "RS256"})).status_code == 200


@pytest.fixture(scope="module")
def rsa_unpinned() -> Key:
    from cryptography.hazmat.primitives.asymmetric import rsa

    from pkjwt.keys import load_key

    return load_key(rsa.generate_private_key(65537, 2048), kid="test-1")
