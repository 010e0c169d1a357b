"""A search's statement compiled once per shape (ADR 0024): every search of a shape answers
with its own values, as the statement built for it alone would; values of another form,
another access filter, another sort take a shape of their own."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.interactions.model import Services
from gateway.loading import load
from gateway.search import compile as compile_module
from gateway.search.execute import run_search, stream_search
from gateway.search.params import SearchRequest, parse_search
from gateway.store.access import AccessFilter

LOINC = "http://loinc.org"
BSN = "http://fhir.nl/fhir/NamingSystem/bsn"


def _observation(n: int, patient: str, code: str, *, system: str | None = LOINC) -> dict[str, Any]:
    coding: dict[str, Any] = {"code": code}
    if system is not None:
        coding["system"] = system
    return {
        "resourceType": "Observation",
        "id": f"shape-o{n}",
        "status": "final" if n % 2 else "amended",
        "code": {"coding": [coding], "text": f"Meting {code} van {patient}"},
        "subject": {"reference": f"Patient/{patient}"},
        "effectiveDateTime": f"2024-0{1 + n % 9}-1{n % 10}",
    }


def _plan(n: int, patient: str, protocol: str) -> dict[str, Any]:
    return {
        "resourceType": "CarePlan",
        "id": f"shape-plan{n}",
        "status": "active",
        "intent": "plan",
        "subject": {"reference": f"Patient/{patient}"},
        "instantiatesUri": [f"http://example.org/protocols/{protocol}/v{n % 3}"],
    }


@pytest.fixture()
def dossiers(services: Services) -> None:
    patients = [
        {
            "resourceType": "Patient",
            "id": name,
            "identifier": [{"system": BSN, "value": bsn}],
            "name": [{"family": family, "given": [name.capitalize()]}],
            "birthDate": birth,
        }
        for name, bsn, family, birth in (
            ("anna", "999911120", "de Vries", "1950-04-03"),
            ("bram", "999911132", "Jansen", "1988-11-20"),
            ("cor", "999911144", "de Vries-Bakker", "1972-06-15"),
        )
    ]
    observations = [
        _observation(n, ("anna", "bram", "cor")[n % 3], ("8867-4", "29463-7", "x-local")[n % 4 % 3])
        for n in range(30)
    ]
    observations.append(_observation(30, "anna", "8867-4", system=None))  # a code of no system
    plans = [_plan(n, "anna", ("8867-4", "x-local")[n % 2]) for n in range(6)]
    load(services, [*patients, *observations, *plans], "test: searches of one shape")


def _request(services: Services, resource_type: str, query: list[tuple[str, str]]) -> SearchRequest:
    return parse_search(resource_type, [*query, ("_count", "100")], services.registry)


def _page_ids(services: Services, request: SearchRequest, access: AccessFilter) -> list[str]:
    with services.store.read() as session:
        page = run_search(session.connection, services.compiler, request, access)
    return [m.res_id for m in page.matches]


def _every_id(services: Services, request: SearchRequest, access: AccessFilter) -> list[str]:
    """The oracle: the statement built for this search alone, its values bound as
    literals (a stream has no shape), in the page's order (by key)."""
    with services.store.read() as session:
        chunks = stream_search(session.connection, services.compiler, request, access)
        return [m.res_id for chunk in chunks for m in chunk]


