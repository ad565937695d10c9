"""The one parser for untrusted compact JWS: split, size-cap, base64url, strict JSON.

Nothing here verifies a signature or trusts a value; it only turns bytes into a header and
claims or says precisely why it cannot (rules R5 and R6 of the rule table).
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
from dataclasses import dataclass
from typing import Any

from .errors import JWTFormatError

__all__ = [
    "DEFAULT_MAX_BYTES",
    "DecodeError",
    "DecodedJWT",
    "b64url",
    "compact",
    "decode_compact",
]

DEFAULT_MAX_BYTES = 16 * 1024
_B64URL = re.compile(rb"^[A-Za-z0-9_-]*$")


class DecodeError(JWTFormatError):
    """Why a string is not an acceptable compact JWS. ``rule`` is R5 or R6, ``code`` the detail."""

    def __init__(self, rule: str, code: str, message: str, *, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.rule = rule
        self.code = code


@dataclass(frozen=True, slots=True)
class DecodedJWT:
    header: dict[str, Any]
    claims: dict[str, Any]
    signing_input: bytes
    signature: bytes
    size: int


def b64url(data: bytes) -> str:
    """base64url without padding (RFC 7515 section 2)."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def compact(signing_input: bytes | str, signature: bytes) -> str:
    """``header.payload.signature``: the one place a compact JWS is joined."""
    data = signing_input if isinstance(signing_input, str) else signing_input.decode("ascii")
    return f"{data}.{b64url(signature)}"


#: each base64url character's value, to read the unused low bits of a segment's last one
_VALUE = {
    c: i for i, c in enumerate(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
}
#: the low bits the last character does not encode, by segment length mod 4 (2: 4 bits, 3: 2)
_SPARE_BITS = {0: 0, 2: 0b1111, 3: 0b11}


def _unb64(segment: bytes, what: str) -> bytes:
    if not _B64URL.match(segment) or len(segment) % 4 == 1:
        raise DecodeError("R5", "jws.base64", f"the {what} is not base64url (RFC 7515 2)")
    # one spelling per value: unused bits set in the last character decode to the same bytes as
    # the canonical spelling, so a signature could be re-spelled without the signer (RFC 4648
    # 3.5 lets a decoder refuse them; RFC 7515 2 asks for the canonical form)
    if segment and _VALUE[segment[-1]] & _SPARE_BITS[len(segment) % 4]:
        raise DecodeError(
            "R5", "jws.base64", f"the {what} is not canonical base64url (unused bits set)"
        )
    try:
        return base64.urlsafe_b64decode(segment + b"=" * (-len(segment) % 4))
    except (binascii.Error, ValueError):
        raise DecodeError("R5", "jws.base64", f"the {what} is not base64url") from None


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):  # the common case costs one comparison, not a Python loop
        seen: set[str] = set()
        for name, _ in pairs:
            if name in seen:
                raise ValueError(f"duplicate member {name!r}")
            seen.add(name)
    return obj


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


# built once: json.loads with hooks would build a new decoder per call
_STRICT_JSON = json.JSONDecoder(object_pairs_hook=_object, parse_constant=_reject_constant)


def _json_object(raw: bytes, what: str) -> dict[str, Any]:
    try:
        obj = _STRICT_JSON.decode(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise DecodeError("R6", f"json.{what}", f"the {what} is not UTF-8") from None
    except RecursionError:
        raise DecodeError("R6", f"json.{what}", f"the {what} is nested too deeply") from None
    except ValueError as exc:
        raise DecodeError("R6", f"json.{what}", f"the {what} is not valid JSON: {exc}") from None
    if not isinstance(obj, dict):
        raise DecodeError("R6", f"json.{what}", f"the {what} is not a JSON object")
    for value in obj.values():
        # json.loads turns 1e999 into inf; reject it like NaN
        if isinstance(value, float) and not math.isfinite(value):
            raise DecodeError("R6", f"json.{what}", f"the {what} holds a non-finite number")
    return obj


def decode_compact(token: str | bytes, *, max_bytes: int = DEFAULT_MAX_BYTES) -> DecodedJWT:
    """Split and parse a compact JWS without trusting it.

    Raises :class:`DecodeError` (rule R5: size, shape, base64url; rule R6: JSON) and never
    anything else, whatever the input.
    """
    if isinstance(token, str):
        if len(token) > max_bytes:
            raise DecodeError(
                "R5", "jws.size", f"the assertion is {len(token)} bytes; the limit is {max_bytes}"
            )
        try:
            data = token.strip().encode("ascii")
        except UnicodeEncodeError:
            raise DecodeError("R5", "jws.base64", "the JWT holds non-ASCII characters") from None
    else:
        data = token.strip()
    if len(data) > max_bytes:
        raise DecodeError(
            "R5", "jws.size", f"the assertion is {len(data)} bytes; the limit is {max_bytes}"
        )
    if not data:
        raise DecodeError("R5", "jws.compact", "the assertion is empty")
    parts = data.split(b".")
    if len(parts) == 5:
        raise DecodeError(
            "R5",
            "jws.jwe",
            "this is a JWE (5 parts); a client assertion must be a signed JWS (3 parts)",
        )
    if len(parts) != 3:
        hint = None
        if data.startswith(b"{"):
            hint = "JWS JSON serialization is not allowed; send the compact form a.b.c"
        raise DecodeError(
            "R5", "jws.compact", f"not a compact JWS: {len(parts)} part(s), expected 3", hint=hint
        )
    h, p, s = parts
    header = _json_object(_unb64(h, "header"), "header")
    claims = _json_object(_unb64(p, "payload"), "payload")
    signature = _unb64(s, "signature")
    return DecodedJWT(header, claims, h + b"." + p, signature, len(data))
