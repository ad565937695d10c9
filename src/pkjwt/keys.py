"""Keys: generate, load once, describe, publish.

A :class:`Key` is parsed exactly once into a typed object (a joserfc key wrapping the native
``cryptography`` key); nothing downstream ever sees PEM or JWK text again. The private half
never leaves this module except through :mod:`pkjwt.signing` and an explicit PEM export.

This module decides where key material comes from (a path, text, bytes, an environment
variable, a dict, a ``cryptography`` object); recognising its format and refusing weak keys is
:mod:`pkjwt._key_formats`' job.
"""

from __future__ import annotations

import json
import os
import stat
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from joserfc.jwk import ECKey, OKPKey, RSAKey
from joserfc.jws import JWSRegistry

from ._key_formats import EC_ALG_BY_CURVE as EC_ALG_BY_CURVE
from ._key_formats import MIN_RSA_BITS as MIN_RSA_BITS
from ._key_formats import (
    JoseKey,
    Parsed,
    parse_bytes,
    parse_jwk,
    parse_native,
)
from .errors import KeyLoadError

__all__ = [
    "ALGS_BY_KTY",
    "Key",
    "KeyFilePermissionWarning",
    "KeySet",
    "generate_key",
    "jwks",
    "load_jwks",
    "load_key",
]

RSA_ALGS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512")
OKP_ALGS = ("EdDSA", "Ed25519")
ALGS_BY_KTY: dict[str, tuple[str, ...]] = {
    "RSA": RSA_ALGS,
    "EC": tuple(EC_ALG_BY_CURVE.values()),
    "OKP": OKP_ALGS,
}
DEFAULT_RSA_BITS = 4096
#: JWK members that only a private key has; a public JWKS carrying any of them is refused
PRIVATE_JWK_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})
_MAX_KEY_FILE = 1 << 20


class KeyFilePermissionWarning(UserWarning):
    """A private key file is readable by group or others (as ssh warns)."""


