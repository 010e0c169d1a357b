"""The base-spec validator against the official examples and against broken input."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from mappings.core.definitions import load_definitions
from mappings.core.validate import Validator
from tests.conftest import EXAMPLES, example

VALIDATOR = Validator(load_definitions())
ALL_EXAMPLES = sorted(p.stem for p in EXAMPLES.glob("*.json"))
KNOWN_INVALID = {"Questionnaire-qs1"}  # lacks required linkIds (THINGS-THAT-BITE.md)


def faults(resource: dict[str, Any]) -> list[tuple[str, tuple[str, ...]]]:
    return [(i.code, i.expression) for i in VALIDATOR.validate(resource)]


@pytest.mark.parametrize("name", [n for n in ALL_EXAMPLES if n not in KNOWN_INVALID])
def test_every_official_example_is_valid(name: str) -> None:
    assert VALIDATOR.validate(example(name)) == []


def test_the_known_invalid_example_is_rejected_naming_the_element() -> None:
    found = faults(example("Questionnaire-qs1"))
    assert ("required", ("Questionnaire.item[0].item[0].linkId",)) in found


def test_required_binding_is_checked() -> None:
    observation = example("Observation-example")
    observation["status"] = "bogus"
    assert faults(observation) == [("code-invalid", ("Observation.status",))]


def test_required_binding_on_codeable_concept_coding() -> None:
    consent = example("Consent-consent-example-basic")
    consent["status"] = "sort-of"
    assert ("code-invalid", ("Consent.status",)) in faults(consent)


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda r: r.update(unknownThing=1), ("structure", ("Patient.unknownThing",))),
        (lambda r: r.update(active="yes"), ("structure", ("Patient.active",))),
        (lambda r: r.update(gender="robot"), ("code-invalid", ("Patient.gender",))),
        (lambda r: r.update(birthDate="1974-13-45"), ("value", ("Patient.birthDate",))),
        (lambda r: r.update(name={"family": "x"}), ("structure", ("Patient.name",))),
        (lambda r: r.update(name=[]), ("invalid", ("Patient.name",))),
        (lambda r: r["name"][0].update(family=""), ("value", ("Patient.name[0].family",))),
        (
            lambda r: r.update(managingOrganization={"reference": "not a ref"}),
            ("value", ("Patient.managingOrganization.reference",)),
        ),
        (
            lambda r: r.update(text={"status": "generated", "div": "<p>no div</p>"}),
            ("value", ("Patient.text.div",)),
        ),
        (
            lambda r: r.update(
                text={
                    "status": "generated",
                    "div": '<div xmlns="http://www.w3.org/1999/xhtml"><script>x</script></div>',
                }
            ),
            ("value", ("Patient.text.div",)),
        ),
        (lambda r: r.update(multipleBirthInteger=2**40), ("value", ("Patient.multipleBirth",))),
        (lambda r: r.update(contact=[{}]), ("invalid", ("Patient.contact[0]",))),
    ],
)
def test_structural_faults_name_their_expression(change: Any, expected: tuple[str, Any]) -> None:
    patient = copy.deepcopy(example("Patient-example"))
    change(patient)
    assert expected in faults(patient)


def test_missing_required_element() -> None:
    observation = example("Observation-example")
    del observation["code"]
    assert ("required", ("Observation.code",)) in faults(observation)


def test_unknown_resource_type() -> None:
    assert faults({"resourceType": "Spaceship"}) == [("not-supported", ("resourceType",))]


def test_primitive_extensions_are_allowed_and_checked() -> None:
    patient = {
        "resourceType": "Patient",
        "birthDate": "1970-01-01",
        "_birthDate": {"extension": [{"url": "http://example.org/x", "valueString": "y"}]},
    }
    assert faults(patient) == []
    patient["_birthDate"] = {"nonsense": True}
    assert faults(patient)


def test_contained_resources_of_any_type_are_validated() -> None:
    careplan = example("CarePlan-f202")
    careplan["contained"][0]["status"] = "bogus-status"
    assert faults(careplan)


def test_examples_directory_holds_the_served_types() -> None:
    served = set(load_definitions().served)
    found = {json.loads(p.read_text())["resourceType"] for p in EXAMPLES.glob("*.json")}
    assert found == served


def test_string_regexes_have_the_spec_meaning_of_whitespace() -> None:
    """FHIR's regexes mean XML whitespace: a non-breaking space is content, not blank."""
    patient = {"resourceType": "Patient", "name": [{"family": "van\xa0Dijk"}]}
    assert faults(patient) == []
    patient["name"][0]["family"] = " \t"
    assert faults(patient) == [("value", ("Patient.name[0].family",))]


def test_resource_ids_follow_the_id_type() -> None:
    assert faults({"resourceType": "Patient", "id": "x" * 64}) == []
    assert faults({"resourceType": "Patient", "id": "x" * 65}) == [("value", ("Patient.id",))]
    assert faults({"resourceType": "Patient", "id": "a b"}) == [("value", ("Patient.id",))]
