"""MkDocs hook: the reference pages that are generated from the code at build time.

A page asks for a generated block with a line of its own, ``<!-- generated: NAME -->``; the hook
replaces it with what ``GENERATORS[NAME]()`` returns. Nothing here is hand-copied: the CLI pages
are click's own ``--help``, the rule table is :data:`pkjwt.catalogue.CATALOGUE` with the NHS
platform's answers from :mod:`pkjwt.nhs`, the conformance cases are ``CASES`` and ``DPOP_CASES``.
The tests (tests/docs/) import this module too, so a page and its test never disagree.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import fields
from pathlib import Path
from typing import Any

import click

MARKER = re.compile(r"^<!-- generated: ([a-z_]+) -->$", re.MULTILINE)
SRC = Path(__file__).resolve().parents[2] / "src" / "pkjwt"
HELP_WIDTH = 88


# -- the CLI --------------------------------------------------------------------------------------


def _help(command: click.Command, name: str, parent: click.Context | None) -> str:
    ctx = click.Context(
        command, info_name=name, parent=parent, terminal_width=HELP_WIDTH,
        max_content_width=HELP_WIDTH,
    )  # fmt: skip
    return command.get_help(ctx)


def cli_commands() -> list[tuple[str, click.Command]]:
    """Every command of ``pkjwt``, in the order ``pkjwt --help`` lists them."""
    from pkjwt.cli.main import _COMMANDS, cli

    root = click.Context(cli, info_name="pkjwt")
    out = []
    for name in _COMMANDS:
        command = cli.get_command(root, name)
        assert command is not None, name
        out.append((name, command))
    return out


def cli() -> str:
    from pkjwt.cli.main import cli as group

    root = click.Context(group, info_name="pkjwt", terminal_width=HELP_WIDTH)
    parts = ["## pkjwt", "", "```text", _help(group, "pkjwt", None), "```", ""]
    for name, command in cli_commands():
        summary = command.get_short_help_str(limit=200)
        parts += [f"## pkjwt {name}", "", summary, "", "```text"]
        parts += [_help(command, name, root), "```", ""]
    return "\n".join(parts)


# -- client settings ------------------------------------------------------------------------------


def client_settings() -> str:
    from pkjwt.cli.token import command as token
    from pkjwt.config import ENV_PREFIX, ClientSettings

    options = {p.name: p for p in token.params if isinstance(p, click.Option)}
    rows = [
        "| setting (config key) | variable | flag | what it is |",
        "|---|---|---|---|",
    ]
    for f in fields(ClientSettings):
        option = options.get(f.name)
        flag = " ".join(f"`{o}`" for o in option.opts) if option else ""
        text = (option.help or "") if option else ""
        rows.append(f"| `{f.name}` | `{ENV_PREFIX}{f.name.upper()}` | {flag} | {_cell(text)} |")
    return "\n".join(rows)


# -- the rule catalogue ---------------------------------------------------------------------------

#: finding codes the source builds in other ways than a literal ("R5", "code") pair
_CODE_PREFIX_RULE = {"json.": "R6", "nbf.": "R16"}


def _finding_codes() -> dict[str, set[str]]:
    """Finding code -> the rule ids that produce it, read from the package's source."""
    found: dict[str, set[str]] = {}
    pattern = re.compile(r'"([RD]\d+)",\s*"([a-z_]+\.[a-z0-9_]+)"')
    for path in SRC.rglob("*.py"):
        for rule_id, code in pattern.findall(path.read_text("utf-8")):
            found.setdefault(code, set()).add(rule_id)
    return found


def nhs_rows_by_rule() -> dict[str, list[Any]]:
    """The NHS platform's error rows (:mod:`pkjwt.nhs`), grouped by the rule they answer."""
    from pkjwt import nhs

    codes = _finding_codes()
    rows = [nhs.CONTENT_TYPE, *nhs.NHS_REQUEST_ERRORS]
    rows += [row for row in nhs.NHS_ASSERTION_ERRORS if row is not None]
    out: dict[str, list[Any]] = {}
    for row in rows:
        rules: set[str] = set()
        for code in row.codes:
            rules |= codes.get(code, set())
            rules |= {r for p, r in _CODE_PREFIX_RULE.items() if code.startswith(p)}
        for rule_id in rules:
            if row not in out.setdefault(rule_id, []):
                out[rule_id].append(row)
    return out


