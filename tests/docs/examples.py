"""Reading the runnable examples out of the docs' Markdown, and running them.

A fenced block runs when the line before it is a marker (an HTML comment, invisible on the
site):

* ``<!-- test: python -->`` before a ``python`` block: executed; the blocks of one page share
  one namespace and one working folder, in order, like a reader's session. A function the block
  defines whose name starts with ``test_`` is then called (``pkjwt_server`` as its only
  parameter gets a local server).
* ``<!-- test: shell -->`` (or ``<!-- test: shell exit=N -->``) before a ``sh`` block: each
  ``pkjwt ...`` command runs through click's CliRunner and must exit 0 (or N);
  ``export NAME=value`` and ``export NAME=$(pkjwt ...)`` set a variable; comments are skipped;
  any other command fails the test (mark such a block ``skip``).
* ``<!-- test: server-config -->`` before a ``toml`` block: the page's local server is started
  from it (``pkjwt serve --config`` in-process, on a free port, with a ``memory://`` replay
  store). A page without one gets a server in ``nhs`` mode before its first run block, its
  client's key in ``key.pem`` (kid ``test-1``), and ``TOKEN_URL``, ``API_KEY`` (the client
  id) and ``API_URL`` (its ``/echo``) in the environment.
* ``<!-- test: skip REASON -->``: not run, on purpose (the real NHS environment, an HSM).

Every ``python`` block must carry a marker, so none is left untested by accident. Pages show
the local server at ``http://127.0.0.1:8080`` (``pkjwt serve``'s default); in a run block that
address is replaced by the test server's real one.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path

DOCS = Path(__file__).resolve().parents[2] / "docs"
LOCAL = "http://127.0.0.1:8080"

_FENCE = re.compile(
    r"^(?:<!-- test: (?P<marker>[^>]*?) -->\n)?```(?P<lang>[a-z]*)[^\n]*\n(?P<body>.*?)^```$",
    re.MULTILINE | re.DOTALL,
)


@dataclass(frozen=True)
class Block:
    page: str
    line: int
    lang: str
    marker: str | None
    body: str

    @property
    def kind(self) -> str | None:
        return self.marker.split()[0] if self.marker else None

    @property
    def where(self) -> str:
        return f"docs/{self.page}:{self.line}"


def pages() -> list[Path]:
    return sorted(p for p in DOCS.rglob("*.md") if "_hooks" not in p.parts)


def blocks(page: Path) -> list[Block]:
    text = page.read_text("utf-8")
    out = []
    for m in _FENCE.finditer(text):
        line = text.count("\n", 0, m.start("lang")) + 1
        rel = page.relative_to(DOCS).as_posix()
        out.append(Block(rel, line, m.group("lang"), m.group("marker"), m.group("body")))
    return out


def shell_commands(body: str) -> list[str]:
    """The commands of a shell block: continuation lines joined, comments and blanks dropped."""
    joined = re.sub(r"\\\n\s*", " ", body)
    commands = []
    for raw in joined.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        commands.append(line)
    return commands


def split_command(line: str) -> list[str]:
    """A command's words, with a trailing ``# comment`` removed."""
    lexer = shlex.shlex(line, posix=True, punctuation_chars=False)
    lexer.whitespace_split = True
    lexer.commenters = "#"
    return list(lexer)
