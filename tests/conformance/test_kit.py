"""The conformance kit against our own gateway (it passes), against a gateway broken on
purpose for each check (that check fails), against servers that are not FHIR at all (plain
messages, no crash), and its reports."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import pathlib
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from lxml import etree

from conformance.kit import report
from conformance.kit.judge import problems
from conformance.kit.model import CATALOGUE, SUITES, Status
from conformance.kit.runner import passed, run
from conformance.kit.session import Options
from tests.conformance.breaking import RULES, Breaking
from tests.conftest import _free_port, running


def _explain(results: list[Any]) -> str:
    return "\n".join(report.line(r) for r in results if r.status is not Status.PASSED)


def test_the_whole_kit_passes_against_our_gateway(integrator: dict[str, Any]) -> None:
    results = run(integrator["options"])
    assert {r.check.suite for r in results} == set(SUITES)
    assert len(results) == len(CATALOGUE)
    assert passed(results), _explain(results)
    assert all(r.status is Status.PASSED for r in results), _explain(results)


def test_every_check_has_a_server_that_fails_it() -> None:
    assert set(RULES) == {c.id for c in CATALOGUE}


@pytest.mark.parametrize("check_id", sorted(RULES), ids=sorted(RULES))
def test_each_check_fails_against_a_server_broken_for_it(
    integrator: dict[str, Any], check_id: str
) -> None:
    options = dataclasses.replace(integrator["options"], transport=Breaking(RULES[check_id]))
    check = next(c for c in CATALOGUE if c.id == check_id)
    results = {r.check.id: r for r in run(options, [check.suite], only=[check_id])}
    verdict = results[check_id]
    assert verdict.status is Status.FAILED, (
        report.line(verdict) + "\n" + _explain(list(results.values()))
    )
    assert verdict.message and "Traceback" not in verdict.message
    for need in check.needs:  # what it stands on still passed: the fault is the rule's
        assert results[need].status is Status.PASSED, report.line(results[need])


# -- servers that are not what they claim --------------------------------------------


async def _html(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    await send(
        {"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/html")]}
    )
    await send(
        {"type": "http.response.body", "body": b"<html><body>Welcome to our website</body></html>"}
    )


@contextlib.contextmanager
def _silent_server() -> Iterator[int]:
    """A TCP server that accepts and never answers (a hung server)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            with contextlib.suppress(OSError):
                held.append(listener.accept()[0])

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield int(listener.getsockname()[1])
    finally:
        stop.set()
        thread.join()
        for connection in held:
            connection.close()
        listener.close()


def _no_crash(results: list[Any]) -> None:
    assert results and not passed(results)
    for result in results:
        assert result.status is not Status.PASSED, report.line(result)
        assert result.message and "Traceback" not in result.message
        assert "could not be judged" not in result.message, report.line(result)


def test_an_unreachable_server_is_said_plainly_for_every_check(integrator: dict[str, Any]) -> None:
    port = _free_port()
    options = dataclasses.replace(integrator["options"], base_url=f"http://127.0.0.1:{port}/fhir")
    results = run(options)
    _no_crash(results)
    errors = [r for r in results if r.status is Status.ERROR]
    assert errors and all("cannot be reached" in r.message for r in errors)


def test_a_server_that_answers_html_gets_a_message_per_check(integrator: dict[str, Any]) -> None:
    port = _free_port()
    with running(_html, port):
        options = dataclasses.replace(
            integrator["options"], base_url=f"http://127.0.0.1:{port}/fhir"
        )
        results = run(options)
    _no_crash(results)
    assert any("text/html, not a FHIR JSON resource" in r.message for r in results)


def test_a_server_that_does_not_answer_times_out_per_check(integrator: dict[str, Any]) -> None:
    with _silent_server() as port:
        options = dataclasses.replace(
            integrator["options"], base_url=f"http://127.0.0.1:{port}/fhir", timeout=0.3
        )
        started = time.monotonic()
        results = run(options, ["capabilities"])
    _no_crash(results)
    assert any("did not answer within 0.3 s" in r.message for r in results)
    assert time.monotonic() - started < 30