def rules() -> str:
    from pkjwt.catalogue import CATALOGUE

    nhs = nhs_rows_by_rule()
    parts: list[str] = []
    for prefix, title in (("R", "Client authentication (R1-R20)"), ("D", "DPoP proofs (D1-D12)")):
        parts += [f"## {title}", ""]
        parts += [
            "| id | what is checked | source | standard answer | NHS platform answer |",
            "|---|---|---|---|---|",
        ]
        for info in CATALOGUE.values():
            if not info.id.startswith(prefix):
                continue
            answers = "<br>".join(
                f"{row.status} `{row.error}`: {_cell(row.description)}"
                for row in nhs.get(info.id, [])
            )
            if prefix == "D":
                answers = "(the platform has no DPoP)"
            parts.append(
                f"| {info.id} | {_cell(info.title)} | {_cell(info.source)} | "
                f"{info.status} `{info.error}` | {answers or '-'} |"
            )
        parts.append("")
    return "\n".join(parts)


# -- the conformance cases ------------------------------------------------------------------------


def expectation(case: Any) -> str:
    """What a conforming server answers, per profile (one text when every profile agrees)."""
    from pkjwt.profiles import PROFILES, get_profile

    by_profile = {name: case.expect(get_profile(name)) for name in PROFILES}
    texts = {
        name: f"{e.label} ({e.severity.value})" for name, e in by_profile.items() if e is not None
    }
    if len(texts) == len(by_profile) and len(set(texts.values())) == 1:
        return next(iter(texts.values()))
    return "; ".join(f"{name}: {text}" for name, text in texts.items())


def conformance_cases() -> str:
    from pkjwt.conformance.cases import CASES
    from pkjwt.conformance.dpop_cases import DPOP_CASES

    parts = ["## Client assertion cases", ""]
    head = ["| case | what is sent | expected (severity), by profile | rule | source |",
            "|---|---|---|---|---|"]  # fmt: skip
    parts += head
    parts += [
        f"| `{c.id}` | {_cell(c.title)} | {expectation(c)} | {c.rule_id} | {_cell(c.source)} |"
        for c in CASES
    ]
    parts += ["", "## DPoP cases", "", "Sent only to a server that advertises "
              "`dpop_signing_alg_values_supported`.", ""]  # fmt: skip
    parts += head
    parts += [
        f"| `{c.id}` | {_cell(c.title)} | {expectation(c)} | {c.rule_id} | {_cell(c.source)} |"
        for c in DPOP_CASES
    ]
    return "\n".join(parts)


# -- the errors -----------------------------------------------------------------------------------


def error_tree() -> str:
    """The exception classes of :mod:`pkjwt.errors` as a tree, each with its OAuth code."""
    from pkjwt import errors

    classes = [
        c
        for c in vars(errors).values()
        if isinstance(c, type) and issubclass(c, errors.PkjwtError)
        if c.__module__ == errors.__name__
    ]
    lines: list[str] = []

    def walk(cls: type, depth: int) -> None:
        code = cls.__dict__.get("error")
        extra = f" (`{code}`)" if isinstance(code, str) else ""
        if cls is errors.OAuthError:
            extra = " (any other code)"
        also = ", ".join(f"`{b.__name__}`" for b in cls.__bases__[1:])
        lines.append(f"{'    ' * depth}- `{cls.__name__}`{extra}{', also ' + also if also else ''}")
        for sub in classes:
            if sub.__bases__[0] is cls:
                walk(sub, depth + 1)

    walk(errors.PkjwtError, 0)
    return "\n".join(lines)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


GENERATORS: dict[str, Callable[[], str]] = {
    "cli": cli,
    "client_settings": client_settings,
    "rules": rules,
    "conformance_cases": conformance_cases,
    "error_tree": error_tree,
}


def render(markdown: str) -> str:
    """``markdown`` with every ``<!-- generated: NAME -->`` line replaced by its content."""

    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in GENERATORS:
            raise KeyError(f"no generator named {name!r} (known: {', '.join(GENERATORS)})")
        return GENERATORS[name]()

    return MARKER.sub(replace, markdown)


def on_page_markdown(markdown: str, **_: Any) -> str:
    """MkDocs hook: fill the generated blocks of each page."""
    return render(markdown)
