"""A real SoftHSM2 token in a temporary folder, for the PKCS#11 tests and benchmark.

Everything goes through the tools an operator would use: ``softhsm2-util`` makes the tokens,
``pkcs11-tool`` (OpenSC) generates key pairs on them, imports keys and exports public keys.
None of it goes through pkjwt, so what pkjwt reads back is checked against an independent
source. SoftHSM2 reads ``SOFTHSM2_CONF`` when the module is first loaded in a process: set it
(:meth:`SoftHsm.environ`) before any signer is made.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

#: where Debian and Ubuntu put the module (softhsm2 package)
MODULE_CANDIDATES = (
    "/usr/lib/softhsm/libsofthsm2.so",
    "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
    "/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so",
    "/usr/local/lib/softhsm/libsofthsm2.so",
    "/usr/lib64/pkcs11/libsofthsm2.so",
)
TOOLS = ("softhsm2-util", "pkcs11-tool")
SO_PIN = "5791-so"
USER_PIN = "2468-user-pin"


def find_module() -> str | None:
    """The SoftHSM2 PKCS#11 module on this machine, if it is installed."""
    return next((m for m in MODULE_CANDIDATES if Path(m).is_file()), None)


def missing() -> str | None:
    """Why SoftHSM2 cannot be used here (None when it can)."""
    absent = [t for t in TOOLS if shutil.which(t) is None]
    if absent:
        return f"{', '.join(absent)} not installed (apt-get install softhsm2 opensc)"
    if find_module() is None:
        return "libsofthsm2.so not found (apt-get install softhsm2)"
    return None


@dataclass
class SoftHsm:
    """Tokens in ``root``; ``module`` is the PKCS#11 library to name in URIs."""

    root: Path
    module: str = field(default_factory=lambda: find_module() or "")

    def __post_init__(self) -> None:
        (self.root / "tokens").mkdir(parents=True, exist_ok=True)
        self.conf = self.root / "softhsm2.conf"
        self.conf.write_text(
            f"directories.tokendir = {self.root / 'tokens'}\n"
            "objectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n"
        )
        self.pin_file = self.root / "user.pin"
        self.pin_file.write_text(USER_PIN + "\n")
        self.pin_file.chmod(0o600)

    def environ(self) -> dict[str, str]:
        """What a process (this one or a child) needs to see these tokens."""
        return {"SOFTHSM2_CONF": str(self.conf)}

    def _run(self, *args: str) -> str:
        done = subprocess.run(
            args, capture_output=True, text=True, timeout=120, env={**os.environ, **self.environ()}
        )
        if done.returncode != 0:
            raise RuntimeError(f"{args[0]} failed ({done.returncode}): {done.stderr.strip()}")
        return done.stdout

    def init_token(self, label: str, pin: str = USER_PIN) -> None:
        self._run(
            "softhsm2-util", "--init-token", "--free", "--label", label,
            "--so-pin", SO_PIN, "--pin", pin,
        )  # fmt: skip

    def _tool(self, token: str, *args: str) -> str:
        return self._run(
            "pkcs11-tool", "--module", self.module, "--token-label", token,
            "--login", "--pin", USER_PIN, *args,
        )  # fmt: skip

    def generate(self, token: str, key_type: str, label: str, key_id: str) -> None:
        """A key pair made on the token (``rsa:2048``, ``EC:prime256v1``): never outside it."""
        self._tool(
            token, "--keypairgen", "--key-type", key_type, "--label", label, "--id", key_id,
            "--usage-sign",
        )  # fmt: skip

    def generate_unusable(self, token: str, label: str, key_id: str) -> None:
        """An EC P-256 key pair whose private key may not sign (CKA_SIGN false): pkcs11-tool
        always sets it, so python-pkcs11 makes this one, in a process of its own (this one
        must not load SoftHSM2 before the tokens are all made)."""
        script = (
            "import sys, pkcs11\n"
            "from pkcs11 import Attribute, KeyType\n"
            "module, token, pin, label, key_id = sys.argv[1:]\n"
            "token = pkcs11.lib(module).get_token(token_label=token)\n"
            "with token.open(rw=True, user_pin=pin) as s:\n"
            "    p256 = {Attribute.EC_PARAMS: bytes.fromhex('06082a8648ce3d030107')}\n"
            "    params = s.create_domain_parameters(KeyType.EC, p256, local=True)\n"
            "    params.generate_keypair(store=True, label=label, id=bytes.fromhex(key_id),\n"
            "                            private_template={Attribute.SIGN: False})\n"
        )
        self._run(sys.executable, "-c", script, self.module, token, USER_PIN, label, key_id)

    def import_private(
        self, token: str, native: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey, label: str,
        key_id: str,
    ) -> None:  # fmt: skip
        """A private key written to the token alone (no public key object beside it)."""
        der = native.private_bytes(
            serialization.Encoding.DER,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
        path = self.root / f"import-{key_id}.der"
        path.write_bytes(der)
        try:
            self._tool(
                token, "--write-object", str(path), "--type", "privkey", "--label", label,
                "--id", key_id, "--usage-sign",
            )  # fmt: skip
        finally:
            path.unlink()

    def export_public(self, token: str, key_id: str) -> bytes:
        """The public key object's DER SubjectPublicKeyInfo, as pkcs11-tool reads it."""
        path = self.root / f"pub-{key_id}.der"
        self._tool(
            token, "--read-object", "--type", "pubkey", "--id", key_id, "--output-file", str(path)
        )
        return path.read_bytes()

    def uri(self, token: str, obj: str, *, pin: str = "source", **extra: str) -> str:
        """A pkcs11: URI for ``obj`` on ``token``; ``pin`` is ``source`` (the PIN file),
        ``none``, or a PIN value to put in the URI."""
        query = [f"module-path={self.module}"]
        if pin == "source":
            query.append(f"pin-source=file:{self.pin_file}")
        elif pin != "none":
            query.append(f"pin-value={pin}")
        query.extend(f"{k}={v}" for k, v in extra.items())
        return f"pkcs11:token={token};object={obj}?" + "&".join(query)