@dataclass(frozen=True, slots=True, eq=False)
class Key:
    """An asymmetric key with its ``kid`` and algorithm.

    ``alg`` is the algorithm this key signs with by default; ``algs`` are the ones it may sign
    with (one when the algorithm was pinned by the caller or the JWK, else every algorithm the
    key type supports). ``alg_pinned`` says whether published JWKS carry ``alg``.
    """

    jose: JoseKey = field(repr=False)
    kid: str
    alg: str
    algs: tuple[str, ...]
    alg_pinned: bool
    #: the X.509 chain that came with the key (leaf first; checked to hold this key), for the
    #: ``x5t#S256``/``x5t``/``x5c`` headers some servers (Entra ID) want
    certificates: tuple[Any, ...] = field(default=(), repr=False)

    # -- description -------------------------------------------------------------------------
    @property
    def kty(self) -> str:
        """The JWK key type: ``RSA``, ``EC`` or ``OKP``."""
        return str(self.jose.key_type)

    @property
    def is_private(self) -> bool:
        """Whether this key holds its private half (it can sign)."""
        return bool(self.jose.is_private)

    @property
    def size(self) -> int:
        """Key size in bits (RSA modulus, EC curve order size, 256 for Ed25519)."""
        native = self.jose.public_key
        if isinstance(native, rsa.RSAPublicKey):
            return native.key_size
        if isinstance(native, ec.EllipticCurvePublicKey):
            return native.curve.key_size
        return 256

    @property
    def curve(self) -> str | None:
        """The curve name (``P-256``, ``Ed25519``, ...) of an EC or OKP key; None for RSA."""
        crv = self.jose.as_dict(private=False).get("crv")
        return str(crv) if crv else None

    def verifies(self, signing_input: bytes, signature: bytes, alg: str) -> bool:
        """Whether ``signature`` is this key's ``alg`` signature over ``signing_input`` (a
        JWS); False, never an exception, for an unknown alg or a malformed signature."""
        impl = JWSRegistry.algorithms.get(alg)
        try:
            return bool(impl and impl.verify(signing_input, signature, self.jose))
        except Exception:
            return False

    def thumbprint(self) -> str:
        """RFC 7638 SHA-256 JWK thumbprint, base64url."""
        return str(self.jose.thumbprint())

    @property
    def fingerprint(self) -> str:
        """A short, safe identifier for logs and errors (first 12 chars of the thumbprint)."""
        return self.thumbprint()[:12]

    def describe(self) -> str:
        """One line for people: type and size, private or public, kid, alg and fingerprint."""
        kind = f"{self.kty}-{self.size}" if self.kty == "RSA" else (self.curve or self.kty)
        half = "private" if self.is_private else "public"
        return f"{kind} {half} key kid={self.kid!r} alg={self.alg} (fp {self.fingerprint})"

    def __repr__(self) -> str:
        half = "private" if self.is_private else "public"
        return f"<Key {self.kty} {half} kid={self.kid!r} alg={self.alg} fp={self.fingerprint}>"

    # -- use -----------------------------------------------------------------------------------
    def public_jwk(self) -> dict[str, Any]:
        """The public JWK with ``kid``, ``use: sig``, (when pinned) ``alg`` and, for a key with
        its certificate, ``x5c`` and ``x5t#S256`` (RFC 7517 4.7-4.9; Entra ID reads them)."""
        jwk: dict[str, Any] = dict(self.jose.as_dict(private=False))
        for member in PRIVATE_JWK_MEMBERS:
            jwk.pop(member, None)
        jwk["kid"] = self.kid
        jwk["use"] = "sig"
        if self.alg_pinned:
            jwk["alg"] = self.alg
        if self.certificates:
            from .certificates import header_values

            jwk.update(header_values(self.certificates, ("x5c", "x5t#S256")))
        return jwk

    def public(self) -> Key:
        """This key without its private half."""
        native: Any = self.jose.public_key
        pub = type(self.jose).import_key(native)
        return Key(pub, self.kid, self.alg, self.algs, self.alg_pinned, self.certificates)

    def with_alg(self, alg: str) -> Key:
        """The same key pinned to ``alg`` (checked against the key type)."""
        _check_alg(self.kty, self.curve, alg)
        return Key(self.jose, self.kid, alg, (alg,), True, self.certificates)

    def private_pem(self, password: bytes | str | None = None) -> bytes:
        """PKCS#8 PEM, encrypted when a password is given. Handle the result as a secret."""
        if not self.is_private:
            raise KeyLoadError("this is a public key; there is no private half to export")
        enc: serialization.KeySerializationEncryption = serialization.NoEncryption()
        if password:
            pw = password.encode() if isinstance(password, str) else password
            enc = serialization.BestAvailableEncryption(pw)
        native: Any = self.jose.private_key
        pem: bytes = native.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, enc
        )
        return pem

    def public_pem(self) -> bytes:
        """The public key as PEM (SubjectPublicKeyInfo)."""
        native: Any = self.jose.public_key
        pem: bytes = native.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return pem


# -- generation -----------------------------------------------------------------------------------


def generate_key(alg: str = "RS512", *, kid: str | None = None, size: int | None = None) -> Key:
    """Generate a key for ``alg``: RSA (4096 bits unless ``size``), EC P-256/384/521, Ed25519."""
    jose: JoseKey
    if alg in RSA_ALGS:
        bits = size or DEFAULT_RSA_BITS
        if bits < MIN_RSA_BITS:
            raise KeyLoadError(
                f"RSA keys must have at least {MIN_RSA_BITS} bits, got {bits}",
                hint="use --size 4096 (the NHS norm) or 3072",
            )
        jose = RSAKey.import_key(rsa.generate_private_key(65537, bits))
    elif alg in EC_ALG_BY_CURVE.values():
        curve = {v: k for k, v in EC_ALG_BY_CURVE.items()}[alg]
        jose = ECKey.generate_key(curve)
    elif alg in OKP_ALGS:
        jose = OKPKey.import_key(ed25519.Ed25519PrivateKey.generate())
    else:
        raise KeyLoadError(
            f"cannot generate a key for alg {alg!r}",
            hint="choose one of " + ", ".join((*RSA_ALGS, *EC_ALG_BY_CURVE.values(), "EdDSA")),
        )
    return _make(jose, kid=kid, alg=alg)


