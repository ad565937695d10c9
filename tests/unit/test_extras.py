"""Optional extras: a client-only install works and stays small, and a feature whose extra is
missing says which pip command installs it.

Each case runs in a fresh interpreter in which the extra's packages cannot be imported (an
import hook raises ``ModuleNotFoundError`` for them, as a missing package would)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

SERVER_PACKAGES = ("starlette", "uvicorn", "httptools", "uvloop")

_BLOCK = """
import sys

class _Missing:
    def __init__(self, names):
        self.names = names

    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in self.names:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, _Missing(set(sys.argv[1].split(","))))
del sys.argv[1]
"""


def _run(
    code: str, blocked: tuple[str, ...], *args: str, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    program = _BLOCK + textwrap.dedent(code)
    return subprocess.run(
        [sys.executable, "-c", program, ",".join(blocked) or "-", *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_the_client_never_loads_the_server_stack() -> None:
    done = _run(
        """
        import json, sys
        import pkjwt, pkjwt.pytest_plugin, pkjwt.testing, pkjwt.doctor
        from pkjwt.cli import token, doctor, keygen
        print(json.dumps(sorted(m for m in sys.modules if m.split(".")[0] in
              ("starlette", "uvicorn", "httptools", "uvloop"))))
        """,
        (),
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == []


def test_a_client_only_install_gets_tokens_code_and_cli() -> None:
    done = _run(
        """
        import pkjwt
        key = pkjwt.generate_key("ES256", kid="k1")
        client = pkjwt.TokenClient(
            token_url="https://as.example/token", client_id="c", key=key, profile="legacy"
        )
        print(client.make_assertion().count("."))
        from pkjwt.cli.main import cli
        cli(["doctor", "--help"], standalone_mode=False)
        """,
        SERVER_PACKAGES,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("2\n")


def test_serve_without_the_server_extra_names_the_pip_command(tmp_path: Path) -> None:
    config = tmp_path / "server.toml"
    config.write_text('replay_store = "memory://"\n')
    done = _run(
        """
        import sys
        from pkjwt.cli.main import main
        sys.argv = ["pkjwt", "serve", "--config", sys.argv[1]]
        main()
        """,
        SERVER_PACKAGES,
        str(config),
    )
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert "error: the local authorization server needs the 'server' extra" in done.stderr
    assert "pip install 'pkjwt[server]'" in done.stderr
    assert "Traceback" not in done.stderr


def test_the_library_raises_an_import_error_naming_the_pip_command() -> None:
    done = _run(
        """
        try:
            from pkjwt.server import create_app
            create_app
        except ImportError as exc:
            print(type(exc).__name__, exc.hint)
        """,
        SERVER_PACKAGES,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "MissingExtra pip install 'pkjwt[server]'"


@pytest.mark.parametrize(
    ("code", "extra"),
    [
        ("from pkjwt import RequestsAuth", "requests"),
        (
            "from pkjwt.server.replay import open_replay_store; open_replay_store('redis://x')",
            "redis",
        ),
        (
            "from pkjwt.signers import open_signer; "
            "open_signer('pkcs11:token=t;object=k?module-path=/x.so')",
            "pkcs11",
        ),
        ("from pkjwt.signers.pkcs11 import Pkcs11Signer", "pkcs11"),
    ],
)
def test_other_extras_name_their_pip_command(code: str, extra: str) -> None:
    done = _run(
        f"""
        try:
            {code}
        except ImportError as exc:
            print(exc.hint)
        """,
        (extra,),
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"pip install 'pkjwt[{extra}]'"


def test_a_client_never_loads_python_pkcs11_unless_a_pkcs11_uri_is_used() -> None:
    done = _run(
        """
        import json, sys
        import pkjwt, pkjwt.signers, pkjwt.testing
        from pkjwt.cli import token, jwks
        key = pkjwt.generate_key("ES256", kid="k1")
        pkjwt.TokenClient(
            token_url="https://as.example/token", client_id="c", key=key, profile="legacy"
        ).make_assertion()
        print(json.dumps(sorted(m for m in sys.modules if m.split(".")[0] == "pkcs11")))
        """,
        (),
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == []
