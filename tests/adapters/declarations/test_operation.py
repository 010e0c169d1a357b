"""``POST [base]/$declare`` over real HTTP, and ``eigendossier declare`` as a person runs it."""

from __future__ import annotations

import base64
import datetime as dt
import pathlib
from typing import Any

import httpx

from adapters.declarations.wmo323 import read_wmo323, rule_faults, xsd_faults
from gateway.interactions.model import Services
from gateway.loading import load
from mappings.care.demo import demo_dossier
from tests.conftest import run_cli
from tests.smart import account, backend_app, backend_token, bearer, login

# the demo of today: its declarable month is the one before (the clock is the real one here)
TODAY = dt.date.today()
PERIOD = (TODAY.replace(day=1) - dt.timedelta(days=1)).strftime("%Y-%m")


def _parameters(**values: Any) -> dict[str, Any]:
    parameter = []
    for name, value in values.items():
        key = "valueBoolean" if isinstance(value, bool) else "valueString"
        parameter.append({"name": name.replace("_", "-"), key: value})
    return {"resourceType": "Parameters", "parameter": parameter}


def test_declare_answers_the_files_as_binaries(client: httpx.Client, services: Services) -> None:
    load(services, demo_dossier(TODAY), "test: the demo")
    statement = client.get("metadata").json()
    operations = {o["name"]: o["definition"] for o in statement["rest"][0]["operation"]}
    assert operations["declare"].endswith("/OperationDefinition/declare")
    response = client.post("$declare", json=_parameters(format="wmo323", period=PERIOD))
    assert response.status_code == 200, response.text
    bundle = response.json()
    assert bundle["type"] == "collection"
    outcome, *files = [e["resource"] for e in bundle["entry"]]
    assert outcome["resourceType"] == "OperationOutcome"
    assert "3 new line(s)" in outcome["issue"][0]["diagnostics"]
    assert [f["contentType"] for f in files] == ["application/xml", "application/xml"]
    for binary in files:
        data = base64.b64decode(binary["data"])
        assert xsd_faults(data) == []
        assert rule_faults(read_wmo323(data)) == []
    claims = client.get("Claim", params={"patient": "karim"}).json()
    assert claims["total"] == 1
    again = client.post("$declare", json=_parameters(format="wmo323", period=PERIOD))
    assert len(again.json()["entry"]) == 1  # nothing new: only the outcome


def test_declare_refuses_bad_parameters_with_an_outcome(
    client: httpx.Client, services: Services
) -> None:
    load(services, demo_dossier(TODAY), "test: the demo")
    cases = [
        (_parameters(format="wmo999", period=PERIOD), "format is one of"),
        (_parameters(format="wmo323", period="2099-01"), "has not ended"),
        (_parameters(format="wmo323"), "period"),
        (_parameters(format="wmo323", period=PERIOD, dry_run="yes"), "dry-run"),
        ({"resourceType": "Patient"}, "Parameters"),
    ]
    for body, expected in cases:
        response = client.post("$declare", json=body)
        assert response.status_code in (400, 422), response.text
        assert response.json()["resourceType"] == "OperationOutcome"
        assert expected in response.text, response.text
    assert client.get("Claim").json()["total"] == 0
    assert client.post("$nothing-here", json=_parameters()).status_code == 404


def test_only_a_backend_app_with_the_scope_may_declare(
    secure: dict[str, Any], services: Services
) -> None:
    load(services, demo_dossier(TODAY), "test: the demo")
    base, security = secure["base"], secure["security"]
    reader_id, reader_key = backend_app(security, scope="system/*.rs")
    reader = backend_token(base, reader_id, reader_key, "system/*.rs").json()["access_token"]
    body = _parameters(format="aw319", period=PERIOD, dry_run=True)
    refused = httpx.post(f"{base}/$declare", json=body, headers=bearer(reader))
    assert refused.status_code == 403, refused.text
    office_id, office_key = backend_app(security, scope="system/Claim.c system/*.rs")
    office = backend_token(base, office_id, office_key, "system/Claim.c").json()["access_token"]
    allowed = httpx.post(f"{base}/$declare", json=body, headers=bearer(office))
    assert allowed.status_code == 200, allowed.text
    assert "dry run" in allowed.json()["entry"][0]["resource"]["issue"][0]["diagnostics"]
    nobody = httpx.post(f"{base}/$declare", json=body)
    assert nobody.status_code == 401


def test_the_command_prints_each_file_and_names_faults(
    services: Services, database_url: str, tmp_path: pathlib.Path
) -> None:
    load(services, demo_dossier(TODAY), "test: the demo")
    out = tmp_path / "files"
    done = run_cli(
        "declare",
        "aw319",
        "--period",
        PERIOD,
        "--out",
        str(out),
        database=database_url,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    paths = done.stdout.split()
    assert len(paths) == 2 and all(pathlib.Path(p).is_file() for p in paths)
    assert "3 new line(s)" in done.stderr
    status = run_cli("declare", "status", "--period", PERIOD, database=database_url, cwd=tmp_path)
    assert "9101" in status.stdout and "9102" in status.stdout
    future = run_cli(
        "declare", "wmo323", "--period", "2099-01", database=database_url, cwd=tmp_path
    )
    assert future.returncode == 2 and "has not ended" in future.stderr
    assert "Traceback" not in future.stderr
    missing = run_cli(
        "declare", "read", str(tmp_path / "nope.xml"), database=database_url, cwd=tmp_path
    )
    assert missing.returncode == 2 and "cannot be read" in missing.stderr


def test_the_client_sees_what_was_declared_and_who_received_it(
    client: httpx.Client, secure: dict[str, Any], services: Services
) -> None:
    load(services, demo_dossier(TODAY), "test: the demo")
    assert client.post("$declare", json=_parameters(format="wmo323", period=PERIOD)).is_success
    base, security = secure["base"], secure["security"]
    account(security, "karim", "patient", "Patient/karim")
    karim = bearer(login(base, security, "karim")["access_token"])
    claims = httpx.get(f"{base}/Claim", headers=karim).json()
    assert [e["resource"]["patient"]["reference"] for e in claims["entry"]] == ["Patient/karim"]
    (line,) = claims["entry"]
    assert line["resource"]["insurer"]["reference"] == "Organization/gemeente-amsterdam"
    assert len(line["resource"]["item"][0]["encounter"]) == 4
    log = httpx.get(
        f"{base}/AuditEvent", params={"patient": "karim", "_count": "100"}, headers=karim
    ).json()
    payments = [
        e["resource"]
        for e in log["entry"]
        if e["resource"].get("purposeOfEvent", [{}])[0].get("coding", [{}])[0].get("code")
        == "HPAYMT"
    ]
    assert len(payments) == 1
    recipients = [a["who"].get("reference") for a in payments[0]["agent"]]
    assert "Organization/gemeente-amsterdam" in recipients
    others = httpx.get(f"{base}/Claim", params={"patient": "anna"}, headers=karim).json()
    assert others.get("total", 0) == 0 and not others.get("entry")
