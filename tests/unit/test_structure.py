"""The shape of the package, held by tests: no import cycle (typing-only imports included), no
module that tests a profile by name, and no class or function grown past the size where it
stops doing one thing."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src" / "pkjwt"
MAX_CLASS_LINES = 300
MAX_FUNCTION_LINES = 80


def _modules() -> dict[str, Path]:
    out = {}
    for path in SRC.rglob("*.py"):
        parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


MODULES = _modules()


def _imports(name: str, path: Path) -> Iterator[str]:
    """Every pkjwt module ``name`` imports, at any depth of its body (also under
    ``TYPE_CHECKING`` and inside functions: a cycle hidden there is still a cycle)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text("utf-8"))):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                root = ".".join([*base, node.module] if node.module else base)
            else:
                root = node.module or ""
            targets = [root] + [f"{root}.{a.name}" for a in node.names]
        else:
            continue
        for target in targets:
            if target in MODULES and target != name:
                yield target


def _cycle() -> list[str] | None:
    graph = {name: sorted(set(_imports(name, path))) for name, path in MODULES.items()}
    # a package's __init__ re-exporting its submodules is not a cycle with them
    for name in graph:
        graph[name] = [t for t in graph[name] if not t.startswith(name + ".")]
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in graph[node]:
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return None

    for node in graph:
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def test_no_import_cycle_inside_the_package() -> None:
    assert _cycle() is None, " -> ".join(_cycle() or [])


@pytest.mark.parametrize("name", sorted(MODULES))
def test_no_module_tests_a_profile_by_name(name: str) -> None:
    # a profile is data: behaviour hangs off its fields (dialect, limits), never its name
    tree = ast.parse(MODULES[name].read_text("utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.Compare):
            sides = [node.left, *node.comparators]
            names = [s for s in sides if isinstance(s, ast.Attribute) and s.attr == "name"]
            consts = [s for s in sides if isinstance(s, ast.Constant) and isinstance(s.value, str)]
            profile_names = {"nhs", "rfc7523bis", "fapi2", "legacy"}
            assert not (names and any(c.value in profile_names for c in consts)), (
                f"{name}:{node.lineno} compares a name with a profile name"
            )


@pytest.mark.parametrize("name", sorted(MODULES))
def test_no_class_or_function_too_long(name: str) -> None:
    tree = ast.parse(MODULES[name].read_text("utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef):
            length = (node.end_lineno or node.lineno) - node.lineno + 1
            assert length <= MAX_CLASS_LINES, f"{name}.{node.name}: {length} lines"
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            length = (node.end_lineno or node.lineno) - node.lineno + 1
            assert length <= MAX_FUNCTION_LINES, f"{name}.{node.name}: {length} lines"
