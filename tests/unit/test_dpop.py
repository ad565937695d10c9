"""DPoP proofs (RFC 9449): what pkjwt makes is what an independent library (jwcrypto) accepts,
and what the server half refuses, rule by rule (issue 15)."""

from __future__ import annotations

import base64
import json
import time

import pytest
from jwcrypto import jwk as jwc_jwk
from jwcrypto import jws as jwc_jws

from pkjwt.dpop import (
    DPOP_TYP,
    DPoPKey,
    NonceIssuer,
    Nonces,
    access_token_hash,
    check_proof,
    htu_of,
)
from pkjwt.errors import KeyLoadError
from pkjwt.forge import hmac_sign, sign
from pkjwt.keys import generate_key

URL = "https://as.example/oauth2/token"
NOW = 1_800_000_000.0


@pytest.fixture(scope="module")
def dpop() -> DPoPKey:
    return DPoPKey()


def _parts(proof: str) -> tuple[dict, dict]:
    h, p, _ = proof.split(".")
    pad = lambda s: s + "=" * (-len(s) % 4)  # noqa: E731
    return json.loads(base64.urlsafe_b64decode(pad(h))), json.loads(
        base64.urlsafe_b64decode(pad(p))
    )


def _failed(check) -> list[str]:
    return [f.rule for f in check.findings if f.verdict == "fail"]


def test_a_proof_verifies_with_jwcrypto_and_its_thumbprint_matches(dpop):
    proof = dpop.sign_now("post", URL + "?q=1#f", now=NOW, nonce="n-1", access_token="tok")
    header, claims = _parts(proof)
    assert header["typ"] == DPOP_TYP
    assert set(header["jwk"]) == {"kty", "crv", "x", "y"}  # public members only
    key = jwc_jwk.JWK(**header["jwk"])
    token = jwc_jws.JWS()
    token.deserialize(proof)
    token.verify(key)  # raises when the signature is wrong
    assert key.thumbprint() == dpop.jkt
    assert claims["htm"] == "POST"
    assert claims["htu"] == URL
    assert claims["iat"] == int(NOW)
    assert claims["nonce"] == "n-1"
    assert claims["ath"] == access_token_hash("tok")
    assert len(claims["jti"]) >= 16
    assert _parts(dpop.sign_now("POST", URL))[1]["jti"] != claims["jti"]


def test_a_good_proof_passes_every_rule(dpop):
    proof = dpop.sign_now("POST", URL, now=NOW)
    check = check_proof(proof, method="POST", url=URL, now=NOW + 2)
    assert check.ok
    assert check.jkt == dpop.jkt
    assert [f.rule for f in check.findings] == [f"D{i}" for i in range(1, 10)]


@pytest.mark.parametrize(
    ("change", "rule"),
    [
        ({"method": "GET"}, "D6"),
        ({"url": "https://as.example/other"}, "D7"),
        ({"url": "https://attacker.example/oauth2/token"}, "D7"),
        ({"now": NOW + 301}, "D8"),
        ({"now": NOW - 60}, "D8"),
    ],
)
def test_a_proof_for_another_request_or_time_is_refused(dpop, change, rule):
    proof = dpop.sign_now("POST", URL, now=NOW)
    args = {"method": "POST", "url": URL, "now": NOW, **change}
    check = check_proof(proof, **args)
    assert _failed(check) == [rule]
    assert check.first_failure.error == "invalid_dpop_proof"


def test_headers_a_proof_must_not_have(dpop):
    key = generate_key("ES256")
    public = {k: v for k, v in key.public_jwk().items() if k in ("kty", "crv", "x", "y")}
    private = dict(key.jose.as_dict(private=True))
    claims = {"jti": "j", "htm": "POST", "htu": URL, "iat": int(NOW)}
    cases = {
        "D4": sign(key, {"typ": DPOP_TYP, "alg": "ES256", "jwk": private}, claims),
        "D2": sign(key, {"typ": "JWT", "alg": "ES256", "jwk": public}, claims),
        "D3": hmac_sign(b"s" * 32, {"typ": DPOP_TYP, "alg": "HS256", "jwk": public}, claims),
        "D5": sign(generate_key("ES256"), {"typ": DPOP_TYP, "alg": "ES256", "jwk": public}, claims),
    }
    for rule, proof in cases.items():
        check = check_proof(proof, method="POST", url=URL, now=NOW)
        assert rule in _failed(check), (rule, _failed(check))
    leaked = check_proof(cases["D4"], method="POST", url=URL, now=NOW).first_failure
    assert private["d"] not in leaked.got  # the private key is named, never echoed


