"""pkjwt keygen: make a key pair, write the private key 0600 and the public JWKS."""

from __future__ import annotations

import json
import os
from pathlib import Path

import click

from ..errors import ConfigError
from ..keys import DEFAULT_RSA_BITS, MIN_RSA_BITS, RSA_ALGS, generate_key, jwks
from .common import check_writable, echo_json, err, write_private_file, write_public_file


@click.command("keygen")
@click.option("--kid", help="Key id to register (default: the RFC 7638 thumbprint).")
@click.option("--alg", default="RS512", show_default=True, help="Signing algorithm.")
@click.option("--size", type=int, help="RSA modulus bits (default 4096).")
@click.option(
    "--out",
    "out",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="Where to write the private key (PKCS#8 PEM, mode 0600).",
)
@click.option(
    "--jwks",
    "jwks_out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also write the public JWKS here (to upload or host).",
)
@click.option("--password-env", help="Encrypt the key with the password in this env var.")
@click.option("--force", is_flag=True, help="Overwrite existing files.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary.")
def command(
    kid: str | None,
    alg: str,
    size: int | None,
    out: Path,
    jwks_out: Path | None,
    password_env: str | None,
    force: bool,
    as_json: bool,
) -> None:
    """Generate a signing key.

    \b
    Example (the NHS shape: RSA 4096, RS512):
      pkjwt keygen --kid test-1 --out test-1.pem --jwks jwks.json
    """
    password = None
    if password_env:
        password = os.environ.get(password_env)
        if not password:
            raise ConfigError(f"environment variable {password_env} is not set")
    for path in (out, jwks_out):
        if path is not None:
            check_writable(path, force=force)  # both, before anything is written
    if out == jwks_out:
        raise ConfigError("--out and --jwks name the same file")
    if size is not None and alg not in RSA_ALGS:
        raise ConfigError(
            f"--size applies to RSA keys only; {alg} keys have a fixed size",
            hint="leave --size out, or choose an RSA alg (RS512, PS256, ...)",
        )
    if not as_json and alg in RSA_ALGS and (size or DEFAULT_RSA_BITS) >= MIN_RSA_BITS:
        err(f"generating {alg} key ({size or DEFAULT_RSA_BITS} bits)...")  # seconds, at 4096
    key = generate_key(alg, kid=kid, size=size)
    if jwks_out is not None:
        _refuse_dropping_kids(jwks_out, key.kid)
    write_private_file(out, key.private_pem(password), force=force)
    if jwks_out is not None:
        try:
            write_public_file(jwks_out, json.dumps(jwks([key]), indent=2) + "\n", force=force)
        except BaseException:
            out.unlink(missing_ok=True)  # nothing half-written: no key without its JWKS
            raise
    summary = {
        "kid": key.kid,
        "alg": key.alg,
        "kty": key.kty,
        "size": key.size,
        "thumbprint": key.thumbprint(),
        "private_key": str(out),
        "jwks": str(jwks_out) if jwks_out else None,
        "encrypted": bool(password),
    }
    if as_json:
        echo_json(summary)
        return
    click.echo(f"wrote private key {out} (0600){' encrypted' if password else ''}")
    if jwks_out:
        click.echo(f"wrote public JWKS  {jwks_out}")
    click.echo(f"kid {key.kid}  alg {key.alg}  thumbprint {key.thumbprint()}")


def _refuse_dropping_kids(path: Path, kid: str) -> None:
    """``--force`` over a JWKS that publishes other kids would unpublish them: a key still in
    use (mid-rotation) would stop working. Say how to publish both instead."""
    try:
        published = json.loads(path.read_text("utf-8")).get("keys", [])
    except (OSError, ValueError, AttributeError):
        return  # absent or not a JWKS: nothing published to lose
    others = sorted(
        str(k.get("kid")) for k in published if isinstance(k, dict) and k.get("kid") != kid
    )
    if others:
        raise ConfigError(
            f"{path} publishes kid(s) {', '.join(others)}; replacing it would unpublish them",
            hint=f"write the new JWKS elsewhere, then publish both: pkjwt jwks OLD.pem "
            f"NEW.pem --kid {others[0]} --kid {kid} --out {path} --force",
        )
