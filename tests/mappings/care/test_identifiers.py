"""Dutch identifiers: the BSN eleven test and the builders that refuse wrong numbers."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mappings.care.base import MappingError
from mappings.care.people import (
    CareOrganization,
    Client,
    NetworkMember,
    Professional,
    client_from_fhir,
    client_to_fhir,
    network_member_from_fhir,
    network_member_to_fhir,
    organization_from_fhir,
    organization_to_fhir,
    professional_from_fhir,
    professional_to_fhir,
)
from mappings.nl.identifiers import (
    AGB,
    BSN,
    SYSTEMS,
    URA,
    UZOVI,
    identifier_error,
    identifier_issues,
    is_bsn,
    naming_systems,
)
from tests.mappings.care.conftest import faults

WEIGHTS = (9, 8, 7, 6, 5, 4, 3, 2)


def _with_check_digit(eight: str) -> str | None:
    """The BSN completing ``eight`` digits, if one exists (the check digit is 0..9)."""
    total = sum(int(d) * w for d, w in zip(eight, WEIGHTS, strict=True))
    last = total % 11
    return None if last == 10 else eight + str(last)


@pytest.mark.parametrize("good", ["999911120", "111222333", "123456782", "012345672"])
def test_known_good_bsns_pass(good: str) -> None:
    assert is_bsn(good)


@pytest.mark.parametrize(
    "bad",
    [
        "999911121",
        "123456789",
        "000000000",
        "12345678",
        "1234567890",
        "12345678a",
        "\uff11\uff12\uff13\uff14\uff15\uff16\uff17\uff18\uff12",
    ],
)
def test_wrong_bsns_fail(bad: str) -> None:
    assert not is_bsn(bad)


@given(st.from_regex(r"[0-9]{8}", fullmatch=True), st.integers(0, 8), st.integers(1, 9))
def test_the_eleven_test_catches_every_single_digit_error(
    eight: str, place: int, shift: int
) -> None:
    bsn = _with_check_digit(eight)
    weighted = sum(int(d) * w for d, w in zip(eight, WEIGHTS, strict=True))
    if bsn is None or weighted == int(bsn[-1]):  # no check digit, or a sum of 0 (refused)
        return
    assert is_bsn(bsn)
    digits = list(bsn)
    digits[place] = str((int(digits[place]) + shift) % 10)
    assert not is_bsn("".join(digits))


@pytest.mark.parametrize(
    ("system", "good", "bad"),
    [(AGB, "01234567", "1234567"), (URA, "12345678", "123456789"), (UZOVI, "9664", "96640")],
)
def test_other_systems_check_their_digits(system: str, good: str, bad: str) -> None:
    assert identifier_error(system, good) is None
    assert identifier_error(system, bad)
    assert identifier_error("urn:oid:1.2.3", "anything") is None  # not ours to judge


def test_naming_systems_name_uri_and_oid() -> None:
    systems = naming_systems("2026-11-22")
    assert {s["uniqueId"][0]["value"] for s in systems} == set(SYSTEMS)
    bsn = next(s for s in systems if s["uniqueId"][0]["value"] == BSN)
    assert {"type": "oid", "value": "2.16.840.1.113883.2.4.6.3", "preferred": False} in bsn[
        "uniqueId"
    ]
    for system in systems:
        assert faults(system) == []


def test_builders_refuse_wrong_numbers_naming_the_element() -> None:
    with pytest.raises(MappingError, match="eleven test") as raised:
        Client("anna", "Jansen", bsn="123456789")
    assert raised.value.issues[0].expression == ("Patient.identifier",)
    with pytest.raises(MappingError, match="AGB-code has exactly 8 digits") as raised:
        Professional("sanne", "de Vries", agb="1234")
    assert raised.value.issues[0].expression == ("Practitioner.identifier",)
    with pytest.raises(MappingError, match="URA") as raised:
        CareOrganization("gp", "Praktijk", ura="123456789")
    assert raised.value.issues[0].expression == ("Organization.identifier",)
    wrong = client_to_fhir(Client("anna", "Jansen", bsn="999911120"))
    wrong["identifier"][0]["value"] = "999911121"
    with pytest.raises(MappingError, match="eleven test"):
        client_from_fhir(wrong)


def test_people_round_trip_and_validate() -> None:
    cases = [
        (
            Client(
                "anna",
                "Jansen",
                ("Anna", "Maria"),
                "999911120",
                dt.date(1948, 5, 17),
                "female",
                "020-1234567",
            ),
            client_to_fhir,
            client_from_fhir,
        ),
        (
            Professional("sanne", "de Vries", ("Sanne",), "12345678", "123456789", "19012345601"),
            professional_to_fhir,
            professional_from_fhir,
        ),
        (
            CareOrganization("gp", "Huisartsenpraktijk Zuid", "01234567", "12345678", None, "net"),
            organization_to_fhir,
            organization_from_fhir,
        ),
        (
            NetworkMember("lisa", "anna", "Jansen", "DAU", ("Lisa",), "06-12345678"),
            network_member_to_fhir,
            network_member_from_fhir,
        ),
    ]
    for model, to_fhir, from_fhir in cases:
        resource = to_fhir(model)  # type: ignore[operator]
        assert faults(resource) == []
        assert from_fhir(resource) == model  # type: ignore[operator]


def test_our_systems_stand_in_json_as_they_are() -> None:
    """identifier_issues skips a resource whose JSON holds none of our system URIs: sound
    only while no URI has a character JSON escapes."""
    for uri in SYSTEMS:
        assert uri.isascii() and '"' not in uri and "\\" not in uri
        assert all(ord(c) >= 0x20 for c in uri)


@pytest.mark.parametrize("where", ["own", "reference", "contained", "extension"])
def test_identifier_issues_finds_a_wrong_number_wherever_it_stands(where: str) -> None:
    wrong = {"system": BSN, "value": "123456789"}
    resource: dict[str, object] = {"resourceType": "Observation", "status": "final"}
    expected = {
        "own": "Observation.identifier[0].value",
        "reference": "Observation.subject.identifier.value",
        "contained": "Observation.contained[0].identifier[0].value",
        "extension": "Observation.extension[0].valueIdentifier.value",
    }[where]
    if where == "own":
        resource["identifier"] = [wrong]
    elif where == "reference":
        resource["subject"] = {"identifier": wrong}
    elif where == "contained":
        resource["contained"] = [{"resourceType": "Patient", "identifier": [wrong]}]
    else:
        resource["extension"] = [{"url": "https://example.org/x", "valueIdentifier": wrong}]
    issues = identifier_issues(resource)
    assert [i.expression for i in issues] == [(expected,)]
    resource_ok = {"resourceType": "Observation", "status": "final", "code": {"text": BSN}}
    assert identifier_issues(resource_ok) == []  # the URI as text only: walked, nothing found
