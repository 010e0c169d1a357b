"""The iWmo WMO323 writer: every file validates against the vendored XSD, the message rules
of the iWmo validation are each checked, and the totals are the sum of the lines."""

from __future__ import annotations

import dataclasses
import datetime as dt
from importlib import resources

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.declarations.wmo323 import (
    Client,
    Declaratie,
    Prestatie,
    rule_faults,
    total,
    wmo323_xml,
    xsd_faults,
)

APRIL = (dt.date(2026, 4, 1), dt.date(2026, 4, 30))


def _line(reference: str = "RN1", **changes: object) -> Prestatie:
    line = Prestatie(
        reference, 20072, "01", "01A03", *APRIL, volume=4, eenheid="04", bedrag=5000, tarief=1250
    )
    return dataclasses.replace(line, **changes)  # type: ignore[arg-type]


def _message(*clients: Client, **changes: object) -> Declaratie:
    message = Declaratie(
        "65656055",
        "0384",
        "765432198",
        dt.date(2026, 5, 6),
        "DN001",
        *APRIL,
        clients=clients or (Client("999900006", (_line(),)),),
    )
    return dataclasses.replace(message, **changes)  # type: ignore[arg-type]


def test_the_vendored_sample_validates() -> None:
    sample = resources.files("mappings.nl").joinpath("data", "iwmo", "sample-WMO323.xml")
    assert xsd_faults(sample.read_bytes()) == []


def test_a_message_with_a_debit_and_a_credit_validates_and_totals() -> None:
    message = _message(
        Client("999900006", (_line("RN1"), _line("RN2", code="01A04", bedrag=24000))),
        Client("999900018", (_line("RN3", vorig_referentie="RN0-MAART", bedrag=3000),)),
    )
    xml = wmo323_xml(message)
    assert xsd_faults(xml) == []
    assert rule_faults(message) == []
    assert total(message) == (26000, True)
    assert b"<iwmo:TotaalBedrag>26000</iwmo:TotaalBedrag>" in xml
    assert b"<iwmo:VorigReferentieNummer>RN0-MAART</iwmo:VorigReferentieNummer>" in xml


def test_the_xsd_catches_what_the_model_allows() -> None:
    for broken in (_message(gemeente="384"), _message(afzender="1234"), _message(nummer="")):
        assert xsd_faults(wmo323_xml(broken)), broken


@pytest.mark.parametrize(
    ("message", "rule"),
    [
        (_message(begin=dt.date(2026, 4, 2)), "CS340"),
        (_message(eind=dt.date(2026, 5, 31)), "CS340"),
        (_message(nummer="DN-001"), "CS319"),
        (_message(dagtekening=dt.date(2026, 4, 15)), "TR137"),
        (_message(Client("123456789", (_line(),))), "CS002"),
        (_message(Client("999900006", (_line(eind=dt.date(2026, 5, 2)),))), "CS337"),
        (_message(Client("999900006", (_line(tarief=None),))), "CD087"),
        (_message(Client("999900006", (_line(eenheid="83", tarief=None, volume=1),))), "CS339"),
        (_message(Client("999900006", (_line(bedrag=0, vorig_referentie="X"),))), "CS325"),
        (_message(Client("999900006", (_line("A"), _line("A", code="01A04")))), "TR101"),
        (_message(Client("999900006", (_line(),)), Client("999900006", (_line("B"),))), "TR101"),
        (
            _message(
                Client(
                    "999900006",
                    (_line("A", vorig_referentie="Z"), _line("B", vorig_referentie="Z")),
                )
            ),
            "TR315",
        ),
        (_message(Client("999900006", (_line("A"), _line("B", vorig_referentie="A")))), "TR316"),
        (_message(Client("999900006", (_line("A"), _line("B")))), "TR416"),
        (
            _message(
                Client("999900006", (_line(begin=dt.date(2020, 4, 1), eind=dt.date(2020, 4, 30)),))
            ),
            "CS100",
        ),
    ],
)
def test_each_message_rule_is_checked(message: Declaratie, rule: str) -> None:
    assert rule in {f.rule for f in rule_faults(message)}


lines = st.builds(
    lambda i, volume, tarief, credit, day: _line(
        f"RN{i}",
        toewijzing=100 + i,
        begin=dt.date(2026, 4, day),
        volume=volume,
        tarief=tarief,
        bedrag=volume * tarief,
        vorig_referentie=f"OLD{i}" if credit else None,
    ),
    st.integers(0, 10**6),
    st.integers(1, 999),
    st.integers(1, 10_000),
    st.booleans(),
    st.integers(1, 30),
)


@settings(max_examples=60, deadline=None)
@given(st.lists(lines, min_size=1, max_size=12, unique_by=lambda p: p.referentie))
def test_any_set_of_lines_gives_a_valid_file_whose_total_is_the_sum(
    found: list[Prestatie],
) -> None:
    message = _message(Client("999900006", tuple(found)))
    assert xsd_faults(wmo323_xml(message)) == []
    debit = sum(p.bedrag for p in found if p.debet)
    credit = sum(p.bedrag for p in found if not p.debet)
    assert total(message) == (abs(debit - credit), debit >= credit)
    assert [f for f in rule_faults(message) if f.rule not in ("CS325",)] == []
