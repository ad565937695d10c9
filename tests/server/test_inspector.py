"""The inspector page (``/_inspect``) as ``curl`` sees it: when it is served, what it lists, and
that nothing a client sends can run in it or make it grow."""

from __future__ import annotations

import re
from collections.abc import Iterator

import httpx
import pytest

from pkjwt.keys import Key
from pkjwt.server.inspector import inspector_enabled
from pkjwt.server.recording import MAX_MEMBERS, MAX_VALUE, bounded_members
from pkjwt.server.run import RunningServer, run_in_thread

from .observed import SECRET, assertion, config, post_assertion

EVIL = '</pre><script>document.title="pwned"</script><img src=x onerror="alert(1)">'


@pytest.mark.parametrize(
    ("host", "choice", "on"),
    [
        ("127.0.0.1", None, True),
        ("127.0.0.2", None, True),
        ("::1", None, True),
        ("localhost", None, True),
        ("0.0.0.0", None, False),  # every interface: the page would show claims to the network
        ("::", None, False),
        ("192.168.1.5", None, False),
        ("devbox.example", None, False),  # a name may resolve anywhere
        ("0.0.0.0", True, True),  # --inspector
        ("127.0.0.1", False, False),  # --no-inspector
    ],
)
def test_inspector_is_on_by_default_only_on_loopback(
    host: str, choice: bool | None, on: bool
) -> None:
    assert inspector_enabled(host, choice) is on


@pytest.fixture
def server(es256_key: Key) -> Iterator[RunningServer]:
    with run_in_thread(config(es256_key), record=5, inspect=True) as running:
        yield running


def _page(issuer: str, host: str | None = None) -> httpx.Response:
    headers = {"host": host} if host else {}
    return httpx.get(issuer + "/_inspect", headers=headers, timeout=10)


def test_the_page_lists_requests_newest_first_with_verdicts(
    server: RunningServer, es256_key: Key
) -> None:
    issuer = server.issuer
    with httpx.Client(timeout=10) as http:
        assert post_assertion(http, issuer, assertion(es256_key, issuer)).status_code == 200
        wrong = assertion(es256_key, issuer, aud="https://elsewhere.example")
        assert post_assertion(http, issuer, wrong).status_code == 400
        http.post(issuer + "/oauth2/token", data={"grant_type": "password"})
    response = _page(issuer)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "script-src 'sha256-" in response.headers["content-security-policy"]
    page = response.text
    ids = re.findall(r'<li id="r(\d+)" class="(\w+)"', page)
    assert ids == [("3", "refused"), ("2", "refused"), ("1", "ok")]
    r14 = page[page.index('id="r2"') : page.index('id="r1"')]
    assert "invalid_client (R14)" in r14
    assert '<tr class="v-FAIL"><td class="mark">FAIL</td><td class="rule">R14</td>' in r14
    assert "expected aud" in r14
    assert "got https://elsewhere.example" in r14
    assert "fix: " in r14
    assert "a server answers invalid_client; code aud." in r14
    assert '<td class="mark">PASS</td><td class="rule">R11</td>' in r14
    assert "&quot;aud&quot;: &quot;https://elsewhere.example&quot;" in r14  # the claims
    r3 = page[page.index('id="r3"') : page.index('id="r2"')]
    assert '<td class="rule">R3</td>' in r3
    assert "unsupported_grant_type" in r3


def test_client_strings_are_escaped_and_nothing_secret_is_shown(
    server: RunningServer, es256_key: Key
) -> None:
    issuer = server.issuer
    with httpx.Client(timeout=10) as http:
        evil = assertion(es256_key, issuer, sub=EVIL, note=EVIL, aud=EVIL)
        assert post_assertion(http, issuer, evil).status_code == 400
        good = assertion(es256_key, issuer)
        token = post_assertion(http, issuer, good).json()["access_token"]
        http.post(
            issuer + "/oauth2/token",
            data={"grant_type": "client_credentials", "client_id": "s1", "client_secret": SECRET},
        )
    page = _page(issuer).text
    assert page.count("<script>") == 1  # the page's own
    assert "<img" not in page
    assert "</pre><script" not in page
    assert "&lt;script&gt;document.title=" in page  # shown, as text
    for secret in (evil, good, good.split(".")[2], token, SECRET):
        assert secret not in page


def test_long_claims_are_cut_and_the_log_is_bounded(server: RunningServer, es256_key: Key) -> None:
    issuer = server.issuer
    with httpx.Client(timeout=10) as http:
        long_claim = "x" * 5000
        signed = assertion(es256_key, issuer, note=long_claim, aud="https://elsewhere.example")
        post_assertion(http, issuer, signed)
        for _ in range(6):
            post_assertion(http, issuer, assertion(es256_key, issuer))
    kept = list(server.state.requests)
    assert len(kept) == 5  # record=5
    page = _page(issuer).text
    assert page.count("<li ") == 5
    assert long_claim not in page


def test_bounded_members_keep_a_bounded_copy() -> None:
    members = {f"m{i}": i for i in range(MAX_MEMBERS + 8)}
    members["m0"] = "y" * 10_000
    members["m1"] = {"deep": ["z" * 10_000]}
    members["m2"] = 10**400
    kept = bounded_members(members)
    assert len(kept) == MAX_MEMBERS + 1
    assert kept["..."] == "8 more members not kept"
    assert len(kept["m0"]) < MAX_VALUE + 30
    assert kept["m0"].startswith("yyy")
    assert isinstance(kept["m1"], str)
    assert len(kept["m1"]) < MAX_VALUE + 30
    assert isinstance(kept["m2"], str)
    assert len(kept["m2"]) < MAX_VALUE + 30
    assert kept["m3"] == 3
    assert bounded_members({"a": {"b": 1}, "n" * 500: None}) == {
        "a": {"b": 1},
        "n" * 64 + "... (436 more)": None,
    }


def test_the_page_answers_only_under_the_servers_own_name(server: RunningServer) -> None:
    # a page on another site that rebinds its DNS name to 127.0.0.1 must not read the claims
    assert _page(server.issuer, host="attacker.example:1234").status_code == 403
    assert _page(server.issuer, host="[::1").status_code == 403
    assert _page(server.issuer, host="127.0.0.1:notaport").status_code == 200
    assert (
        _page(server.issuer, host=f"localhost:{server.base_url.rsplit(':', 1)[1]}").status_code
        == 200
    )
    assert _page(server.issuer).status_code == 200


def test_no_inspector_no_page(es256_key: Key) -> None:
    with run_in_thread(config(es256_key)) as running:
        assert _page(running.issuer).status_code == 404
