"""Declaring from a real dossier (the store of this run: SQLite or PostgreSQL).

The demo month gives the golden files; corrections, answers and bad input each change the
dossier the way a care team or a payer would, and the files and Claims that come out are
checked against the vendored XSD, the message rules and the AW319 layout.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import io
import os
import pathlib
import uuid
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adapters.declarations.aw319 import aw319_faults
from adapters.declarations.declare import declare, read_answer, status
from adapters.declarations.gds801 import UNVERIFIED
from adapters.declarations.month import DeclarationError
from adapters.declarations.wmo323 import read_wmo323, rule_faults, total, xsd_faults
from adapters.declarations.wmo325 import wmo325_xml
from gateway.interactions.dispatch import Dispatcher
from gateway.interactions.dossier import InProcessDossier
from gateway.interactions.model import Services
from gateway.loading import load
from gateway.store.schema import search_token
from mappings.care.declarations import line_from_fhir
from mappings.care.demo import demo_dossier
from mappings.care.visits import Visit, visit_to_fhir
from mappings.core.errors import Conflict, Invalid

TODAY = dt.date(2026, 12, 2)
MONTH = "2026-11"
GOLDEN = pathlib.Path(__file__).parents[2] / "data" / "golden" / "declarations"
_LOCAL = ZoneInfo("Europe/Amsterdam")


class FixedClock:
    def __init__(self, day: dt.date) -> None:
        self.moment = dt.datetime(day.year, day.month, day.day, 9, tzinfo=_LOCAL)

    def now(self) -> dt.datetime:
        return self.moment


def _dossier(services: Services) -> InProcessDossier:
    fixed = dataclasses.replace(services, clock=FixedClock(TODAY))
    return InProcessDossier(
        fixed, "declarations (tests)", source="declare", requester="test", router=Dispatcher()
    )


@pytest.fixture()
def demo(services: Services) -> InProcessDossier:
    load(services, demo_dossier(TODAY), "test: the demo")
    return _dossier(services)


def _resources(services: Services, resource_type: str) -> list[dict[str, Any]]:
    dossier = _dossier(services)
    return [r for chunk in dossier.search(resource_type, []) for r in chunk]


def _count(services: Services) -> dict[str, int]:
    return {t: len(_resources(services, t)) for t in ("Claim", "ClaimResponse", "AuditEvent")}


def _put(services: Services, resource: dict[str, Any]) -> None:
    load(services, [resource], "test: a change")


def _visit(services: Services, visit_id: str) -> dict[str, Any]:
    found = [r for r in _resources(services, "Encounter") if r["id"] == visit_id]
    assert found, visit_id
    return found[0]


# -- the demo month: golden files ----------------------------------------------------


@pytest.mark.parametrize("format_code", ["wmo323", "aw319", "gds801"])
def test_the_demo_month_gives_the_golden_files(
    demo: InProcessDossier, tmp_path: pathlib.Path, format_code: str
) -> None:
    result = declare(demo, format_code, MONTH, out_dir=tmp_path)
    written = sorted(p for p in tmp_path.iterdir())
    assert [m.path for m in result.messages] == written
    assert len(written) == (2 if format_code != "gds801" else 1)  # one file per payer
    for path in written:
        golden = GOLDEN / path.name
        if os.environ.get("EIGENDOSSIER_REGENERATE_GOLDEN"):
            GOLDEN.mkdir(parents=True, exist_ok=True)
            golden.write_bytes(path.read_bytes())
        assert path.read_bytes() == golden.read_bytes(), path.name
        _check_file(path, format_code)


def _check_file(path: pathlib.Path, format_code: str) -> None:
    data = path.read_bytes()
    if format_code == "wmo323":
        assert xsd_faults(data) == []
        message = read_wmo323(data)
        assert rule_faults(message) == []
        cents, debet = total(message)
        lines = sum(p.bedrag if p.debet else -p.bedrag for _, p in message.prestaties())
        assert (cents if debet else -cents) == lines
    elif format_code == "aw319":
        text = data.decode("latin-1")
        assert aw319_faults(text) == []
        assert all(len(line) == 310 for line in text.split("\r\n")[:-1])
    else:
        assert UNVERIFIED.encode() in data[:400]


def test_a_claim_per_line_in_each_clients_dossier_and_an_access_log_entry(
    demo: InProcessDossier, services: Services, tmp_path: pathlib.Path
) -> None:
    result = declare(demo, "wmo323", MONTH, out_dir=tmp_path)
    claims = [line_from_fhir(c) for c in _resources(services, "Claim")]
    assert {c.patient for c in claims} == {"anna", "karim", "fatima"}
    assert len(claims) == sum(len(m.lines) for m in result.messages) == 3
    karim = next(c for c in claims if c.patient == "karim")
    assert karim.payer == "gemeente-amsterdam"
    assert karim.allocation == "karim-wmo"
    assert len(karim.encounters) == 4  # the month's four contacts, summed
    assert karim.quantity == 4  # 90 + 75 + 80 + 20 minutes: 265, rounded half up to hours
    assert karim.cents == 4 * 6890
    events = _resources(services, "AuditEvent")
    logged = {
        e["entity"][0]["what"]["reference"]
        for e in events
        if e.get("purposeOfEvent", [{}])[0].get("coding", [{}])[0].get("code") == "HPAYMT"
    }
    assert logged == {"Patient/anna", "Patient/karim", "Patient/fatima"}
    for event in events:
        assert "999911" not in str(event)  # never a BSN in the log


def test_a_municipalitys_own_tariff_wins(demo: InProcessDossier, services: Services) -> None:
    declare(demo, "wmo323", MONTH, payer="0479")
    (fatima,) = [line_from_fhir(c) for c in _resources(services, "Claim")]
    assert fatima.unit_cents == 7125  # Zaanstad's contract, not the general 6890


# -- idempotency and corrections ----------------------------------------------------


def test_a_second_run_declares_only_what_is_new(
    demo: InProcessDossier, services: Services, tmp_path: pathlib.Path
) -> None:
    declare(demo, "aw319", MONTH, out_dir=tmp_path / "1")
    again = declare(demo, "aw319", MONTH, out_dir=tmp_path / "2")
    assert again.messages == [] and again.plan.unchanged == 3
    assert not (tmp_path / "2").exists()
    assert len(_resources(services, "Claim")) == 3


def test_a_changed_visit_is_credited_and_declared_again_after_the_answer(
    demo: InProcessDossier, services: Services, tmp_path: pathlib.Path
) -> None:
    first = declare(demo, "wmo323", MONTH, out_dir=tmp_path / "1")
    visit = _visit(services, "karim-202611-04")
    visit["length"]["value"] = 150  # the visit took longer than recorded
    _put(services, visit)
    held = declare(demo, "wmo323", MONTH, out_dir=tmp_path / "2")
    assert held.messages == [] and len(held.plan.held) == 1  # waits for the municipality
    assert "Patient/karim" in held.plan.held[0].where
    amsterdam = next(m for m in first.messages if m.payer.municipality == "0363")
    assert amsterdam.path is not None
    sent = read_wmo323(amsterdam.path.read_bytes())
    read_answer(demo, wmo325_xml(sent, "ANT1", TODAY))  # everything accepted
    corrected = declare(demo, "wmo323", MONTH, out_dir=tmp_path / "3")
    (message,) = corrected.messages
    assert message.path is not None
    data = message.path.read_bytes()
    assert xsd_faults(data) == []
    again = read_wmo323(data)
    assert rule_faults(again) == []
    credit, debit = (p for _, p in again.prestaties())
    original = next(
        line
        for line in (line_from_fhir(c) for c in _resources(services, "Claim"))
        if line.patient == "karim"
        and not line.credit
        and line.id != f"decl-{debit.referentie.lower()}"
    )
    assert credit.vorig_referentie == original.reference and not credit.debet
    assert credit.bedrag == original.cents
    assert debit.debet and debit.volume == 5  # 325 minutes now: five hours
    assert original.state == "credited"
    rows = {(r.format, r.code): r for r in status(demo, MONTH)}
    assert rows[("wmo323", "0363")].credited == 1


def test_a_cancelled_visit_is_credited(
    demo: InProcessDossier, services: Services, tmp_path: pathlib.Path
) -> None:
    declare(demo, "aw319", MONTH, out_dir=tmp_path / "1")
    for day in ("05", "12", "19", "26"):  # Piet's care did not take place after all
        visit = _visit(services, f"piet-202611-{day}")
        visit["status"] = "cancelled"
        _put(services, visit)
    result = declare(demo, "aw319", MONTH, out_dir=tmp_path / "2")
    (message,) = result.messages
    assert message.path is not None
    text = message.path.read_bytes().decode("latin-1")
    assert aw319_faults(text) == []
    (line,) = [r for r in text.split("\r\n") if r.startswith("04")]
    assert line[180] == "C" and line[193] == "C" and line[214:234].strip()  # 0427, 0430, 0432
    assert message.net_cents < 0


def test_a_rejected_line_is_declared_again(
    demo: InProcessDossier, services: Services, tmp_path: pathlib.Path
) -> None:
    first = declare(demo, "wmo323", MONTH, out_dir=tmp_path / "1", payer="0479")
    (message,) = first.messages
    assert message.path is not None
    sent = read_wmo323(message.path.read_bytes())
    reference = sent.clients[0].prestaties[0].referentie
    answer = read_answer(demo, wmo325_xml(sent, "ANT2", TODAY, {reference: ["9338"]}))
    assert (answer.accepted, answer.rejected, answer.codes) == (0, 1, {"9338": 1})
    (response,) = _resources(services, "ClaimResponse")
    assert response["outcome"] == "error"
    assert response["error"][0]["code"]["coding"][0]["code"] == "9338"
    again = declare(demo, "wmo323", MONTH, out_dir=tmp_path / "2", payer="0479")
    (line,) = again.messages[0].lines
    assert line.reference != reference and not line.credit


def test_a_whole_message_rejected_rejects_every_line(
    demo: InProcessDossier, tmp_path: pathlib.Path
) -> None:
    first = declare(demo, "wmo323", MONTH, out_dir=tmp_path, payer="0363")
    assert first.messages[0].path is not None
    sent = read_wmo323(first.messages[0].path.read_bytes())
    answer = read_answer(demo, wmo325_xml(sent, "ANT3", TODAY, message_rejected=True))
    assert (answer.accepted, answer.rejected) == (0, 2)


# -- answers that cannot be taken ---------------------------------------------------


def test_answers_that_cannot_be_taken(
    demo: InProcessDossier, services: Services, tmp_path: pathlib.Path
) -> None:
    declared = declare(demo, "wmo323", MONTH, out_dir=tmp_path, payer="0363")
    assert declared.messages[0].path is not None
    sent = read_wmo323(declared.messages[0].path.read_bytes())
    first = sent.clients[0].prestaties[0].referentie
    before = _count(services)
    cases = {
        b"<not xml": "not well-formed",
        b"<?xml version='1.0'?><a/>": "Not an iWmo 3.2 WMO325",
        b"01429" + b" " * 305: "AW320",
        wmo325_xml(dataclasses.replace(sent, identificatie="NIEVERSTUURD"), "X", TODAY): (
            "never sent"
        ),
        wmo325_xml(dataclasses.replace(sent, afzender="11111111"), "X", TODAY): "another provider",
        wmo325_xml(sent, "X", TODAY, {first: ["9338"]}).replace(first.encode(), b"ONBEKEND"): (
            "not in the message"
        ),
        b'<!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><x>&e;</x>': "DOCTYPE",
        b'<!DOCTYPE Bericht><Bericht xmlns="http://www.istandaarden.nl/iwmo/3_2/wmo325/schema"/>': (
            "DOCTYPE"
        ),
    }
    for data, expected in cases.items():
        with pytest.raises(DeclarationError) as caught:
            read_answer(demo, data)
        assert expected in str(caught.value), (data[:40], str(caught.value))
    assert _count(services) == before
    read_answer(demo, wmo325_xml(sent, "OK", TODAY))
    with pytest.raises(DeclarationError, match="answered before"):
        read_answer(demo, wmo325_xml(sent, "OK", TODAY))


# -- bad input: no file, no Claim, the store as it was --------------------------------


def _fails(
    dossier: InProcessDossier,
    services: Services,
    tmp_path: pathlib.Path,
    format_code: str,
    expected: str,
    period: str = MONTH,
) -> str:
    before = _count(services)
    out = tmp_path / "out"
    with pytest.raises(DeclarationError) as caught:
        declare(dossier, format_code, period, out_dir=out)
    assert not out.exists() or not any(out.iterdir())
    assert _count(services) == before
    text = "\n".join(f"{f.where}: {f.rule}: {f.text}" for f in caught.value.faults)
    assert expected in text, text
    assert "999911" not in text  # clients by internal id, never by BSN
    return text


def test_a_visit_without_a_funding_stream(
    demo: InProcessDossier, services: Services, tmp_path: pathlib.Path
) -> None:
    visit = _visit(services, "henk-202611-01")
    visit["extension"] = [e for e in visit["extension"] if "funding-stream" not in e["url"]]
    _put(services, visit)
    text = _fails(demo, services, tmp_path, "aw319", "no funding stream")
    assert "Patient/henk, Encounter/henk-202611-01" in text


def test_a_visit_without_a_product_code(
    demo: InProcessDossier, services: Services, tmp_path: pathlib.Path
) -> None:
    visit = _visit(services, "joke-202611-02")
    visit["extension"] = [e for e in visit["extension"] if "product-code" not in e["url"]]
    _put(services, visit)
    _fails(demo, services, tmp_path, "aw319", "Patient/joke, Encounter/joke-202611-02: product")


def test_an_unknown_product(
    demo: InProcessDossier, services: Services, tmp_path: pathlib.Path
) -> None:
    visit = _visit(services, "karim-202611-11")
    for extension in visit["extension"]:
        if "product-code" in extension["url"]:
            extension["valueString"] = "99Z99"
    _put(services, visit)
    _fails(demo, services, tmp_path, "wmo323", "Unknown product '99Z99'")


def test_a_client_without_a_bsn(
    demo: InProcessDossier, services: Services, tmp_path: pathlib.Path
) -> None:
    (fatima,) = [p for p in _resources(services, "Patient") if p["id"] == "fatima"]
    fatima.pop("identifier")
    fatima.pop("meta", None)
    _put(services, fatima)
    _fails(demo, services, tmp_path, "wmo323", "Patient/fatima: CS002: The client has no BSN")


def test_a_wmo_visit_without_an_allocation_number(
    demo: InProcessDossier, services: Services, tmp_path: pathlib.Path
) -> None:
    visit = _visit(services, "fatima-202611-16")
    visit.pop("meta")  # no longer claims the visit profile, which would refuse it
    visit["extension"] = [e for e in visit["extension"] if "allocation-number" not in e["url"]]
    _put(services, visit)
    _fails(demo, services, tmp_path, "wmo323", "Encounter/fatima-202611-16")


def test_a_period_in_the_future_or_malformed(
    demo: InProcessDossier, services: Services, tmp_path: pathlib.Path
) -> None:
    _fails(demo, services, tmp_path, "wmo323", "has not ended", period="2026-12")
    _fails(demo, services, tmp_path, "wmo323", "not a month", period="november")
    _fails(demo, services, tmp_path, "wmo323", "not a month", period="2026-13")


def test_a_dry_run_records_nothing_but_the_access(
    demo: InProcessDossier, services: Services, tmp_path: pathlib.Path
) -> None:
    result = declare(demo, "wmo323", MONTH, out_dir=tmp_path, dry_run=True)
    assert len(result.messages) == 2 and not any(tmp_path.iterdir())
    assert _resources(services, "Claim") == []
    reads = [e for e in _resources(services, "AuditEvent") if e["action"] == "R"]
    assert len(reads) == 3  # the three clients whose data was read


# -- any set of visits gives a file that validates and adds up -------------------------

_CLIENTS = {  # client -> (funding, allocation number for Wmo, product)
    "anna": ("wmo", "20260001", "07A08"),
    "karim": ("wmo", "20260002", "02A01"),
    "fatima": ("wmo", "50310007", "02A01"),
    "henk": ("zvw", None, "1032"),
    "joke": ("zvw", None, "1033"),
    "piet": ("zvw", None, "1032"),
}
_visits = st.lists(
    st.tuples(
        st.sampled_from(sorted(_CLIENTS)),
        st.integers(1, 30),
        st.integers(0, 600),
        st.sampled_from(["home", "phone", "video", "practice"]),
    ),
    min_size=1,
    max_size=25,
)


@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(visits=_visits, month=st.integers(6, 10))
def test_any_visits_give_files_that_validate_and_add_up(
    demo: InProcessDossier, services: Services, visits: list[tuple[str, int, int, str]], month: int
) -> None:
    resources = []
    for client, day, minutes, mode in visits:
        funding, number, product = _CLIENTS[client]
        begin = dt.datetime(2026, month, day, 9, tzinfo=_LOCAL)
        resources.append(
            visit_to_fhir(
                Visit(
                    id=f"h-{uuid.uuid4().hex[:12]}",
                    patient=client,
                    mode=mode,
                    status="finished",
                    start=begin,
                    end=begin + dt.timedelta(minutes=minutes),
                    minutes=minutes,
                    participants=("Practitioner/sanne",),
                    funding=funding,
                    product_code=product,
                    allocation_number=number,
                )
            )
        )
    load(services, resources, "test: random visits")
    period = f"2026-{month:02d}"
    for format_code in ("wmo323", "aw319"):
        result = declare(demo, format_code, period, dry_run=True)
        for message in result.messages:
            out = io.BytesIO()
            message.write(out)
            data = out.getvalue()
            if format_code == "wmo323":
                assert xsd_faults(data) == []
                sent = read_wmo323(data)
                assert rule_faults(sent) == []
                cents, debet = total(sent)
                assert cents == sum(p.bedrag for _, p in sent.prestaties()) and debet
            else:
                text = data.decode("latin-1")
                assert aw319_faults(text) == []
                closing = text.split("\r\n")[-2]
                assert int(closing[33:44]) == sum(line.cents for line in message.lines)
            assert message.net_cents == sum(line.cents for line in message.lines)


def test_visits_stored_before_the_funding_stream_was_indexed_are_declared(
    demo: InProcessDossier, services: Services, tmp_path: pathlib.Path
) -> None:
    expected = declare(demo, "wmo323", MONTH, dry_run=True)
    with services.store.engine.begin() as connection:  # as a store from before the parameter
        gone = connection.execute(
            search_token.delete().where(search_token.c.param == "funding-stream")
        )
        assert gone.rowcount > 0
    again = declare(demo, "wmo323", MONTH, dry_run=True)
    assert again.visits > expected.visits  # found through funding-stream:missing, and read
    assert [m.lines for m in again.messages] == [m.lines for m in expected.messages]


def test_the_dossier_records_new_resources_all_or_nothing(
    demo: InProcessDossier, services: Services, tmp_path: pathlib.Path
) -> None:
    declare(demo, "aw319", MONTH, out_dir=tmp_path)
    claims = _resources(services, "Claim")
    before = _count(services)
    fresh = dict(claims[0], id="decl-another")
    with pytest.raises(Conflict, match="exists already"):  # a new id that is taken
        demo.record([], [], new=[fresh, dict(claims[1])])
    broken = dict(fresh, status="sent")  # not a financial-resource-status code
    with pytest.raises(Invalid):
        demo.record([], [], new=[broken])
    assert _count(services) == before
