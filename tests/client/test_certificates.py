"""Keys that come with X.509 certificates (issue 13, item 3): the chain read from PKCS#12 or a
PEM holding both, checked to hold the key; ``x5t#S256`` / ``x5t`` / ``x5c`` sent on request
(thumbprints computed here independently, the header read by PyJWT); a real ``pkjwt serve``
whose registered JWK carries the certificate accepts the right thumbprint and refuses another;
the doctor and the CLI."""

from __future__ import annotations

import base64
import datetime
import hashlib
import json
from pathlib import Path

import httpx
import jwt as pyjwt
import pytest
from click.testing import CliRunner
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import NameOID

from pkjwt import AssertionFactory, TokenClient, load_key
from pkjwt.cli.main import cli
from pkjwt.errors import AssertionBuildError, ConfigError, KeyLoadError
from pkjwt.keys import jwks
from pkjwt.server.config import parse_config
from pkjwt.server.run import run_in_thread

ISSUER = "http://pkjwt.test"
JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


def _certificate(key: ec.EllipticCurvePrivateKey, name: str, issuer_key=None, issuer_name=None):
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_name or subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(issuer_key or key, hashes.SHA256())
    )


@pytest.fixture(scope="module")
def material(tmp_path_factory: pytest.TempPathFactory) -> dict:
    folder = tmp_path_factory.mktemp("certs")
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = _certificate(ca_key, "pkjwt test CA")
    native = ec.generate_private_key(ec.SECP256R1())
    leaf = _certificate(native, "c1", ca_key, ca.subject)
    other = ec.generate_private_key(ec.SECP256R1())
    pem_key = native.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    pem = lambda c: c.public_bytes(serialization.Encoding.PEM)  # noqa: E731
    (folder / "both.pem").write_bytes(pem_key + pem(leaf) + pem(ca))
    (folder / "key.pem").write_bytes(pem_key)
    (folder / "chain.pem").write_bytes(pem(leaf) + pem(ca))
    (folder / "other.pem").write_bytes(pem(_certificate(other, "someone else")))
    (folder / "bundle.p12").write_bytes(
        pkcs12.serialize_key_and_certificates(
            b"c1", native, leaf, [ca], serialization.BestAvailableEncryption(b"pw")
        )
    )
    for path in folder.iterdir():
        path.chmod(0o600)
    der = leaf.public_bytes(serialization.Encoding.DER)
    return {
        "folder": folder,
        "native": native,
        "leaf_der": der,
        "ca_der": ca.public_bytes(serialization.Encoding.DER),
        "x5t#S256": base64.urlsafe_b64encode(hashlib.sha256(der).digest()).rstrip(b"=").decode(),
        "x5t": base64.urlsafe_b64encode(hashlib.sha1(der).digest()).rstrip(b"=").decode(),
    }


def test_the_chain_comes_with_the_key_from_pem_and_pkcs12(material: dict) -> None:
    folder = material["folder"]
    for key in (
        load_key(folder / "both.pem", kid="c1"),
        load_key(folder / "bundle.p12", password="pw", kid="c1"),
        load_key(folder / "key.pem", kid="c1", certificate=folder / "chain.pem"),
    ):
        ders = [c.public_bytes(serialization.Encoding.DER) for c in key.certificates]
        assert ders == [material["leaf_der"], material["ca_der"]]
    assert load_key(folder / "key.pem").certificates == ()


def test_a_certificate_of_another_key_is_refused(material: dict) -> None:
    folder = material["folder"]
    with pytest.raises(KeyLoadError, match="not the key's"):
        load_key(folder / "key.pem", certificate=folder / "other.pem")


def test_the_headers_are_the_certificates_thumbprints_and_chain(material: dict) -> None:
    key = load_key(material["folder"] / "both.pem", kid="c1")
    factory = AssertionFactory(
        key, client_id="c1", profile="rfc7523bis", issuer=ISSUER,
        x509_headers=("x5t#S256", "x5t", "x5c"),
    )  # fmt: skip
    header = pyjwt.get_unverified_header(factory.make())
    assert header["x5t#S256"] == material["x5t#S256"]
    assert header["x5t"] == material["x5t"]
    assert [base64.b64decode(c) for c in header["x5c"]] == [
        material["leaf_der"],
        material["ca_der"],
    ]
    assert header["kid"] == "c1"


def test_asking_without_a_certificate_fails_when_the_client_is_built(material: dict) -> None:
    with pytest.raises(ConfigError, match="has no certificate"):
        TokenClient(
            token_url="http://127.0.0.1:9/token", client_id="c1",
            key=material["folder"] / "key.pem", x509_headers=("x5t",),
        )  # fmt: skip
    with pytest.raises(AssertionBuildError, match="x5t"):
        AssertionFactory(
            load_key(material["folder"] / "key.pem"), client_id="c1", issuer=ISSUER,
            profile="rfc7523bis", extra_headers={"x5t": "made-up"},
        )  # fmt: skip


@pytest.fixture
def server(material: dict):
    key = load_key(material["folder"] / "both.pem", kid="c1")
    published = jwks([key.public()])
    assert published["keys"][0]["x5t#S256"] == material["x5t#S256"]
    config = parse_config(
        {
            "issuer": ISSUER,
            "replay_store": "memory://",
            "clients": [{"client_id": "c1", "jwks": published}],
        }
    )
    with run_in_thread(config) as running:
        yield running


def _post(server, header_extra: dict, material: dict) -> httpx.Response:
    from pkjwt.forge import sign

    key = load_key(material["folder"] / "both.pem", kid="c1")
    import time

    now = int(time.time())
    assertion = sign(
        key,
        {"alg": "ES256", "kid": "c1", "typ": "client-authentication+jwt", **header_extra},
        {"iss": "c1", "sub": "c1", "aud": ISSUER, "jti": str(now) + str(header_extra),
         "iat": now, "exp": now + 60},
    )  # fmt: skip
    return httpx.post(
        server.base_url + "/oauth2/token",
        data={"grant_type": "client_credentials", "client_assertion_type": JWT_BEARER,
              "client_assertion": assertion},
        timeout=30,
    )  # fmt: skip


def test_the_server_accepts_the_right_thumbprint_and_refuses_another(
    server, material: dict
) -> None:
    assert _post(server, {"x5t#S256": material["x5t#S256"]}, material).status_code == 200
    wrong = _post(server, {"x5t#S256": material["x5t"]}, material)
    assert wrong.status_code == 400
    assert wrong.json()["error_description"].startswith("R9 ")
    assert "x5t#S256" in wrong.json()["error_description"]
    other = base64.b64encode(
        x509.load_pem_x509_certificate(
            (material["folder"] / "other.pem").read_bytes()
        ).public_bytes(serialization.Encoding.DER)
    ).decode()
    assert _post(server, {"x5c": [other]}, material).status_code == 400


def test_the_client_sends_them_and_the_server_takes_them(server, material: dict) -> None:
    client = TokenClient(
        token_url=server.base_url + "/oauth2/token", audience=ISSUER, client_id="c1",
        key=material["folder"] / "both.pem", kid="c1", profile="rfc7523bis",
        x509_headers=("x5t#S256", "x5t"),
    )  # fmt: skip
    assert client.get_token().access_token
    sent = server.state.log.requests[-1].header
    assert (sent["x5t#S256"], sent["x5t"]) == (material["x5t#S256"], material["x5t"])


def test_the_cli_takes_cert_and_cert_headers_and_the_doctor_checks(
    server, material: dict, tmp_path: Path
) -> None:
    folder = material["folder"]
    env = {"PKJWT_CONFIG": str(tmp_path / "none.toml"), "PKJWT_CACHE_DIR": str(tmp_path / "c")}
    result = CliRunner().invoke(
        cli,
        ["token", "--token-url", server.base_url + "/oauth2/token", "--audience", ISSUER,
         "--client-id", "c1", "--key", str(folder / "key.pem"), "--kid", "c1",
         "--cert", str(folder / "chain.pem"), "--cert-headers", "x5t", "--profile", "rfc7523bis",
         "--no-cache"],
        env=env,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert server.state.log.requests[-1].header["x5t"] == material["x5t"]

    (tmp_path / "jwks.json").write_text(
        json.dumps(jwks([load_key(folder / "both.pem", kid="c1").public()]))
    )
    key = load_key(folder / "both.pem", kid="c1")
    good = AssertionFactory(key, client_id="c1", profile="rfc7523bis", issuer=ISSUER).make()
    claims = pyjwt.decode(good, options={"verify_signature": False})
    # the same claims, under a header whose x5t#S256 names another certificate
    from pkjwt.forge import sign

    wrong = sign(key, {"alg": "ES256", "kid": "c1", "x5t#S256": "AAAA"}, claims)
    doctor = CliRunner().invoke(
        cli, ["doctor", wrong, "--profile", "rfc7523bis", "--issuer", ISSUER,
              "--jwks", str(tmp_path / "jwks.json")], env=env,
    )  # fmt: skip
    assert "x5t#S256" in doctor.output
    assert "R9" in doctor.output
    assert doctor.exit_code != 0
