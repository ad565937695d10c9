"""Private folders and files: what pkjwt keeps on disk for one user (the replay store's jtis,
cached tokens) lives in a folder only that user can change, in files only that user can read.

A shared folder (``/tmp``) is the classic trap: another user creates ``/tmp/pkjwt`` first, mode
0777, and then reads, swaps or pre-fills what lands there. So a folder that exists must already
belong to us and be writable by nobody else; otherwise it is refused, never "fixed".
"""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path

from .errors import ConfigError

__all__ = ["default_state_dir", "private_dir", "private_file", "write_atomic"]


def default_state_dir() -> Path:
    """Where pkjwt keeps state that must outlive a restart: ``$PKJWT_STATE_DIR``, else the
    user's state folder (``~/.local/state/pkjwt`` on Linux), never a shared temp folder."""
    env = os.environ.get("PKJWT_STATE_DIR")
    if env:
        return Path(env)
    import platformdirs

    return Path(platformdirs.user_state_dir("pkjwt"))


def private_dir(path: Path) -> Path:
    """``path``, created 0700 if absent; refused if it exists and another user owns it or
    others may write to it."""
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        st = path.lstat()
    except OSError as exc:
        raise ConfigError(f"cannot use folder {path}: {exc.strerror}") from None
    if not stat.S_ISDIR(st.st_mode):
        raise ConfigError(f"{path} is not a folder")
    if hasattr(os, "geteuid") and st.st_uid != os.geteuid():
        raise ConfigError(
            f"{path} belongs to another user (uid {st.st_uid}); refusing to keep state there",
            hint="set PKJWT_STATE_DIR to a folder of your own, or remove that folder",
        )
    if st.st_mode & 0o022:
        raise ConfigError(
            f"{path} is writable by others (mode {stat.S_IMODE(st.st_mode):04o}); refusing to "
            "keep state there",
            hint=f"chmod 700 {path}, or set PKJWT_STATE_DIR to a private folder",
        )
    return path


def private_file(path: Path) -> Path:
    """``path``, created empty with mode 0600 if absent (SQLite gives its -wal and -shm files
    the mode of the database file, so creating that one right covers them)."""
    try:
        fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o600)
    except OSError as exc:
        raise ConfigError(f"cannot create {path}: {exc.strerror}") from None
    os.close(fd)
    return path


def write_atomic(path: Path, data: bytes, *, mode: int) -> None:
    """Write ``path`` whole or not at all: a temporary file beside it, made ``mode`` before
    the first byte (a private key is never readable by others, even half-written), synced,
    then renamed over it."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        raise ConfigError(f"cannot write {path}: {exc.strerror}") from None
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise ConfigError(f"cannot write {path}: {exc.strerror}") from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
