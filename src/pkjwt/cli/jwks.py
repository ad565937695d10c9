"""pkjwt jwks: print the public JWKS for one or more keys."""

from __future__ import annotations

import json
from pathlib import Path

import click

from ..keys import Key, jwks
from ..signers import RemoteSigner
from .common import load_cli_key, write_public_file


@click.command("jwks")
@click.argument("keyfiles", nargs=-1, required=True)
@click.option(
    "--kid", "kids", multiple=True, help="Kid for each key, in order (default: thumbprint)."
)
@click.option("--alg", "algs", multiple=True, help="Pin alg for each key, in order.")
@click.option("--password-env", help="Env var holding the password of encrypted keys.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), help="Write to a file.")
@click.option("--force", is_flag=True, help="Overwrite --out.")
def command(
    keyfiles: tuple[str, ...],
    kids: tuple[str, ...],
    algs: tuple[str, ...],
    password_env: str | None,
    out: Path | None,
    force: bool,
) -> None:
    """Print the public JWKS (never a private member) for KEYFILE... (paths or env:VAR).

    \b
    Example (two keys during a rotation):
      pkjwt jwks old.pem new.pem --kid int-1 --kid int-2 > jwks.json
    """
    for name, values in (("--kid", kids), ("--alg", algs)):
        # positional pairing: a count that does not match would silently mis-pair or default
        if values and len(values) != len(keyfiles):
            raise click.UsageError(
                f"{len(keyfiles)} key file(s) but {len(values)} {name} value(s): give one "
                f"{name} per key file, in order, or none"
            )
    loaded = [
        load_cli_key(
            spec,
            kid=kids[i] if i < len(kids) else None,
            alg=algs[i] if i < len(algs) else None,
            password_env=password_env,
        )
        for i, spec in enumerate(keyfiles)
    ]
    # a key in an HSM/KMS: its public half (kid: the thumbprint unless --kid), its alg pinned
    # only when --alg says which: an RSA key's default (RS256) would pin the wrong one for a
    # server that wants RS512 or PS256, so it is left open, as for a local RSA key
    keys = [
        _published(k, pinned=i < len(algs)) if isinstance(k, RemoteSigner) else k
        for i, k in enumerate(loaded)
    ]
    # pin the alg wherever the key type allows only one (EC: its curve's), as keygen does
    keys = [k.with_alg(k.alg) if len(k.algs) == 1 and not k.alg_pinned else k for k in keys]
    unpinned = [k.kid for k in keys if k.kty == "RSA" and not k.alg_pinned]
    if unpinned:
        click.echo(
            f"note: RSA key(s) {', '.join(unpinned)} published without alg (any RSA alg "
            "verifies); pass --alg RS512 (or the alg you sign with) to pin it, as keygen does",
            err=True,
        )
    text = json.dumps(jwks(keys), indent=2) + "\n"
    if out:
        write_public_file(out, text, force=force)
        click.echo(f"wrote {out} ({len(keys)} key{'s' if len(keys) > 1 else ''})", err=True)
    else:
        click.echo(text, nl=False)


def _published(signer: RemoteSigner, *, pinned: bool) -> Key:
    if pinned:
        return signer.public_key()
    public = signer.public
    return Key(public.jose, signer.kid, signer.alg, signer.algs, False)
