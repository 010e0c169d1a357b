"""Index extraction: every parameter evaluates on every example; values come out typed."""

from __future__ import annotations

import pytest

from gateway.search.extract import Extractor, normalise, split_reference
from gateway.search.paths import compile_expression
from gateway.search.registry import Registry
from mappings.core.definitions import load_definitions
from tests.conftest import EXAMPLES, example

DEFINITIONS = load_definitions()
REGISTRY = Registry(DEFINITIONS)
EXTRACTOR = Extractor(REGISTRY, "https://dossier.example.nl/fhir")


@pytest.mark.parametrize("name", sorted(p.stem for p in EXAMPLES.glob("*.json")))
def test_every_parameter_evaluates_on_every_example(name: str) -> None:
    resource = example(name)
    rows, _patients = EXTRACTOR.rows(1, resource)
    for table, table_rows in rows.items():
        for row in table_rows:
            assert row["res_type"] == resource["resourceType"] and row["param"], table


def test_observation_rows_and_compartment() -> None:
    rows, patients = EXTRACTOR.rows(7, example("Observation-example"))
    tokens = {(r["param"], r["system"], r["code"]) for r in rows["token"]}
    assert ("code", "http://loinc.org", "29463-7") in tokens
    assert ("status", None, "final") in tokens
    references = {(r["param"], r["target_type"], r["target_id"]) for r in rows["reference"]}
    assert ("subject", "Patient", "example") in references
    assert patients == {"example"}
    quantities = [r for r in rows["quantity"] if r["param"] == "value-quantity"]
    assert quantities[0]["value"] == 185 and quantities[0]["code"] == "[lb_av]"


def test_resolve_filters_are_compiled_not_left_to_fhirpath() -> None:
    evaluate = compile_expression(
        DEFINITIONS, "Observation", "Observation.subject.where(resolve() is Patient)"
    )
    found = evaluate({"resourceType": "Observation", "subject": {"reference": "Group/1"}})
    assert found == []
    found = evaluate({"resourceType": "Observation", "subject": {"reference": "Patient/1"}})
    assert [t.type for t in found] == ["Reference"]


def test_references_split_into_local_and_remote() -> None:
    base = "https://dossier.example.nl/fhir"
    assert split_reference("Patient/1", base) == ("Patient", "1", None)
    assert split_reference(f"{base}/Patient/1/_history/2", base) == ("Patient", "1", None)
    assert split_reference("https://gp.example/fhir/Patient/9", base) == (
        "Patient",
        None,
        "https://gp.example/fhir/Patient/9",
    )


def test_normalise_folds_case_and_accents() -> None:
    assert normalise("Financiën ÉÉN Straße") == "financien een strasse"


def test_a_value_repeated_in_one_resource_is_indexed_once() -> None:
    entities = [
        {
            "what": {"reference": f"Observation/o{n}"},
            "type": {
                "system": "http://terminology.hl7.org/CodeSystem/audit-entity-type",
                "code": "2",
            },
        }
        for n in range(50)
    ]
    event = {
        "resourceType": "AuditEvent",
        "type": {
            "system": "http://terminology.hl7.org/CodeSystem/audit-event-type",
            "code": "rest",
        },
        "recorded": "2026-12-02T10:00:00Z",
        "agent": [{"who": {"reference": "Organization/gp"}, "requestor": True}],
        "source": {"observer": {"display": "Eigen Dossier"}},
        "entity": entities,
    }
    rows, _ = EXTRACTOR.rows(1, event)
    types = [r for r in rows["token"] if r["param"] == "entity-type"]
    assert [(r["system"], r["code"]) for r in types] == [
        ("http://terminology.hl7.org/CodeSystem/audit-entity-type", "2")
    ]
    targets = {r["target_id"] for r in rows["reference"] if r["param"] == "entity"}
    assert len(targets) == 50  # distinct values all stay
