"""ZRM: the two versions stay apart, faults name their element, the progress view."""

from __future__ import annotations

import copy
import datetime as dt

import pytest

from mappings.care.base import Canon, MappingError
from mappings.care.definitions import CareDefinitions
from mappings.care.zrm import ZrmAssessment, zrm_from_fhir, zrm_progress, zrm_to_fhir
from mappings.care.zrm_codes import DOMAINS, zrm_code_systems, zrm_questionnaires
from tests.mappings.care.conftest import faults

DAY = dt.date(2026, 3, 1)


def _assessment(**changes: object) -> ZrmAssessment:
    values: dict[str, object] = {
        "id": "z1",
        "version": "2017",
        "patient": "anna",
        "performer": "Practitioner/sanne",
        "moment": "intake",
        "date": DAY,
        "scores": {"financien": 1, "werk-opleiding": 3},
        "targets": {"financien": 4},
    }
    values.update(changes)
    return ZrmAssessment(**values)  # type: ignore[arg-type]


def test_both_versions_are_separate_versioned_code_systems() -> None:
    systems = {s["id"]: s for s in zrm_code_systems()}
    assert len(systems["zrm-2013"]["concept"]) == 11 and systems["zrm-2013"]["version"] == "2013"
    assert len(systems["zrm-2017"]["concept"]) == 13 and systems["zrm-2017"]["version"] == "2017"
    assert systems["zrm-2013"]["url"] != systems["zrm-2017"]["url"]
    scale = {c["code"]: c["display"] for c in systems["zrm-scale"]["concept"]}
    assert scale == {
        "1": "acute problematiek",
        "2": "niet zelfredzaam",
        "3": "beperkt zelfredzaam",
        "4": "voldoende zelfredzaam",
        "5": "volledig zelfredzaam",
    }
    english = systems["zrm-scale"]["concept"][4]["designation"][0]
    assert english == {"language": "en", "value": "completely self-sufficient"}
    assert [c["code"] for c in systems["zrm-moment"]["concept"]] == ["intake", "progress", "exit"]
    for questionnaire in zrm_questionnaires():
        version = questionnaire["version"]
        assert len(questionnaire["item"]) == 1 + len(DOMAINS[version])
        assert faults(questionnaire) == []


def test_canonical_urls_follow_the_configured_base() -> None:
    canon = Canon("https://zorg.example.org/fhir")
    resources = CareDefinitions(canon).resources
    urls = [r["url"] for r in resources if "url" in r]
    assert urls and all(u.startswith("https://zorg.example.org/fhir/") for u in urls)
    built = zrm_to_fhir(_assessment(), canon)
    assert built[0]["questionnaire"] == "https://zorg.example.org/fhir/Questionnaire/zrm-2017|2017"
    assert zrm_from_fhir(built, canon) == _assessment()
    with pytest.raises(MappingError):  # read with another base, the codes are not ours
        zrm_from_fhir(built)


def test_an_assessment_is_a_response_an_observation_per_domain_and_goals() -> None:
    response, *rest = zrm_to_fhir(_assessment())
    observations = [r for r in rest if r["resourceType"] == "Observation"]
    goals = [r for r in rest if r["resourceType"] == "Goal"]
    assert [o["valueInteger"] for o in observations] == [1, 3]
    first = observations[0]
    assert first["category"][0]["coding"][0]["code"] == "survey"
    assert first["derivedFrom"] == [{"reference": "QuestionnaireResponse/z1"}]
    assert first["effectiveDateTime"] == "2026-03-01"
    assert first["performer"] == [{"reference": "Practitioner/sanne"}]
    assert goals[0]["target"][0]["detailInteger"] == 4
    assert goals[0]["addresses"] == [{"reference": "Observation/z1-financien"}]
    assert "Financiën: 1 (acute problematiek)" in response["text"]["div"]


def test_eleven_and_thirteen_domains_are_never_converted() -> None:
    with pytest.raises(MappingError, match="not a ZRM 2017 domain"):
        _assessment(scores={"dagbesteding": 2}, targets={})  # a 2013 domain
    with pytest.raises(MappingError, match="not a ZRM 2013 domain"):
        _assessment(version="2013", scores={"tijdsbesteding": 2}, targets={})
    built = zrm_to_fhir(_assessment(version="2013", scores={"financien": 2}, targets={}))
    response = copy.deepcopy(built[0])
    response["questionnaire"] = response["questionnaire"].replace("2013", "2017")
    with pytest.raises(MappingError) as raised:  # a 2013 answer under the 2017 questionnaire
        zrm_from_fhir([response])
    assert raised.value.issues[0].expression == ("QuestionnaireResponse.item[1].linkId",)
    assert zrm_from_fhir(built).version == "2013"


@pytest.mark.parametrize(
    ("damage", "expression"),
    [
        (lambda r: r.pop("subject"), "QuestionnaireResponse.subject"),
        (lambda r: r.update(author={"reference": "Patient/x"}), "QuestionnaireResponse.author"),
        (lambda r: r.update(status="in-progress"), "QuestionnaireResponse.status"),
        (lambda r: r.update(authored="2026"), "QuestionnaireResponse.authored"),
        (
            lambda r: r["item"][1]["answer"][0]["valueCoding"].update(code="6"),
            "QuestionnaireResponse.item[1].answer[0].valueCoding",
        ),
        (
            lambda r: r["item"][0]["answer"][0]["valueCoding"].update(code="later"),
            "QuestionnaireResponse.item[0].answer[0].valueCoding",
        ),
        (lambda r: r["item"][1].update(linkId="anything"), "QuestionnaireResponse.item[1].linkId"),
        (lambda r: r.update(meta={}), "QuestionnaireResponse.meta.profile"),
    ],
)
def test_input_that_does_not_fit_names_the_element(damage: object, expression: str) -> None:
    built = zrm_to_fhir(_assessment(targets={}))
    damage(built[0])  # type: ignore[operator]
    with pytest.raises(MappingError) as raised:
        zrm_from_fhir(built)
    assert raised.value.issues[0].expression == (expression,)
    assert raised.value.status == 422


def test_observations_must_agree_with_the_response() -> None:
    built = zrm_to_fhir(_assessment())
    built[1]["valueInteger"] = 5
    with pytest.raises(MappingError, match="differently"):
        zrm_from_fhir(built)


def test_a_target_needs_its_domain_scored() -> None:
    with pytest.raises(MappingError, match="target score needs a score"):
        _assessment(targets={"justitie": 4})


def test_progress_per_domain_over_time_and_versions_apart() -> None:
    resources = []
    for index, (moment, day, score) in enumerate(
        [
            ("exit", dt.date(2026, 9, 1), 4),
            ("intake", dt.date(2026, 1, 1), 1),
            ("progress", dt.date(2026, 5, 1), 2),
        ]
    ):
        resources += zrm_to_fhir(
            _assessment(
                id=f"m{index}", moment=moment, date=day, scores={"financien": score}, targets={}
            )
        )
    resources += zrm_to_fhir(
        _assessment(id="old", version="2013", scores={"financien": 3}, targets={})
    )
    observations = [r for r in resources if r["resourceType"] == "Observation"]
    series = zrm_progress(observations)
    points = series["2017"]["financien"]
    assert [(p.date, p.score, p.moment) for p in points] == [
        ("2026-01-01", 1, "intake"),
        ("2026-05-01", 2, "progress"),
        ("2026-09-01", 4, "exit"),
    ]
    assert [p.score for p in series["2013"]["financien"]] == [3]
    observations[0]["status"] = "entered-in-error"
    assert len(zrm_progress(observations)["2017"]["financien"]) == 2
