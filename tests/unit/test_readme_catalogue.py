"""The README documents the conformance catalogue: every case, with its rule (a renamed or new
case breaks this test, not a reader)."""

from __future__ import annotations

from pathlib import Path

from pkjwt.conformance import CASES

README = Path(__file__).resolve().parents[2] / "README.md"


def test_every_conformance_case_is_in_the_readme() -> None:
    text = README.read_text("utf-8")
    section = text[text.index("## Conformance") :]
    for case in CASES:
        row = next(
            (line for line in section.splitlines() if line.startswith(f"| `{case.id}` |")), None
        )
        assert row is not None, f"{case.id} is not documented"
        assert f"| {case.rule_id} |" in row
        assert case.title in row
