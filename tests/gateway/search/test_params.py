"""Search parameter parsing: escapes, modifiers, result parameters, unknown names."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.search.params import parse_search, split_escaped
from gateway.search.registry import Registry
from mappings.core.definitions import load_definitions
from mappings.core.errors import Invalid

REGISTRY = Registry(load_definitions())


def escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace(",", "\\,").replace("|", "\\|").replace("$", "\\$")


@given(st.lists(st.text(max_size=12), min_size=1, max_size=5))
def test_escaped_values_split_back_into_the_originals(values: list[str]) -> None:
    joined = ",".join(escape(v) for v in values)
    assert split_escaped(joined, ",") == values


def test_filters_modifiers_and_chains() -> None:
    search = parse_search(
        "Observation",
        [
            ("code", "http://loinc.org|1234,5678"),
            ("subject:Patient.name", "peter"),
            ("value-quantity", "gt5.4|http://unitsofmeasure.org|mg"),
            ("status:not", "final"),
        ],
        REGISTRY,
    )
    assert [(f.name, f.modifier, f.chain, f.values) for f in search.filters] == [
        ("code", None, None, ("http://loinc.org|1234", "5678")),
        ("subject", "Patient", "name", ("peter",)),
        ("value-quantity", None, None, ("gt5.4|http://unitsofmeasure.org|mg",)),
        ("status", "not", None, ("final",)),
    ]


def test_result_parameters() -> None:
    search = parse_search(
        "Patient",
        [
            ("_count", "5000"),
            ("_sort", "-birthdate,name"),
            ("_include", "Patient:organization"),
            ("_revinclude:iterate", "Observation:subject"),
            ("_summary", "count"),
            ("_total", "none"),
            ("_elements", "name, gender"),
        ],
        REGISTRY,
    )
    assert search.count == 1000
    assert search.sort == [("birthdate", True), ("name", False)]
    assert search.includes[0].param == "organization" and not search.includes[0].iterate
    assert search.revincludes[0].iterate
    assert (search.summary, search.total, search.elements) == ("count", "none", ("name", "gender"))


def test_unknown_parameters_warn_or_fail_under_strict_handling() -> None:
    search = parse_search("Patient", [("shoe-size", "44")], REGISTRY)
    assert search.filters == [] and search.warnings[0].severity == "warning"
    with pytest.raises(Invalid):
        parse_search("Patient", [("shoe-size", "44")], REGISTRY, strict=True)


@pytest.mark.parametrize(
    "items",
    [
        [("_count", "many")],
        [("_summary", "maybe")],
        [("_include", "Patient")],
        [("_total", "lots")],
    ],
)
def test_bad_result_parameters_are_refused(items: list[tuple[str, str]]) -> None:
    with pytest.raises(Invalid):
        parse_search("Patient", items, REGISTRY)
