"""Forge compact JWS from arbitrary parts: for tests, benchmarks, the demo and the conformance
runner, which must show a server refusing what no well-behaved client would send.

Hazardous by design, like ``cryptography``'s hazmat layer: it signs whatever header and claims it
is given (a wrong ``alg``, no ``typ``, ``exp`` as a string, duplicate members written as raw JSON
text) and can attach any bytes as a signature. To make an assertion a server should accept, use
:class:`pkjwt.AssertionFactory`, which builds it from a profile.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from typing import Any

from .decode import b64url, compact
from .keys import ALGS_BY_KTY, Key
from .signing import LocalSigner

__all__ = ["hmac_sign", "segment", "sign", "signing_input", "unsigned"]

Part = Mapping[str, Any] | str | bytes

_HMAC = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}


def segment(part: Part) -> str:
    """base64url of one JOSE segment: a mapping (compact JSON), raw JSON text (to write what a
    mapping cannot hold: duplicate members, NaN), or raw bytes."""
    if isinstance(part, bytes):
        raw = part
    elif isinstance(part, str):
        raw = part.encode("utf-8", "surrogatepass")
    else:
        raw = json.dumps(part, separators=(",", ":")).encode("utf-8", "surrogatepass")
    return b64url(raw)


def signing_input(header: Part, claims: Part) -> str:
    return f"{segment(header)}.{segment(claims)}"


def _alg_for(key: Key, header: Part, alg: str | None) -> str:
    if alg is not None:
        return alg
    named = header.get("alg") if isinstance(header, Mapping) else None
    if isinstance(named, str) and (named in key.algs or named in ALGS_BY_KTY[key.kty]):
        return named
    return key.alg


def sign(key: Key, header: Part, claims: Part, *, alg: str | None = None) -> str:
    """A compact JWS over exactly ``header`` and ``claims``, signed by ``key`` with ``alg``
    (default: the header's ``alg`` when this kind of key can make it, else the key's own)."""
    chosen = _alg_for(key, header, alg)
    data = signing_input(header, claims)
    signer = LocalSigner(key if chosen in key.algs else key.with_alg(chosen), chosen)
    return compact(data, signer.sign(data.encode("ascii")))


def unsigned(header: Part, claims: Part, signature: bytes = b"") -> str:
    """``header.claims.signature`` with any bytes (or none) as the signature."""
    return compact(signing_input(header, claims), signature)


def hmac_sign(secret: bytes, header: Part, claims: Part, *, alg: str = "HS256") -> str:
    """An HMAC JWS (whatever ``header`` says), e.g. HS256 keyed with a public key's bytes."""
    data = signing_input(header, claims)
    mac = hmac.new(secret, data.encode("ascii"), _HMAC[alg]).digest()
    return compact(data, mac)