def test_missing_or_repeated_headers_and_garbage(dpop):
    proof = dpop.sign_now("POST", URL, now=NOW)
    for value in (None, [], [proof, proof]):
        assert _failed(check_proof(value, method="POST", url=URL, now=NOW)) == ["D1"]
    assert _failed(check_proof("not.a.jwt!", method="POST", url=URL, now=NOW)) == ["D1"]
    assert _failed(check_proof("x" * 100_000, method="POST", url=URL, now=NOW)) == ["D1"]


def test_at_a_resource_ath_and_binding(dpop):
    other = DPoPKey()
    proof = dpop.sign_now("GET", "https://api.example/x", now=NOW, access_token="tok")
    args = {"method": "GET", "url": "https://api.example/x", "now": NOW}
    assert check_proof(proof, **args, access_token="tok", bound_jkt=dpop.jkt).ok
    assert _failed(check_proof(proof, **args, access_token="other", bound_jkt=dpop.jkt)) == ["D11"]
    stolen = other.sign_now("GET", "https://api.example/x", now=NOW, access_token="tok")
    failed = check_proof(stolen, **args, access_token="tok", bound_jkt=dpop.jkt)
    assert _failed(failed) == ["D12"]
    assert failed.first_failure.error == "invalid_dpop_proof"


def test_server_nonces():
    clock = [NOW]
    issuer = NonceIssuer(lifetime=300, clock=lambda: clock[0])
    nonce = issuer.current()
    assert issuer.valid(nonce)
    assert not issuer.valid("forged-nonce")
    assert not NonceIssuer(lifetime=300, clock=lambda: clock[0]).valid(nonce)  # another secret
    clock[0] += 301
    assert not issuer.valid(nonce)
    assert issuer.current() != nonce
    key = DPoPKey()
    proof = key.sign_now("POST", URL, now=clock[0])
    check = check_proof(proof, method="POST", url=URL, now=clock[0], nonce=issuer)
    assert _failed(check) == ["D10"]
    assert check.first_failure.error == "use_dpop_nonce"
    good = key.sign_now("POST", URL, now=clock[0], nonce=issuer.current())
    assert check_proof(good, method="POST", url=URL, now=clock[0], nonce=issuer).ok


def test_client_nonces_are_kept_per_origin():
    nonces = Nonces()
    assert nonces.observe("https://as.example/token", {"DPoP-Nonce": "a"})
    assert not nonces.observe("https://as.example/other", {"dpop-nonce": "a"})
    assert nonces.get("https://AS.example/anything") == "a"
    assert nonces.get("https://api.example/x") is None


def test_keys_a_proof_cannot_use():
    with pytest.raises(KeyLoadError):
        DPoPKey(generate_key("ES256"), alg="HS256")
    assert DPoPKey(generate_key("PS256", size=2048)).alg == "PS256"
    assert DPoPKey(generate_key("EdDSA")).alg == "EdDSA"


def test_htu_normalisation():
    assert htu_of("HTTPS://AS.Example:8443/p?q=1#f") == "https://as.example:8443/p"
    assert htu_of("http://h") == "http://h/"


def test_the_doctor_explains_a_proof(dpop):
    from click.testing import CliRunner

    from pkjwt.cli.main import cli

    stale = dpop.sign_now("GET", "https://api.example/x", now=time.time() - 1000)
    result = CliRunner().invoke(cli, ["doctor", f"DPoP: {stale}", "--htm", "POST", "--json"])
    assert result.exit_code == 1
    report = json.loads(result.output)
    assert report["kind"] == "dpop_proof"
    failed = {f["rule"] for f in report["findings"] if f["verdict"] == "fail"}
    assert failed == {"D6", "D8"}
    skipped = {f["rule"] for f in report["findings"] if f["verdict"] == "skip"}
    assert skipped == {"D7"}
    fresh = dpop.sign_now("POST", URL)
    good = CliRunner().invoke(cli, ["doctor", fresh, "--htm", "POST", "--htu", URL])
    assert good.exit_code == 0, good.output
    assert "verdict: acceptable" in good.output
