"""Every care model survives model -> FHIR -> model unchanged, and what it builds is valid
FHIR that fits the profile it claims, with a Dutch narrative (hypothesis property tests)."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings

from mappings.care.crisisplan import CrisisPlan, crisis_plan_from_fhir, crisis_plan_to_fhir
from mappings.care.krachtplan import Krachtplan, krachtplan_from_fhir, krachtplan_to_fhir
from mappings.care.omaha import (
    Intervention,
    OmahaRating,
    intervention_from_fhir,
    intervention_to_fhir,
    omaha_from_fhir,
    omaha_to_fhir,
)
from mappings.care.visits import Visit, visit_from_fhir, visit_to_fhir
from mappings.care.zrm import ZrmAssessment, zrm_from_fhir, zrm_to_fhir
from tests.mappings.care.conftest import faults
from tests.mappings.care.strategies import (
    crisis_plans,
    interventions,
    krachtplans,
    omaha_ratings,
    visits,
    zrm_assessments,
)

CHECKS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _valid_with_narrative(resources: list[dict[str, Any]]) -> None:
    for resource in resources:
        assert faults(resource) == [], resource
        assert resource["text"]["status"] == "generated"
        assert resource["text"]["div"].startswith('<div xmlns="http://www.w3.org/1999/xhtml">')


@CHECKS
@given(zrm_assessments())
def test_zrm_assessment_round_trip(assessment: ZrmAssessment) -> None:
    resources = zrm_to_fhir(assessment)
    assert zrm_from_fhir(resources) == assessment
    assert len(resources) == 1 + len(assessment.scores) + len(assessment.targets)
    _valid_with_narrative(resources)


@CHECKS
@given(krachtplans())
def test_krachtplan_round_trip(plan: Krachtplan) -> None:
    resources = krachtplan_to_fhir(plan)
    assert krachtplan_from_fhir(resources) == plan
    _valid_with_narrative(resources)


@CHECKS
@given(crisis_plans())
def test_crisis_plan_round_trip(plan: CrisisPlan) -> None:
    resource = crisis_plan_to_fhir(plan)
    assert crisis_plan_from_fhir(resource) == plan
    _valid_with_narrative([resource])


@CHECKS
@given(visits())
def test_visit_round_trip(visit: Visit) -> None:
    resource = visit_to_fhir(visit)
    assert visit_from_fhir(resource) == visit
    _valid_with_narrative([resource])


@CHECKS
@given(omaha_ratings())
def test_omaha_rating_round_trip(rating: OmahaRating) -> None:
    resource = omaha_to_fhir(rating)
    assert omaha_from_fhir(resource) == rating
    _valid_with_narrative([resource])


@CHECKS
@given(interventions())
def test_omaha_intervention_round_trip(intervention: Intervention) -> None:
    resource = intervention_to_fhir(intervention)
    assert intervention_from_fhir(resource) == intervention
    _valid_with_narrative([resource])
