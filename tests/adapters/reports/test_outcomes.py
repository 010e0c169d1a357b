"""ZRM outcome reports from a real dossier: the numbers, the suppressed cells, the log."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from adapters.reports.outcomes import report_outcomes
from gateway.interactions.dispatch import Dispatcher
from gateway.interactions.dossier import InProcessDossier
from gateway.interactions.model import Services
from gateway.loading import load
from mappings.care.base import DEFAULT_CANON as CANON
from mappings.care.base import MappingError
from tests.smart import backend_app, backend_token, bearer

TODAY = dt.date(2026, 12, 2)
_LOCAL = ZoneInfo("Europe/Amsterdam")


class FixedClock:
    def now(self) -> dt.datetime:
        return dt.datetime(TODAY.year, TODAY.month, TODAY.day, 9, tzinfo=_LOCAL)


def _score(patient: str, n: int, domain: str, day: str, value: int, moment: str) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "id": f"{patient}-{domain}-{n}",
        "extension": [{"url": CANON.extension("zrm-moment"), "valueCode": moment}],
        "status": "final",
        "category": [
            {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/observation-category",
                        "code": "survey",
                    }
                ]
            }
        ],
        "code": {"coding": [{"system": CANON.code_system("zrm-2017"), "code": domain}]},
        "subject": {"reference": f"Patient/{patient}"},
        "effectiveDateTime": day,
        "valueInteger": value,
    }


def _client(
    key: str, team: str, postcode: str, intake: int, follow_up: int
) -> list[dict[str, Any]]:
    return [
        {"resourceType": "Patient", "id": key, "address": [{"postalCode": postcode}]},
        {
            "resourceType": "CareTeam",
            "id": f"team-{key}",
            "status": "active",
            "subject": {"reference": f"Patient/{key}"},
            "managingOrganization": [{"reference": f"Organization/{team}"}],
        },
        _score(key, 1, "financien", "2026-03-10", intake, "intake"),
        _score(key, 2, "financien", "2026-08-20", follow_up, "progress"),
        _score(key, 3, "huisvesting", "2026-03-10", 3, "intake"),  # no follow-up: not counted
    ]


@pytest.fixture()
def dossier(services: Services) -> InProcessDossier:
    teams = [
        {"resourceType": "Organization", "id": "oost", "name": "Team Oost"},
        {"resourceType": "Organization", "id": "west", "name": "Team West"},
    ]
    # team Oost: 7 clients in 1011 (5 improved, 1 stable, 1 worse); team West: 3 in 1012
    changes = [(1, 3), (2, 4), (1, 2), (2, 3), (1, 5), (3, 3), (4, 2)]
    clients = [_client(f"o{i}", "oost", "1011 AB", a, b) for i, (a, b) in enumerate(changes)]
    clients += [_client(f"w{i}", "west", "1012XY", 2, 3) for i in range(3)]
    load(services, teams + [r for c in clients for r in c], "test: a quarter of ZRM")
    fixed = dataclasses.replace(services, clock=FixedClock())
    return InProcessDossier(
        fixed, "test", source="evaluate-measure", requester="t", router=Dispatcher()
    )


def _group(report: dict[str, Any], domain: str) -> dict[str, Any]:
    return next(g for g in report["group"] if g["code"]["coding"][0]["code"] == domain)


def _suppressed(item: dict[str, Any]) -> bool:
    return any(e["url"].endswith("/suppressed-cell") for e in item.get("extension", []))


def test_outcomes_per_team_and_neighbourhood_without_small_cells(
    dossier: InProcessDossier, services: Services
) -> None:
    reported = report_outcomes(dossier, "2026-Q3")
    assert reported.clients == 10
    reports = {r["id"]: r for r in reported.reports}
    assert set(reports) == {
        "zrm-2026-q3",
        "zrm-2026-q3-team-oost",
        "zrm-2026-q3-team-west",
        "zrm-2026-q3-wijk-1011",
        "zrm-2026-q3-wijk-1012",
    }
    everyone = _group(reports["zrm-2026-q3"], "financien")
    assert everyone["population"][0]["count"] == 10
    assert everyone["measureScore"]["value"] == round((2 + 2 + 1 + 1 + 4 + 0 - 2 + 3) / 10, 2)
    strata = {s["value"]["coding"][0]["code"]: s for s in everyone["stratifier"][0]["stratum"]}
    assert strata["improved"]["population"][0]["count"] == 8
    assert _suppressed(strata["stable"]["population"][0])  # 1 client: never shown
    assert _suppressed(strata["worse"]["population"][0])
    oost = _group(reports["zrm-2026-q3-team-oost"], "financien")
    assert oost["population"][0]["count"] == 7
    assert reports["zrm-2026-q3-team-oost"]["reporter"] == {"reference": "Organization/oost"}
    west = _group(reports["zrm-2026-q3-team-west"], "financien")
    assert _suppressed(west) and "measureScore" not in west and "count" not in west["population"][0]
    assert "minder dan 5" in reports["zrm-2026-q3-wijk-1012"]["text"]["div"]
    assert all(_suppressed(_group(reports["zrm-2026-q3"], d)) for d in ("huisvesting", "justitie"))
    text = json.dumps(reported.reports)
    assert "Patient/" not in text and "1011 AB" not in text  # nobody named, no postcode
    stored = {r["id"] for c in dossier.search("MeasureReport", []) for r in c}
    assert stored == set(reports)
    log = [
        e
        for chunk in dossier.search("AuditEvent", [])
        for e in chunk
        if e.get("purposeOfEvent", [{}])[0].get("coding", [{}])[0].get("code") == "HQUALIMP"
    ]
    assert len(log) == 10  # every client whose scores were read
    again = report_outcomes(dossier, "2026-Q3")  # a rerun replaces the reports
    assert {r["id"] for r in again.reports} == stored


def test_a_quarter_that_has_not_ended_or_is_malformed(dossier: InProcessDossier) -> None:
    for period, expected in (("2026-Q4", "has not ended"), ("2026-Q5", "YYYY-Qn"), ("Q3", "YYYY")):
        with pytest.raises(MappingError, match=expected):
            report_outcomes(dossier, period)


def test_evaluate_measure_over_http(client: httpx.Client, secure: dict[str, Any]) -> None:
    load(secure["services"], [_client("c1", "oost", "1011AB", 1, 3)[0]], "test: one client")
    response = client.post(
        "$evaluate-measure",
        json={
            "resourceType": "Parameters",
            "parameter": [{"name": "period", "valueString": "2026-Q3"}],
        },
    )
    assert response.status_code == 200, response.text
    assert {e["resource"]["resourceType"] for e in response.json()["entry"]} == {"MeasureReport"}
    bad = client.post("$evaluate-measure", json={"resourceType": "Parameters", "parameter": []})
    assert bad.status_code == 422 and "YYYY-Qn" in bad.text
    base, security = secure["base"], secure["security"]
    reader_id, key = backend_app(security, scope="system/*.rs")
    token = backend_token(base, reader_id, key, "system/*.rs").json()["access_token"]
    body = {
        "resourceType": "Parameters",
        "parameter": [{"name": "period", "valueString": "2026-Q3"}],
    }
    refused = httpx.post(f"{base}/$evaluate-measure", json=body, headers=bearer(token))
    assert refused.status_code == 403
