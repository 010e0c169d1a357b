"""Rules of the krachtplan, the crisis plan and visits that a model enforces."""

from __future__ import annotations

import datetime as dt

import pytest

from mappings.care.base import MappingError
from mappings.care.crisisplan import CrisisAction, CrisisPlan
from mappings.care.krachtplan import (
    Activity,
    Krachtplan,
    PlanGoal,
    krachtplan_from_fhir,
    krachtplan_to_fhir,
)
from mappings.care.visits import Visit, visit_from_fhir, visit_to_fhir

DAY = dt.date(2026, 2, 1)
TZ = dt.timezone(dt.timedelta(hours=1))


def _plan(**changes: object) -> Krachtplan:
    values: dict[str, object] = {
        "id": "kp",
        "subject": "Group/huishouden-jansen",
        "status": "active",
        "start": DAY,
        "author": "Practitioner/sanne",
        "title": "Samen rondkomen",
        "goals": (PlanGoal("geld", "Rondkomen", "active", "financien", 4),),
        "activities": (
            Activity(
                "post", "Post openen", "network", "in-progress", "RelatedPerson/lisa", ("geld",)
            ),
        ),
    }
    values.update(changes)
    return Krachtplan(**values)  # type: ignore[arg-type]


def test_one_household_one_plan() -> None:
    care_plan, goal = krachtplan_to_fhir(_plan())
    assert care_plan["subject"] == {"reference": "Group/huishouden-jansen"}
    assert goal["subject"] == {"reference": "Group/huishouden-jansen"}
    assert care_plan["activity"][0]["detail"]["goal"] == [{"reference": "Goal/kp-goal-geld"}]
    owner = care_plan["activity"][0]["extension"][0]["valueCoding"]
    assert (owner["code"], owner["display"]) == ("network", "Netwerk")


@pytest.mark.parametrize(
    ("changes", "expression"),
    [
        ({"subject": "Practitioner/x"}, "CarePlan.subject"),
        ({"status": "finished"}, "CarePlan.status"),
        ({"end": dt.date(2026, 1, 1)}, "CarePlan.period"),
        ({"domains": ("dagbesteding",)}, "CarePlan.extension"),
        (
            {"activities": (Activity("a", "Iets", "network", "in-progress", "Practitioner/x"),)},
            "CarePlan.activity.detail.performer",
        ),
        (
            {"activities": (Activity("a", "Iets", "neighbour", "in-progress"),)},
            "CarePlan.activity.extension",
        ),
        (
            {"activities": (Activity("a", "Iets", "client", "in-progress", None, ("elders",)),)},
            "CarePlan.activity.detail.goal",
        ),
    ],
)
def test_plan_rules_name_the_element(changes: dict[str, object], expression: str) -> None:
    with pytest.raises(MappingError) as raised:
        _plan(**changes)
    assert raised.value.issues[0].expression == (expression,)


def test_an_activity_reading_back_needs_its_owner() -> None:
    care_plan, goal = krachtplan_to_fhir(_plan())
    care_plan["activity"][0].pop("extension")
    with pytest.raises(MappingError) as raised:
        krachtplan_from_fhir([care_plan, goal])
    assert raised.value.issues[0].expression == ("CarePlan.activity[0].extension",)


def test_a_crisis_plan_says_who_acts() -> None:
    with pytest.raises(MappingError, match="who acts"):
        CrisisPlan("c", "anna", "active", DAY, "Practitioner/s", ("Slaapt slecht",), ())
    with pytest.raises(MappingError, match="who"):
        CrisisPlan(
            "c",
            "anna",
            "active",
            DAY,
            "Practitioner/s",
            (),
            (CrisisAction("x", "Patient/anna", "Belt"),),
        )


def _visit(**changes: object) -> Visit:
    values: dict[str, object] = {
        "id": "v",
        "patient": "anna",
        "mode": "home",
        "status": "finished",
        "start": dt.datetime(2026, 2, 1, 9, tzinfo=TZ),
        "end": dt.datetime(2026, 2, 1, 10, tzinfo=TZ),
        "minutes": 50,
        "participants": ("Practitioner/s",),
    }
    values.update(changes)
    return Visit(**values)  # type: ignore[arg-type]


def test_visit_fields_for_declarations() -> None:
    visit = _visit(
        funding="wmo",
        allocation_number="20260001",
        product_code="07A08",
        care_plan="kp",
        activities=("post",),
        team="buurtteam",
    )
    resource = visit_to_fhir(visit)
    assert resource["class"]["code"] == "HH"
    assert resource["length"] == {
        "value": 50,
        "unit": "min",
        "system": "http://unitsofmeasure.org",
        "code": "min",
    }
    assert resource["basedOn"] == [{"reference": "CarePlan/kp"}]
    assert visit_from_fhir(resource) == visit
    assert visit_to_fhir(_visit(mode="phone"))["class"]["code"] == "VR"
    assert visit_to_fhir(_visit(mode="practice"))["class"]["code"] == "AMB"


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"funding": "wmo"}, "allocation number"),
        ({"funding": "zvw", "allocation_number": "1"}, "for Wmo visits"),
        ({"activities": ("post",)}, "belong to a care plan"),
        ({"end": dt.datetime(2026, 2, 1, 8, tzinfo=TZ)}, "ends after it starts"),
        ({"start": dt.datetime(2026, 2, 1, 9)}, "time zone"),
        ({"participants": ("Patient/anna",)}, "participant"),
        ({"mode": "letter"}, "contact mode"),
    ],
)
def test_visit_rules(changes: dict[str, object], message: str) -> None:
    with pytest.raises(MappingError, match=message):
        _visit(**changes)


def test_reading_a_visit_checks_class_against_mode() -> None:
    resource = visit_to_fhir(_visit())
    resource["class"]["code"] = "AMB"
    with pytest.raises(MappingError) as raised:
        visit_from_fhir(resource)
    assert raised.value.issues[0].expression == ("Encounter.class",)
