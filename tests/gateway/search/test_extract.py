"""Index extraction: every parameter evaluates on every example; values come out typed."""

from __future__ import annotations

import datetime as dt
from typing import Any

import orjson
import pytest

from consent.audit import Access, audit_event
from consent.context import AccessContext
from consent.scopes import Scopes
from gateway.search.extract import (
    _VALUE_MEMO_BYTES,
    KIND_PARAMS,
    SET_FEWEST,
    SET_PARAMS,
    Extractor,
    IndexRows,
    kind_key,
    kinded,
    normalise,
    split_reference,
)
from gateway.search.paths import compares_values, compile_expression
from gateway.search.registry import Registry
from mappings.core.definitions import load_definitions
from tests.conftest import EXAMPLES, example
from tests.gateway.test_kinds import entry

DEFINITIONS = load_definitions()
REGISTRY = Registry(DEFINITIONS)
EXTRACTOR = Extractor(REGISTRY, "https://dossier.example.nl/fhir")


def expanded(extractor: Extractor, rows: IndexRows, resource: dict[str, Any]) -> IndexRows:
    """``rows`` one per value again: its kind's rows as the resource's own (ADR 0041)."""
    out = {table: list(table_rows) for table, table_rows in rows.items() if table != "kind"}
    for member in rows.get("kind", ()):
        for table, kind_rows in extractor.kind_rows(member["kind"], resource).items():
            if table != "kind":
                out.setdefault(table, []).extend(
                    {**row, "res_pk": member["res_pk"]} for row in kind_rows
                )
    return out


@pytest.mark.parametrize("name", sorted(p.stem for p in EXAMPLES.glob("*.json")))
def test_every_parameter_evaluates_on_every_example(name: str) -> None:
    resource = example(name)
    rows, _patients = EXTRACTOR.rows(1, resource)
    for table, table_rows in expanded(EXTRACTOR, rows, resource).items():
        for row in table_rows:
            assert row["res_type"] == resource["resourceType"] and row["param"], table


def _whole_expression_rows(extractor: Extractor, pk: int, resource: dict[str, Any]) -> set[Any]:
    """The rows as every parameter's whole expression on the whole resource gives them."""
    out = set()
    for param in extractor.registry.indexed(resource["resourceType"]):
        for typed in param.evaluate(resource):
            for row in getattr(extractor, f"_{param.type}")(param, typed):
                row.setdefault("param", param.code)
                out.add((param.type, tuple(sorted({**row, "res_pk": pk}.items()))))
    return out


def _rows_as_set(rows: dict[str, list[dict[str, Any]]]) -> set[Any]:
    found = set()
    for table, table_rows in rows.items():
        for row in table_rows:
            found.add((table, tuple(sorted((k, v) for k, v in row.items() if k != "res_type"))))
    return found


@pytest.mark.parametrize("name", sorted(p.stem for p in EXAMPLES.glob("*.json")))
def test_rows_remembered_per_item_equal_the_whole_expressions(name: str) -> None:
    """Rows are worked out per top-level item and remembered by the item's JSON; on the
    first sight and on a remembered one they are exactly the whole expressions' rows."""
    resource = example(name)
    extractor = Extractor(REGISTRY, "https://dossier.example.nl/fhir")
    expected = _whole_expression_rows(extractor, 3, resource)
    first, patients = extractor.rows(3, resource)
    again, patients_again = extractor.rows(3, resource)
    first, again = expanded(extractor, first, resource), expanded(extractor, again, resource)
    assert _rows_as_set(first) == expected == _rows_as_set(again)
    assert patients == patients_again
    assert sum(len(r) for r in first.values()) == len(expected)  # each value once


