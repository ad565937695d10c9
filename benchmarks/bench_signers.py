"""Cost of one client assertion when the key stays in an HSM (PKCS#11, SoftHSM2), side by side
with the same algorithm on a local key.

Three groups, each timed interleaved in one run: RSA-2048 RS512 and RSA-4096 RS512 (the NHS
profile) and EC P-256 ES256 (rfc7523bis). In each:

* ``raw-cryptography``: ``key.sign(signing_input, ...)`` on a parsed local key of the same
  type and size: the physical limit without an HSM.
* ``pkjwt-local``: ``AssertionFactory(local Key).make()``.
* ``raw-pkcs11``: python-pkcs11's ``PrivateKey.sign(signing_input, mechanism=...)`` on an
  open, logged-in session (for ES256 over the SHA-256 digest, CKM_ECDSA): the HSM's floor.
* ``pkjwt-pkcs11``: ``AssertionFactory(Pkcs11Signer).make()`` on the same token key (the
  signer's lock, its session handling, the JWS around it).

The ratios printed: pkjwt-pkcs11 over pkjwt-local (what keeping the key in SoftHSM2 costs)
and over raw-pkcs11 (what pkjwt adds to the HSM call). SoftHSM2 signs in software, in this
process: a network HSM adds its round trip on top. Skipped, saying why, when SoftHSM2 or
OpenSC's pkcs11-tool is not installed. Informational: never gates CI.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import jwt as pyjwt
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

import pkjwt
from pkjwt.decode import b64url
from pkjwt.signers import der_to_jose, open_signer

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

NAME = "signers"
CLIENT_ID = "bench-hsm-client"
TOKEN_URL = "https://int.api.service.nhs.uk/oauth2/token"
ISSUER = "https://as.example"
TOKEN = "pkjwt-bench"
BASELINE = "raw-cryptography"

#: (label, pkcs11-tool key type, JWS alg, profile)
GROUPS = (
    ("rsa2048", "rsa:2048", "RS512", "nhs"),
    ("rsa4096", "rsa:4096", "RS512", "nhs"),
    ("p256", "EC:prime256v1", "ES256", "rfc7523bis"),
)
# (rounds, calls per round)
FULL = (15, 20)
QUICK = (5, 8)


def unavailable() -> str | None:
    """Why this benchmark cannot run here (None when it can)."""
    try:
        import pkcs11  # noqa: F401
    except ImportError:
        return "python-pkcs11 not installed (pip install 'pkjwt[pkcs11]')"
    from tests.softhsm import missing

    return missing()


class Group:
    """One key type: a token key, a local key of the same kind, and the four candidates."""

    def __init__(self, hsm: Any, label: str, key_type: str, alg: str, profile: str) -> None:
        self.label, self.alg, self.profile = label, alg, profile
        key_id = f"{GROUPS.index((label, key_type, alg, profile)) + 1:02d}"
        t0 = time.perf_counter()
        hsm.generate(TOKEN, key_type, label, key_id)
        self.keygen_s = time.perf_counter() - t0
        self.signer = open_signer(hsm.uri(TOKEN, label), alg=alg)
        self.hsm_public = self.signer.public.jose.public_key
        if alg.startswith("ES"):
            self.native: Any = ec.generate_private_key(ec.SECP256R1())
        else:
            self.native = rsa.generate_private_key(65537, int(key_type.split(":")[1]))
        self.local = pkjwt.load_key(self.native, kid="local-1", alg=alg)
        where = {"token_url": TOKEN_URL} if profile == "nhs" else {"issuer": ISSUER}
        self.audience = TOKEN_URL if profile == "nhs" else ISSUER
        self.local_factory = pkjwt.AssertionFactory(
            self.local, client_id=CLIENT_ID, profile=profile, **where
        )
        self.hsm_factory = pkjwt.AssertionFactory(
            self.signer, client_id=CLIENT_ID, profile=profile, **where
        )
        self.signing_input = self.local_factory.make().rsplit(".", 1)[0].encode("ascii")
        self._raw_pkcs11 = self._open_raw(hsm, label)

    def _open_raw(self, hsm: Any, label: str) -> Callable[[], bytes]:
        """python-pkcs11 on its own session (PKCS#11 shares the login this process has)."""
        import pkcs11

        from pkjwt.signers.pkcs11_session import load_module

        session = load_module(hsm.module).get_token(token_label=TOKEN).open()
        key = session.get_key(pkcs11.ObjectClass.PRIVATE_KEY, label=label)
        data = self.signing_input
        if self.alg.startswith("ES"):
            return lambda: key.sign(hashlib.sha256(data).digest(), mechanism=pkcs11.Mechanism.ECDSA)
        return lambda: key.sign(data, mechanism=pkcs11.Mechanism.SHA512_RSA_PKCS)

    def raw_cryptography(self) -> bytes:
        if self.alg.startswith("ES"):
            return self.native.sign(self.signing_input, ec.ECDSA(hashes.SHA256()))
        return self.native.sign(self.signing_input, padding.PKCS1v15(), hashes.SHA512())

    def candidates(self, calls: int) -> list[Candidate]:
        what = f"{self.label} {self.alg}"
        return [
            Candidate(BASELINE, self.raw_cryptography, calls, 3, f"{what}: key.sign, local key"),
            Candidate("pkjwt-local", self.local_factory.make, calls, 3, "AssertionFactory(Key)"),
            Candidate("raw-pkcs11", self._raw_pkcs11, calls, 3, "python-pkcs11 key.sign"),
            Candidate(
                "pkjwt-pkcs11", self.hsm_factory.make, calls, 3, "AssertionFactory(Pkcs11Signer)"
            ),
        ]

    def verify(self, name: str, fn: Callable[[], object]) -> str:
        """One output of ``fn`` checked with PyJWT (signatures rebuilt into a JWS)."""
        out = fn()
        if isinstance(out, bytes) and name == BASELINE:
            out = der_to_jose(self.alg, out)  # cryptography's ECDSA answers DER
        token = out if isinstance(out, str) else f"{self.signing_input.decode()}.{b64url(out)}"
        public = self.hsm_public if name.endswith("pkcs11") else self.native.public_key()
        pyjwt.decode(token, public, algorithms=[self.alg], audience=self.audience)
        return f"ok ({self.label}, {self.alg})"


def _ratios(group: Group, stats: dict[str, Any]) -> dict[str, float]:
    med = {name: st.median_ns for name, st in stats.items()}
    out = {
        "pkcs11_vs_local": med["pkjwt-pkcs11"] / med["pkjwt-local"],
        "pkcs11_vs_raw_pkcs11": med["pkjwt-pkcs11"] / med["raw-pkcs11"],
        "local_vs_raw": med["pkjwt-local"] / med[BASELINE],
    }
    print(
        f"   {group.label} {group.alg}: "
        f"pkjwt-pkcs11 / pkjwt-local = {out['pkcs11_vs_local']:.2f}x, "
        f"pkjwt-pkcs11 / raw-pkcs11 = {out['pkcs11_vs_raw_pkcs11']:.2f}x "
        f"(+{(med['pkjwt-pkcs11'] - med['raw-pkcs11']) / 1e3:.0f} us), "
        f"pkjwt-local / raw-cryptography = {out['local_vs_raw']:.2f}x"
    )
    return out


def run(quick: bool = False) -> dict[str, Any]:
    """Run the benchmark (or say why it cannot), print its tables, return the results."""
    rounds, calls = QUICK if quick else FULL
    mode = "quick" if quick else "full"
    print(
        f"== {NAME}: one client assertion, key in SoftHSM2 vs local "
        f"({mode} mode, {rounds} interleaved rounds)"
    )
    why = unavailable()
    if why is not None:
        print(f"   skipped: {why}")
        print()
        return {"benchmark": NAME, "mode": mode, "skipped": why}
    found = versions("pkjwt", "cryptography", "python-pkcs11", "pyjwt")
    print_versions(found)
    from tests.softhsm import SoftHsm

    with tempfile.TemporaryDirectory(prefix="pkjwt-bench-hsm-") as tmp:
        hsm = SoftHsm(Path(tmp))
        os.environ.update(hsm.environ())  # before SoftHSM2 is loaded in this process
        hsm.init_token(TOKEN)
        groups = [Group(hsm, *spec) for spec in GROUPS]
        print("   keys generated on the token in " + ", ".join(
            f"{g.label} {g.keygen_s:.1f} s" for g in groups
        ))  # fmt: skip
        results: dict[str, Any] = {}
        for group in groups:
            candidates = group.candidates(calls)
            print_verified({c.name: group.verify(c.name, c.fn) for c in candidates})
            stats = measure(candidates, rounds)
            print(format_table(stats, BASELINE, title=f"{group.label} {group.alg} per call"))
            print()
            results[group.label] = {
                "alg": group.alg,
                "profile": group.profile,
                "ratios": _ratios(group, stats),
                "candidates": [st.as_dict(stats[BASELINE]) for st in stats.values()],
            }
            print()
    return {
        "benchmark": NAME,
        "mode": mode,
        "params": {"rounds": rounds, "calls_per_round": calls},
        "environment": environment(found),
        "baseline": BASELINE,
        "groups": results,
    }


def main(argv: Sequence[str] | None = None) -> int:
    return standalone_main("python -m benchmarks.bench_signers", __doc__, NAME, run, argv)


if __name__ == "__main__":
    raise SystemExit(main())
