"""``pkjwt conformance`` against the npm oidc-provider server in its default configuration: it
reports that server's known weaknesses truthfully (weaker than best practice, not MUST
violations) and the MUST-level cases it gets right as passes."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from peers import skip_unless
from pkjwt.conformance import Conformance, Severity, summarize
from pkjwt.keys import Key, generate_key, jwks
from pkjwt.profiles import get_profile

sys.path.insert(0, str(Path(__file__).resolve().parent))
import nodepeers

pytestmark = [pytest.mark.interop, skip_unless("node", "npm")]


@pytest.fixture(scope="module")
def key() -> Key:
    return generate_key("ES256", kid="conf-1")


@pytest.fixture(scope="module")
def provider(key: Key) -> Iterator[dict[str, Any]]:
    clients = [{"client_id": "conformance", "jwks": jwks([key.public()])}]
    with nodepeers.run_oidc_provider(clients) as info:
        yield info


def test_oidc_provider_is_reported_truthfully(provider: dict[str, Any], key: Key) -> None:
    runner = Conformance(
        client_id="conformance",
        key=key,
        profile=get_profile("rfc7523bis"),
        issuer=provider["issuer"],
        rate=20,
    )
    results = {r.case.id: r for r in runner.run()}
    runner.close()
    # its known weaknesses: accepted, so reported as failed, and weighed as weaker than best
    # practice (SHOULD or hardening), not as MUST violations
    weak = {"aud-token-endpoint", "aud-foreign-member", "exp-year", "iat-hour-ahead",
            "typ-at-jwt"}  # fmt: skip
    for case_id in weak:
        result = results[case_id]
        assert result.status == "fail", (case_id, result.http_status, result.error)
        assert result.severity is not Severity.MUST, case_id
    # what it gets right at MUST level shows as passes
    must = [r for r in results.values() if r.severity is Severity.MUST]
    assert {r.case.id for r in must if r.passed} >= {
        "baseline", "alg-none", "alg-hs256-public-key", "signature-bad", "signature-other-key",
        "exp-past", "aud-missing", "aud-unrelated", "sub-wrong", "iss-wrong", "replay",
        "kid-unknown", "jwk-header", "iat-8s-ahead",
    }  # fmt: skip
    # and the summary counts its MUST failures as exactly those (none, in its defaults)
    failing_must = [(r.case.id, r.http_status, r.error) for r in must if not r.passed]
    assert summarize(list(results.values())).must_failed == len(failing_must)
