"""The inspector page in a real browser: headless Chromium (Debian's ``chromium`` package) loads
it from a server in a thread, after a failing and a good token request, and shows the failing
request's verdicts, in the failing colour.

``PKJWT_SAVE_SCREENSHOT=docs/images/inspector.png`` also keeps the screenshot (the README's).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from peers import need
from pkjwt.keys import Key
from pkjwt.server.run import RunningServer, run_in_thread

from .observed import assertion, config, post_assertion
from .pngread import colours

WINDOW = (1280, 900)
#: the FAIL badge's background (``.v-FAIL .mark`` in the page's style)
FAIL_COLOUR = (0xB3, 0x26, 0x1E)


def _chromium(tmp_path: Path, *args: str) -> str:
    need("chromium")
    command = [
        "chromium",
        "--headless",
        "--no-sandbox",  # tests may run as root, where Chromium's sandbox refuses to start
        "--disable-gpu",
        f"--window-size={WINDOW[0]},{WINDOW[1]}",
        "--hide-scrollbars",
        f"--user-data-dir={tmp_path / 'chromium-profile'}",
        *args,
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


@pytest.fixture
def server(es256_key: Key) -> Iterator[RunningServer]:
    with run_in_thread(config(es256_key), inspect=True, record=200) as running:
        yield running


def _near(colour: tuple[int, int, int], target: tuple[int, int, int]) -> bool:
    return all(abs(a - b) <= 3 for a, b in zip(colour, target, strict=True))


def test_chromium_shows_the_failing_requests_verdicts(
    server: RunningServer, es256_key: Key, tmp_path: Path
) -> None:
    issuer = server.issuer
    with httpx.Client(timeout=10) as http:
        assert post_assertion(http, issuer, assertion(es256_key, issuer)).status_code == 200
        late = assertion(es256_key, issuer, exp=int(time.time()) - 600, iat=int(time.time()) - 900)
        assert post_assertion(http, issuer, late).status_code == 400
        wrong = assertion(es256_key, issuer, aud=issuer + "/oauth2/token")
        assert post_assertion(http, issuer, wrong).status_code == 400
    url = issuer + "/_inspect"

    dom = _chromium(tmp_path, "--dump-dom", url)
    newest = dom[dom.index('<li id="r3"') : dom.index('<li id="r2"')]
    assert '<td class="mark">FAIL</td><td class="rule">R14</td>' in newest
    assert "expected aud" in newest
    assert "got " + issuer + "/oauth2/token" in newest
    assert '<span class="fix">fix: ' in newest
    assert '<td class="mark">PASS</td><td class="rule">R11</td>' in newest
    expired = dom[dom.index('<li id="r2"') : dom.index('<li id="r1"')]
    assert '<td class="mark">FAIL</td><td class="rule">R15</td>' in expired
    assert '<li id="r1" class="ok">' in dom

    shot = tmp_path / "inspector.png"
    _chromium(tmp_path, f"--screenshot={shot}", url)
    width, height, counts = colours(shot)
    assert (width, height) == WINDOW
    failing = sum(n for colour, n in counts.items() if _near(colour, FAIL_COLOUR))
    assert failing > 200, "no FAIL badge in the screenshot"
    white = counts.get((255, 255, 255), 0) + counts.get((250, 250, 250), 0)
    assert white < width * height * 0.95, "a blank page"
    assert len(counts) > 20, "a blank page"
    keep = os.environ.get("PKJWT_SAVE_SCREENSHOT")
    if keep:
        Path(keep).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shot, keep)


def test_a_script_in_a_claim_does_not_run_in_chromium(
    server: RunningServer, es256_key: Key, tmp_path: Path
) -> None:
    issuer = server.issuer
    evil = '<script>document.title="pwned"</script><img src=x onerror="document.title=1">'
    with httpx.Client(timeout=10) as http:
        post_assertion(http, issuer, assertion(es256_key, issuer, sub=evil, note=evil))
    dom = _chromium(tmp_path, "--dump-dom", issuer + "/_inspect")
    assert "<title>pkjwt inspector</title>" in dom
    assert "<img" not in dom
    assert "&lt;script&gt;document.title=" in dom