def test_the_bare_asgi_toy_server_fails_with_clear_messages(
    integrator: dict[str, Any], tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from benchmarks import bare_asgi

    database = tmp_path / "bare.db"
    import sqlite3

    with contextlib.closing(sqlite3.connect(database)) as db:
        db.execute("CREATE TABLE resources (pk INTEGER, res_type TEXT, res_id TEXT, content BLOB)")
        db.commit()
    monkeypatch.setenv("BARE_DB", str(database))
    port = _free_port()
    with running(bare_asgi.app, port):
        options = dataclasses.replace(
            integrator["options"], base_url=f"http://127.0.0.1:{port}/fhir"
        )
        results = run(options)
    _no_crash(results)
    assert any("not a FHIR JSON resource" in r.message for r in results)


def test_invalid_credentials_fail_the_checks_that_need_them(integrator: dict[str, Any]) -> None:
    from conformance import smart

    options = dataclasses.replace(
        integrator["options"],
        keys=(smart.new_key("RS384"),),  # not the app's key
        patient_login=("anna", "not her password"),
    )
    results = {r.check.id: r for r in run(options, ["smart"])}
    assert results["smart-backend-01"].status is Status.FAILED
    assert "answered 401" in results["smart-backend-01"].message
    assert results["smart-launch-01"].status is Status.FAILED
    assert "did not redirect back to the app" in results["smart-launch-01"].message
    without = dataclasses.replace(
        integrator["options"], client_id=None, keys=(), patient_login=None
    )
    skipped = run(without, ["smart"])
    assert all(r.status is Status.SKIPPED for r in skipped)
    assert any("--client-id and --key" in r.message for r in skipped)


# -- reports ---------------------------------------------------------------------------------


def test_the_reports_junit_and_test_report(integrator: dict[str, Any]) -> None:
    broken = dataclasses.replace(integrator["options"], transport=Breaking(RULES["cap-05"]))
    results = run(broken, ["capabilities"])
    xml = etree.fromstring(report.junit_xml(results, integrator["base"]))
    assert xml.tag == "testsuites" and xml.get("failures") == "1"
    failure = xml.find(".//testcase[@name='cap-05 Our operations are declared']/failure")
    assert failure is not None and "zrm-progress" in failure.get("message", "")
    optional = xml.find("testsuite[@name='capabilities (optional)']")
    assert optional is not None and optional.get("tests") == "1"
    test_report = report.test_report(results, integrator["base"])
    assert problems(test_report) == []
    assert test_report["result"] == "fail"
    verdicts = {t["id"]: t["action"][0]["assert"]["result"] for t in test_report["test"]}
    assert verdicts["cap-05"] == "fail" and verdicts["cap-01"] == "pass"
    text = report.console(results, integrator["base"])
    assert "FAIL  cap-05" in text and "RESULT: not conformant" in text


def test_the_command_line_writes_both_reports_and_says_so_in_its_exit_code(
    integrator: dict[str, Any], tmp_path: pathlib.Path
) -> None:
    from tests.conformance.conftest import key_files
    from tests.conftest import run_cli
    from tests.smart import PASSWORD

    options: Options = integrator["options"]
    password = tmp_path / "anna.pw"
    password.write_text(PASSWORD + "\n")
    keys = key_files(tmp_path, integrator["keys"])
    args = [
        "conformance", "run", "--base-url", options.base_url,
        "--client-id", options.client_id or "", "--key", str(keys),
        "--patient-login", f"anna:{password}",
        "--launch-client-id", options.launch_client_id or "",
        "--redirect-uri", options.redirect_uri or "",
        "--junit", str(tmp_path / "out.xml"), "--report", str(tmp_path / "report.json"),
    ]  # fmt: skip
    done = run_cli(*args, database="sqlite:///unused.db", cwd=tmp_path)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "RESULT: every required check passed" in done.stdout
    junit = etree.parse(str(tmp_path / "out.xml")).getroot()
    assert junit.get("failures") == "0" and int(junit.get("tests", "0")) == len(CATALOGUE)
    assert json.loads((tmp_path / "report.json").read_text())["result"] == "pass"
    capabilities_only = run_cli(
        "conformance", "run", "--base-url", f"http://127.0.0.1:{_free_port()}/fhir",
        "--suite", "capabilities", database="sqlite:///unused.db", cwd=tmp_path,
    )  # fmt: skip
    assert capabilities_only.returncode == 1 and "cannot be reached" in capabilities_only.stdout
    mistake = run_cli(
        "conformance", "run", "--base-url", options.base_url, "--suite", "nonsense",
        database="sqlite:///unused.db", cwd=tmp_path,
    )  # fmt: skip
    assert mistake.returncode == 2 and "unknown suite" in mistake.stderr


def test_docs_conformance_lists_every_check_as_the_catalogue_says() -> None:
    """docs/conformance.md holds the table `eigendossier conformance list --markdown` prints
    (regenerate it with that command when a check changes)."""
    doc = (pathlib.Path(__file__).parents[2] / "docs" / "conformance.md").read_text()
    assert report.markdown_catalogue() in doc
    for check in CATALOGUE:
        assert f"`{check.id}`" in doc, check.id
