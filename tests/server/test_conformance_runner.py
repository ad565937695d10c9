"""``pkjwt conformance`` against ``pkjwt serve`` in every profile: every case must pass (the
runner's catalogue is part of the server's own test suite), and the runner must tell a server
that accepts everything what it is."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from pkjwt.cli.main import cli
from pkjwt.conformance import CASES, Conformance, Severity, summarize
from pkjwt.keys import Key
from pkjwt.profiles import get_profile

from .conftest import Srv, start


@pytest.fixture(params=["rfc7523bis", "fapi2", "legacy", "nhs"])
def served(request: pytest.FixtureRequest, es256_key: Key, ps256_key: Key, rs512_key: Key) -> Srv:
    profile = request.param
    key = {"fapi2": ps256_key, "nhs": rs512_key}.get(profile, es256_key)
    with start(profile, key=key) as srv:
        yield srv


def _runner(srv: Srv, **options: object) -> Conformance:
    where = (
        {"issuer": srv.issuer}
        if srv.profile in ("rfc7523bis", "fapi2")
        else {"token_url": srv.token_url}
    )
    return Conformance(
        client_id=srv.client_id,
        key=srv.key,
        profile=get_profile(srv.profile),
        rate=50,
        **where,  # type: ignore[arg-type]
        **options,  # type: ignore[arg-type]
    )


def test_pkjwt_serve_passes_every_case(served: Srv) -> None:
    runner = _runner(served)
    results = list(runner.run())
    runner.close()
    failed = [(r.case.id, r.status, r.http_status, r.error, r.detail) for r in results
              if r.status not in ("pass", "skip")]  # fmt: skip
    assert failed == []
    assert summarize(results).ok
    ids = {r.case.id for r in results}
    assert {"baseline", "replay", "alg-none", "signature-other-key", "iat-8s-ahead"} <= ids
    if served.profile == "nhs":
        assert {"nhs-typ-missing", "nhs-exp-6-minutes"} <= ids
    if served.profile in ("rfc7523bis", "fapi2"):  # discovered: the server advertises DPoP
        assert {"dpop-baseline", "dpop-replay", "dpop-private-jwk", "dpop-two-proofs"} <= ids


def test_the_dpop_cases_carry_the_servers_nonce(es256_key: Key) -> None:
    with start("rfc7523bis", key=es256_key, extra={"dpop_nonce": True}) as srv:
        runner = _runner(srv)
        results = [r for r in runner.run() if r.case.id.startswith("dpop-")]
        runner.close()
    failed = [(r.case.id, r.http_status, r.error, r.detail) for r in results if r.status != "pass"]
    assert failed == []
    assert len(results) == 11


def test_every_case_names_a_catalogued_rule_and_a_source() -> None:
    for case in CASES:
        assert case.rule.id == case.rule_id
        assert case.source
    assert len({c.id for c in CASES}) == len(CASES)


def test_a_server_that_accepts_everything_is_told_so() -> None:
    def anything(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"access_token": "x", "token_type": "Bearer"})

    from pkjwt import generate_key

    runner = Conformance(
        client_id="c",
        key=generate_key("ES256", kid="k"),
        profile=get_profile("rfc7523bis"),
        token_url="https://as.example/token",
        issuer=None,
        rate=50,
        http=httpx.Client(transport=httpx.MockTransport(anything)),
    )
    results = list(runner.run())
    summary = summarize(results)
    assert not summary.ok
    must = {r.case.id for r in results if r.status == "fail" and r.severity is Severity.MUST}
    assert {"alg-none", "signature-bad", "signature-other-key", "exp-past"} <= must
    assert "baseline" not in must


def test_the_cli_writes_json_junit_and_a_report(bis: Srv, tmp_path: Path) -> None:
    served = bis
    key = tmp_path / "k.pem"
    key.write_bytes(served.key.private_pem())
    key.chmod(0o600)
    junit, report = tmp_path / "junit.xml", tmp_path / "report.html"
    result = CliRunner().invoke(
        cli,
        ["conformance", "--issuer", served.issuer, "--client-id", served.client_id,
         "--key", str(key), "--kid", served.key.kid, "--rate", "50", "--json",
         "--junit", str(junit), "--report", str(report)],
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    cases = json.loads(result.stdout)
    assert {"id", "title", "severity", "expected", "status", "error", "passed"} <= set(cases[0])
    assert all(c["passed"] or c["status"] == "skip" for c in cases)
    suite = ET.parse(junit).getroot()
    assert suite.tag == "testsuite"
    assert int(suite.get("failures", "1")) == 0
    page = report.read_text()
    assert "<table>" in page
    assert "no MUST violated" in page
    assert "token requests to" in result.stderr  # it says what it will send, first


def test_list_sends_nothing(tmp_path: Path) -> None:
    from pkjwt import generate_key

    key = tmp_path / "k.pem"
    key.write_bytes(generate_key("ES256", kid="k").private_pem())
    key.chmod(0o600)
    result = CliRunner().invoke(cli, ["conformance", "--token-url", "https://127.0.0.1:9/t",
                                      "--client-id", "c", "--key", str(key), "--list"])  # fmt: skip
    assert result.exit_code == 0, result.stderr
    assert "replay" in result.stdout
