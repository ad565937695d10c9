"""HTTP pieces every endpoint shares, framework-free: the :class:`Reply`, headers, JSON, the
form parser and the body limit.

Endpoints produce a :class:`Reply` (status, headers, body bytes); the app turns it into ASGI
messages once (:func:`send_reply`), for the fast token route and the framework routes alike.
"""

from __future__ import annotations

import email.utils
import functools
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, unquote_plus

from ..profiles import JWT_BEARER

__all__ = [
    "FORM",
    "JSON",
    "MAX_BODY",
    "MAX_FORM_FIELDS",
    "NO_STORE",
    "Form",
    "Reply",
    "dumps",
    "http_date",
    "json_reply",
    "parse_form",
    "read_body",
    "send_reply",
]

#: the largest request body any endpoint reads; a token request is a few kilobytes
MAX_BODY = 64 * 1024
#: more fields than any token request needs; a larger form is refused before it is split
MAX_FORM_FIELDS = 64
FORM = "application/x-www-form-urlencoded"
NO_STORE = (("cache-control", "no-store"), ("pragma", "no-cache"))
JSON = ("content-type", "application/json")

_date_cache: tuple[int, str] = (0, "")


def http_date() -> str:
    """The ``Date`` header value, formatted once per second."""
    global _date_cache
    now = int(time.time())
    if _date_cache[0] != now:
        _date_cache = (now, email.utils.formatdate(now, usegmt=True))
    return _date_cache[1]


@dataclass(frozen=True, slots=True)
class Reply:
    """A response as data: what every endpoint returns."""

    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes


_COMPACT = json.JSONEncoder(separators=(",", ":"))  # json.dumps would build one per call


def dumps(obj: Any) -> bytes:
    return _COMPACT.encode(obj).encode()


def json_reply(
    body: Any, status: int = 200, headers: Mapping[str, str] | tuple[tuple[str, str], ...] = ()
) -> Reply:
    extra = tuple(headers.items()) if isinstance(headers, Mapping) else headers
    return Reply(status, (JSON, *extra), dumps(body))


#: the one encoded value nearly every request carries, decoded once
_COMMON_ENCODED = {quote(JWT_BEARER, safe=""): JWT_BEARER}


class Form(dict[str, str]):
    """A parsed form: each field's value (the first, where a field may repeat), and in
    :attr:`repeats` the further values of the fields that may repeat (RFC 8707 ``resource``)."""

    __slots__ = ("repeats",)

    def __init__(self) -> None:
        super().__init__()
        self.repeats: dict[str, list[str]] = {}

    def values_of(self, name: str) -> list[str]:
        """Every value of ``name``, in order."""
        first = self.get(name)
        return [] if first is None else [first, *self.repeats.get(name, ())]


def parse_form(
    body: bytes, *, repeatable: frozenset[str] = frozenset(), first_wins: bool = False
) -> Form | str:
    """The form, or the reason it is not acceptable (R1: a parameter repeated).

    ``parse_qsl(keep_blank_values=True)`` semantics, with the unquoting skipped for the
    parts that hold nothing to unquote (a base64url assertion never does). Fields in
    ``repeatable`` may repeat; with ``first_wins`` any field may, and its first value counts
    (as on the NHS platform, where a gateway reads form fields that way).
    """
    try:
        text = body.decode("ascii")
    except UnicodeDecodeError:
        return "the body must be form-encoded ASCII"
    if text.count("&") >= MAX_FORM_FIELDS:
        return "too many form fields"
    form = Form()
    for part in text.split("&"):
        if not part:
            continue
        name, _, value = part.partition("=")
        if "%" in name or "+" in name:
            name = unquote_plus(name)
        if "%" in value or "+" in value:
            value = _COMMON_ENCODED.get(value) or unquote_plus(value)
        if name in form:
            if name in repeatable:
                form.repeats.setdefault(name, []).append(value)
            elif not first_wins:
                return f"parameter {name[:40]} repeated"
            continue
        form[name] = value
    return form


@functools.lru_cache(maxsize=256)
def _raw_header(header: tuple[str, str]) -> tuple[bytes, bytes]:
    # the same few headers on every reply (Date changes once a second): encode each once
    return header[0].encode("latin-1"), header[1].encode("latin-1")


async def read_body(
    receive: Any, headers: Mapping[str, str], limit: int = MAX_BODY
) -> bytes | None:
    """The request body, read from ASGI ``receive`` until ``limit`` + 1 bytes at most: a larger
    body is never held, or even read to its end (the endpoint sees ``limit`` + 1 bytes and
    answers "too large"; the server then drops the connection). None if the client left."""
    declared = headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        return b"\0" * (limit + 1)  # refused unread: its length is all that matters
    chunks: list[bytes] = []
    kept = 0
    more = True
    while more and kept <= limit:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunk = message.get("body", b"")[: limit + 1 - kept]
        chunks.append(chunk)
        kept += len(chunk)
        more = message.get("more_body", False)
    return b"".join(chunks)


async def send_reply(send: Any, reply: Reply) -> None:
    """Send ``reply`` as the two ASGI messages of a response."""
    raw = [_raw_header(h) for h in reply.headers]
    raw.append((b"content-length", str(len(reply.body)).encode()))
    await send({"type": "http.response.start", "status": reply.status, "headers": raw})
    await send({"type": "http.response.body", "body": reply.body})
