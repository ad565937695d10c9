"""What the cloud KMS signers share: the local hash of the signing input (a cloud KMS is sent
the digest, never the claims) and error text fit to show."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from typing import Any

__all__ = ["digest_for", "scrub"]

_HASH: dict[str, Callable[[bytes], Any]] = {
    "256": hashlib.sha256,
    "384": hashlib.sha384,
    "512": hashlib.sha512,
}
_ACCESS_KEY_ID = re.compile(r"\b(?:AKIA|ASIA|AROA|AIDA)[A-Z0-9]{12,}\b")
_SIGV4_PARTS = re.compile(r"(Credential|Signature|SignedHeaders)=[^\s,]+")
_BEARER = re.compile(r"(Bearer\s+)[A-Za-z0-9._~+/=-]+", re.IGNORECASE)


def digest_for(alg: str, data: bytes) -> tuple[str, bytes]:
    """The hash ``alg`` (RS/PS/ES + 256/384/512) signs, and ``data``'s digest with it:
    ``("sha256", ...)``."""
    bits = alg[2:]
    return f"sha{bits}", _HASH[bits](data).digest()


def scrub(text: str) -> str:
    """A service's error message fit for one line of an error: markup dropped, access key ids,
    SigV4 parts and bearer tokens masked, whitespace collapsed, length capped."""
    text = re.sub(r"<[^>]*>", " ", text)
    text = _ACCESS_KEY_ID.sub("***", text)
    text = _SIGV4_PARTS.sub(r"\1=***", text)
    text = _BEARER.sub(r"\1***", text)
    text = " ".join(text.split())
    return text if len(text) <= 300 else text[:297] + "..."