def test_remembered_rows_are_copies_of_their_own() -> None:
    extractor = Extractor(REGISTRY, "https://dossier.example.nl/fhir")
    resource = example("Observation-example")
    first, _ = extractor.rows(1, resource)
    first["token"][0]["code"] = "changed"
    again, _ = extractor.rows(2, resource)
    assert all(row["res_pk"] == 2 for rows in again.values() for row in rows)
    assert "changed" not in {row["code"] for row in again["token"]}


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
    rows = expanded(EXTRACTOR, EXTRACTOR.rows(1, event)[0], event)
    types = [r for r in rows["token"] if r["param"] == "entity-type"]
    assert [(r["system"], r["code"]) for r in types] == [
        ("http://terminology.hl7.org/CodeSystem/audit-entity-type", "2")
    ]
    targets = {r["target_id"] for r in rows["reference"] if r["param"] == "entity"}
    assert len(targets) == 50  # distinct values all stay


def test_access_log_entries_remembered_per_item_equal_the_whole_expressions() -> None:
    """The access log's own entries (same agents again and again, entities that repeat)."""
    base = "https://dossier.example.nl/fhir"
    extractor = Extractor(REGISTRY, base)
    gp = AccessContext(
        kind="backend",
        client_id="gp-app",
        scopes=Scopes((), frozenset()),
        subject="http://fhir.nl/fhir/NamingSystem/uzi-nr-pers|123",
        token_id="t1",
        user="Practitioner/pr1",
        organization="Organization/o1",
        purpose="TREAT",
        network_address="10.0.0.1",
    )
    at = dt.datetime(2026, 12, 2, 10, 0, tzinfo=dt.UTC)
    accesses = [
        Access("read", "0", at, "p1", ["Observation/o1"], consents=["Consent/c1"]),
        Access(
            "search-type",
            "0",
            at + dt.timedelta(seconds=1),
            "p1",
            [f"Observation/o{n}" for n in range(50)],
            query="Observation?subject=Patient/p1",
            consents=["Consent/c1"],
        ),
        Access("read", "4", at, "p2", ["CarePlan/k1"], description="refused: not permitted"),
    ]
    for who in (gp, None):
        for access in accesses:
            for _ in range(2):  # the second time from memory
                event = audit_event(who, access, base)
                event["id"] = "e1"
                rows, patients = extractor.rows(9, event)
                whole = expanded(extractor, rows, event)
                assert _rows_as_set(whole) == _whole_expression_rows(extractor, 9, event)
                assert patients == {access.patient}


def test_a_top_level_value_is_remembered_whole_by_its_json() -> None:
    """The records a repeated search disclosed (fifty entities) are worked out once and
    then found by their JSON in one lookup (ADR 0049): the rows are exactly the whole
    expressions', the second time as the first; a list that differs by one record has rows
    of its own; a value too large to remember is worked out whole each time, with the same
    rows."""
    base = "https://dossier.example.nl/fhir"
    extractor = Extractor(REGISTRY, base)
    records = [f"Observation/o{n}" for n in range(50)]
    event = entry(base, "e1", "search-type", records)
    remembered = extractor._remembered_value.cache_info()
    first = expanded(extractor, extractor.rows(9, event)[0], event)
    entries = extractor._remembered_value.cache_info()
    assert entries.misses > remembered.misses  # the entity list among them
    again = expanded(extractor, extractor.rows(9, event)[0], event)
    after = extractor._remembered_value.cache_info()
    assert after.misses == entries.misses and after.hits > entries.hits  # all from memory
    assert _rows_as_set(first) == _rows_as_set(again)
    assert _rows_as_set(first) == _whole_expression_rows(extractor, 9, event)
    other = entry(base, "e1", "search-type", [*records[:49], "Observation/o99"])
    rows = expanded(extractor, extractor.rows(9, other)[0], other)
    assert _rows_as_set(rows) == _whole_expression_rows(extractor, 9, other)
    named = {r["target_id"] for r in rows["reference"] if r["param"] == "entity"}
    assert "o99" in named and "o49" not in named
    large = entry(base, "e1", "search-type", [f"Observation/{'x' * 60}{n}" for n in range(200)])
    assert len(orjson.dumps(large["entity"])) > _VALUE_MEMO_BYTES
    before = extractor._remembered_value.cache_info()
    for _ in range(2):
        rows = expanded(extractor, extractor.rows(9, large)[0], large)
        assert _rows_as_set(rows) == _whole_expression_rows(extractor, 9, large)
    assert extractor._remembered_value.cache_info().misses == before.misses  # nothing new