#: searches with a value of every form, each with another value of the same form after it
#: (so the second runs on the first's shape)
SEARCHES: list[tuple[str, list[tuple[str, str]]]] = [
    ("Observation", [("subject", "Patient/anna")]),
    ("Observation", [("subject", "Patient/bram")]),
    ("Observation", [("subject", "anna")]),
    ("Observation", [("subject", "cor")]),
    ("Observation", [("subject:Patient", "bram")]),
    ("Observation", [("subject:Patient", "cor")]),
    ("Observation", [("subject:Group", "Patient/cor")]),
    ("Observation", [("subject", "http://elsewhere.example/fhir/Patient/anna")]),
    ("Observation", [("code", "8867-4")]),
    ("Observation", [("code", "29463-7")]),
    ("Observation", [("code", f"{LOINC}|8867-4")]),
    ("Observation", [("code", f"{LOINC}|x-local")]),
    ("Observation", [("code", "|8867-4")]),
    ("Observation", [("code", "|29463-7")]),
    ("Observation", [("code", f"{LOINC}|")]),
    ("Observation", [("code", "http://snomed.info/sct|")]),
    ("Observation", [("code:text", "meting 8867")]),
    ("Observation", [("code:text", "van bram")]),
    ("Observation", [("date", "2024-03")]),
    ("Observation", [("date", "2024-05")]),
    *[
        ("Observation", [("date", f"{prefix}2024-04-14")])
        for prefix in ("eq", "ne", "gt", "lt", "ge", "le", "sa", "eb", "ap")
    ],
    *[
        ("Observation", [("date", f"{prefix}2024-06")])
        for prefix in ("eq", "ne", "gt", "lt", "ge", "le", "sa", "eb", "ap")
    ],
    ("CarePlan", [("instantiates-uri", "http://example.org/protocols/x-local/v1")]),
    ("CarePlan", [("instantiates-uri", "http://example.org/protocols/8867-4/v0")]),
    ("CarePlan", [("instantiates-uri:below", "http://example.org/protocols/8867")]),
    ("CarePlan", [("instantiates-uri:below", "http://example.org/protocols/x")]),
    ("CarePlan", [("instantiates-uri:above", "http://example.org/protocols/x-local/v2/z")]),
    ("CarePlan", [("instantiates-uri:above", "http://example.org/protocols/8867-4/v1/y")]),
    ("Patient", [("family", "de vries")]),
    ("Patient", [("family", "jans")]),
    ("Patient", [("family:exact", "de Vries")]),
    ("Patient", [("family:exact", "Jansen")]),
    ("Patient", [("family:contains", "bakk")]),
    ("Patient", [("family:contains", "ans")]),
    ("Patient", [("identifier:of-type", "http://x|y|999911120")]),
    ("Patient", [("birthdate", "1950")]),
    ("Observation", [("subject", "Patient/anna,Patient/cor"), ("code", f"{LOINC}|8867-4")]),
    ("Observation", [("subject", "Patient/bram,Patient/anna"), ("code", f"{LOINC}|29463-7")]),
    ("Observation", [("subject", "Patient/anna"), ("date", "ge2024-03"), ("status", "final")]),
    # _lastUpdated before the filter that drives: the statement binds the driving one first
    ("Observation", [("_lastUpdated", "gt2000-01-01"), ("subject", "Patient/anna")]),
    ("Observation", [("_lastUpdated", "lt2000-01-01"), ("subject", "Patient/bram")]),
    ("Observation", [("_lastUpdated", "gt2000-01-01"), ("subject", "Patient/cor")]),
    ("Observation", [("_lastUpdated", "ge2000,lt1990"), ("code", "8867-4")]),
    ("Observation", [("_lastUpdated", "lt1990,ge2000"), ("code", "29463-7")]),
    ("Patient", [("_lastUpdated", "gt2000")]),
    ("Patient", [("_lastUpdated", "gt2999")]),
    ("Observation", [("subject", "Patient/cor"), ("date", "ge2024-05"), ("status", "amended")]),
]


def test_every_search_of_a_shape_answers_as_its_own_statement(
    services: Services, dossiers: None
) -> None:
    unrestricted = AccessFilter.unrestricted()
    for resource_type, query in SEARCHES:
        request = _request(services, resource_type, query)
        expected = _every_id(services, request, unrestricted)
        assert _page_ids(services, request, unrestricted) == expected, query
        assert _page_ids(services, request, unrestricted) == expected, query  # its shape kept