# -- loading --------------------------------------------------------------------------------------

#: what :func:`load_key` reads: a path, PEM/JWK text or bytes, a JWK dict, a ``cryptography``
#: key object, or a :class:`Key` (returned as is)
KeySource = (
    str
    | os.PathLike[str]
    | bytes
    | Mapping[str, Any]
    | Key
    | rsa.RSAPrivateKey
    | rsa.RSAPublicKey
    | ec.EllipticCurvePrivateKey
    | ec.EllipticCurvePublicKey
    | ed25519.Ed25519PrivateKey
    | ed25519.Ed25519PublicKey
    | None
)


def load_key(
    source: KeySource,
    *,
    password: str | bytes | None = None,
    kid: str | None = None,
    alg: str | None = None,
    env: str | None = None,
    certificate: str | os.PathLike[str] | bytes | None = None,
) -> Key:
    """Load a key once, from any of the forms users have.

    ``source`` may be a path (PEM PKCS#1/PKCS#8/SEC1, encrypted PEM, JWK JSON, PKCS#12 or DER),
    PEM/JWK text, bytes, a JWK dict, a ``cryptography`` key object, or a :class:`Key`. With
    ``env=NAME`` (and ``source=None``) the key is read from that environment variable, which
    holds PEM or JWK text (for containers). ``kid`` defaults to the JWK's ``kid`` or else the
    RFC 7638 thumbprint; ``alg`` pins the algorithm. ``certificate``: the key's X.509 chain
    (PEM, leaf first), when it is not in the key file already (PKCS#12 or a PEM holding both).
    """
    key = _load_key(source, password=password, kid=kid, alg=alg, env=env)
    if certificate is not None:
        from .certificates import load_certificates

        key = with_certificates(key, load_certificates(certificate), str(certificate))
    return key


def _load_key(
    source: KeySource,
    *,
    password: str | bytes | None,
    kid: str | None,
    alg: str | None,
    env: str | None,
) -> Key:
    if isinstance(source, Key):
        key = source
        if kid and kid != key.kid:
            key = Key(key.jose, kid, key.alg, key.algs, key.alg_pinned, key.certificates)
        return key.with_alg(alg) if alg else key
    if env is not None:
        value = os.environ.get(env)
        if not value:
            raise KeyLoadError(
                f"environment variable {env} is not set or empty",
                hint=f"export {env} with the PEM or JWK text of the private key",
            )
        return _build(parse_bytes(value.encode(), password, f"${env}"), kid, alg)
    if isinstance(source, Mapping):
        return _build(parse_jwk(dict(source), "JWK"), kid, alg)
    if isinstance(source, bytes):
        return _build(parse_bytes(source, password, "key bytes"), kid, alg)
    if isinstance(source, str) and ("-----BEGIN" in source or source.lstrip().startswith("{")):
        return _build(parse_bytes(source.encode(), password, "key text"), kid, alg)
    if isinstance(source, str) and (
        "\n" in source or len(source) > 1024 or (len(source) > 200 and "/" not in source)
    ):
        raise KeyLoadError(
            f"the key given ({len(source)} characters) is neither a file path nor PEM/JWK text",
            hint="PEM text must keep its -----BEGIN/END----- lines",
        )
    if isinstance(source, str | os.PathLike):
        path = Path(source)
        data, mode = _read_key_file(path)
        key = _build(parse_bytes(data, password, str(path)), kid, alg)
        if mode & 0o077 and key.is_private:  # warned only about what turned out to be a key
            warnings.warn(
                f"private key file {path} is accessible by group or others "
                f"(mode {mode:04o}); run: chmod 600 {path}",
                KeyFilePermissionWarning,
                stacklevel=2,
            )
        return key
    if isinstance(
        source,
        rsa.RSAPrivateKey
        | rsa.RSAPublicKey
        | ec.EllipticCurvePrivateKey
        | ec.EllipticCurvePublicKey
        | ed25519.Ed25519PrivateKey
        | ed25519.Ed25519PublicKey,
    ):
        return _build(parse_native(source, "key object"), kid, alg)
    raise KeyLoadError(f"cannot load a key from a {type(source).__name__}")