def test_an_element_is_split_by_its_entries_only_where_every_parameter_names_one() -> None:
    """An access-log entity is worked out per entry (``what`` differs from entity to entity,
    ``type`` and ``role`` repeat); a contact point is not, since ``email`` looks at the
    element whole (``telecom.where(system='email')``)."""
    extractor = Extractor(REGISTRY, "https://dossier.example.nl/fhir")
    entity = extractor._subplan("AuditEvent", "entity")
    assert entity is not None and {"what", "type", "role"} <= set(entity)
    assert {param.code for param, _ in entity["what"]} == {"entity", "patient"}
    assert extractor._subplan("Patient", "telecom") is None
    assert extractor._subplan("Observation", "subject") is None  # resolve() on the element


def test_whole_resource_parameters_name_the_keys_they_start_from() -> None:
    """An Observation's composites read the resource itself: each is evaluated only where
    the resource holds its code and its kind of value (or components), and its rows are
    remembered by those keys alone."""
    extractor = Extractor(REGISTRY, "https://dossier.example.nl/fhir")
    _, whole = extractor._plan("Observation")
    plan = {param.code: (needs, keys) for param, needs, keys in whole}
    assert plan["code-value-date"] == (
        ((frozenset({"code"}), frozenset({"valueDateTime", "valuePeriod"})),),
        ("code", "valueDateTime", "valuePeriod"),
    )
    assert plan["combo-code-value-quantity"] == (
        ((frozenset({"code"}), frozenset({"valueQuantity"})), (frozenset({"component"}),)),
        ("code", "component", "valueQuantity"),
    )
    assert plan["gene-identifier"][0] == ((frozenset({"extension"}),),)
    scored = {
        "resourceType": "Observation",
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "1-8"}]},
        "valueQuantity": {"value": 3, "system": "http://unitsofmeasure.org", "code": "1"},
    }
    rows, _ = extractor.rows(1, scored)
    composites = {r["param"] for r in rows.get("composite", [])}
    assert composites == {"code-value-quantity", "combo-code-value-quantity"}
    assert _rows_as_set(rows) == _whole_expression_rows(extractor, 1, scored)


def test_a_local_reference_takes_its_types_rows_with_its_own_id() -> None:
    """A reference alone to a resource of this server (an access-log entity's ``what``, an
    Observation's subject) is worked out once per type and then only has its id put in:
    the rows are exactly those of the whole expressions, for every kind of id, and a
    reference with more than its ``reference`` (or to another server) is worked out whole."""
    extractor = Extractor(REGISTRY, "https://dossier.example.nl/fhir")
    subjects = [
        {"reference": "Patient/p1"},
        {"reference": "Patient/A.b-9"},
        {"reference": "Group/household-1"},
        {"reference": "Patient/p2", "display": "Jan"},
        {"reference": "Patient/p3/_history/2"},
        {"reference": "https://elders.example.nl/fhir/Patient/p4"},
    ]
    for subject in subjects:
        observation = {
            "resourceType": "Observation",
            "id": "o1",
            "status": "final",
            "code": {"text": "ZRM"},
            "subject": subject,
            "performer": [{"reference": "Practitioner/pr1"}, {"reference": "Organization/o1"}],
        }
        rows, patients = extractor.rows(4, observation)
        assert _rows_as_set(rows) == _whole_expression_rows(extractor, 4, observation)
        if subject["reference"].startswith("Patient/"):
            assert patients == {subject["reference"].split("/")[1]}
    assert extractor._template("Observation", "subject", "", "Patient") is not None
    assert {row["target_id"] for row in extractor.rows(5, observation)[0]["reference"]} >= {
        "pr1",
        "o1",
    }


