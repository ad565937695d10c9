"""Cost of one NHS client assertion with an RSA-4096 key, side by side with the alternatives.

Candidates (all sign RS512 with the same RSA-4096 key, timed interleaved in one run):

* ``raw-cryptography``: ``key.sign(signing_input, PKCS1v15(), SHA512())`` on an already parsed
  key, over the bytes of a real pkjwt signing input: the physical limit.
* ``pkjwt-factory``: ``AssertionFactory(key, ..., profile="nhs")`` built once, ``.make()`` per
  call (key loaded once with ``pkjwt.load_key``).
* ``pkjwt-make_assertion``: ``pkjwt.make_assertion(key, ...)`` per call (a factory per call,
  key already parsed).
* ``pyjwt-pem``: what NHS England's own examples do: ``jwt.encode(claims, pem_text, "RS512",
  headers={"kid": KID})`` with fresh claims each call; PyJWT re-parses the PEM every time.
* ``authlib-PrivateKeyJWT``: Authlib's documented ``private_key_jwt`` client auth
  (``PrivateKeyJWT(token_endpoint).sign(auth, token_endpoint)``, with the PEM text as the
  client secret, as ``OAuth2Session(client_id, private_key_pem, ...)`` holds it); it calls
  ``RSAKey.import_key(pem)`` every time.
* ``authlib.jose-pem``: the older ``authlib.jose.jwt.encode(header, claims, pem_text)`` (the
  module is deprecated in Authlib 1.7+ but still common in client code); re-parses the PEM.
* ``pyjwt-parsed-key``: reference only: PyJWT given a parsed key object, to show that the
  competitors' cost is the PEM parse (RSA key validation), not the JOSE layer.

Every candidate's output is checked once with PyJWT and the public key before timing.
"""

from __future__ import annotations

import time
import uuid
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import jwt as pyjwt
from cryptography.hazmat.backends.openssl import backend as openssl_backend
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

import pkjwt
from pkjwt.decode import b64url

from .common import (
    Candidate,
    environment,
    format_table,
    measure,
    print_verified,
    print_versions,
    standalone_main,
    versions,
)

NAME = "assertion"
KEY_BITS = 4096
KID = "test-1"
CLIENT_ID = "bench-api-key-0123456789abcdef"
TOKEN_URL = "https://int.api.service.nhs.uk/oauth2/token"
TARGET = 1.10
BASELINE = "raw-cryptography"
PKJWT = "pkjwt-factory"

# (rounds, calls per round for ~1.5 ms candidates, for ~250 ms candidates, warmup of fast ones)
FULL = (15, 20, 1, 30)
QUICK = (5, 10, 1, 10)


def _fresh_claims() -> dict[str, Any]:
    """Claims as the NHS examples build them: fresh jti, exp five minutes ahead."""
    return {
        "iss": CLIENT_ID,
        "sub": CLIENT_ID,
        "aud": TOKEN_URL,
        "jti": str(uuid.uuid4()),
        "exp": int(time.time()) + 300,
    }


