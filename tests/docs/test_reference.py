"""The documentation cannot drift from the code: every public name has a docstring and a place
in the API reference, every server config key is documented, the generated pages cover every
command, rule and case, and the README stays a landing page whose old sections live in docs/."""

from __future__ import annotations

import importlib.util
import inspect
import re
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

import pkjwt
import pkjwt.errors
import pkjwt.testing
from pkjwt.server import config as server_config

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"


def _hooks() -> ModuleType:
    """docs/_hooks/pages.py, the MkDocs hook that generates the reference pages."""
    if "pkjwt_docs_pages" in sys.modules:
        return sys.modules["pkjwt_docs_pages"]
    spec = importlib.util.spec_from_file_location("pkjwt_docs_pages", DOCS / "_hooks/pages.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _page(name: str) -> str:
    return (DOCS / name).read_text("utf-8")


# -- docstrings ------------------------------------------------------------------------------------


def _own_doc(obj: Any) -> bool:
    doc = obj.__dict__.get("__doc__") if isinstance(obj, type) else getattr(obj, "__doc__", None)
    return bool(doc and doc.strip())


def _undocumented(name: str, obj: Any) -> list[str]:
    """``name`` and its public methods and properties (defined on it, not inherited) that
    have no docstring of their own."""
    missing = [] if _own_doc(obj) else [name]
    if isinstance(obj, type):
        for attr, value in vars(obj).items():
            if attr.startswith("_"):
                continue
            if isinstance(value, property):
                function = value.fget
            elif isinstance(value, staticmethod | classmethod):
                function = value.__func__
            else:
                function = value
            if inspect.isfunction(function) and not _own_doc(function):
                missing.append(f"{name}.{attr}")
    return missing


def _rendered() -> list[tuple[str, Any]]:
    """What the API and errors pages render: ``pkjwt.__all__``, every public class and function
    of ``pkjwt.errors``, and the two names of ``pkjwt.testing`` shown."""
    out = [(n, getattr(pkjwt, n)) for n in pkjwt.__all__ if not n.startswith("_")]
    out += [
        (f"errors.{n}", v)
        for n, v in vars(pkjwt.errors).items()
        if not n.startswith("_")
        and (isinstance(v, type) or inspect.isfunction(v))
        and getattr(v, "__module__", "") == pkjwt.errors.__name__
    ]
    out += [(f"testing.{n}", getattr(pkjwt.testing, n)) for n in pkjwt.testing.__all__]
    return out


def test_every_public_name_has_a_docstring() -> None:
    missing = []
    for name, obj in _rendered():
        if isinstance(obj, dict | str | tuple):  # PROFILES: data, documented on its page
            continue
        missing += _undocumented(name, obj)
    assert missing == [], "add a docstring to: " + ", ".join(missing)


def test_every_public_name_is_in_the_api_reference() -> None:
    api = _page("reference/api.md")
    errors = _page("reference/errors.md")
    absent = []
    for name in pkjwt.__all__:
        if getattr(getattr(pkjwt, name), "__module__", "") == pkjwt.errors.__name__:
            present = "::: pkjwt.errors\n" in errors  # the whole module is rendered there
        else:
            present = f"::: pkjwt.{name}\n" in api
        if not present:
            absent.append(name)
    assert absent == []


# -- the server's config keys ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("table", "keys"),
    [
        ("## Top level", server_config._SERVER_KEYS),
        ("## `[[clients]]`", server_config._CLIENT_KEYS),
        ("## `[[clients.federated]]`", server_config._TRUST_KEYS),
    ],
)
def test_every_server_config_key_is_documented(table: str, keys: set[str]) -> None:
    page = _page("reference/server-config.md")
    section = page[page.index(table) :]
    section = section[: section.find("\n## ", 1)] if "\n## " in section[1:] else section
    documented = set(re.findall(r"^\| `([a-z_]+)` \|", section, re.MULTILINE))
    assert keys - documented == set(), f"document these keys under {table}"
    assert documented - keys == set(), "documented keys the server does not know"


# -- the generated pages ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("page", "generator"),
    [
        ("reference/cli.md", "cli"),
        ("reference/client-settings.md", "client_settings"),
        ("reference/rules.md", "rules"),
        ("reference/conformance-cases.md", "conformance_cases"),
        ("reference/errors.md", "error_tree"),
    ],
)
def test_each_reference_page_is_generated(page: str, generator: str) -> None:
    assert f"<!-- generated: {generator} -->" in _page(page)
    assert _hooks().GENERATORS[generator]()


def test_the_cli_page_has_every_command_help() -> None:
    from pkjwt.cli.main import _COMMANDS

    text = _hooks().cli()
    for name in _COMMANDS:
        assert f"## pkjwt {name}\n" in text
        assert f"Usage: pkjwt {name} [OPTIONS]" in text


