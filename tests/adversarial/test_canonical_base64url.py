"""Attack: re-spell a valid assertion's base64url (set the unused low bits of a segment's last
character). The bytes decode the same, so a lax decoder accepts a token its signer never
produced: a second, distinct string for the same assertion (issue 10, item 8)."""

from __future__ import annotations

import pytest

from pkjwt import forge, generate_key
from pkjwt.decode import DecodeError, decode_compact
from server.conftest import Srv

ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
SPARE = {2: 0b1111, 3: 0b11}


def respellings(segment: str) -> list[str]:
    """Every other spelling of ``segment`` that decodes to the same bytes."""
    spare = SPARE.get(len(segment) % 4, 0)
    value = ALPHABET.index(segment[-1])
    return [segment[:-1] + ALPHABET[(value & ~spare) | bits] for bits in range(1, spare + 1)]


@pytest.mark.parametrize("part", [0, 1, 2], ids=["header", "payload", "signature"])
def test_every_respelling_is_refused_by_the_parser(part: int) -> None:
    key = generate_key("ES256", kid="k")
    # payload/header lengths chosen so each segment has spare bits (length mod 4 = 2 or 3)
    token = forge.sign(key, {"alg": "ES256", "kid": "k"}, {"sub": "c", "n": "x"})
    parts = token.split(".")
    decode_compact(token)
    tried = 0
    for spelling in respellings(parts[part]):
        forged = ".".join(spelling if i == part else p for i, p in enumerate(parts))
        with pytest.raises(DecodeError) as err:
            decode_compact(forged)
        assert err.value.code == "jws.base64"
        tried += 1
    assert tried == SPARE.get(len(parts[part]) % 4, 0)


def test_a_respelled_signature_gets_no_token(bis: Srv) -> None:
    assertion = bis.assertion()
    head, _, signature = assertion.rpartition(".")
    for spelling in respellings(signature)[:3]:
        response = bis.token(f"{head}.{spelling}")
        assert response.status_code == 400
        assert response.json()["error"] == "invalid_client"
    assert bis.token(assertion).status_code == 200  # the canonical one still works, once
