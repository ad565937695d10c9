"""Response bodies read with a ceiling: a body (decompressed) larger than the cap is refused
while it is read, never held whole (a 50 MB body cost 100 MB; a 200 kB gzip bomb, 400 MB).

Requests ask for ``identity``; a body compressed anyway (gzip, deflate) is inflated a chunk at a
time, at most as far as the cap allows."""

from __future__ import annotations

import zlib

__all__ = ["BodyTooLarge", "BoundedBody"]

#: zlib window sizes for the encodings a server may still send: gzip and (zlib) deflate
_WBITS = {"gzip": 16 + zlib.MAX_WBITS, "x-gzip": 16 + zlib.MAX_WBITS, "deflate": zlib.MAX_WBITS}


class BodyTooLarge(Exception):
    """The body passed the cap (or came in an encoding that cannot be bounded)."""


class BoundedBody:
    """Accumulates raw chunks of a body sent with ``content_encoding``, up to ``limit`` bytes
    once decoded."""

    def __init__(self, limit: int, content_encoding: str | None) -> None:
        encoding = (content_encoding or "identity").strip().lower()
        if encoding not in ("identity", "", *_WBITS):
            raise BodyTooLarge(f"an unsupported content encoding ({encoding[:20]})")
        self.limit = limit
        self._inflate = zlib.decompressobj(_WBITS[encoding]) if encoding in _WBITS else None
        self._body = bytearray()

    def feed(self, chunk: bytes) -> None:
        # decode at most what still fits: a bomb stops at limit + 1 bytes
        room = self.limit + 1 - len(self._body)
        try:
            self._body += self._inflate.decompress(chunk, room) if self._inflate else chunk[:room]
        except zlib.error:
            raise BodyTooLarge("a body that does not decompress") from None
        if len(self._body) > self.limit:
            raise BodyTooLarge(f"a body larger than {self.limit} bytes")

    def value(self) -> bytes:
        return bytes(self._body)