def _read_key_file(path: Path) -> tuple[bytes, int]:
    """The file's bytes and its permission bits."""
    try:
        st = path.stat()
    except FileNotFoundError:
        raise KeyLoadError(f"key file not found: {path}") from None
    except OSError as exc:
        raise KeyLoadError(f"cannot read key file {path}: {exc.strerror}") from None
    if not stat.S_ISREG(st.st_mode):
        raise KeyLoadError(f"{path} is not a regular file")
    if st.st_size > _MAX_KEY_FILE:
        raise KeyLoadError(f"{path} is {st.st_size} bytes, too large to be a key file")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise KeyLoadError(f"cannot read key file {path}: {exc.strerror}") from None
    return data, stat.S_IMODE(st.st_mode)


def _check_alg(kty: str, curve: str | None, alg: str) -> None:
    allowed = _algs_for(kty, curve)
    if alg not in allowed:
        raise KeyLoadError(
            f"alg {alg} does not fit a {curve or kty} key", hint="use one of " + ", ".join(allowed)
        )


def _algs_for(kty: str, curve: str | None) -> tuple[str, ...]:
    if kty == "EC":
        return (EC_ALG_BY_CURVE[curve or ""],)
    return ALGS_BY_KTY[kty]


def _build(parsed: Parsed, kid: str | None, alg: str | None) -> Key:
    """The :class:`Key` for a parsed key: the caller's ``kid``/``alg`` win over the JWK's, and
    a conflicting ``alg`` is an error rather than a silent choice."""
    if alg and parsed.alg and alg != parsed.alg:
        raise KeyLoadError(f"{parsed.origin}: JWK says alg {parsed.alg}, but {alg} was requested")
    key = _make(parsed.jose, kid=kid or parsed.kid, alg=alg or parsed.alg)
    return (
        with_certificates(key, parsed.certificates, parsed.origin) if parsed.certificates else key
    )


def with_certificates(key: Key, chain: Sequence[Any], origin: str) -> Key:
    """``key`` with its certificate chain (leaf first), refused when the leaf holds another key."""
    from .certificates import check_chain

    check_chain(key, chain, origin)
    return Key(key.jose, key.kid, key.alg, key.algs, key.alg_pinned, tuple(chain))


def _make(jose: JoseKey, *, kid: str | None, alg: str | None) -> Key:
    """The one constructor of loaded and generated keys (its strength was checked on the way
    in: :func:`pkjwt._key_formats.check_strength`)."""
    kty = str(jose.key_type)
    crv = jose.as_dict(private=False).get("crv")
    curve = str(crv) if crv else None
    if alg:
        _check_alg(kty, curve, alg)
        algs: tuple[str, ...] = (alg,)
        pinned = True
    else:
        algs = _algs_for(kty, curve)
        alg = algs[0]
        pinned = False
    return Key(jose, kid or str(jose.thumbprint()), alg, algs, pinned)


