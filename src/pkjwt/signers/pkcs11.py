"""Keys in an HSM, through PKCS#11: :class:`Pkcs11Signer` for ``pkcs11:`` URIs (RFC 7512).

    signer = Pkcs11Signer.from_uri(
        "pkcs11:token=pkjwt-test;object=nhs-int-1"
        "?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=file:/run/secrets/hsm-pin"
    )

The private key never leaves the token; the public half is read once (the CKO_PUBLIC_KEY
object with the same CKA_ID, else with the same CKA_LABEL, else the private object's own
public attributes) to publish it and to derive the default ``kid``. JWS algorithms map to
mechanisms as RFC 7518 3 defines them:

=========  =============================================================================
RS*        CKM_SHA{256,384,512}_RSA_PKCS (RSASSA-PKCS1-v1_5), else CKM_RSA_PKCS over the
           DigestInfo of a local hash (RFC 8017 9.2)
PS*        CKM_SHA*_RSA_PKCS_PSS with CK_RSA_PKCS_PSS_PARAMS (the same hash, MGF1 with it,
           salt as long as the hash: RFC 7518 3.5), else CKM_RSA_PKCS_PSS over a local hash
ES*        CKM_ECDSA over a local hash; the token answers R || S, each as wide as the curve's
           order, which is the JWS form already (RFC 7518 3.4)
=========  =============================================================================

Only the algorithms whose mechanism the token lists (C_GetMechanismList) are offered.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec, rsa

from ..errors import KeyLoadError, missing_extra
from ..keys import Key, load_key
from .base import RemoteSigner
from .pkcs11_uri import Pkcs11Uri, parse_pkcs11_uri

try:
    import pkcs11
    from pkcs11 import MGF, Attribute, KeyType, Mechanism, ObjectClass
except ImportError as exc:  # imported directly, not through open_signer: the same advice
    _missing = missing_extra("pkcs11", "a PKCS#11 (HSM) key", exc)
    _missing.name = exc.name
    raise _missing from None

from .pkcs11_session import TokenLink, link_for

__all__ = ["Pkcs11Signer"]

#: RFC 8017 9.2 note 1: the DER DigestInfo prefix before each hash, for bare CKM_RSA_PKCS
_DIGEST_INFO = {
    "256": bytes.fromhex("3031300d060960864801650304020105000420"),
    "384": bytes.fromhex("3041300d060960864801650304020205000430"),
    "512": bytes.fromhex("3051300d060960864801650304020305000440"),
}
_HASH_MECH = {"256": Mechanism.SHA256, "384": Mechanism.SHA384, "512": Mechanism.SHA512}
_MGF = {"256": MGF.SHA256, "384": MGF.SHA384, "512": MGF.SHA512}
_RSA_PKCS = {
    "256": Mechanism.SHA256_RSA_PKCS,
    "384": Mechanism.SHA384_RSA_PKCS,
    "512": Mechanism.SHA512_RSA_PKCS,
}
_RSA_PSS = {
    "256": Mechanism.SHA256_RSA_PKCS_PSS,
    "384": Mechanism.SHA384_RSA_PKCS_PSS,
    "512": Mechanism.SHA512_RSA_PKCS_PSS,
}
#: CKA_EC_PARAMS as DER namedCurve OIDs (RFC 5480 2.1.1.1)
_CURVES: dict[bytes, ec.EllipticCurve] = {
    bytes.fromhex("06082a8648ce3d030107"): ec.SECP256R1(),
    bytes.fromhex("06052b81040022"): ec.SECP384R1(),
    bytes.fromhex("06052b81040023"): ec.SECP521R1(),
    bytes.fromhex("06052b8104000a"): ec.SECP256K1(),
}


@dataclass(frozen=True, slots=True)
class _Plan:
    """How one JWS algorithm is signed on this token."""

    mechanism: Mechanism
    param: tuple[Any, ...] | None
    #: what the token is given, from the JWS signing input
    prepare: Callable[[bytes], bytes]


def _digest(bits: str) -> Callable[[bytes], bytes]:
    name = f"sha{bits}"
    return lambda data: hashlib.new(name, data).digest()


def _plan(alg: str, available: set[Any]) -> _Plan | None:
    """The mechanism for ``alg`` among those the token has, or None. The one that hashes on
    the token comes first: it is the one HSM key policies (CKA_ALLOWED_MECHANISMS) name."""
    family, bits = alg[:2], alg[2:5]
    if bits not in _HASH_MECH:
        return None
    whole: Callable[[bytes], bytes] = bytes
    if family == "RS":
        if _RSA_PKCS[bits] in available:
            return _Plan(_RSA_PKCS[bits], None, whole)
        if Mechanism.RSA_PKCS in available:
            prefix, hashed = _DIGEST_INFO[bits], _digest(bits)
            return _Plan(Mechanism.RSA_PKCS, None, lambda data: prefix + hashed(data))
    elif family == "PS":
        param = (_HASH_MECH[bits], _MGF[bits], int(bits) // 8)
        if _RSA_PSS[bits] in available:
            return _Plan(_RSA_PSS[bits], param, whole)
        if Mechanism.RSA_PKCS_PSS in available:
            return _Plan(Mechanism.RSA_PKCS_PSS, param, _digest(bits))
    elif family == "ES" and Mechanism.ECDSA in available:  # ES256K too: SHA-256
        return _Plan(Mechanism.ECDSA, None, _digest(bits))
    return None


def _der_octet_string(data: bytes) -> bytes:
    """The content of a DER OCTET STRING (X.690 8.7), as most tokens wrap CKA_EC_POINT."""
    if len(data) < 2 or data[0] != 0x04:
        raise ValueError("not an OCTET STRING")
    length, start = data[1], 2
    if length & 0x80:
        count = length & 0x7F
        length, start = int.from_bytes(data[2 : 2 + count], "big"), 2 + count
    if start + length != len(data):
        raise ValueError("OCTET STRING length does not match")
    return data[start:]


def _ec_public(params: bytes, point: bytes) -> ec.EllipticCurvePublicKey:
    curve = _CURVES.get(bytes(params))
    if curve is None:
        raise ValueError("its curve (CKA_EC_PARAMS) is not P-256, P-384, P-521 or secp256k1")
    width = (curve.key_size + 7) // 8
    raw = bytes(point)
    if len(raw) != 1 + 2 * width:  # PKCS#11 2.40 wants DER; some tokens give the bare point
        raw = _der_octet_string(raw)
    return ec.EllipticCurvePublicKey.from_encoded_point(curve, raw)


def _rsa_public(obj: Any) -> rsa.RSAPublicKey:
    modulus = int.from_bytes(obj[Attribute.MODULUS], "big")
    exponent = int.from_bytes(obj[Attribute.PUBLIC_EXPONENT], "big")
    return rsa.RSAPublicNumbers(exponent, modulus).public_key()


def _public_object(session: Any, private: Any) -> Any | None:
    """The CKO_PUBLIC_KEY that pairs with ``private``: same CKA_ID, else same CKA_LABEL."""
    for attr in (Attribute.ID, Attribute.LABEL):
        value = private[attr]
        if not value:
            continue
        found = list(session.get_objects({Attribute.CLASS: ObjectClass.PUBLIC_KEY, attr: value}))
        if len(found) == 1:
            return found[0]
    return None


def _read_public(session: Any, private: Any, where: str) -> Any:
    """The public key as a ``cryptography`` object, read from the token (never computed from
    anything secret)."""
    kind = private[Attribute.KEY_TYPE]
    public = _public_object(session, private)
    try:
        if kind == KeyType.RSA:
            native = _rsa_public(public if public is not None else private)
            if (
                public is not None
                and _rsa_public(private).public_numbers() != native.public_numbers()
            ):
                raise KeyLoadError(f"{where}: the public key with the same id has another modulus")
            return native
        if kind == KeyType.EC:
            if public is None:
                raise KeyLoadError(
                    f"{where}: no public key object beside the EC private key",
                    hint="import it with the same id: pkcs11-tool --write-object pub.der "
                    "--type pubkey --id ID --label LABEL",
                )
            return _ec_public(public[Attribute.EC_PARAMS], public[Attribute.EC_POINT])
    except (ValueError, pkcs11.PKCS11Error) as exc:
        raise KeyLoadError(f"{where}: cannot read the public key: {exc}") from None
    raise KeyLoadError(f"{where}: a {kind.name} key; pkjwt signs with RSA and EC keys")


def _describe_object(obj: Any) -> str:
    kind = obj[Attribute.KEY_TYPE]
    label = obj[Attribute.LABEL]
    ident = obj[Attribute.ID]
    return f"{label!r} (id {ident.hex() or '-'}, {getattr(kind, 'name', kind)})"


def _find_private(session: Any, uri: Pkcs11Uri, where: str) -> Any:
    """The one private key the URI names; else a KeyLoadError listing the private keys the
    token has (labels and ids are not secret)."""
    wanted: dict[Any, Any] = {Attribute.CLASS: ObjectClass.PRIVATE_KEY}
    if uri.object is not None:
        wanted[Attribute.LABEL] = uri.object
    if uri.id is not None:
        wanted[Attribute.ID] = uri.id
    found = list(session.get_objects(wanted))
    if len(found) == 1:
        return found[0]
    every = list(session.get_objects({Attribute.CLASS: ObjectClass.PRIVATE_KEY}))
    listing = ", ".join(sorted(_describe_object(o) for o in every)) or "none"
    if not found:
        raise KeyLoadError(f"{where}: no such private key", hint=f"private keys there: {listing}")
    raise KeyLoadError(
        f"{where}: {len(found)} private keys match", hint=f"add id= to choose one of: {listing}"
    )


class _KeyRef:
    """The private key's handle, valid for the session it was found in (shared by a signer
    and its ``with_alg`` twins)."""

    __slots__ = ("generation", "handle")

    def __init__(self) -> None:
        self.generation = -1
        self.handle: Any = None


class Pkcs11Signer(RemoteSigner):
    """Signs with a private key held in a PKCS#11 token (an HSM, a smart card, SoftHSM2).

    One login per token and process, kept open and reused under a lock: thread-safe, and
    reopened once when the token says the session is gone. A wrong or locked PIN is a
    :class:`~pkjwt.errors.SignerUnavailable` that is not retryable, a device failure one that
    is; a token or key that is not there is a :class:`~pkjwt.errors.KeyLoadError` naming what
    is. The PIN is never shown: not in ``repr``, errors or logs.
    """

    returns_der = False  # CKM_ECDSA gives R || S (PKCS#11 v2.40 2.3.1)

    def __init__(self, uri: Pkcs11Uri | str, *, alg: str | None = None, kid: str | None = None):
        parsed = uri if isinstance(uri, Pkcs11Uri) else parse_pkcs11_uri(uri)
        self.uri = parsed
        self._description = f"pkcs11 {parsed.names()}"
        self._link: TokenLink = link_for(parsed.module(), parsed)
        self._description = f"pkcs11 token {self._link.label!r} {parsed.key_names()}"
        self._ref = _KeyRef()
        public, available = self._link.call(self._inspect)
        self._plans = {a: p for a in public.algs if (p := _plan(a, available)) is not None}
        if not self._plans:
            raise KeyLoadError(
                f"{self.describe()}: the token offers no mechanism for " + ", ".join(public.algs),
                hint="pkjwt needs CKM_SHA*_RSA_PKCS(_PSS), CKM_RSA_PKCS(_PSS) or CKM_ECDSA",
            )
        algs = tuple(self._plans)
        offered = Key(
            public.jose, public.kid, public.alg if public.alg in algs else algs[0], algs, False
        )
        super().__init__(offered, alg=alg, kid=kid)

    @classmethod
    def from_uri(cls, uri: str, *, alg: str | None = None, kid: str | None = None) -> Pkcs11Signer:
        """The signer for an RFC 7512 URI (see :mod:`pkjwt.signers.pkcs11_uri`)."""
        return cls(uri, alg=alg, kid=kid)

    def _inspect(self, session: Any) -> tuple[Key, set[Any]]:
        """Find the key (once: its handle is kept for this session), read its public half and
        the mechanisms the token has."""
        private = self._private(session)
        if private[Attribute.SIGN] is False:
            raise KeyLoadError(f"{self.describe()} may not sign (its CKA_SIGN is false)")
        native = _read_public(session, private, self.describe())
        return load_key(native), set(self._link.slot.get_mechanisms())

    def _private(self, session: Any) -> Any:
        ref = self._ref
        if ref.generation != self._link.generation:
            ref.handle = _find_private(session, self.uri, self.describe())
            ref.generation = self._link.generation
        return ref.handle

    def _sign(self, alg: str, data: bytes) -> bytes:
        plan = self._plans[alg]
        payload = plan.prepare(data)

        def operation(session: Any) -> bytes:
            signature: bytes = self._private(session).sign(
                payload, mechanism=plan.mechanism, mechanism_param=plan.param
            )
            return signature

        return self._link.call(operation)

    def describe(self) -> str:
        return self._description

    @property
    def token_label(self) -> str:
        return self._link.label
