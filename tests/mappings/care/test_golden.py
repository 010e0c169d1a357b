"""Golden files: the FHIR each mapping builds for the demo dossier, byte for byte.

A change to a mapping shows up here as a diff to review. To accept an intended change,
regenerate with ``EIGENDOSSIER_REGENERATE_GOLDEN=1 pytest tests/mappings/care/test_golden.py``
and commit the files with the change.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import pathlib
from typing import Any

import pytest

from mappings.care.demo import demo_dossier
from tests.mappings.care.conftest import faults

GOLDEN = pathlib.Path(__file__).parents[2] / "data" / "golden"
TODAY = dt.date(2026, 11, 22)

#: golden file -> the demo resources it holds, by (type, id)
CASES = {
    "zrm-assessment": [
        ("QuestionnaireResponse", "anna-zrm-1"),
        ("Observation", "anna-zrm-1-financien"),
        ("Goal", "anna-zrm-1-target-financien"),
    ],
    "krachtplan": [("CarePlan", "krachtplan"), ("Goal", "krachtplan-goal-geld")],
    "crisisplan": [("CarePlan", "crisisplan")],
    "visit": [("Encounter", "bezoek-2")],
    "omaha-rating": [("Observation", "anna-omaha-inkomen")],
    "people": [
        ("Patient", "anna"),
        ("Practitioner", "sanne"),
        ("Organization", "gp"),
        ("RelatedPerson", "lisa"),
    ],
}


def _pick(resources: list[dict[str, Any]], wanted: list[tuple[str, str]]) -> list[dict[str, Any]]:
    by_key = {(r["resourceType"], r["id"]): r for r in resources}
    return [by_key[key] for key in wanted]


@pytest.mark.parametrize("name", sorted(CASES))
def test_mapping_output_matches_its_golden_file(name: str) -> None:
    built = _pick(demo_dossier(TODAY), CASES[name])
    text = json.dumps(built, ensure_ascii=False, indent=2) + "\n"
    path = GOLDEN / f"{name}.json"
    if os.environ.get("EIGENDOSSIER_REGENERATE_GOLDEN") == "1":
        GOLDEN.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    assert path.read_text(encoding="utf-8") == text


def test_the_whole_demo_dossier_is_valid() -> None:
    resources = demo_dossier(TODAY)
    for resource in resources:
        assert faults(resource) == [], (resource["resourceType"], resource["id"])
    kinds = {r["resourceType"] for r in resources}
    assert {
        "Patient",
        "CarePlan",
        "QuestionnaireResponse",
        "Observation",
        "Encounter",
        "RelatedPerson",
        "Organization",
        "CareTeam",
        "Consent",
        "Goal",
    } <= kinds
    zrm = [r for r in resources if r["resourceType"] == "QuestionnaireResponse"]
    assert len(zrm) == 3
