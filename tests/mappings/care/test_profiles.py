"""The profiles: every definition resource is valid FHIR, and the profile checker finds
what a resource that claims a profile leaves out or gets wrong, naming the element."""

from __future__ import annotations

import copy
import datetime as dt
import pathlib
from typing import Any

import pytest

from mappings.care.base import DEFAULT_CANON
from mappings.care.definitions import CareDefinitions
from mappings.care.omaha import (
    PROBLEMS,
    Intervention,
    OmahaRating,
    intervention_to_fhir,
    omaha_concept_map,
    omaha_to_fhir,
)
from mappings.care.visits import Visit, visit_to_fhir
from mappings.care.zrm import ZrmAssessment, zrm_to_fhir
from tests.mappings.care.conftest import faults

TZ = dt.timezone(dt.timedelta(hours=1))


def test_every_conformance_resource_is_valid_fhir(care: CareDefinitions) -> None:
    kinds = {r["resourceType"] for r in care.resources}
    assert kinds == {
        "CodeSystem",
        "ValueSet",
        "ConceptMap",
        "Questionnaire",
        "NamingSystem",
        "StructureDefinition",
        "OperationDefinition",
        "SearchParameter",
        "Measure",
    }
    for resource in care.resources:
        assert faults(resource) == [], resource["id"]
    ids = [(r["resourceType"], r["id"]) for r in care.resources]
    assert len(ids) == len(set(ids))


def test_profiles_are_differentials_on_base_r4(care: CareDefinitions) -> None:
    profiles = [r for r in care.resources if r["resourceType"] == "StructureDefinition"]
    names = {p["id"] for p in profiles}
    assert {
        "zrm-observation",
        "zrm-questionnaireresponse",
        "krachtplan",
        "crisisplan",
        "visit",
        "omaha-rating",
        "omaha-intervention",
        "funding-stream",
        "allocation-number",
    } <= names
    for profile in profiles:
        assert profile["derivation"] == "constraint"
        assert profile["baseDefinition"].startswith("http://hl7.org/fhir/StructureDefinition/")
        assert profile["differential"]["element"][0]["path"] == profile["type"]


OMAHA_PROBLEMS = DEFAULT_CANON.code_system("omaha-problems")


def _observation() -> dict[str, Any]:
    assessment = ZrmAssessment(
        "z", "2017", "anna", "Practitioner/s", "intake", dt.date(2026, 1, 1), {"financien": 2}
    )
    return zrm_to_fhir(assessment)[1]


@pytest.mark.parametrize(
    ("damage", "expression"),
    [
        (lambda o: o.pop("valueInteger"), "Observation.value[x]"),
        (lambda o: o.update(valueString="2") or o.pop("valueInteger"), "Observation.valueString"),
        (lambda o: o.update(subject={"reference": "Group/g"}), "Observation.subject"),
        (lambda o: o["code"]["coding"][0].update(code="dagbesteding"), "Observation.code"),
        (lambda o: o.update(category=[{"text": "elsewhere"}]), "Observation.category[0]"),
        (
            lambda o: o.pop("extension"),
            "Observation.extension('https://eigendossier.nl/fhir/StructureDefinition/zrm-moment')",
        ),
        (
            lambda o: o["extension"][0].update(valueCode="someday"),
            "Observation.extension[0].valueCode",
        ),
        (
            lambda o: o["derivedFrom"].append({"reference": "QuestionnaireResponse/y"}),
            "Observation.derivedFrom",
        ),
    ],
)
def test_the_checker_names_what_departs_from_the_profile(
    care: CareDefinitions, damage: Any, expression: str
) -> None:
    observation = _observation()
    assert care.check(observation, observation["meta"]["profile"][0]) == []
    damage(observation)
    issues = care.check(observation, observation["meta"]["profile"][0])
    assert expression in [e for issue in issues for e in issue.expression], issues


@pytest.mark.parametrize("score", [0, 6, 9, -1])
def test_a_zrm_score_off_the_five_point_scale_departs_from_the_profile(
    care: CareDefinitions, score: int
) -> None:
    observation = _observation()
    observation["valueInteger"] = score
    issues = care.check(observation, observation["meta"]["profile"][0])
    assert [i.expression for i in issues] == [("Observation.valueInteger",)], issues


def test_every_bounded_value_in_our_profiles_is_checked(care: CareDefinitions) -> None:
    rating = omaha_to_fhir(
        OmahaRating(
            "o", "anna", "Practitioner/s", "11", dt.date(2026, 1, 1),
            {"knowledge": 2, "behavior": 3, "status": 2}, {"status": 4},
        )
    )  # fmt: skip
    rating["component"][1]["valueInteger"] = 7
    issues = care.check(rating, rating["meta"]["profile"][0])
    assert [i.expression for i in issues] == [("Observation.component[1].valueInteger",)]
    visit = _visit()
    visit["length"]["value"] = -5
    issues = care.check(visit, visit["meta"]["profile"][0])
    assert [i.expression for i in issues] == [("Encounter.length.value",)]
    visit["length"]["value"] = 0
    assert care.check(visit, visit["meta"]["profile"][0]) == []
    bounded = {
        (e["path"], key)
        for sd in care.resources
        if sd["resourceType"] == "StructureDefinition"
        for e in sd["differential"]["element"]
        for key in e
        if key.startswith(("minValue", "maxValue"))
    }
    assert ("Observation.value[x]", "maxValueInteger") in bounded
    assert ("Goal.target.detail[x]", "minValueInteger") in bounded
    assert ("Encounter.length.value", "minValueDecimal") in bounded


