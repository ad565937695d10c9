"""The policy for tests whose peers are missing: skipped with a reason on a developer's machine,
a failure where PKJWT_REQUIRE_PEERS=1 (CI never skips them)."""

from __future__ import annotations

import pytest

import peers


def test_a_missing_tool_is_named_with_its_install_command() -> None:
    assert peers.missing("sh") is None
    why = peers.missing("redis-server-that-is-not-there")
    assert why is not None
    assert why.startswith("redis-server-that-is-not-there not installed")


def test_each_missing_tools_install_command_is_named_once() -> None:
    why = peers.missing("sh", "softhsm2-util-not-here", "libsofthsm2.so")
    assert why is not None
    assert why.startswith("softhsm2-util-not-here, libsofthsm2.so not installed")
    assert why.endswith("(install it; apt-get install softhsm2)")


def test_missing_means_skip_here(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(peers, "REQUIRED", False)
    with pytest.raises(pytest.skip.Exception):
        peers.need("no-such-tool-pkjwt")


def test_missing_means_fail_where_peers_are_required(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(peers, "REQUIRED", True)
    with pytest.raises(pytest.fail.Exception) as err:
        peers.need("no-such-tool-pkjwt")
    assert "PKJWT_REQUIRE_PEERS=1" in str(err.value)
