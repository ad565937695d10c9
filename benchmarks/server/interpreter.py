"""The interpreter the pkjwt servers run on: this one, or a venv on another CPython build."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
VENVS = REPO / ".benchmarks"
_DESCRIBE = (
    "import json, sys, sysconfig; print(json.dumps({'version': sys.version.split()[0], "
    "'executable': sys.executable, 'base': sys.base_prefix, "
    "'configure': sysconfig.get_config_var('CONFIG_ARGS') or ''}))"
)


@dataclass(frozen=True, slots=True)
class Interpreter:
    """A Python that can run ``pkjwt serve`` from this checkout."""

    path: str
    version: str
    base: str
    optimized: bool | None  # built with --enable-optimizations (PGO); None: cannot tell

    @property
    def label(self) -> str:
        build = {True: "PGO build", False: "built without PGO", None: "build flags unknown"}
        return f"CPython {self.version} from {self.base} ({build[self.optimized]})"

    @classmethod
    def describe(cls, path: str) -> Interpreter:
        proc = subprocess.run([path, "-c", _DESCRIBE], capture_output=True, text=True, check=True)
        info = json.loads(proc.stdout)
        configure = info["configure"]
        optimized: bool | None = "--enable-optimizations" in configure
        if (
            not optimized
            and info["base"] in ("/usr", "/usr/local")
            and "--prefix=/usr" in configure
        ):
            optimized = None  # distribution builds (Debian's is PGO+LTO) pass flags elsewhere
        return cls(info["executable"], info["version"], info["base"], optimized)


def _uv() -> list[str]:
    uv = shutil.which("uv")
    return [uv] if uv else [sys.executable, "-m", "uv"]


def server_interpreter(python: str | None) -> Interpreter:
    """This interpreter, or a venv on ``python`` with this checkout installed (made once, with
    uv, under ``.benchmarks/``): the same code, on another CPython build."""
    if python is None:
        return Interpreter.describe(sys.executable)
    given = Interpreter.describe(python)
    venv = VENVS / f"venv-{Path(given.base).name or 'python'}-{given.version}"
    venv_python = venv / "bin" / "python"
    check = (
        subprocess.run(
            [str(venv_python), "-c", "import pkjwt, uvloop, httptools; print(pkjwt.__file__)"],
            capture_output=True,
            text=True,
            check=False,
        )
        if venv_python.exists()
        else None
    )
    if check is None or check.returncode != 0 or not check.stdout.startswith(str(REPO)):
        print(f"   preparing {venv} (uv venv + this checkout, once)...", flush=True)
        subprocess.run([*_uv(), "venv", "-q", "-p", python, str(venv)], check=True)
        subprocess.run(
            [*_uv(), "pip", "install", "-q", "--python", str(venv_python), "-e", str(REPO)],
            check=True,
        )
    return Interpreter.describe(str(venv_python))
