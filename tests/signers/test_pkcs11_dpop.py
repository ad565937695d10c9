"""A DPoP key that stays in an HSM: ``dpop=`` given a pkcs11: URI (SoftHSM2, no mock). The
proofs it makes are judged by pkjwt's check_proof and verified by jwcrypto with the public
key pkcs11-tool exported; the thumbprint a bound token would carry is that key's."""

from __future__ import annotations

import json
import time

import pytest
from cryptography.hazmat.primitives import serialization
from jwcrypto import jwk as jc_jwk
from jwcrypto import jws as jc_jws

from pkjwt import TokenClient
from pkjwt.dpop import access_token_hash, check_proof
from pkjwt.dpop_client import dpop_for
from pkjwt.flow import arun
from pkjwt.signing import asign
from softhsm import SoftHsm

from .conftest import TOKEN

API = "https://api.example/things?page=2"


def _exported(hsm: SoftHsm) -> jc_jwk.JWK:
    public = serialization.load_der_public_key(hsm.export_public(TOKEN, "02"))
    pem = public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return jc_jwk.JWK.from_pem(pem)


def test_a_pkcs11_dpop_key_signs_proofs_in_the_hsm(hsm: SoftHsm) -> None:
    session = dpop_for(hsm.uri(TOKEN, "ec-p256"))
    assert session is not None
    exported = _exported(hsm)
    assert session.jkt == exported.thumbprint()
    proof = session.proof_now("GET", API, access_token="at-1")
    judged = check_proof(proof, method="GET", url=API, now=time.time(), access_token="at-1")
    assert judged.ok, judged.first_failure
    assert judged.jkt == session.jkt
    verified = jc_jws.JWS()
    verified.deserialize(proof)
    verified.verify(exported, alg="ES256")
    claims = json.loads(verified.payload)
    assert claims["ath"] == access_token_hash("at-1")
    assert "d" not in verified.jose_header["jwk"]


@pytest.mark.anyio
async def test_an_async_proof_from_the_hsm(hsm: SoftHsm) -> None:
    session = dpop_for(hsm.uri(TOKEN, "ec-p256"))
    assert session is not None

    async def perform(action):  # what an async driver does with the flow's Sign
        return await asign(action.signer, action.data)

    proof = await arun(session.proof("POST", "https://as.example/token"), perform)
    judged = check_proof(proof, method="POST", url="https://as.example/token", now=time.time())
    assert judged.ok, judged.first_failure


def test_a_client_names_its_hsm_dpop_key_in_the_cache_key(hsm: SoftHsm) -> None:
    uri = hsm.uri(TOKEN, "ec-p256")
    client = TokenClient(
        token_url="https://as.example/token", client_id="c", client_secret="s", dpop=uri
    )
    assert client.dpop is not None
    assert client.cache_key[-1] == f"dpop:{_exported(hsm).thumbprint()}"
    assert "pin" not in repr(client.dpop).lower()
