"""Every runnable example in docs/ runs here, against a real local server (pkjwt.testing): a
renamed parameter or option breaks this test, not a reader. The marker convention is in
:mod:`docs.examples` (tests/docs/examples.py)."""

from __future__ import annotations

import contextlib
import inspect
import os
import re
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from docs.examples import LOCAL, Block, blocks, pages, shell_commands, split_command

pytest.importorskip("uvicorn", reason="the docs' examples need the server extra")

PAGES = [p for p in pages() if any(b.kind in ("python", "shell") for b in blocks(p))]


def test_every_python_block_is_marked() -> None:
    unmarked = [b.where for p in pages() for b in blocks(p) if b.lang == "python" and not b.marker]
    assert unmarked == [], "mark these `<!-- test: python -->` or `<!-- test: skip WHY -->`"


def test_markers_are_known() -> None:
    known = {"python", "shell", "server-config", "skip"}
    wrong = [b.where for p in pages() for b in blocks(p) if b.marker and b.kind not in known]
    assert wrong == []


def test_some_examples_run() -> None:
    runnable = [b for p in pages() for b in blocks(p) if b.kind in ("python", "shell")]
    assert len(runnable) >= 20


class Page:
    """One page's session: a folder, a namespace, the variables and the local server."""

    def __init__(self, folder: Path, stack: contextlib.ExitStack, own_server: bool) -> None:
        self.folder = folder
        self.own_server = own_server
        self.stack = stack
        self.namespace: dict[str, Any] = {"__name__": "docs_example"}
        self.address: str | None = None

    # -- the server ---------------------------------------------------------------------------
    def start_from_config(self, body: str) -> None:
        from pkjwt.server.config import parse_config
        from pkjwt.server.run import run_in_thread

        path = self.folder / "server.toml"
        path.write_text(body, "utf-8")
        data = tomllib.loads(body)
        data["replay_store"] = "memory://"  # nothing left behind
        data.pop("issuer", None)  # the test server's own address
        config = parse_config(data, source=str(path), base=self.folder)
        running = self.stack.enter_context(run_in_thread(config))
        self.address = running.issuer

    def default_server(self) -> None:
        """A server for pages that start none themselves: nhs mode, its client's key in
        key.pem (kid test-1), and the variables the examples read."""
        if self.address is not None or self.own_server:
            return
        from pkjwt.testing import local_auth_server

        server = self.stack.enter_context(local_auth_server("nhs"))
        key_file = self.folder / "key.pem"
        key_file.write_bytes(server.key.private_pem())
        key_file.chmod(0o600)
        self.address = server.issuer
        os.environ.update(
            TOKEN_URL=server.token_url,
            API_KEY=server.client_id,
            API_URL=server.issuer + "/echo",
        )

    def localize(self, text: str) -> str:
        return text.replace(LOCAL, self.address) if self.address else text

    # -- blocks -------------------------------------------------------------------------------
    def run(self, block: Block) -> None:
        if block.kind == "server-config":
            self.start_from_config(block.body)
        elif block.kind == "python":
            self.default_server()
            self.python(block)
        elif block.kind == "shell":
            self.default_server()
            self.shell(block)

    def python(self, block: Block) -> None:
        code = compile(self.localize(block.body), block.where, "exec")
        before = set(self.namespace)
        exec(code, self.namespace)
        for name in [n for n in self.namespace if n not in before and n.startswith("test_")]:
            function = self.namespace[name]
            params = list(inspect.signature(function).parameters)
            if params == ["pkjwt_server"]:
                from pkjwt.testing import local_auth_server

                with local_auth_server("nhs") as server:
                    function(server)
            else:
                function()

    def shell(self, block: Block) -> None:
        from pkjwt.cli.main import cli

        match = re.search(r"exit=(\d+)", block.marker or "")
        want = int(match.group(1)) if match else 0
        for line in shell_commands(self.localize(block.body)):
            export = re.fullmatch(r"export (\w+)=(.*)", line)
            if export:
                name, value = export.groups()
                inner = re.fullmatch(r'"?\$\((.*)\)"?', value)
                if inner:
                    value = self.pkjwt(cli, inner.group(1), 0, block).strip()
                else:
                    value = os.path.expandvars(" ".join(split_command(value)))
                os.environ[name] = value
                continue
            assert line.startswith("pkjwt "), f"{block.where}: not a pkjwt command: {line}"
            self.pkjwt(cli, line, want, block)

    def pkjwt(self, cli: Any, line: str, want: int, block: Block) -> str:
        args = [os.path.expandvars(a) for a in split_command(line)[1:]]
        result = CliRunner().invoke(cli, args, catch_exceptions=False)
        assert result.exit_code == want, (
            f"{block.where}: `{line}` exited {result.exit_code} (want {want})\n{result.output}"
        )
        return result.stdout


@pytest.fixture
def session(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[contextlib.ExitStack]:
    monkeypatch.chdir(tmp_path)
    # nothing of the user's: config, token cache and state live in the test's folder
    monkeypatch.setenv("PKJWT_CONFIG", str(tmp_path / "config.toml"))
    monkeypatch.setenv("PKJWT_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    for name in list(os.environ):
        if name.startswith("PKJWT_") and name not in ("PKJWT_CONFIG", "PKJWT_STATE_DIR"):
            monkeypatch.delenv(name)
    saved = dict(os.environ)
    with contextlib.ExitStack() as stack:
        yield stack
    os.environ.clear()
    os.environ.update(saved)


@pytest.mark.parametrize("page", PAGES, ids=[p.relative_to(p.parents[1]).as_posix() for p in PAGES])
def test_the_examples_of_a_page_run(
    page: Path, session: contextlib.ExitStack, tmp_path: Path
) -> None:
    found = blocks(page)
    reader = Page(tmp_path, session, any(b.kind == "server-config" for b in found))
    for block in found:
        reader.run(block)
