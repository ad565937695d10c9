"""Attack: another local user prepares the folder where the server keeps its replay memory
(a world-writable /tmp/pkjwt, or one they own) to read, swap or pre-fill the jti log. The
default folder is per-user; a folder that is not ours alone is refused; files are 0600
(issue 10, item 7)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from pkjwt._private import default_state_dir
from pkjwt.errors import ConfigError
from pkjwt.server.replay import open_replay_store


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_world_writable_folder_is_refused(tmp_path: Path) -> None:
    shared = tmp_path / "pkjwt"
    shared.mkdir()
    shared.chmod(0o777)
    with pytest.raises(ConfigError) as err:
        open_replay_store("sqlite:///", default_dir=shared)
    assert "writable by others" in err.value.message
    assert list(shared.iterdir()) == []  # nothing was written there


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to give a folder to another user")
def test_a_folder_owned_by_another_user_is_refused(tmp_path: Path) -> None:
    theirs = tmp_path / "pkjwt"
    theirs.mkdir(mode=0o700)
    os.chown(theirs, 65534, 65534)
    with pytest.raises(ConfigError) as err:
        open_replay_store("sqlite:///", default_dir=theirs)
    assert "belongs to another user" in err.value.message


def test_the_default_folder_is_private_and_the_files_0600(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PKJWT_STATE_DIR", str(tmp_path / "state"))
    old = os.umask(0o022)  # a permissive umask must not leak into the files
    try:
        store = open_replay_store("sqlite:///")
        store.add("c", "j", 10**10)
        store.close()
    finally:
        os.umask(old)
    folder = default_state_dir()
    assert folder == tmp_path / "state"
    assert _mode(folder) == 0o700
    files = sorted(folder.iterdir())
    assert files, "the store wrote nothing"
    for path in files:
        assert _mode(path) == 0o600, (path, oct(_mode(path)))


def test_the_default_is_not_a_shared_temp_folder(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PKJWT_STATE_DIR", raising=False)
    import tempfile

    assert not str(default_state_dir()).startswith(tempfile.gettempdir())
