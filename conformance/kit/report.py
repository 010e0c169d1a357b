"""A run's results three ways: a console summary, JUnit XML for any CI, a FHIR TestReport.

Optional checks are reported apart: their own lines in the summary, their own test suites
(``smart (optional)``) in the JUnit file, and they never make the run fail.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections import Counter
from collections.abc import Sequence
from typing import Any

from lxml import etree

from conformance.kit.model import SUITES, Result, Status
from conformance.kit.runner import checks_of

__all__ = ["console", "junit_xml", "markdown_catalogue", "test_report"]

_MARK = {
    Status.PASSED: "PASS ",
    Status.FAILED: "FAIL ",
    Status.ERROR: "ERROR",
    Status.SKIPPED: "SKIP ",
}
_ASSERT = {
    Status.PASSED: "pass",
    Status.FAILED: "fail",
    Status.ERROR: "error",
    Status.SKIPPED: "skip",
}


def line(result: Result) -> str:
    check = result.check
    text = f"{_MARK[result.status]} {check.id:<22} {check.title}"
    if result.message:
        text += f"\n      {result.message}"
    return text


def console(results: Sequence[Result], base_url: str) -> str:
    """The summary a person reads: every check, then the counts, required and optional."""
    lines = [f"Eigen Dossier conformance kit against {base_url}", ""]
    for required in (True, False):
        chosen = [r for r in results if r.check.required is required]
        if not chosen:
            continue
        lines.append("Required checks" if required else "Optional checks (never fail the run)")
        lines += [line(r) for r in chosen]
        counts = Counter(r.status for r in chosen)
        lines.append("  " + ", ".join(f"{counts.get(s, 0)} {s.value}" for s in Status) + "\n")
    verdict = all(r.status == Status.PASSED for r in results if r.check.required)
    lines.append("RESULT: every required check passed" if verdict else "RESULT: not conformant")
    return "\n".join(lines)


def junit_xml(results: Sequence[Result], base_url: str) -> bytes:
    """JUnit XML: a testsuite per suite (optional checks in their own), a testcase per check."""
    root = etree.Element("testsuites", name="Eigen Dossier conformance", hostname=base_url)
    groups: dict[str, list[Result]] = {}
    for result in results:
        name = result.check.suite + ("" if result.check.required else " (optional)")
        groups.setdefault(name, []).append(result)
    totals: Counter[str] = Counter()
    for name, members in groups.items():
        counts = Counter(r.status for r in members)
        suite = etree.SubElement(
            root,
            "testsuite",
            name=name,
            tests=str(len(members)),
            failures=str(counts[Status.FAILED]),
            errors=str(counts[Status.ERROR]),
            skipped=str(counts[Status.SKIPPED]),
            time=f"{sum(r.seconds for r in members):.3f}",
        )
        for result in members:
            check = result.check
            case = etree.SubElement(
                suite,
                "testcase",
                classname=f"conformance.{check.suite}",
                name=f"{check.id} {check.title}",
                time=f"{result.seconds:.3f}",
            )
            properties = etree.SubElement(case, "properties")
            for key, value in (
                ("id", check.id),
                ("requirement", check.requirement),
                ("link", check.link),
                ("required", str(check.required).lower()),
            ):
                etree.SubElement(properties, "property", name=key, value=value)
            if result.status is Status.FAILED:
                etree.SubElement(case, "failure", message=result.message).text = check.asserts
            elif result.status is Status.ERROR:
                etree.SubElement(case, "error", message=result.message).text = check.asserts
            elif result.status is Status.SKIPPED:
                etree.SubElement(case, "skipped", message=result.message)
        totals.update({"tests": len(members)})
        totals.update({s.value: counts[s] for s in (Status.FAILED, Status.ERROR, Status.SKIPPED)})
    root.set("tests", str(totals["tests"]))
    root.set("failures", str(totals["failed"]))
    root.set("errors", str(totals["error"]))
    root.set("skipped", str(totals["skipped"]))
    xml: bytes = etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)
    return xml


def test_report(
    results: Sequence[Result], base_url: str, now: dt.datetime | None = None
) -> dict[str, Any]:
    """The run as a FHIR R4 TestReport: one test per check, its assert's result and message."""
    moment = (now or dt.datetime.now(dt.UTC)).isoformat(timespec="seconds")
    required = [r for r in results if r.check.required]
    passed = sum(r.status == Status.PASSED for r in required)
    tests = []
    for result in results:
        check = result.check
        assertion: dict[str, Any] = {
            "result": _ASSERT[result.status],
            "detail": check.link,
        }
        message = result.message or check.asserts
        if not check.required:
            message = f"(optional) {message}"
        assertion["message"] = message
        tests.append(
            {
                "id": check.id,
                "name": f"{check.id} {check.title}",
                "description": check.requirement,
                "action": [{"assert": assertion}],
            }
        )
    return {
        "resourceType": "TestReport",
        "id": str(uuid.uuid4()),
        "name": "Eigen Dossier conformance",
        "status": "completed",
        "testScript": {"display": "Eigen Dossier conformance kit"},
        "result": "pass" if passed == len(required) else "fail",
        "score": round(100 * passed / len(required), 1) if required else 100.0,
        "tester": "Eigen Dossier conformance kit",
        "issued": moment,
        "participant": [
            {"type": "server", "uri": base_url},
            {"type": "test-engine", "uri": "urn:eigendossier:conformance-kit"},
        ],
        "test": tests,
    }


def markdown_catalogue() -> str:
    """Every check as a Markdown table: id, suite, required, title, requirement, link."""

    rows = [
        "| id | suite | | check | requirement (source) | asserts |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for check in checks_of(SUITES):
        needed = "required" if check.required else "optional"
        link = check.link if "://" in check.link else f"../{check.link}"  # from docs/
        cells = [_cell(check.title), _cell(check.requirement), _cell(check.asserts)]
        rows.append(
            f"| `{check.id}` | {check.suite} | {needed} | {cells[0]} | "
            f"{cells[1]} ([source]({link})) | {cells[2]} |"
        )
    return "\n".join(rows) + "\n"


def _cell(text: str) -> str:
    return text.replace("|", "\\|")