def test_a_reference_is_worked_out_whole_where_its_rows_may_depend_on_more_than_its_id() -> None:
    """No template where an expression compares values (``where(type='composed-of')``),
    nor where the id would land outside a reference row's ``target_id`` (a string
    parameter on the reference itself): such a reference is evaluated whole."""
    by_reference = {
        "url": "https://dossier.example.nl/fhir/SearchParameter/subject-reference",
        "code": "subject-reference",
        "type": "string",
        "expression": "Observation.subject.reference",
    }
    registry = Registry(DEFINITIONS, {"Observation": [by_reference]})
    extractor = Extractor(registry, "https://dossier.example.nl/fhir")
    assert extractor._template("Observation", "subject", "", "Patient") is None
    observation = {
        "resourceType": "Observation",
        "status": "final",
        "code": {"text": "ZRM"},
        "subject": {"reference": "Patient/p1"},
    }
    rows, patients = extractor.rows(6, observation)
    assert _rows_as_set(rows) == _whole_expression_rows(extractor, 6, observation)
    assert {
        row["value_exact"] for row in rows["string"] if row["param"] == "subject-reference"
    } == {"Patient/p1"}
    assert patients == {"p1"}
    measure = Extractor(REGISTRY, "https://dossier.example.nl/fhir")
    assert measure._template("Measure", "relatedArtifact", "", "Measure") is None


def test_compares_values_tells_where_from_paths_and_type_filters() -> None:
    assert compares_values(
        compile_expression(DEFINITIONS, "Patient", "Patient.telecom.where(system='email')")
    )
    assert not compares_values(
        compile_expression(
            DEFINITIONS, "Observation", "Observation.subject.where(resolve() is Patient)"
        )
    )
    assert not compares_values(
        compile_expression(DEFINITIONS, "AuditEvent", "AuditEvent.entity.what")
    )


def _entry(action: str, consent: str, objects: list[str], *, id_: str = "e1") -> dict[str, Any]:
    """An access-log entry of the GP backend app, as the gateway writes it."""
    return entry("https://x", id_, action, objects, consents=[consent])


def test_an_access_log_entrys_repeating_values_are_its_kinds_rows() -> None:
    """ADR 0041: the rows of the parameters stored per kind are not the entry's own; one
    ``kind`` row names its kind, whose rows lie under the kind's key, below zero, with the
    kind's own ``kind`` row; the rest (references, the date, the address) stay its own."""
    extractor = Extractor(REGISTRY, "https://x")
    event = _entry("read", "Consent/c1", ["Observation/o1"])
    rows, patients = extractor.rows(5, event)
    assert patients == {"p1"}
    [member] = rows["kind"]
    kind = member["kind"]
    assert member == {"res_pk": 5, "res_type": "AuditEvent", "kind": kind} and kind < 0
    own = {row["param"] for table_rows in rows.values() for row in table_rows if "param" in row}
    assert own == {"address", "agent", "date", "entity", "patient"}
    of_kind = extractor.kind_rows(kind, event)
    assert of_kind["kind"] == [{"res_pk": kind, "res_type": "AuditEvent", "kind": kind}]
    shared = {
        row["param"]
        for table, table_rows in of_kind.items()
        if table != "kind"
        for row in table_rows
    }
    assert shared == KIND_PARAMS["AuditEvent"]
    assert all(row["res_pk"] == kind for table_rows in of_kind.values() for row in table_rows)


def test_entries_that_differ_in_what_they_name_share_a_kind() -> None:
    """Another entry's id, time and records leave the kind as it is, and so does another
    process (the key is a digest of the rows); another action or Consent makes another."""
    first, second = Extractor(REGISTRY, "https://x"), Extractor(REGISTRY, "https://x")
    read = _entry("read", "Consent/c1", ["Observation/o1"])
    other = _entry("read", "Consent/c1", ["Observation/o7"], id_="e2")
    other["recorded"] = "2026-12-06T11:00:00Z"
    kind = first.rows(1, read)[0]["kind"][0]["kind"]
    assert second.rows(2, other)[0]["kind"][0]["kind"] == kind
    searched = _entry("search-type", "Consent/c1", ["Observation/o1", "Observation/o2"])
    granted = _entry("read", "Consent/c2", ["Observation/o1"])
    kinds = {first.rows(3, event)[0]["kind"][0]["kind"] for event in (searched, granted)}
    assert len(kinds | {kind}) == 3