def _visit() -> dict[str, Any]:
    return visit_to_fhir(
        Visit(
            "v",
            "anna",
            "video",
            "finished",
            dt.datetime(2026, 1, 1, 9, tzinfo=TZ),
            dt.datetime(2026, 1, 1, 9, 30, tzinfo=TZ),
            30,
            ("Practitioner/s",),
            funding="zvw",
            product_code="1003",
        )
    )


def test_visit_profile_requires_minutes_and_the_contact_mode(care: CareDefinitions) -> None:
    visit = _visit()
    profile = visit["meta"]["profile"][0]
    assert care.check(visit, profile) == []
    broken = copy.deepcopy(visit)
    broken["length"]["code"] = "h"
    broken["type"][0]["coding"][0]["code"] = "carrier-pigeon"
    broken["extension"][0]["valueCoding"]["code"] = "wia"
    found = {e for issue in care.check(broken, profile) for e in issue.expression}
    assert {"Encounter.length", "Encounter.type[0]", "Encounter.extension[0].valueCoding"} <= found


def test_omaha_problems_of_a_visit_and_its_interventions_are_bound(care: CareDefinitions) -> None:
    visit = _visit()
    visit["reasonCode"] = [{"coding": [{"system": OMAHA_PROBLEMS, "code": "24"}]}]
    profile = visit["meta"]["profile"][0]
    assert care.check(visit, profile) == []
    visit["reasonCode"][0]["coding"][0]["code"] = "environmental"  # a domain, not a problem
    assert [i.expression for i in care.check(visit, profile)] == [("Encounter.reasonCode[0]",)]
    procedure = intervention_to_fhir(
        Intervention("i", "anna", "v", "24", "surveillance", dt.date(2026, 1, 1), "Wond bekeken")
    )
    profile = procedure["meta"]["profile"][0]
    assert care.check(procedure, profile) == []
    broken = copy.deepcopy(procedure)
    broken["reasonCode"].append(copy.deepcopy(broken["reasonCode"][0]))
    broken["status"] = "in-progress"
    del broken["encounter"]
    found = {e for issue in care.check(broken, profile) for e in issue.expression}
    assert found == {"Procedure.reasonCode", "Procedure.status", "Procedure.encounter"}


def test_omaha_has_42_problems_in_four_domains_and_a_routing_map() -> None:
    sizes = {domain: len(problems) for domain, _, _, problems in PROBLEMS}
    assert sizes == {
        "environmental": 4,
        "psychosocial": 12,
        "physiological": 18,
        "health-related-behaviors": 8,
    }
    codes = [code for _, _, _, problems in PROBLEMS for code, _, _ in problems]
    assert codes == [f"{n:02d}" for n in range(1, 43)]
    concept_map = omaha_concept_map()
    targets = [t for e in concept_map["group"][0]["element"] for t in e["target"]]
    assert {t["equivalence"] for t in targets} == {"relatedto", "unmatched"}
    assert "Routing aid" in concept_map["purpose"]
    justitie = next(e for e in concept_map["group"][0]["element"] if e["code"] == "justitie")
    assert justitie["target"][0]["equivalence"] == "unmatched"


def test_omaha_rating_components_carry_current_and_target(care: CareDefinitions) -> None:
    rating = omaha_to_fhir(
        OmahaRating(
            "o",
            "anna",
            "Practitioner/s",
            "11",
            dt.date(2026, 1, 1),
            {"knowledge": 2, "behavior": 3, "status": 2},
            {"status": 4},
        )
    )
    components = [
        (c["code"]["coding"][0]["code"], c["valueInteger"], "extension" in c)
        for c in rating["component"]
    ]
    assert components == [
        ("knowledge", 2, False),
        ("behavior", 3, False),
        ("status", 2, False),
        ("status", 4, True),
    ]
    rating["code"]["coding"][0]["code"] = "environmental"  # a domain is not a problem
    issues = care.check(rating, rating["meta"]["profile"][0])
    assert issues and issues[0].expression == ("Observation.code",)


def test_docs_list_every_profile_extension_and_code_system(care: CareDefinitions) -> None:
    text = (pathlib.Path(__file__).parents[3] / "docs" / "mappings.md").read_text()
    for resource in care.resources:
        if resource["resourceType"] in ("StructureDefinition", "CodeSystem", "NamingSystem"):
            assert f"`{resource['id']}`" in text, resource["id"]
