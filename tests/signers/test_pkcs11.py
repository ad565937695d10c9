"""The PKCS#11 signer against a real SoftHSM2 token (no PKCS#11 mock anywhere): tokens from a
real ``pkjwt serve``, signatures checked by PyJWT (a JOSE library pkjwt does not use) against
public keys that pkcs11-tool exported, the CLI, wrong PINs, threads, and the PIN never shown.

The token is made once per session (conftest.py); without softhsm2/opensc these tests skip
with the install command, and fail where PKJWT_REQUIRE_PEERS=1 (CI).
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import jwt as pyjwt
import pytest
from click.testing import CliRunner
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from jwcrypto import jwk as jwcrypto_jwk
from pkcs11 import Mechanism
from pkcs11 import exceptions as p11

from pkjwt import AssertionFactory, TokenClient
from pkjwt.cli.main import cli
from pkjwt.errors import KeyLoadError, SignerUnavailable
from pkjwt.keys import load_key
from pkjwt.signers import open_signer
from pkjwt.signers.pkcs11 import Pkcs11Signer, _ec_public, _plan
from pkjwt.signers.pkcs11_session import explain
from pkjwt.signers.pkcs11_uri import Pin
from pkjwt.testing import local_auth_server
from softhsm import USER_PIN, SoftHsm

from .conftest import SPARE, TOKEN

WRONG_PIN = "1357-wrong-pin-value"
RSA_ALGS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512")


def _public(hsm: SoftHsm, key_id: str) -> Any:
    """The public key as pkcs11-tool exports it: read without pkjwt."""
    return serialization.load_der_public_key(hsm.export_public(TOKEN, key_id))


def _p384_public() -> Any:
    """pkcs11-tool (OpenSC 0.23) cannot export a P-384 key; python-pkcs11's own decoder
    reads the CKO_PUBLIC_KEY object instead (still not pkjwt's code)."""
    import pkcs11
    from pkcs11.util.ec import encode_ec_public_key

    from pkjwt.signers.pkcs11_session import link_for
    from pkjwt.signers.pkcs11_uri import parse_pkcs11_uri

    def read(session: Any) -> bytes:
        public = session.get_key(pkcs11.ObjectClass.PUBLIC_KEY, label="ec-p384")
        der: bytes = encode_ec_public_key(public)
        return der

    uri = parse_pkcs11_uri(f"pkcs11:token={TOKEN};object=ec-p384?pin-value={USER_PIN}")
    link = link_for(_module(), uri)
    return serialization.load_der_public_key(link.call(read))


def _module() -> str:
    from softhsm import find_module

    return find_module() or ""


@pytest.fixture(scope="module")
def rsa_signer(hsm: SoftHsm) -> Pkcs11Signer:
    signer = open_signer(hsm.uri(TOKEN, "nhs-int-1"))
    assert isinstance(signer, Pkcs11Signer)
    return signer


@pytest.fixture(scope="module")
def ec_signer(hsm: SoftHsm) -> Pkcs11Signer:
    signer = open_signer(hsm.uri(TOKEN, "ec-p256"))
    assert isinstance(signer, Pkcs11Signer)
    return signer


# -- (a) tokens from a real pkjwt serve -------------------------------------------------------


@pytest.mark.parametrize(
    ("profile", "label", "alg"),
    [
        ("nhs", "nhs-int-1", "RS512"),
        ("fapi2", "nhs-int-1", "PS256"),
        ("rfc7523bis", "ec-p256", "ES256"),
    ],
)
def test_a_real_server_issues_a_token_for_an_hsm_key(
    hsm: SoftHsm, profile: str, label: str, alg: str
) -> None:
    uri = hsm.uri(TOKEN, label)
    published = open_signer(uri).with_alg(alg).public_key()  # what the client registers
    with local_auth_server(profile, key=published) as server:
        client = server.token_client(key=uri)
        with client:
            token = client.get_token()
        assert token.access_token
        seen = server.last_request
        assert seen.ok, (seen.error, seen.description)
        assert (seen.header["alg"], seen.header["kid"]) == (alg, published.kid)


# -- (b) PyJWT verifies with the public key pkcs11-tool exported --------------------------------


@pytest.mark.parametrize("alg", RSA_ALGS)
def test_every_rsa_algorithm_verifies_with_pyjwt(
    hsm: SoftHsm, rsa_signer: Pkcs11Signer, alg: str
) -> None:
    public = _public(hsm, "01")
    assertion = AssertionFactory(
        rsa_signer, client_id="c", profile="legacy", token_url="https://as.example/t", alg=alg
    ).make()
    claims = pyjwt.decode(assertion, public, algorithms=[alg], audience="https://as.example/t")
    assert claims["iss"] == "c"
    assert pyjwt.get_unverified_header(assertion)["alg"] == alg


@pytest.mark.parametrize(
    ("label", "alg", "width"), [("ec-p256", "ES256", 32), ("ec-p384", "ES384", 48)]
)
def test_ecdsa_signatures_are_raw_r_s_that_pyjwt_verifies(
    hsm: SoftHsm, label: str, alg: str, width: int
) -> None:
    signer = open_signer(hsm.uri(TOKEN, label))
    assert signer.alg == alg
    public = _public(hsm, "02") if label == "ec-p256" else _p384_public()
    assertion = AssertionFactory(
        signer, client_id="c", profile="rfc7523bis", issuer="https://as.example"
    ).make()
    assert len(pyjwt.utils.base64url_decode(assertion.split(".")[2])) == 2 * width
    assert pyjwt.decode(assertion, public, algorithms=[alg], audience="https://as.example")


def test_the_public_key_and_kid_are_the_tokens(hsm: SoftHsm, rsa_signer: Pkcs11Signer) -> None:
    exported = _public(hsm, "01")
    thumbprint = jwcrypto_jwk.JWK.from_pyca(exported).thumbprint()  # RFC 7638, not pkjwt's
    assert rsa_signer.kid == thumbprint
    assert rsa_signer.public.jose.public_key.public_numbers() == exported.public_numbers()


def test_an_rsa_key_without_a_public_object_uses_the_private_objects_modulus(hsm: SoftHsm) -> None:
    signer = open_signer(hsm.uri(TOKEN, "rsa-nopub"), alg="PS384")
    assertion = AssertionFactory(
        signer, client_id="c", profile="legacy", token_url="https://as.example/t"
    ).make()
    pyjwt.decode(
        assertion,
        signer.public.jose.public_key,
        algorithms=["PS384"],
        audience="https://as.example/t",
    )


def test_an_ec_key_without_a_public_object_says_how_to_import_it(hsm: SoftHsm) -> None:
    with pytest.raises(KeyLoadError, match="no public key object") as caught:
        open_signer(hsm.uri(TOKEN, "ec-nopub"))
    assert "pkcs11-tool --write-object" in (caught.value.hint or "")


def test_the_key_may_be_named_by_id_alone(hsm: SoftHsm, ec_signer: Pkcs11Signer) -> None:
    uri = f"pkcs11:token={TOKEN};id=%02?module-path={hsm.module}&pin-source={hsm.pin_file}"
    by_id = open_signer(uri)
    assert by_id.kid == ec_signer.kid
    assert by_id.describe() == f"pkcs11 token {TOKEN!r} id 02"


# -- (c) the CLI: pkjwt token and pkjwt jwks ---------------------------------------------------


def test_pkjwt_token_with_an_hsm_key(
    hsm: SoftHsm, rsa_signer: Pkcs11Signer, cli_env: dict[str, str]
) -> None:
    published = rsa_signer.with_alg("RS512").public_key()
    with local_auth_server("nhs", key=published) as server:
        result = CliRunner().invoke(
            cli,
            ["token", "--token-url", server.token_url, "--client-id", server.client_id,
             "--key", hsm.uri(TOKEN, "nhs-int-1"), "--profile", "nhs", "--no-cache"],
            env=cli_env,
        )  # fmt: skip
        assert result.exit_code == 0, result.output
        assert result.stdout.strip()
        assert server.last_request.ok
        assert server.last_request.header["kid"] == published.kid


def test_pkjwt_jwks_publishes_the_hsm_key_and_serve_accepts_it(
    hsm: SoftHsm, cli_env: dict[str, str]
) -> None:
    uri = hsm.uri(TOKEN, "nhs-int-1")
    runner = CliRunner()
    default = runner.invoke(cli, ["jwks", uri, "--alg", "RS512"], env=cli_env)
    assert default.exit_code == 0, default.output
    (member,) = json.loads(default.stdout)["keys"]
    exported = _public(hsm, "01")
    assert member["kid"] == jwcrypto_jwk.JWK.from_pyca(exported).thumbprint()
    assert (member["alg"], member["kty"], member["use"]) == ("RS512", "RSA", "sig")
    assert load_key(member).jose.public_key.public_numbers() == exported.public_numbers()
    assert not {"d", "p", "q"} & member.keys()

    chosen = runner.invoke(cli, ["jwks", uri, "--kid", "int-1", "--alg", "RS512"], env=cli_env)
    assert chosen.exit_code == 0, chosen.output
    published = json.loads(chosen.stdout)
    assert published["keys"][0]["kid"] == "int-1"
    registered = [{"client_id": "hsm-client", "jwks": published, "scopes": ["api:read"]}]
    with local_auth_server("nhs", clients=registered) as server:
        with TokenClient(
            token_url=server.token_url, client_id="hsm-client", key=uri, kid="int-1", profile="nhs"
        ) as client:
            assert client.get_token().access_token
        assert server.last_request.ok
        assert server.last_request.header["kid"] == "int-1"


# -- (d) a wrong PIN ---------------------------------------------------------------------------


def test_a_wrong_pin_is_one_cli_line_without_the_pin(hsm: SoftHsm, cli_env: dict[str, str]) -> None:
    uri = hsm.uri(SPARE, "any", pin=WRONG_PIN)
    result = CliRunner().invoke(
        cli,
        ["token", "--token-url", "http://127.0.0.1:9/token", "--client-id", "c", "--key", uri,
         "--profile", "nhs", "--no-cache", "-v"],
        env=cli_env,
    )  # fmt: skip
    assert result.exit_code == 2, result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert errors == [f"error: pkcs11 token {SPARE!r} refused the PIN (from pin-value)"]
    assert "Traceback" not in result.output
    assert WRONG_PIN not in result.output


def test_a_wrong_pin_is_signer_unavailable_and_not_retryable(hsm: SoftHsm, tmp_path: Any) -> None:
    pin_file = tmp_path / "wrong.pin"
    pin_file.write_text(WRONG_PIN)
    for uri in (
        hsm.uri(SPARE, "any", pin=WRONG_PIN),
        f"pkcs11:token={SPARE};object=any?module-path={hsm.module}&pin-source=file:{pin_file}",
    ):
        with pytest.raises(SignerUnavailable) as caught:
            open_signer(uri)
        assert caught.value.retryable is False
        assert "refused the PIN" in caught.value.message
        assert "PKJWT_PKCS11_PIN" in (caught.value.hint or "")
        for shown in (str(caught.value), repr(caught.value), caught.value.hint or ""):
            assert WRONG_PIN not in shown


def test_another_pin_for_a_token_already_logged_in_is_refused(
    hsm: SoftHsm, rsa_signer: Pkcs11Signer
) -> None:
    # the token itself would say CKR_USER_ALREADY_LOGGED_IN and let it through
    with pytest.raises(SignerUnavailable, match="logged in to it with another PIN") as caught:
        open_signer(hsm.uri(TOKEN, "ec-p256", pin=WRONG_PIN))
    assert WRONG_PIN not in str(caught.value)


# -- (e) threads -------------------------------------------------------------------------------


def test_sixteen_threads_sign_at_once(
    hsm: SoftHsm, rsa_signer: Pkcs11Signer, ec_signer: Pkcs11Signer
) -> None:
    rsa_public, ec_public = _public(hsm, "01"), _public(hsm, "02")
    algorithms = pyjwt.algorithms.get_default_algorithms()
    signers = [rsa_signer.with_alg("RS512"), rsa_signer.with_alg("PS256"), ec_signer]
    start = threading.Barrier(16)

    def work(n: int) -> list[tuple[str, bytes, bytes]]:
        start.wait()
        out = []
        for i in range(6):
            signer = signers[(n + i) % 3]
            data = f"thread {n} message {i}".encode()
            out.append((signer.alg, data, signer.sign(data)))
        return out

    with ThreadPoolExecutor(16) as pool:
        results = [r for batch in pool.map(work, range(16)) for r in batch]
    assert len(results) == 96
    for alg, data, signature in results:
        public = ec_public if alg == "ES256" else rsa_public
        assert algorithms[alg].verify(data, public, signature), alg


def test_async_signing_runs_off_the_loop(hsm: SoftHsm, ec_signer: Pkcs11Signer) -> None:
    public = _public(hsm, "02")
    algorithm = pyjwt.algorithms.get_default_algorithms()["ES256"]

    async def many() -> list[bytes]:
        return await asyncio.gather(*(ec_signer.asign(b"m%d" % i) for i in range(16)))

    for i, signature in enumerate(asyncio.run(many())):
        assert algorithm.verify(b"m%d" % i, public, signature)


def test_a_session_the_token_dropped_is_reopened(hsm: SoftHsm, rsa_signer: Pkcs11Signer) -> None:
    link = rsa_signer._link
    before = link.generation
    link.open().close()  # the token forgets the session and, with it, the login
    signature = rsa_signer.with_alg("RS256").sign(b"after")
    assert link.generation == before + 1
    assert pyjwt.algorithms.get_default_algorithms()["RS256"].verify(
        b"after", _public(hsm, "01"), signature
    )


# -- (f) a key or token that is not there ------------------------------------------------------


def test_an_unknown_label_lists_the_keys_there(hsm: SoftHsm) -> None:
    with pytest.raises(KeyLoadError) as caught:
        open_signer(hsm.uri(TOKEN, "nhs-int-2"))
    assert caught.value.message == f"pkcs11 token {TOKEN!r} object 'nhs-int-2': no such private key"
    hint = caught.value.hint or ""
    for listed in ("'nhs-int-1' (id 01, RSA)", "'ec-p256' (id 02, EC)", "'twin' (id 07, RSA)"):
        assert listed in hint


def test_an_unknown_token_lists_the_tokens_there(hsm: SoftHsm) -> None:
    with pytest.raises(KeyLoadError, match="no token matches") as caught:
        open_signer(hsm.uri("pkjwt-nope", "nhs-int-1"))
    assert f"{TOKEN!r} (serial " in (caught.value.hint or "")
    assert f"{SPARE!r} (serial " in (caught.value.hint or "")


def test_two_keys_with_one_label_ask_for_an_id(hsm: SoftHsm) -> None:
    with pytest.raises(KeyLoadError, match="2 private keys match") as caught:
        open_signer(hsm.uri(TOKEN, "twin"))
    assert "add id=" in (caught.value.hint or "")
    assert open_signer(hsm.uri(TOKEN, "twin").replace(";object=twin", ";object=twin;id=%07"))


# -- (g) the PIN is never shown ----------------------------------------------------------------


def test_the_pin_is_absent_from_repr_describe_logs_and_verbose_output(
    hsm: SoftHsm, caplog: pytest.LogCaptureFixture, cli_env: dict[str, str]
) -> None:
    caplog.set_level(logging.DEBUG)
    uri = hsm.uri(TOKEN, "nhs-int-1", pin=USER_PIN)
    signer = open_signer(uri)
    signer._link.open().close()  # a reopen logs too
    signer.sign(b"x")
    for shown in (repr(signer), signer.describe(), str(vars(signer)), caplog.text):
        assert USER_PIN not in shown
    assert signer.describe() == f"pkcs11 token {TOKEN!r} object 'nhs-int-1'"
    result = CliRunner().invoke(
        cli,
        ["token", "-v", "--token-url", "http://127.0.0.1:9/token", "--client-id", "c",
         "--key", uri, "--profile", "nhs", "--no-cache", "--timeout", "2"],
        env=cli_env,
    )  # fmt: skip
    assert "pin-value=***" in result.stderr
    assert USER_PIN not in result.output


# -- the mechanisms a token may lack, and the EC point forms tokens give -----------------------


@pytest.mark.parametrize("alg", RSA_ALGS)
def test_bare_rsa_mechanisms_sign_what_the_combined_ones_do(
    hsm: SoftHsm, rsa_signer: Pkcs11Signer, alg: str
) -> None:
    # a token without CKM_SHA*_RSA_PKCS(_PSS): the hash (and DigestInfo) made here instead
    plan = _plan(alg, {Mechanism.RSA_PKCS, Mechanism.RSA_PKCS_PSS})
    assert plan is not None
    assert plan.mechanism in (Mechanism.RSA_PKCS, Mechanism.RSA_PKCS_PSS)
    twin = rsa_signer.with_alg(alg)
    twin._plans = {alg: plan}
    signature = twin.sign(b"signing input")
    algorithm = pyjwt.algorithms.get_default_algorithms()[alg]
    assert algorithm.verify(b"signing input", _public(hsm, "01"), signature)


def test_a_token_with_no_usable_mechanism_is_refused() -> None:
    assert _plan("RS256", {Mechanism.ECDSA}) is None
    assert _plan("ES256", {Mechanism.SHA256_RSA_PKCS}) is None
    assert _plan("EdDSA", {Mechanism.ECDSA}) is None


@pytest.mark.parametrize("curve", [ec.SECP256R1(), ec.SECP384R1(), ec.SECP521R1()])
def test_ec_points_are_read_bare_or_wrapped_in_der(curve: ec.EllipticCurve) -> None:
    public = ec.generate_private_key(curve).public_key()
    point = public.public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    length = bytes([len(point)]) if len(point) < 128 else bytes([0x81, len(point)])
    params = {256: "06082a8648ce3d030107", 384: "06052b81040022", 521: "06052b81040023"}
    oid = bytes.fromhex(params[curve.key_size])
    for form in (point, b"\x04" + length + point):
        assert _ec_public(oid, form).public_numbers() == public.public_numbers()
    with pytest.raises(ValueError, match="length"):
        _ec_public(oid, b"\x04" + length + point + b"\0")
    with pytest.raises(ValueError, match="curve"):
        _ec_public(bytes.fromhex("06052b81040021"), point)  # P-224


def test_a_key_that_may_not_sign_is_refused_when_loaded(hsm: SoftHsm) -> None:
    with pytest.raises(KeyLoadError, match="may not sign"):
        open_signer(hsm.uri(TOKEN, "no-sign"))


# -- what each PKCS#11 failure becomes (SoftHSM2 never locks a PIN, nor fails as a device) ----


@pytest.mark.parametrize(
    ("error", "says", "retryable"),
    [
        (p11.PinIncorrect, "refused the PIN", False),
        (p11.PinLenRange, "refused the PIN", False),
        (p11.PinLocked, "the user PIN is locked", False),
        (p11.PinExpired, "must be set first", False),
        (p11.DeviceError, "failed: DeviceError", True),
        (p11.DeviceRemoved, "failed: DeviceRemoved", True),
        (p11.SessionCount, "failed: SessionCount", True),
        (p11.MechanismInvalid, "refused the operation: MechanismInvalid", False),
    ],
)
def test_each_pkcs11_error_becomes_signer_unavailable(
    error: type[Exception], says: str, retryable: bool
) -> None:
    pin = Pin(WRONG_PIN, "pin-value")
    explained = explain(error(), "hsm-1", pin)
    assert isinstance(explained, SignerUnavailable)
    assert explained.message.startswith("pkcs11 token 'hsm-1'")
    assert says in explained.message
    assert explained.retryable is retryable
    assert WRONG_PIN not in str(explained)


def test_pkjwt_jwks_without_alg_leaves_an_rsa_key_open_for_the_servers_alg(
    hsm: SoftHsm, cli_env: dict[str, str]
) -> None:
    # an RSA key's own default is RS256; pinned in the JWKS, an NHS server (RS512) refuses it
    uri = hsm.uri(TOKEN, "nhs-int-1")
    result = CliRunner().invoke(cli, ["jwks", uri], env=cli_env)
    assert result.exit_code == 0, result.output
    published = json.loads(result.stdout)
    assert "alg" not in published["keys"][0]
    assert "pass --alg RS512" in result.stderr
    registered = [{"client_id": "hsm-open", "jwks": published}]
    with (
        local_auth_server("nhs", clients=registered) as server,
        TokenClient(token_url=server.token_url, client_id="hsm-open", key=uri, profile="nhs") as c,
    ):
        assert c.get_token().access_token
    ec_result = CliRunner().invoke(cli, ["jwks", hsm.uri(TOKEN, "ec-p256")], env=cli_env)
    assert json.loads(ec_result.stdout)["keys"][0]["alg"] == "ES256"  # one alg: pinned


def test_the_token_may_be_named_by_serial_slot_and_makers(
    hsm: SoftHsm, rsa_signer: Pkcs11Signer
) -> None:
    link = rsa_signer._link
    serial = link.token.serial.decode().strip()
    path = (
        f"pkcs11:serial={serial};slot-id={link.slot.slot_id};manufacturer=SoftHSM%20project"
        ";model=SoftHSM%20v2;library-manufacturer=SoftHSM;object=nhs-int-1;type=private"
    )
    query = f"?module-path={hsm.module}&pin-source={hsm.pin_file}"
    assert open_signer(path + query).kid == rsa_signer.kid
    with pytest.raises(KeyLoadError, match="library-version is 2"):
        open_signer(path + ";library-version=99" + query)
    with pytest.raises(KeyLoadError, match="no token matches"):
        open_signer(path.replace(f"serial={serial}", "serial=0000") + query)


def test_module_and_pin_from_the_environment(
    hsm: SoftHsm, ec_signer: Pkcs11Signer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PKJWT_PKCS11_MODULE", hsm.module)
    monkeypatch.setenv("PKJWT_PKCS11_PIN", USER_PIN)
    assert open_signer(f"pkcs11:token={TOKEN};object=ec-p256").kid == ec_signer.kid