def test_a_kinds_rows_are_worked_out_again_when_no_longer_kept() -> None:
    extractor = Extractor(REGISTRY, "https://x")
    event = _entry("read", "Consent/c1", ["Observation/o1"])
    kind = extractor.rows(1, event)[0]["kind"][0]["kind"]
    kept = extractor.kind_rows(kind, event)
    extractor._kinds.clear()
    assert extractor.kind_rows(kind, event) == kept
    extractor._kinds.clear()
    with pytest.raises(ValueError, match="not of this kind"):
        extractor.kind_rows(kind, _entry("read", "Consent/c9", ["Observation/o1"]))


def test_the_parameters_stored_per_kind_are_tokens_and_uris_of_their_type() -> None:
    """Never one of Resource's own, which are searched across types and by the access
    filter (``_security``) straight from their rows."""
    for resource_type, codes in KIND_PARAMS.items():
        for code in codes:
            param = REGISTRY.get(resource_type, code)
            assert param is not None and param.type in ("token", "uri"), code
            assert REGISTRY.common(code) is None and not code.startswith("_"), code
    assert kinded("AuditEvent", "subtype") and kinded("AuditEvent", "altid:of-type")
    assert not kinded("AuditEvent", "patient") and not kinded("Observation", "code")


def test_the_parameters_stored_per_set_are_references_of_no_compartment() -> None:
    """ADR 0043: a set holds reference rows only, none that the patient compartment or a
    household is derived from (those stay the resource's own, read by the access filter)."""
    for resource_type, codes in SET_PARAMS.items():
        for code in codes:
            param = REGISTRY.get(resource_type, code)
            assert param is not None and param.type == "reference", code
            assert code not in REGISTRY.compartment.get(resource_type, ()), code
            assert code not in REGISTRY.household.get(resource_type, ()), code
            assert kinded(resource_type, code)


def test_an_entry_naming_many_records_names_their_set() -> None:
    """ADR 0043: from ``SET_FEWEST`` records on, an entry's ``entity`` rows are a set's,
    one more ``kind`` row naming it; entries naming the same records (another id, time or
    kind of access) share it, other records make another; fewer stay the entry's own."""
    extractor = Extractor(REGISTRY, "https://x")
    records = [f"Observation/o{n}" for n in range(SET_FEWEST)]
    searched = _entry("search-type", "Consent/c1", records)
    rows, patients = extractor.rows(5, searched)
    assert patients == {"p1"}
    assert "entity" not in {row["param"] for row in rows["reference"]}
    assert len(rows["kind"]) == 2
    kinds = [member["kind"] for member in rows["kind"]]
    [named] = [k for k in kinds if "reference" in extractor.kind_rows(k, searched)]
    of_set = extractor.kind_rows(named, searched)
    targets = sorted(f"{row['target_type']}/{row['target_id']}" for row in of_set["reference"])
    assert targets == sorted([*records, "Patient/p1"])
    assert set(of_set) == {"kind", "reference"}
    again = _entry("read", "Consent/c2", records[::-1], id_="e2")
    elsewhere = Extractor(REGISTRY, "https://x")  # another process: the same key
    assert named in {m["kind"] for m in elsewhere.rows(6, again)[0]["kind"]}
    other = _entry("search-type", "Consent/c1", [*records[1:], "Observation/o99"])
    assert named not in {m["kind"] for m in extractor.rows(7, other)[0]["kind"]}
    few = _entry("search-type", "Consent/c1", records[: SET_FEWEST - 2])  # with its patient
    few_rows = extractor.rows(8, few)[0]
    assert len(few_rows["kind"]) == 1
    assert sum(row["param"] == "entity" for row in few_rows["reference"]) == SET_FEWEST - 1


def test_a_kinds_key_is_below_zero_and_follows_its_rows_not_their_order() -> None:
    rows = [b'["token",[["code","read"]]]', b'["uri",[["value","x"]]]']
    key = kind_key("AuditEvent", rows)
    assert key < 0 and key == kind_key("AuditEvent", rows[::-1])
    assert key != kind_key("AuditEvent", rows[:1]) != kind_key("Provenance", rows)