def test_the_searches_reach_every_form(services: Services) -> None:
    """The list above holds a value of each form there is: a form added later is tested."""
    reached = set()
    for resource_type, query in SEARCHES:
        request = _request(services, resource_type, query)
        for item in request.filters:
            param = services.registry.get(resource_type, item.name)
            assert param is not None
            reached |= {services.compiler.form(param, v, item.modifier)[0] for v in item.values}
    assert reached >= set(compile_module._CLAUSES) | set(compile_module._DATES)


def test_a_shape_is_compiled_once_and_other_values_keep_it(
    services: Services, dossiers: None
) -> None:
    unrestricted = AccessFilter.unrestricted()
    shapes = services.compiler.shapes
    shapes.clear()
    first = _request(services, "Observation", [("subject", "Patient/anna"), ("code", "8867-4")])
    second = _request(services, "Observation", [("subject", "Patient/bram"), ("code", "29463-7")])
    anna = _page_ids(services, first, unrestricted)
    assert len(shapes) == 1
    bram = _page_ids(services, second, unrestricted)
    assert len(shapes) == 1
    assert anna and bram and not set(anna) & set(bram)
    assert anna == _every_id(services, first, unrestricted)
    assert bram == _every_id(services, second, unrestricted)
    # a value of another form, another sort, another page size: shapes of their own
    _page_ids(services, _request(services, "Observation", [("subject", "anna")]), unrestricted)
    sorted_request = _request(services, "Observation", [("subject", "Patient/anna")])
    sorted_request.sort = [("date", True)]
    _page_ids(services, sorted_request, unrestricted)
    assert len(shapes) == 3


def test_searches_outside_every_shape_are_built_for_themselves(
    services: Services, dossiers: None
) -> None:
    """A chain, ``_id``, ``:missing``, ``:not``, a quantity: no shape is kept for them."""
    unrestricted = AccessFilter.unrestricted()
    shapes = services.compiler.shapes
    shapes.clear()
    for query in (
        [("subject.family", "de Vries")],
        [("_id", "shape-o1,shape-o2")],
        [("code:missing", "false")],
        [("status:not", "final")],
        [("value-quantity", "gt5")],
    ):
        request = _request(services, "Observation", query)
        assert _page_ids(services, request, unrestricted) == _every_id(
            services, request, unrestricted
        ), query
    assert not shapes


def test_an_access_filter_is_part_of_the_shape(services: Services, dossiers: None) -> None:
    """The same search under two clients' access: each sees only what it may, though the
    statements differ only in what the access filter binds."""
    only_anna, only_bram = (
        AccessFilter(
            resource_types=frozenset({"Observation"}),
            patients=frozenset({name}),
            compartment_types=frozenset({"Observation"}),
        )
        for name in ("anna", "bram")
    )
    request = _request(services, "Observation", [("code", f"{LOINC}|8867-4")])
    seen_by_anna = _page_ids(services, request, only_anna)
    seen_by_bram = _page_ids(services, request, only_bram)
    assert seen_by_anna == _every_id(services, request, only_anna)
    assert seen_by_bram == _every_id(services, request, only_bram)
    everything = _every_id(services, request, AccessFilter.unrestricted())
    assert seen_by_anna and seen_by_bram
    assert not set(seen_by_anna) & set(seen_by_bram)
    assert set(seen_by_anna) | set(seen_by_bram) < set(everything)  # cor's are seen by neither
    assert _page_ids(services, request, AccessFilter.nothing()) == []


def test_pages_of_a_shape_are_their_own_slices(services: Services, dossiers: None) -> None:
    unrestricted = AccessFilter.unrestricted()
    everything = _every_id(
        services, _request(services, "Observation", [("code", "8867-4")]), unrestricted
    )
    pages = []
    for offset in range(0, len(everything), 3):
        request = parse_search(
            "Observation",
            [("code", "8867-4"), ("_count", "3"), ("_offset", str(offset))],
            services.registry,
        )
        pages.extend(_page_ids(services, request, unrestricted))
    assert pages == everything
