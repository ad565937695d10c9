"""A conformance run as a server team reads it: a terminal table, a Markdown or self-contained
HTML report to attach to a ticket, JUnit XML for CI, JSON for scripts.

Every form separates the three kinds of failure: a MUST violated (a defect), a SHOULD or a
hardening check not met (weaker than best practice), and cases that could not run."""

from __future__ import annotations

import html
import json
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass

from .cases import Severity
from .runner import CaseResult

__all__ = ["RunInfo", "Summary", "as_html", "as_json", "as_junit", "as_markdown", "summarize"]


@dataclass(frozen=True, slots=True)
class RunInfo:
    """What was tested, for the report's header."""

    token_url: str
    issuer: str | None
    client_id: str
    profile: str
    alg: str
    started: str


@dataclass(frozen=True, slots=True)
class Summary:
    passed: int
    must_failed: int
    weaker: int
    not_run: int

    @property
    def ok(self) -> bool:
        """No MUST violated (the exit code's verdict)."""
        return self.must_failed == 0

    def line(self) -> str:
        verdict = "no MUST violated" if self.ok else f"{self.must_failed} MUST violated"
        return (
            f"{self.passed} passed, {verdict}, {self.weaker} weaker than best practice, "
            f"{self.not_run} not run"
        )


def summarize(results: Sequence[CaseResult]) -> Summary:
    failed = [r for r in results if r.status in ("fail", "error")]
    return Summary(
        passed=sum(r.passed for r in results),
        must_failed=sum(r.severity is Severity.MUST for r in failed),
        weaker=sum(r.severity is not Severity.MUST for r in failed),
        not_run=sum(r.status == "skip" for r in results),
    )


def verdict(result: CaseResult) -> str:
    """PASS, FAIL (a MUST), WEAK (a SHOULD or hardening), SKIP or ERROR."""
    if result.status == "fail":
        return "FAIL" if result.severity is Severity.MUST else "WEAK"
    return result.status.upper()


def answer(result: CaseResult) -> str:
    if result.http_status is None:
        return result.detail or "-"
    text = f"{result.http_status}"
    if result.error:
        text += f" {result.error}"
    return text


def as_json(results: Sequence[CaseResult]) -> str:
    return json.dumps([r.as_dict() for r in results], indent=2)


def _rows(results: Sequence[CaseResult]) -> list[list[str]]:
    return [
        [
            verdict(r),
            r.case.id,
            r.severity.value if r.severity else "-",
            r.expect.label if r.expect else "-",
            answer(r),
            r.case.rule_id,
            r.case.title,
        ]
        for r in results
    ]


_HEAD = ["verdict", "case", "severity", "expected", "answer", "rule", "what was sent"]


def as_markdown(results: Sequence[CaseResult], info: RunInfo) -> str:
    summary = summarize(results)
    lines = [
        f"# pkjwt conformance: {info.token_url}",
        "",
        f"- client `{info.client_id}`, profile `{info.profile}`, alg `{info.alg}`"
        + (f", issuer `{info.issuer}`" if info.issuer else ""),
        f"- run {info.started}",
        f"- **{summary.line()}**",
        "",
        "| " + " | ".join(_HEAD) + " |",
        "|" + "---|" * len(_HEAD),
    ]
    for row in _rows(results):
        lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |")
    lines += ["", "## Failures", ""]
    for r in results:
        if r.status in ("fail", "error"):
            lines.append(
                f"- **{r.case.id}** ({verdict(r)}, {r.case.rule_id} {r.case.rule.title}; "
                f"{r.case.source}): expected {r.expect.label if r.expect else '-'}, got "
                f"{answer(r)}. {r.detail}"
                + (f" Server said: {r.description}" if r.description else "")
            )
    return "\n".join(lines) + "\n"


def as_html(results: Sequence[CaseResult], info: RunInfo) -> str:
    """One self-contained page (no scripts, no external assets)."""
    summary = summarize(results)
    colour = {"PASS": "#1a7f37", "FAIL": "#cf222e", "WEAK": "#9a6700", "SKIP": "#57606a"}
    rows = []
    for r, row in zip(results, _rows(results), strict=True):
        cells = "".join(f"<td>{html.escape(cell)}</td>" for cell in row[1:])
        tone = colour.get(row[0], "#cf222e")
        note = html.escape(r.detail + (f" Server said: {r.description}" if r.description else ""))
        rows.append(
            f'<tr title="{note}"><td style="color:{tone};font-weight:bold">{row[0]}</td>'
            f"{cells}</tr>"
        )
    head = "".join(f"<th>{html.escape(h)}</th>" for h in _HEAD)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>pkjwt conformance: {html.escape(info.token_url)}</title>
<style>body{{font-family:system-ui,sans-serif;margin:2em}}table{{border-collapse:collapse}}
td,th{{border:1px solid #d0d7de;padding:4px 8px;text-align:left;font-size:14px}}</style>
</head><body>
<h1>pkjwt conformance</h1>
<p>{html.escape(info.token_url)}; client <code>{html.escape(info.client_id)}</code>, profile
<code>{html.escape(info.profile)}</code>, alg <code>{html.escape(info.alg)}</code>; run
{html.escape(info.started)}</p>
<p><strong>{html.escape(summary.line())}</strong></p>
<table><tr>{head}</tr>
{"".join(rows)}
</table></body></html>
"""


def as_junit(results: Sequence[CaseResult], info: RunInfo) -> str:
    suite = ET.Element(
        "testsuite",
        name=f"pkjwt conformance {info.profile}",
        tests=str(len(results)),
        failures=str(sum(r.status == "fail" for r in results)),
        errors=str(sum(r.status == "error" for r in results)),
        skipped=str(sum(r.status == "skip" for r in results)),
    )
    for r in results:
        case = ET.SubElement(
            suite,
            "testcase",
            classname=f"{info.profile}.{r.severity.value if r.severity else 'n/a'}",
            name=r.case.id,
        )
        message = f"expected {r.expect.label if r.expect else '-'}, got {answer(r)}"
        if r.status == "fail":
            failure = ET.SubElement(case, "failure", message=message, type=verdict(r))
            failure.text = f"{r.case.title}\n{r.case.rule_id} {r.case.source}\n{r.detail}"
        elif r.status == "error":
            ET.SubElement(case, "error", message=r.detail or message)
        elif r.status == "skip":
            ET.SubElement(case, "skipped", message=r.detail)
    return ET.tostring(suite, encoding="unicode", xml_declaration=True) + "\n"
