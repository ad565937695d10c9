"""DPoP (RFC 9449): proofs of possession, made by the client and judged by the server.

A proof is a JWT the client signs for one HTTP request: header ``typ: dpop+jwt``, an
asymmetric ``alg`` and the public ``jwk`` itself; claims ``jti``, ``htm`` (the method), ``htu``
(the URL without query or fragment), ``iat``, and, when the server asked, its ``nonce``; at a
resource also ``ath``, the hash of the access token it accompanies. A token issued against a
proof is bound to its key by the key's RFC 7638 thumbprint (``cnf.jkt``).

Client half: :class:`DPoPKey` makes proofs (its header encoded once; one signature each, as a
flow action, so an HSM or KMS key works from async code too) and :class:`Nonces` keeps each
server's latest ``DPoP-Nonce``. Server half: :func:`check_proof` judges a proof against the
rule table's DPoP rows (D1-D12 in :mod:`pkjwt.catalogue`) and never raises on bad input;
:class:`NonceIssuer` makes stateless, expiring server nonces.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import struct
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from .catalogue import CATALOGUE
from .decode import DecodeError, b64url, compact, decode_compact
from .errors import ConfigError, KeyLoadError
from .flow import Flow, Sign
from .keys import Key, generate_key, load_key
from .rules import Finding, Verdict
from .signing import Signer, as_signer

__all__ = [
    "DPOP_ALGS",
    "DPOP_TYP",
    "DPoPKey",
    "NonceIssuer",
    "Nonces",
    "ProofCheck",
    "access_token_hash",
    "check_proof",
    "htu_of",
]

DPOP_TYP = "dpop+jwt"
#: what a proof may be signed with: asymmetric algorithms only (RFC 9449 4.3 point 5)
DPOP_ALGS = ("ES256", "ES384", "ES512", "PS256", "PS384", "PS512", "RS256", "EdDSA")
#: the members of a public JWK per key type (everything else is dropped from the header)
_PUBLIC_MEMBERS = {
    "EC": ("kty", "crv", "x", "y"),
    "RSA": ("kty", "n", "e"),
    "OKP": ("kty", "crv", "x"),
}
#: JWK members that would make the header carry a private key
_PRIVATE_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})
MAX_PROOF_BYTES = 8 * 1024


def htu_of(url: str) -> str:
    """The ``htu`` for a request URL: scheme, host, port and path; no query, no fragment."""
    parts = urlsplit(url)
    return f"{parts.scheme.lower()}://{parts.netloc.lower()}{parts.path or '/'}"


def access_token_hash(token: str) -> str:
    """``ath``: base64url(SHA-256(the access token's ASCII)) (RFC 9449 4.2)."""
    return b64url(hashlib.sha256(token.encode("ascii", "replace")).digest())


class DPoPKey:
    """The key a client proves possession of. None makes an ephemeral ES256 key (the
    default: nothing to manage, and tokens bound to it die with the process); a
    :class:`~pkjwt.keys.Key`, anything :func:`~pkjwt.keys.load_key` reads, or a
    :class:`~pkjwt.signing.Signer` with a ``public_key`` (an HSM or KMS key) also work."""

    def __init__(self, key: Key | Signer | Any = None, *, alg: str | None = None) -> None:
        if key is None:
            key = generate_key("ES256")
        if isinstance(key, Key) or not isinstance(key, Signer):
            loaded = key if isinstance(key, Key) else load_key(key, alg=alg)
            public = loaded.public()
            signer = as_signer(loaded, alg or loaded.alg)
        else:
            exposed = getattr(key, "public_key", None)
            exposed = exposed() if callable(exposed) else exposed  # RemoteSigner: a method
            if not isinstance(exposed, Key):
                raise ConfigError("a DPoP signer must expose its public_key (a Key)")
            public, signer = exposed, key
        if signer.alg not in DPOP_ALGS:
            raise KeyLoadError(
                f"DPoP proofs need an asymmetric algorithm, not {signer.alg}",
                hint="use an EC (ES256), RSA (PS256/RS256) or Ed25519 key",
            )
        jwk = public.public_jwk()
        members = _PUBLIC_MEMBERS.get(str(jwk.get("kty")))
        if members is None:
            raise KeyLoadError(f"DPoP cannot use a {jwk.get('kty')} key")
        self.signer = signer
        self.public_jwk = {m: jwk[m] for m in members}
        #: RFC 7638 thumbprint of the public key: what a bound token's ``cnf.jkt`` holds
        self.jkt = public.thumbprint()
        header = {"typ": DPOP_TYP, "alg": signer.alg, "jwk": self.public_jwk}
        self._header = b64url(json.dumps(header, separators=(",", ":")).encode())

    @property
    def alg(self) -> str:
        return self.signer.alg

    def signing_input(
        self,
        htm: str,
        url: str,
        *,
        now: float | None = None,
        nonce: str | None = None,
        access_token: str | None = None,
    ) -> bytes:
        claims: dict[str, Any] = {
            "jti": secrets.token_urlsafe(16),
            "htm": htm.upper(),
            "htu": htu_of(url),
            "iat": int(time.time() if now is None else now),
        }
        if nonce is not None:
            claims["nonce"] = nonce
        if access_token is not None:
            claims["ath"] = access_token_hash(access_token)
        payload = b64url(json.dumps(claims, separators=(",", ":")).encode())
        return f"{self._header}.{payload}".encode("ascii")

    def proof(
        self,
        htm: str,
        url: str,
        *,
        now: float | None = None,
        nonce: str | None = None,
        access_token: str | None = None,
    ) -> Flow[str]:
        """A fresh proof (new ``jti``) for one request: one ``Sign`` action."""
        data = self.signing_input(htm, url, now=now, nonce=nonce, access_token=access_token)
        signature = yield Sign(self.signer, data)
        return compact(data, signature)

    def sign_now(self, htm: str, url: str, **claims: Any) -> str:
        """:meth:`proof` run inline (a local key; for tests and the CLI)."""
        data = self.signing_input(htm, url, **claims)
        return compact(data, self.signer.sign(data))

    def __repr__(self) -> str:
        return f"<DPoPKey {self.alg} jkt={self.jkt[:12]}>"


class Nonces:
    """The latest ``DPoP-Nonce`` each server gave (by origin: a token endpoint and an API on
    another host keep theirs apart)."""

    def __init__(self) -> None:
        self._by_origin: dict[str, str] = {}

    @staticmethod
    def _origin(url: str) -> str:
        parts = urlsplit(url)
        return f"{parts.scheme.lower()}://{parts.netloc.lower()}"

    def get(self, url: str) -> str | None:
        return self._by_origin.get(self._origin(url))

    def observe(self, url: str, headers: Mapping[str, str]) -> bool:
        """Keep the nonce a response carries; True when it changed."""
        nonce = next((v for k, v in headers.items() if k.lower() == "dpop-nonce"), None)
        if not nonce or len(nonce) > 512:
            return False
        origin = self._origin(url)
        changed = self._by_origin.get(origin) != nonce
        self._by_origin[origin] = nonce
        return changed


# -- the server half --------------------------------------------------------------------------


class NonceIssuer:
    """Stateless server nonces: a timestamp and its HMAC under a per-process secret, valid for
    ``lifetime`` seconds (any worker with the same ``secret`` accepts them)."""

    def __init__(
        self,
        *,
        lifetime: float = 300.0,
        secret: bytes | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.lifetime = lifetime
        self._secret = secret or secrets.token_bytes(32)
        self._clock = clock
        self._lock = threading.Lock()
        self._current: tuple[int, str] | None = None

    def _mac(self, stamp: int) -> bytes:
        return hmac.new(self._secret, struct.pack(">Q", stamp), hashlib.sha256).digest()[:16]

    def current(self) -> str:
        """The nonce to hand out now (a new one every tenth of the lifetime)."""
        step = max(1, int(self.lifetime / 10))
        stamp = int(self._clock()) // step * step
        with self._lock:
            if self._current is None or self._current[0] != stamp:
                raw = struct.pack(">Q", stamp) + self._mac(stamp)
                self._current = (stamp, base64.urlsafe_b64encode(raw).rstrip(b"=").decode())
            return self._current[1]

    def valid(self, nonce: Any) -> bool:
        if not isinstance(nonce, str) or len(nonce) > 64:
            return False
        try:
            raw = base64.urlsafe_b64decode(nonce + "=" * (-len(nonce) % 4))
        except ValueError:
            return False
        if len(raw) != 24:
            return False
        stamp: int = struct.unpack(">Q", raw[:8])[0]
        if not hmac.compare_digest(raw[8:], self._mac(stamp)):
            return False
        return bool(0 <= self._clock() - stamp <= self.lifetime)


@dataclass(frozen=True, slots=True)
class ProofCheck:
    """What :func:`check_proof` found: every rule's finding, and (when the proof is sound) the
    key's thumbprint, the ``jti`` and ``iat`` for the replay check."""

    findings: tuple[Finding, ...]
    jkt: str | None = None
    jti: str | None = None
    iat: float | None = None
    header: Mapping[str, Any] = field(default_factory=dict)
    claims: Mapping[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return all(f.verdict is not Verdict.FAIL for f in self.findings)

    @property
    def first_failure(self) -> Finding | None:
        return next((f for f in self.findings if f.verdict is Verdict.FAIL), None)


#: each DPoP rule's condition code, what it expects and the fix (titles are the catalogue's)
_RULES: dict[str, tuple[str, str, str]] = {
    "D1": ("dpop.jws", "exactly one DPoP header, a compact JWS", "send one fresh proof"),
    "D2": ("dpop.typ", f"typ {DPOP_TYP}", f'set the header typ to "{DPOP_TYP}"'),
    "D3": ("dpop.alg", "an asymmetric alg", "sign proofs with an asymmetric algorithm (ES256)"),
    "D4": ("dpop.jwk", "a public JWK in the header", "put the public key alone in the jwk header"),
    "D5": ("dpop.signature", "signed by the jwk's key", "sign with the key the jwk header holds"),
    "D6": ("dpop.htm", "htm = the request method", "htm is the HTTP method of this request"),
    "D7": ("dpop.htu", "htu = the request URL", "htu is this request's URL without the query"),
    "D8": ("dpop.iat", "a fresh iat", "make a new proof for every request; check the clock"),
    "D9": ("dpop.jti", "a unique jti", "give every proof a new random jti"),
    "D10": ("dpop.nonce", "the server's nonce", "retry with the nonce in the DPoP-Nonce header"),
    "D11": ("dpop.ath", "ath = the access token's hash", "ath: base64url(sha256(access_token))"),
    "D12": ("dpop.binding", "the token's key", "prove possession with the key the token is for"),
}


def _judge(rule: str, ok: bool, got: str, expected: str | None = None) -> Finding:
    code, default, hint = _RULES[rule]
    info = CATALOGUE[rule]
    verdict = Verdict.PASS if ok else Verdict.FAIL
    shown = expected or default
    return Finding(rule, verdict, code, shown, got, info.source, "" if ok else hint, info.error)


def _show(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text if len(text) <= 80 else text[:77] + "..."


def check_proof(
    proofs: list[str] | str | None,
    *,
    method: str,
    url: str | Sequence[str],
    now: float,
    max_age: float = 300.0,
    skew: float = 30.0,
    algs: tuple[str, ...] = DPOP_ALGS,
    nonce: NonceIssuer | None = None,
    access_token: str | None = None,
    bound_jkt: str | None = None,
) -> ProofCheck:
    """Judge the ``DPoP`` header(s) of a request to ``method url`` (RFC 9449 4.3; at a
    resource, with the ``access_token`` presented and its ``cnf.jkt`` as ``bound_jkt``,
    7.1). ``url`` may name the request's URL in several spellings (the configured issuer's,
    the Host header's): ``htu`` must be one of them. Stops at the first failure that leaves
    nothing to read; never raises."""
    values = [proofs] if isinstance(proofs, str) else list(proofs or [])
    if len(values) != 1:
        got = "none" if not values else f"{len(values)} headers"
        return ProofCheck((_judge("D1", False, got),))
    try:
        jwt = decode_compact(values[0], max_bytes=MAX_PROOF_BYTES)
    except DecodeError as exc:
        return ProofCheck((_judge("D1", False, exc.message),))
    header, claims = jwt.header, jwt.claims
    found = [_judge("D1", True, f"{jwt.size} bytes")]
    found.append(_judge("D2", header.get("typ") == DPOP_TYP, _show(header.get("typ"))))
    alg = header.get("alg")
    alg_ok = isinstance(alg, str) and alg in algs
    found.append(_judge("D3", alg_ok, _show(alg), "alg one of " + ", ".join(algs)))
    key, why = _proof_key(header.get("jwk"))
    found.append(_judge("D4", key is not None, why))
    if key is None or not alg_ok:
        return ProofCheck(tuple(found), header=header, claims=claims)
    valid = alg in key.algs and key.verifies(jwt.signing_input, jwt.signature, str(alg))
    found.append(_judge("D5", valid, "valid" if valid else "invalid"))
    found += _claims(claims, method, url, now, max_age, skew, nonce)
    jkt = key.thumbprint()
    if access_token is not None:
        ath = claims.get("ath")
        found.append(_judge("D11", ath == access_token_hash(access_token), _show(ath)))
    if bound_jkt is not None:
        expected = f"the key the token is bound to ({bound_jkt[:12]}...)"
        found.append(_judge("D12", jkt == bound_jkt, f"{jkt[:12]}...", expected))
    jti, iat = claims.get("jti"), claims.get("iat")
    return ProofCheck(
        tuple(found),
        jkt=jkt,
        jti=jti if isinstance(jti, str) else None,
        iat=float(iat) if isinstance(iat, int | float) and not isinstance(iat, bool) else None,
        header=header,
        claims=claims,
    )


def _proof_key(jwk: Any) -> tuple[Key | None, str]:
    if not isinstance(jwk, dict):
        return None, "(absent)" if jwk is None else "not a JSON object"
    private = _PRIVATE_MEMBERS.intersection(jwk)
    if private:  # never echo the values: they are someone's private key
        return None, f"a private key (members {', '.join(sorted(private))})"
    if jwk.get("kty") not in _PUBLIC_MEMBERS:
        return None, f"kty {_show(jwk.get('kty'))}"
    try:
        return load_key(dict(jwk)), f"{jwk['kty']} public key"
    except (KeyLoadError, ValueError, TypeError):
        return None, "an unreadable or too weak key"


def _claims(
    claims: Mapping[str, Any],
    method: str,
    url: str | Sequence[str],
    now: float,
    max_age: float,
    skew: float,
    nonce: NonceIssuer | None,
) -> list[Finding]:
    wants = [htu_of(u) for u in ([url] if isinstance(url, str) else url)]
    htm, htu, want = claims.get("htm"), claims.get("htu"), wants[0]
    iat, jti = claims.get("iat"), claims.get("jti")
    number = isinstance(iat, int | float) and not isinstance(iat, bool)
    age = now - iat if number else None  # type: ignore[operator]
    out = [
        _judge("D6", htm == method.upper(), _show(htm), f"htm {method.upper()}"),
        _judge("D7", isinstance(htu, str) and htu_of(htu) in wants, _show(htu), f"htu {want}"),
        _judge(
            "D8",
            age is not None and -skew <= age <= max_age,
            "not a number" if age is None else f"{age:+.0f} s old",
            f"iat within {max_age:g} s (skew {skew:g} s)",
        ),
        _judge("D9", isinstance(jti, str) and 0 < len(jti) <= 256, _show(jti)),
    ]
    if nonce is not None:
        given = claims.get("nonce")
        shown = "(absent)" if given is None else "stale or unknown"
        out.append(_judge("D10", nonce.valid(given), shown))
    return out