def test_the_rule_page_has_every_rule_and_every_nhs_answer() -> None:
    from pkjwt import nhs
    from pkjwt.catalogue import CATALOGUE

    hooks = _hooks()
    text = hooks.rules()
    for info in CATALOGUE.values():
        assert f"| {info.id} | {info.title} |" in text
    mapped = [row for rows in hooks.nhs_rows_by_rule().values() for row in rows]
    rows = [nhs.CONTENT_TYPE, *nhs.NHS_REQUEST_ERRORS]
    rows += [r for r in nhs.NHS_ASSERTION_ERRORS if r is not None]
    assert [r.description for r in rows if r not in mapped] == [], "an NHS row with no rule"


def test_the_case_page_has_every_case() -> None:
    from pkjwt.conformance.cases import CASES
    from pkjwt.conformance.dpop_cases import DPOP_CASES

    text = _hooks().conformance_cases()
    for case in (*CASES, *DPOP_CASES):
        row = next((line for line in text.splitlines() if line.startswith(f"| `{case.id}` |")), "")
        assert f"| {case.rule_id} |" in row, case.id
        assert case.title in row, case.id


def test_the_generated_markers_are_all_known() -> None:
    hooks = _hooks()
    for page in DOCS.rglob("*.md"):
        for name in hooks.MARKER.findall(page.read_text("utf-8")):
            assert name in hooks.GENERATORS, f"{page}: unknown generator {name}"


# -- the README ------------------------------------------------------------------------------------

#: the README's sections before it became a landing page, and where each one's content is now:
#: (page, headings and facts that must be found there)
MOVED = {
    "Quick start for NHS users": (
        "tutorial/nhs-signed-jwt.md",
        ["## 6. Move to the integration environment", "pkjwt keygen --kid int-1", "--explain"],
    ),
    "Profiles": ("how-to/profiles.md", ["| `nhs` |", "| `rfc7523bis` |", "| `fapi2` |"]),
    "The token client": (
        "explanation/token-client.md",
        ["## Retries", "Retry-After", "`Date` more than 600 s off", "client_secret_jwt"],
    ),
    "Keys: rotation": (
        "how-to/rotate-keys.md",
        ["## From the command line: pkjwt rotate", "**retired**", "KeyRing"],
    ),
    "Keys: HSMs, KMSs, certificates, federated assertions": (
        "how-to/hsm-kms-federated.md",
        ["### PKCS#11", "## Certificates", "## No key at all: federated assertions"],
    ),
    "Fleets: many processes, one token": (
        "how-to/fleets-redis.md",
        ["## What happens", "PKJWT_STORE_KEY", "AES-GCM", "ssl_ca_certs"],
    ),
    "CLI": ("how-to/cli-config.md", ["## Where settings come from", "[sections.int]", "-v"]),
    "Conformance": (
        "how-to/conformance.md",
        ["## Reading the result", "**MUST**", "--junit", "oidc-provider"],
    ),
    "The local authorization server": (
        "how-to/local-server.md",
        ["## The replay store", "## Several processes", "commit_interval=0", "/introspect"],
    ),
    "DPoP": ("how-to/dpop.md", ["## What the server checks", "use_dpop_nonce", "require_dpop"]),
    "pkjwt.testing": ("how-to/test-suite.md", ["## With the pytest fixture", "pkjwt_server"]),
    "Observability": (
        "how-to/observability.md",
        ["pkjwt.token_fetch", "pkjwt.client.fetch.duration", "telemetry=False"],
    ),
    "Hardening": (
        "how-to/local-server.md",
        ["## What a caller can cost it", "max_connections", "replay_timeout"],
    ),
    "Replay memory": (
        "explanation/replay-memory.md",
        ["**29 B**", "**1.7 s**", "crash_window", "PATH.index"],
    ),
    "Performance": (
        "explanation/performance.md",
        ["## All the figures", "1.54x", "python -m benchmarks"],
    ),
    "Design": (
        "explanation/design.md",
        ["## Dependencies", "## Where things live", "test_structure.py"],
    ),
}


def test_the_readme_is_a_landing_page() -> None:
    text = (ROOT / "README.md").read_text("utf-8")
    assert len(text) < 6000, f"README.md is {len(text)} characters: move detail to docs/"
    for link in re.findall(r"\]\((docs/[^)#]+)", text):
        assert (ROOT / link).is_file(), f"README links to a missing page: {link}"
    assert "make demo" in text
    assert "make test" in text


@pytest.mark.parametrize("section", sorted(MOVED))
def test_each_section_the_readme_dropped_is_in_the_docs(section: str) -> None:
    page, needles = MOVED[section]
    text = _page(page)
    missing = [n for n in needles if n not in text]
    assert missing == [], f"{section}: {page} lacks {missing}"
