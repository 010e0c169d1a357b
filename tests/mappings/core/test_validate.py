"""The base-spec validator against the official examples and against broken input."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from mappings.core.definitions import load_definitions
from mappings.core.validate import Validator, narrative_problem
from tests.conftest import EXAMPLES, example

VALIDATOR = Validator(load_definitions())
ALL_EXAMPLES = sorted(p.stem for p in EXAMPLES.glob("*.json"))
#: qs1 lacks required linkIds; the zika questionnaire's narrative is an empty <pre> (txt-2)
KNOWN_INVALID = {"Questionnaire-qs1", "Questionnaire-zika-virus-exposure-assessment"}


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


XHTML = 'xmlns="http://www.w3.org/1999/xhtml"'


@pytest.mark.parametrize(
    ("div", "says"),
    [
        (f"<div {XHTML}><img src='x' onerror='alert(1)'/>x</div>", "onerror"),
        (f"<div {XHTML}><p onclick='steal()'>x</p></div>", "onclick"),
        (f"<div {XHTML}><a href='javascript:alert(1)'>x</a></div>", "active content"),
        (f"<div {XHTML}><a href=' jAvA script:alert(1)'>x</a></div>", "active content"),
        (f"<div {XHTML}><a href='vbscript:x'>x</a></div>", "active content"),
        (f"<div {XHTML}><iframe src='https://evil.example'/>x</div>", "iframe"),
        (f"<div {XHTML}><object data='x'/>x</div>", "object"),
        (f"<div {XHTML}><embed src='x'/>x</div>", "embed"),
        (f"<div {XHTML}><script>alert(1)</script></div>", "script"),
        (f"<div {XHTML}><form action='x'><input/></form></div>", "form"),
        (
            f"<div {XHTML}><svg xmlns='http://www.w3.org/2000/svg'><script>x</script></svg>x</div>",
            "svg",
        ),
        (f"<div {XHTML}><p style='background:url(javascript:alert(1))'>x</p></div>", "style"),
        (f"<div {XHTML}><p style='width:expression(alert(1))'>x</p></div>", "style"),
        (f"<div {XHTML}><p style='background:u\\72l(javascript:x)'>x</p></div>", "style"),
        (f"<div {XHTML}><img src='data:image/svg+xml;base64,PHN2Zz4='/></div>", "active content"),
        (f"<div {XHTML}><style>p{{color:red}}</style>x</div>", "style"),
        (f"<!DOCTYPE x><div {XHTML}>x</div>", "DOCTYPE"),
        (f"<?xml-stylesheet href='x'?><div {XHTML}>x</div>", "processing instruction"),
        (f"<div {XHTML}>   </div>", "txt-2"),
        ("<div>no namespace</div>", "XHTML <div>"),
        (f"<p {XHTML}>not a div</p>", "XHTML <div>"),
    ],
)
def test_narrative_is_an_allow_list_without_active_content(div: str, says: str) -> None:
    problem = narrative_problem(div)
    assert problem is not None and says in problem, (div, problem)


@pytest.mark.parametrize(
    "div",
    [
        f"<div {XHTML}><p>Anna <b>Jansen</b></p></div>",
        f"<div {XHTML}><table class='grid'><tr><td colspan='2'>x</td></tr></table></div>",
        f"<div {XHTML}><a href='https://eigendossier.nl/x'>link</a> <a name='here'>x</a></div>",
        f"<div {XHTML}><img src='#photo' alt='foto'/></div>",
        f"<div {XHTML}><img src='data:image/png;base64,iVBORw0KGgo=' alt='x'/></div>",
        f"<div {XHTML}><p style='background-image: url(tbl_bck1.png)'>x</p></div>",
        f"<div {XHTML} xml:lang='nl' lang='nl'><!-- a comment -->x</div>",
    ],
)
def test_ordinary_narratives_pass(div: str) -> None:
    assert narrative_problem(div) is None


def test_a_remembered_element_never_hides_a_fault() -> None:
    """Top-level elements that validated are remembered by their JSON: the same element
    again is valid, a changed one is checked afresh, a faulty one is never remembered,
    and an element with a ``_`` sibling is always checked with it."""
    validator = Validator(load_definitions())
    good = {
        "resourceType": "Observation",
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "1-8"}]},
        "valueQuantity": {"value": 3, "unit": "score"},
    }
    assert validator.validate(good) == [] == validator.validate(copy.deepcopy(good))
    typed_wrong = {**good, "valueQuantity": {"value": "3", "unit": "score"}}
    unknown = {**good, "code": {"coding": [{"system": "http://loinc.org", "kode": "1-8"}]}}
    for bad, where in (
        (typed_wrong, "Observation.value.value"),
        (unknown, "Observation.code.coding[0].kode"),
    ):
        for _ in range(2):
            assert [i.expression for i in validator.validate(bad)] == [(where,)]
    plan = {
        "resourceType": "CarePlan",
        "status": "active",
        "intent": "plan",
        "subject": {"reference": "Patient/p1"},
        "instantiatesUri": ["https://example.org/plan", None],  # null needs its extension
    }
    fault = [("CarePlan.instantiatesUri[1]",)]
    assert [i.expression for i in validator.validate(plan)] == fault
    extended = {**plan, "_instantiatesUri": [None, {"id": "x"}]}
    assert validator.validate(extended) == []
    assert [i.expression for i in validator.validate(plan)] == fault