class Setup:
    """The key (generated once) and every candidate's callable."""

    def __init__(self) -> None:
        native = rsa.generate_private_key(public_exponent=65537, key_size=KEY_BITS)
        pem_bytes = native.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        #: what the competitors get, as in their docs (``open(path).read()``)
        self.pem_text = pem_bytes.decode("ascii")
        #: parsed once, exactly as pkjwt.load_key parses it
        parsed = serialization.load_pem_private_key(pem_bytes, password=None)
        assert isinstance(parsed, rsa.RSAPrivateKey)
        self.raw_key: rsa.RSAPrivateKey = parsed
        self.public_key = parsed.public_key()

        self.key = pkjwt.load_key(self.pem_text, kid=KID)
        self.factory = pkjwt.AssertionFactory(
            self.key, client_id=CLIENT_ID, token_url=TOKEN_URL, profile="nhs"
        )
        # the same bytes pkjwt signs (header.payload of a real assertion)
        self.signing_input = self.factory.make().rsplit(".", 1)[0].encode("ascii")

        from authlib.oauth2.auth import ClientAuth
        from authlib.oauth2.rfc7523 import PrivateKeyJWT

        self.authlib_method = PrivateKeyJWT(
            TOKEN_URL, headers={"kid": KID, "typ": "JWT"}, alg="RS512"
        )
        self.authlib_auth = ClientAuth(CLIENT_ID, self.pem_text, auth_method=self.authlib_method)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # AuthlibDeprecationWarning: use joserfc
            from authlib.jose import jwt as authlib_jose_jwt
        self.authlib_jose_jwt: Any = authlib_jose_jwt

    # -- candidates (each returns what it produced, for the one-off verification) --------------
    def raw_cryptography(self) -> bytes:
        return self.raw_key.sign(self.signing_input, padding.PKCS1v15(), hashes.SHA512())

    def pkjwt_factory(self) -> str:
        return self.factory.make()

    def pkjwt_make_assertion(self) -> str:
        return pkjwt.make_assertion(self.key, client_id=CLIENT_ID, token_url=TOKEN_URL)

    def pyjwt_pem(self) -> str:
        return pyjwt.encode(_fresh_claims(), self.pem_text, algorithm="RS512", headers={"kid": KID})

    def pyjwt_parsed_key(self) -> str:
        return pyjwt.encode(_fresh_claims(), self.raw_key, algorithm="RS512", headers={"kid": KID})

    def authlib_private_key_jwt(self) -> str:
        token: str = self.authlib_method.sign(self.authlib_auth, TOKEN_URL)
        return token

    def authlib_jose_pem(self) -> str:
        header = {"alg": "RS512", "kid": KID, "typ": "JWT"}
        token: bytes = self.authlib_jose_jwt.encode(header, _fresh_claims(), self.pem_text)
        return token.decode("ascii")

    def candidates(self, fast: int, slow: int, warmup: int) -> list[Candidate]:
        return [
            Candidate(
                BASELINE,
                self.raw_cryptography,
                fast,
                warmup,
                "key.sign(signing input, PKCS1v15, SHA512), key parsed once: the physical limit",
            ),
            Candidate(
                PKJWT,
                self.pkjwt_factory,
                fast,
                warmup,
                "AssertionFactory(load_key(pem), profile='nhs') once; .make() per call",
            ),
            Candidate(
                "pkjwt-make_assertion",
                self.pkjwt_make_assertion,
                fast,
                warmup,
                "pkjwt.make_assertion(Key, ...) per call (factory per call, key parsed once)",
            ),
            Candidate(
                "pyjwt-pem",
                self.pyjwt_pem,
                slow,
                1,
                "jwt.encode(claims, pem_text, 'RS512', headers={'kid'}) as NHS examples: "
                "parses PEM per call",
            ),
            Candidate(
                "authlib-PrivateKeyJWT",
                self.authlib_private_key_jwt,
                slow,
                1,
                "PrivateKeyJWT(token_url, alg='RS512').sign(ClientAuth(id, pem_text)): "
                "parses PEM per call",
            ),
            Candidate(
                "authlib.jose-pem",
                self.authlib_jose_pem,
                slow,
                1,
                "authlib.jose.jwt.encode(header, claims, pem_text) (deprecated API): "
                "parses PEM per call",
            ),
            Candidate(
                "pyjwt-parsed-key",
                self.pyjwt_parsed_key,
                fast,
                warmup,
                "reference only: jwt.encode(claims, parsed_key, 'RS512'), no PEM parse",
            ),
        ]

    # -- verification ------------------------------------------------------------------------
    def verify(self, name: str, fn: Callable[[], object]) -> str:
        """Produce one output with ``fn`` and check it is a valid RS512 client assertion."""
        out = fn()
        if name == BASELINE:
            assert isinstance(out, bytes)
            token = f"{self.signing_input.decode('ascii')}.{b64url(out)}"
        else:
            assert isinstance(out, str), f"{name} returned {type(out).__name__}"
            token = out
        header = pyjwt.get_unverified_header(token)
        claims = pyjwt.decode(
            token,
            self.public_key,
            algorithms=["RS512"],
            audience=TOKEN_URL,
            issuer=CLIENT_ID,
            options={"require": ["iss", "sub", "aud", "jti", "exp"]},
        )
        problems = []
        if header.get("alg") != "RS512":
            problems.append(f"alg={header.get('alg')}")
        if header.get("kid") != KID:
            problems.append(f"kid={header.get('kid')!r}")
        if header.get("typ") != "JWT":
            problems.append(f"typ={header.get('typ')!r}")
        if claims.get("sub") != CLIENT_ID:
            problems.append("sub != client_id")
        if problems:
            raise AssertionError(f"{name}: invalid assertion: {', '.join(problems)}")
        ttl = int(claims["exp"]) - int(time.time())
        return f"ok (alg=RS512 kid={KID} typ=JWT, exp in {ttl} s)"