# -- sets -----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class KeySet:
    """Public keys by ``kid`` (a parsed JWKS). ``ignored`` lists the set's members that cannot
    verify a signature here, each as (kid or position, why): RFC 7517 5 has them skipped, not
    the whole set refused; they are named where a kid asks for one of them."""

    keys: tuple[Key, ...]
    ignored: tuple[tuple[str, str], ...] = ()

    def why_ignored(self, kid: str | None) -> str | None:
        """Why the member with ``kid`` was ignored, if it was."""
        return next((why for k, why in self.ignored if k == kid), None)

    def get(self, kid: str | None) -> Key | None:
        """The key for ``kid``; with no ``kid``, the only key when there is exactly one."""
        if kid is None:
            return self.keys[0] if len(self.keys) == 1 else None
        for key in self.keys:
            if key.kid == kid:
                return key
        return None

    @property
    def kids(self) -> list[str]:
        """The key ids, in order."""
        return [k.kid for k in self.keys]

    def as_dict(self) -> dict[str, Any]:
        """The set as a JWKS document (``{"keys": [...]}``), public members only."""
        return jwks(self.keys)


def jwks(keys: Key | Iterable[Key]) -> dict[str, Any]:
    """The public JWKS for ``keys`` (never a private member), for hosting or uploading."""
    items = [keys] if isinstance(keys, Key) else list(keys)
    kids = [k.kid for k in items]
    if len(set(kids)) != len(kids):
        raise KeyLoadError("two keys share a kid; each key in a JWKS needs its own kid")
    return {"keys": [k.public_jwk() for k in items]}


def load_jwks(source: Mapping[str, Any] | str | bytes | os.PathLike[str]) -> KeySet:
    """Parse a public JWKS (dict, JSON text or path). Private members are refused."""
    obj: Any
    if isinstance(source, Mapping):
        obj = source
    else:
        if isinstance(source, os.PathLike) or (
            isinstance(source, str) and not source.lstrip().startswith("{")
        ):
            try:
                raw: str | bytes = Path(source).read_bytes()
            except OSError as exc:
                raise KeyLoadError(f"cannot read JWKS file {source}: {exc.strerror}") from None
        else:
            raw = source
        try:
            obj = json.loads(raw)
        except ValueError:
            raise KeyLoadError("JWKS is not valid JSON") from None
    if not isinstance(obj, Mapping):
        raise KeyLoadError("JWKS must be a JSON object with a 'keys' array")
    if "keys" not in obj and "kty" in obj:
        obj = {"keys": [obj]}
    members = obj.get("keys")
    if not isinstance(members, list) or not members:
        raise KeyLoadError("JWKS must have a non-empty 'keys' array")
    out: list[Key] = []
    ignored: list[tuple[str, str]] = []
    for i, member in enumerate(members):
        if not isinstance(member, dict):
            raise KeyLoadError(f"JWKS keys[{i}] is not an object")
        leaked = sorted(PRIVATE_JWK_MEMBERS & member.keys())
        if leaked:  # never skipped: a published private key is an incident, not a format
            raise KeyLoadError(
                f"JWKS keys[{i}] contains private members ({', '.join(leaked)})",
                hint="publish only public keys: run `pkjwt jwks KEYFILE` to produce a safe JWKS, "
                "and treat the exposed key as compromised",
            )
        kid = member.get("kid")
        name = kid if isinstance(kid, str) else f"keys[{i}]"
        why = _cannot_verify(member)
        if why is None:
            try:
                out.append(_build(parse_jwk(member, f"JWKS keys[{i}]"), None, None))
                continue
            except KeyLoadError as exc:  # an unknown kty or curve, too small, malformed
                why = exc.message.removeprefix(f"JWKS keys[{i}]: ")
        ignored.append((name, why))
    if not out:
        reasons = "; ".join(f"{name}: {why}" for name, why in ignored)
        raise KeyLoadError(
            f"JWKS has no signing keys: no key that can verify a signature ({reasons})"
        )
    return KeySet(tuple(out), tuple(ignored))


def _cannot_verify(member: Mapping[str, Any]) -> str | None:
    """Why a JWK's own ``use``/``key_ops`` forbid verifying signatures with it (RFC 7517 4.2,
    4.3), or None."""
    use = member.get("use")
    if use not in (None, "sig"):
        return f"use {use!r}: not for signatures"
    ops = member.get("key_ops")
    if ops is not None and (not isinstance(ops, list) or "verify" not in ops):
        return f"key_ops {ops!r} does not allow verify"
    return None
