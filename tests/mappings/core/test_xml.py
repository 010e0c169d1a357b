"""FHIR XML: every example round-trips; hostile XML is refused."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from lxml import etree

from mappings.core.definitions import load_definitions
from mappings.core.errors import Invalid
from mappings.core.validate import Validator
from mappings.core.xml import XmlCodec
from tests.conftest import EXAMPLES, canonical, example

CODEC = XmlCodec(load_definitions())


@pytest.mark.parametrize("name", sorted(p.stem for p in EXAMPLES.glob("*.json")))
def test_every_example_round_trips_through_xml(name: str) -> None:
    resource = example(name)
    xml = CODEC.to_xml(resource)
    assert canonical(CODEC.from_xml(xml)) == canonical(resource)


def test_xml_is_in_the_fhir_namespace_with_value_attributes() -> None:
    xml = CODEC.to_xml({"resourceType": "Patient", "id": "a", "active": True})
    assert b'<Patient xmlns="http://hl7.org/fhir"><id value="a"/><active value="true"/>' in xml


def test_element_order_follows_the_definition() -> None:
    xml = CODEC.to_xml({"resourceType": "Patient", "gender": "male", "active": True, "id": "x"})
    root = etree.fromstring(xml)
    assert [etree.QName(c).localname for c in root] == ["id", "active", "gender"]


@pytest.mark.parametrize(
    "document",
    [
        b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;">]>'
        b'<Patient xmlns="http://hl7.org/fhir"><id value="&lol2;"/></Patient>',
        b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'
        b'<Patient xmlns="http://hl7.org/fhir"><id value="&xxe;"/></Patient>',
        b'<Patient xmlns="http://hl7.org/fhir"><id value="a"></Patient>',
        b"not xml at all",
        b'<Patient xmlns="http://example.org/other"/>',
        b'<Patient xmlns="http://hl7.org/fhir"><bogus value="1"/></Patient>',
        b'<Patient xmlns="http://hl7.org/fhir"><active value="maybe"/></Patient>',
        b'<Patient xmlns="http://hl7.org/fhir"><active value="true"/>'
        b'<active value="false"/></Patient>',
    ],
)
def test_hostile_or_broken_xml_is_refused(document: bytes) -> None:
    with pytest.raises(Invalid):
        CODEC.from_xml(document)


names = st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=30
).filter(lambda s: s.strip() == s and s.strip())


@settings(max_examples=60, deadline=None)
@given(
    family=names,
    given_names=st.lists(names, min_size=1, max_size=3),
    active=st.booleans(),
    births=st.integers(min_value=1, max_value=9),
)
def test_generated_patients_round_trip(
    family: str, given_names: list[str], active: bool, births: int
) -> None:
    patient = {
        "resourceType": "Patient",
        "active": active,
        "name": [{"family": family, "given": given_names}],
        "multipleBirthInteger": births,
    }
    if Validator(load_definitions()).validate(patient):
        return
    assert CODEC.from_xml(CODEC.to_xml(patient)) == patient
