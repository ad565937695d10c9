"""The seam for keys held elsewhere (pkjwt.signers): what every HSM/KMS signer shares, tested
with a backend that behaves like a KMS (it signs with a key we never see as a Key and answers
ECDSA in DER), and assertions verified by PyJWT, a JOSE library pkjwt does not use."""

from __future__ import annotations

import jwt as pyjwt
import pytest
from click.testing import CliRunner
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from pkjwt import AssertionFactory, load_key
from pkjwt.cli.main import cli
from pkjwt.errors import ConfigError, KeyLoadError, MissingExtra
from pkjwt.signers import RemoteSigner, der_to_jose, is_key_uri, open_signer, redact_key_uri

_HASHES = {"256": hashes.SHA256(), "384": hashes.SHA384(), "512": hashes.SHA512()}


class _KmsLike(RemoteSigner):
    """Signs like a cloud KMS: the private key out of reach, ECDSA answered in DER."""

    returns_der = True

    def __init__(self, native: object, **kw: object) -> None:
        self._native = native
        super().__init__(load_key(native.public_key()), **kw)  # type: ignore[attr-defined, arg-type]
        self.calls: list[str] = []

    def _sign(self, alg: str, data: bytes) -> bytes:
        self.calls.append(alg)
        digest = _HASHES[alg[2:]]
        if alg.startswith("ES"):
            return self._native.sign(data, ec.ECDSA(digest))  # type: ignore[attr-defined, no-any-return]
        pad = (
            padding.PKCS1v15()
            if alg.startswith("RS")
            else padding.PSS(padding.MGF1(digest), digest.digest_size)
        )
        return self._native.sign(data, pad, digest)  # type: ignore[attr-defined, no-any-return]


@pytest.fixture(scope="module")
def rsa_native() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(65537, 2048)


@pytest.mark.parametrize(
    ("curve", "alg", "width"),
    [(ec.SECP256R1(), "ES256", 32), (ec.SECP384R1(), "ES384", 48), (ec.SECP521R1(), "ES512", 66)],
)
def test_a_der_ecdsa_signature_becomes_fixed_width_r_s_that_verifies(
    curve: ec.EllipticCurve, alg: str, width: int
) -> None:
    native = ec.generate_private_key(curve)
    signer = _KmsLike(native)
    assert signer.alg == alg
    token = AssertionFactory(
        signer, client_id="c", profile="rfc7523bis", issuer="https://as.example"
    ).make()
    signature = token.split(".")[2]
    assert len(pyjwt.utils.base64url_decode(signature)) == 2 * width
    claims = pyjwt.decode(
        token, native.public_key(), algorithms=[alg], audience="https://as.example"
    )
    assert claims["iss"] == "c"


def test_small_r_and_s_are_zero_padded() -> None:
    # DER drops leading zero bytes: a short r or s must still fill its half
    der = encode_dss_signature(1, 2**255 + 7)
    raw = der_to_jose("ES256", der)
    assert len(raw) == 64
    assert raw[:32] == b"\0" * 31 + b"\1"


def test_other_algorithms_pass_through() -> None:
    assert der_to_jose("RS512", b"abc") == b"abc"


def test_the_profile_chooses_among_the_keys_algorithms(rsa_native: rsa.RSAPrivateKey) -> None:
    signer = _KmsLike(rsa_native)  # an RSA key in a KMS: RS256 by default
    nhs = AssertionFactory(signer, client_id="c", profile="nhs", token_url="https://t.example/tok")
    assert nhs.alg == "RS512"  # the NHS profile's, as for a local key
    token = nhs.make()
    assert pyjwt.get_unverified_header(token)["alg"] == "RS512"
    pyjwt.decode(
        token, rsa_native.public_key(), algorithms=["RS512"], audience="https://t.example/tok"
    )
    fapi = AssertionFactory(signer, client_id="c", profile="fapi2", issuer="https://as.example")
    assert fapi.alg == "PS256"
    pyjwt.decode(
        fapi.make(), rsa_native.public_key(), algorithms=["PS256"], audience="https://as.example"
    )


def test_the_default_kid_is_the_thumbprint_and_the_public_key_is_publishable(
    rsa_native: rsa.RSAPrivateKey,
) -> None:
    signer = _KmsLike(rsa_native, alg="RS512")
    public = load_key(rsa_native.public_key())
    assert signer.kid == public.thumbprint()
    jwk = signer.public_key().public_jwk()
    assert (jwk["kid"], jwk["alg"]) == (public.thumbprint(), "RS512")
    assert "d" not in jwk
    assert _KmsLike(rsa_native, kid="int-1").kid == "int-1"


def test_an_algorithm_the_key_cannot_make_is_refused_at_construction() -> None:
    with pytest.raises(KeyLoadError, match="cannot sign RS256"):
        _KmsLike(ec.generate_private_key(ec.SECP256R1()), alg="RS256")


def test_key_uris_are_recognised_by_scheme() -> None:
    assert is_key_uri("pkcs11:token=t;object=k")
    assert is_key_uri("AWSKMS:alias/x")
    assert not is_key_uri("key.pem")
    assert not is_key_uri("C:/keys/key.pem")
    assert not is_key_uri(None)


def test_a_pin_never_shows() -> None:
    uri = "pkcs11:token=t;object=k?module-path=/x.so&pin-value=1234"
    assert "1234" not in redact_key_uri(uri)
    assert redact_key_uri(uri).endswith("pin-value=***")


def test_an_unknown_scheme_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="not a key URI"):
        open_signer("gopher:key")


def test_a_missing_extra_names_the_pip_command(monkeypatch: pytest.MonkeyPatch) -> None:
    import builtins

    real = builtins.__import__

    def without_boto3(name: str, *args: object, **kw: object) -> object:
        if name.split(".")[0] in ("boto3", "botocore"):
            raise ImportError(f"No module named {name!r}", name=name)
        return real(name, *args, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(builtins, "__import__", without_boto3)
    monkeypatch.delitem(__import__("sys").modules, "pkjwt.signers.awskms", raising=False)
    with pytest.raises(MissingExtra) as caught:
        open_signer("awskms:alias/x")
    assert caught.value.hint == "pip install 'pkjwt[awskms]'"


def test_conformance_needs_a_local_key_and_says_so() -> None:
    result = CliRunner().invoke(
        cli,
        ["conformance", "--issuer", "http://127.0.0.1:9", "--client-id", "c", "--key",
         "pkcs11:token=t;object=k?pin-value=4321"],
    )  # fmt: skip
    assert result.exit_code == 2
    assert "needs a local key file" in result.output
    assert "4321" not in result.output
