"""What a release contains: the sdist holds what builds and tests the package (no installed
peers, caches or stray files), the wheel holds the package alone, with its typing marker."""

from __future__ import annotations

import tarfile
import zipfile
from pathlib import Path

import pytest
from hatchling.builders.sdist import SdistBuilder
from hatchling.builders.wheel import WheelBuilder

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[str], list[str]]:
    out = tmp_path_factory.mktemp("dist")
    [sdist] = SdistBuilder(str(ROOT)).build(directory=str(out), versions=["standard"])
    [wheel] = WheelBuilder(str(ROOT)).build(directory=str(out), versions=["standard"])
    with tarfile.open(sdist) as tar:
        sdist_names = [n.split("/", 1)[1] for n in tar.getnames() if "/" in n]
    with zipfile.ZipFile(wheel) as whl:
        wheel_names = whl.namelist()
    return sdist_names, wheel_names


def test_the_sdist_is_clean(built: tuple[list[str], list[str]]) -> None:
    names, _ = built
    assert "pyproject.toml" in names
    assert "src/pkjwt/__init__.py" in names
    assert "tests/interop/node/package.json" in names  # the peers are installed by the tests
    stray = [n for n in names if "node_modules" in n or "__pycache__" in n or n.endswith(".pyc")]
    assert stray == []
    top = {n.split("/", 1)[0] for n in names}
    assert top <= {"src", "tests", "benchmarks", "docs", "mkdocs.yml", "README.md",
                   "pyproject.toml", "uv.lock", "Makefile", "PKG-INFO", ".gitignore"}  # fmt: skip


def test_the_wheel_holds_the_package_and_its_typing_marker(
    built: tuple[list[str], list[str]],
) -> None:
    _, names = built
    assert "pkjwt/py.typed" in names
    assert {n.split("/", 1)[0] for n in names} == {"pkjwt", "pkjwt-0.1.0.dist-info"}
