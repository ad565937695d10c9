"""What every signer whose private key lives elsewhere (an HSM, a cloud KMS) shares.

The backend only signs; everything around it is done once, here: the public key is read at
construction (to publish it, to derive the default ``kid`` as its RFC 7638 thumbprint, and to
know which algorithms the key can make), the algorithm is chosen like a local key's, and the
backend's signature is put in JWS form. ECDSA is the classic trap: HSMs and KMSs return DER
(``SEQUENCE { r, s }``), JWS wants the fixed-width ``R || S`` (RFC 7518 3.4); a DER signature
sent as is fails verification everywhere, and only sometimes with a useful message.
"""

from __future__ import annotations

import asyncio
from typing import ClassVar

from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from ..errors import KeyLoadError
from ..keys import Key

__all__ = ["RemoteSigner", "der_to_jose"]

#: the width of R and of S in a JWS ECDSA signature, per algorithm (RFC 7518 3.4)
_ECDSA_WIDTH = {"ES256": 32, "ES384": 48, "ES512": 66, "ES256K": 32}


def der_to_jose(alg: str, signature: bytes) -> bytes:
    """An ECDSA signature in DER as JWS wants it (``R || S``, each zero-padded to the curve's
    width); other algorithms' signatures unchanged."""
    width = _ECDSA_WIDTH.get(alg)
    if width is None:
        return signature
    r, s = decode_dss_signature(signature)
    return r.to_bytes(width, "big") + s.to_bytes(width, "big")


class RemoteSigner:
    """A :class:`~pkjwt.signing.FlexibleSigner` over a backend that holds the private key.

    Subclasses implement :meth:`_sign` (``data`` is the JWS signing input; the backend hashes
    it or is given its digest, as its API wants) and say with ``returns_der`` whether ECDSA
    signatures come back in DER. Errors from the backend must be raised as
    :class:`~pkjwt.errors.SignerUnavailable` (unreachable, denied, throttled): the token
    endpoint was never asked, so they are not credential errors.
    """

    #: whether the backend returns ECDSA signatures as DER (cloud KMSs do; PKCS#11's CKM_ECDSA
    #: already returns R || S)
    returns_der: ClassVar[bool] = False

    def __init__(self, public: Key, *, alg: str | None = None, kid: str | None = None) -> None:
        self.public = public.public() if public.is_private else public
        self._kid = kid or self.public.thumbprint()
        chosen = alg or self.public.alg
        if chosen not in self.public.algs:
            raise KeyLoadError(
                f"{self.describe()} cannot sign {chosen}",
                hint="this key signs " + ", ".join(self.public.algs),
            )
        self._alg = chosen

    # -- the Signer protocol ----------------------------------------------------------------
    @property
    def alg(self) -> str:
        return self._alg

    @property
    def kid(self) -> str:
        return self._kid

    @property
    def algs(self) -> tuple[str, ...]:
        return tuple(self.public.algs)

    def with_alg(self, alg: str) -> RemoteSigner:
        """The same key and backend session, signing ``alg``."""
        if alg not in self.public.algs:
            raise KeyLoadError(
                f"{self.describe()} cannot sign {alg}",
                hint="this key signs " + ", ".join(self.public.algs),
            )
        twin = object.__new__(type(self))
        twin.__dict__.update(self.__dict__)
        twin._alg = alg
        return twin

    def sign(self, data: bytes) -> bytes:
        signature = self._sign(self._alg, data)
        return der_to_jose(self._alg, signature) if self.returns_der else signature

    async def asign(self, data: bytes) -> bytes:
        # the backends' clients block (a network call, a PKCS#11 session): off the event loop
        return await asyncio.to_thread(self.sign, data)

    # -- for subclasses ---------------------------------------------------------------------
    def _sign(self, alg: str, data: bytes) -> bytes:
        raise NotImplementedError

    def describe(self) -> str:
        """The key as a person names it, without secrets (no PIN, no credentials)."""
        return f"{type(self).__name__} key"

    def public_key(self) -> Key:
        """The public key, with this signer's ``kid`` and ``alg``: what to publish."""
        return Key(self.public.jose, self._kid, self._alg, (self._alg,), True)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.describe()} alg={self._alg} kid={self._kid!r}>"
