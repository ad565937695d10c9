"""Signers: the narrow door through which the private key is used.

A signer turns a JWS signing input into a signature. :class:`LocalSigner` holds a parsed local
key; a KMS or HSM can stand in for it by implementing :class:`Signer` (and, when its API is
asynchronous, :class:`AsyncSigner`). The library builds headers and claims either way.
"""

from __future__ import annotations

import asyncio
from typing import Any, Protocol, runtime_checkable

from joserfc.jws import JWSRegistry

from .errors import KeyLoadError
from .keys import Key

__all__ = ["AsyncSigner", "FlexibleSigner", "LocalSigner", "Signer", "as_signer"]


@runtime_checkable
class Signer(Protocol):
    """Signs JWS signing input. ``alg`` is the JWS algorithm, ``kid`` the key id it announces.

    ``sign`` returns the signature in JWS form (for ECDSA the raw ``R || S``, not DER).
    """

    @property
    def alg(self) -> str:
        """The JWS algorithm the signatures are made with (``RS512``, ``ES256``, ...)."""

    @property
    def kid(self) -> str | None:
        """The key id the JWS header announces, if any."""

    def sign(self, data: bytes) -> bytes:
        """The JWS signature over ``data`` (for ECDSA the raw ``R || S``, not DER)."""


@runtime_checkable
class AsyncSigner(Signer, Protocol):
    """A signer whose natural interface is asynchronous (a remote KMS, an HSM over the network)."""

    async def asign(self, data: bytes) -> bytes:
        """The JWS signature over ``data``, awaited (a remote KMS, an HSM over the network)."""


@runtime_checkable
class FlexibleSigner(Signer, Protocol):
    """A signer whose key can make several algorithms (an RSA key in an HSM signs RS256 to
    PS512): the profile and the server choose among ``algs``, as they do for a local key, and
    ``with_alg`` gives the signer for the one chosen."""

    @property
    def algs(self) -> tuple[str, ...]: ...

    def with_alg(self, alg: str) -> FlexibleSigner: ...


def require_private(key: Key) -> None:
    """Refuse a public key where one must sign (before, not at, the first token request)."""
    if not key.is_private:
        raise KeyLoadError(
            f"{key.describe()} is a public key; signing needs the private key",
            hint="pass the private key file (the JWKS or public PEM is what you publish)",
        )


class LocalSigner:
    """Signs with a local private :class:`~pkjwt.keys.Key`, parsed once.

    The algorithm object is looked up once here, so ``sign`` is one call into ``cryptography``.
    """

    __slots__ = ("_alg", "_impl", "_jose", "key")

    def __init__(self, key: Key, alg: str | None = None) -> None:
        require_private(key)
        alg = alg or key.alg
        if alg not in key.algs:
            raise KeyLoadError(
                f"{key.describe()} cannot sign {alg}",
                hint="this key signs with " + ", ".join(key.algs),
            )
        self.key = key
        self._alg = alg
        self._jose: Any = key.jose
        self._impl = JWSRegistry.algorithms[alg]

    @property
    def alg(self) -> str:
        """The JWS algorithm this signer uses."""
        return self._alg

    @property
    def kid(self) -> str:
        """The key's id."""
        return self.key.kid

    def sign(self, data: bytes) -> bytes:
        """The JWS signature over ``data``, made with the local key."""
        sig: bytes = self._impl.sign(data, self._jose)
        return sig

    async def asign(self, data: bytes) -> bytes:
        """The same as :meth:`sign`: a local signature is cheaper inline than in a thread."""
        # An RSA-4096 signature costs ~1.5 ms: cheaper inline than a thread hop.
        return self.sign(data)

    def __repr__(self) -> str:
        return f"<LocalSigner alg={self._alg} kid={self.kid!r} fp={self.key.fingerprint}>"


def as_signer(key_or_signer: Key | Signer, alg: str | None = None) -> Signer:
    """A signer for a key (``LocalSigner``) or the signer itself."""
    if isinstance(key_or_signer, Key):
        return LocalSigner(key_or_signer, alg)
    if alg is None or key_or_signer.alg == alg:
        return key_or_signer
    if isinstance(key_or_signer, FlexibleSigner) and alg in key_or_signer.algs:
        return key_or_signer.with_alg(alg)
    raise KeyLoadError(f"signer signs {key_or_signer.alg}, but {alg} is required")


async def asign(signer: Signer, data: bytes) -> bytes:
    """Sign from async code: await ``asign`` when the signer has it, else run ``sign`` inline."""
    method = getattr(signer, "asign", None)
    if method is not None:
        result: bytes = await method(data)
        return result
    return await asyncio.to_thread(signer.sign, data)
