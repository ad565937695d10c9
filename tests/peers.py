"""Which peers the tests need, and what happens when one is missing on this machine.

The real peers (redis-server; Node.js with npm for oidc-provider and openid-client; SoftHSM2
and OpenSC's pkcs11-tool for the PKCS#11 signer; Chromium for the server's inspector page) are
installed by ``.ci/run``, which sets ``PKJWT_REQUIRE_PEERS=1``: there a missing peer fails the
run, so CI never skips them. On a developer's machine without them, the tests that need them are
skipped with a reason that says what to install (``pytest -rs`` lists them).
"""

from __future__ import annotations

import os
import shutil

import pytest

REQUIRED = os.environ.get("PKJWT_REQUIRE_PEERS") == "1"

_INSTALL = {
    "redis-server": "apt-get install redis-server",
    "node": "apt-get install nodejs npm (Node.js >= 20)",
    "npm": "apt-get install nodejs npm (Node.js >= 20)",
    "softhsm2-util": "apt-get install softhsm2",
    "libsofthsm2.so": "apt-get install softhsm2",
    "pkcs11-tool": "apt-get install opensc",
    "chromium": "apt-get install chromium",
}


def missing(*tools: str) -> str | None:
    """Why these tools cannot be used here, or None when all are on PATH."""
    absent = [t for t in tools if shutil.which(t) is None]
    if not absent:
        return None
    # every missing tool's command, once: softhsm2-util and pkcs11-tool come from two packages
    how = "; ".join(dict.fromkeys(_INSTALL.get(t, "install it") for t in absent))
    return f"{', '.join(absent)} not installed ({how})"


def need(*tools: str) -> None:
    """Skip the calling test (fail it under PKJWT_REQUIRE_PEERS=1) when a tool is missing."""
    why = missing(*tools)
    if why is None:
        return
    if REQUIRED:
        pytest.fail(f"{why}; PKJWT_REQUIRE_PEERS=1 says this machine must have it")
    pytest.skip(why)


def skip_unless(*tools: str) -> pytest.MarkDecorator:
    """A marker: skip when a tool is missing, except where peers are required (then the test
    runs and fails on its own, loudly)."""
    why = missing(*tools)
    return pytest.mark.skipif(why is not None and not REQUIRED, reason=why or "")
