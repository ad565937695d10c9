"""The CLI's DPoP key: kept on disk so that a DPoP-bound token cached by one run is still
usable by the next.

A process's ephemeral key dies with it, and with it every token bound to it: a cached DPoP
token would then be useless to the next ``pkjwt token`` or ``pkjwt call``. So while the token
cache is in use the CLI keeps one ES256 key per token endpoint and client id, in a private
folder of the state dir (``$PKJWT_STATE_DIR/dpop/``, 0700; the key file 0600, created whole
or not at all, never overwritten: concurrent first runs agree on one key). The cache key holds
the key's thumbprint, so a token is only ever reused with the key it is bound to. With
``--no-cache`` the key is ephemeral and nothing is written.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from pathlib import Path

from .._private import default_state_dir, private_dir
from ..config import ClientSettings
from ..dpop import DPoPKey
from ..errors import ConfigError
from ..keys import generate_key, load_key

__all__ = ["cli_dpop", "dpop_key_path"]


def cli_dpop(settings: ClientSettings, *, persist: bool) -> DPoPKey | bool:
    """The ``dpop=`` for a CLI client: off, an ephemeral key, or the kept one."""
    if not settings.dpop:
        return False
    if not persist:
        return True
    return DPoPKey(load_key(_load_or_create(dpop_key_path(settings))))


def dpop_key_path(settings: ClientSettings) -> Path:
    """Where the key for this endpoint and client lives (named by a digest of both)."""
    where = settings.token_url or settings.issuer or ""
    digest = hashlib.sha256(f"{where}\n{settings.client_id or ''}".encode()).hexdigest()[:16]
    return private_dir(default_state_dir() / "dpop") / f"{digest}.pem"


def _load_or_create(path: Path) -> Path:
    if path.is_file():
        return path
    pem = generate_key("ES256").private_pem()
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".dpop-", suffix=".tmp")
    try:
        os.fchmod(fd, 0o600)  # before the first byte: a private key is never readable by others
        with os.fdopen(fd, "wb") as fh:
            fh.write(pem)
            fh.flush()
            os.fsync(fh.fileno())
        # link, not rename: a key another run made first is kept (its tokens are bound to it)
        with contextlib.suppress(FileExistsError):
            os.link(tmp, path)
    except OSError as exc:
        raise ConfigError(f"cannot keep the DPoP key in {path.parent}: {exc.strerror}") from None
    finally:
        Path(tmp).unlink(missing_ok=True)
    return path