def run(quick: bool = False) -> dict[str, Any]:
    """Run the benchmark, print its table, return a JSON-serialisable result."""
    rounds, fast, slow, warmup = QUICK if quick else FULL
    found = {
        "openssl": openssl_backend.openssl_version_text(),
        **versions("pkjwt", "cryptography", "joserfc", "pyjwt", "authlib"),
    }
    print(
        f"== {NAME}: one NHS client assertion, RSA-{KEY_BITS}, RS512 "
        f"({'quick' if quick else 'full'} mode, {rounds} interleaved rounds)"
    )
    print_versions(found)
    t0 = time.perf_counter()
    setup = Setup()
    print(f"   key generated and loaded in {time.perf_counter() - t0:.1f} s")

    candidates = setup.candidates(fast, slow, warmup)
    verification = {c.name: setup.verify(c.name, c.fn) for c in candidates}
    print_verified(verification)
    print()

    t0 = time.perf_counter()
    stats = measure(candidates, rounds)
    elapsed = time.perf_counter() - t0

    print(format_table(stats, BASELINE, title="per-call time (median/p10/p90 over all rounds)"))
    print()
    base, mine = stats[BASELINE], stats[PKJWT]
    ratio = mine.median_ns / base.median_ns
    print(f"pkjwt / raw signature = {ratio:.2f}x (target <= {TARGET:.2f}x)")
    overhead_us = (mine.median_ns - base.median_ns) / 1e3
    print(
        f"   pkjwt overhead over the bare signature: {overhead_us:+.1f} us per assertion "
        f"(median {mine.median_ns / 1e6:.3f} ms vs {base.median_ns / 1e6:.3f} ms)"
    )
    for other in ("pyjwt-pem", "authlib-PrivateKeyJWT", "authlib.jose-pem"):
        print(f"   {other} / pkjwt = {stats[other].median_ns / mine.median_ns:.0f}x")
    print(f"   timed section took {elapsed:.1f} s")
    print()

    return {
        "benchmark": NAME,
        "mode": "quick" if quick else "full",
        "params": {
            "key": f"RSA-{KEY_BITS}",
            "alg": "RS512",
            "profile": "nhs",
            "rounds": rounds,
            "calls_per_round_fast": fast,
            "calls_per_round_slow": slow,
            "warmup_fast": warmup,
        },
        "environment": environment(found),
        "baseline": BASELINE,
        "target_ratio": TARGET,
        "pkjwt_vs_raw": ratio,
        "pkjwt_overhead_us": overhead_us,
        "meets_target": ratio <= TARGET,
        "verification": verification,
        "candidates": [st.as_dict(base) for st in stats.values()],
    }


def main(argv: Sequence[str] | None = None) -> int:
    return standalone_main(
        "python -m benchmarks.bench_assertion",
        __doc__,
        NAME,
        run,
        argv,
        "fewer iterations (smoke run)",
    )


if __name__ == "__main__":
    raise SystemExit(main())
