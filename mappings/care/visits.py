"""Visits and contacts as Encounters, with what declarations need later.

A visit (home, practice) or contact (phone, video) has a period, the minutes that count
(``Encounter.length``: travel or a break may make it differ from the period), the
participants, the team (``serviceProvider``), and the krachtplan activities it served
(``basedOn`` the CarePlan, the activity keys in an extension). Declarations read three
documented extensions: the funding stream (Zvw, Wlz, Wmo, GGZ), the product or
prestatie code, and for Wmo the allocation number (ToewijzingNummer of a WMO301).
The Omaha System problems a visit addressed are its ``reasonCode``s (what was done for
each is an intervention, :mod:`mappings.care.omaha`).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from mappings.care.base import (
    DEFAULT_CANON,
    Canon,
    Reader,
    code_in,
    code_system,
    coding,
    datetime_of,
    fail,
    narrative,
    reference_id,
    reference_to,
)
from mappings.care.omaha import PROBLEMS, problem_name

__all__ = [
    "FUNDING",
    "MODES",
    "Visit",
    "visit_code_systems",
    "visit_from_fhir",
    "visit_to_fhir",
]

_ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
_UCUM = "http://unitsofmeasure.org"

#: contact mode -> (Dutch, English, v3-ActCode encounter class)
MODES: dict[str, tuple[str, str, str]] = {
    "home": ("Huisbezoek", "Home visit", "HH"),
    "practice": ("Op de praktijk", "At the practice", "AMB"),
    "phone": ("Telefonisch contact", "Telephone contact", "VR"),
    "video": ("Beeldbellen", "Video call", "VR"),
}
_CLASS_DISPLAY = {"HH": "home health", "AMB": "ambulatory", "VR": "virtual"}

FUNDING: dict[str, tuple[str, str]] = {
    "zvw": ("Zorgverzekeringswet", "Health Insurance Act (Zvw)"),
    "wlz": ("Wet langdurige zorg", "Long-term Care Act (Wlz)"),
    "wmo": ("Wet maatschappelijke ondersteuning", "Social Support Act (Wmo)"),
    "ggz": ("Geestelijke gezondheidszorg (zorgprestatiemodel)", "Mental health care (GGZ)"),
}
STATUSES = ("planned", "in-progress", "finished", "cancelled")
_PARTICIPANTS = ("Practitioner", "PractitionerRole", "RelatedPerson")
_OMAHA_PROBLEMS = frozenset(code for _, _, _, of_domain in PROBLEMS for code, _, _ in of_domain)


def visit_code_systems(canon: Canon = DEFAULT_CANON) -> list[dict[str, Any]]:
    """The contact modes and the funding streams."""
    tables = (
        (
            "contact-mode",
            "ContactMode",
            "Contactvorm",
            "How the team met the client.",
            [(code, nl, en) for code, (nl, en, _) in MODES.items()],
        ),
        (
            "funding-stream",
            "FundingStream",
            "Financieringsstroom",
            "The law a visit is paid under: it decides which declaration it goes into.",
            [(code, nl, en) for code, (nl, en) in FUNDING.items()],
        ),
    )
    return [
        code_system(canon, name, computable, title, description, concepts)
        for name, computable, title, description, concepts in tables
    ]


@dataclass(frozen=True, slots=True)
class Visit:
    id: str
    patient: str
    mode: str
    status: str
    start: dt.datetime  # with a time zone
    end: dt.datetime
    minutes: int  # the time that counts
    participants: tuple[str, ...]  # Practitioner/ID, PractitionerRole/ID, RelatedPerson/ID
    team: str | None = None  # Organization ID of the team
    care_plan: str | None = None  # CarePlan ID
    activities: tuple[str, ...] = ()  # activity keys of that plan
    funding: str | None = None
    product_code: str | None = None  # prestatie or product code
    allocation_number: str | None = None  # Wmo ToewijzingNummer
    problems: tuple[str, ...] = ()  # Omaha System problems addressed ("01".."42")

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            fail(f"The contact mode is one of {', '.join(MODES)}", "Encounter.type")
        if self.status not in STATUSES:
            fail(f"status is one of {', '.join(STATUSES)}", "Encounter.status")
        if self.start.tzinfo is None or self.end.tzinfo is None or self.end < self.start:
            fail("A visit ends after it starts, both with a time zone", "Encounter.period")
        if not 0 <= self.minutes <= 24 * 60:
            fail("The minutes are 0 to 1440", "Encounter.length")
        if not self.participants:
            fail("A visit has at least one participant", "Encounter.participant")
        for who in self.participants:
            if who.split("/", 1)[0] not in _PARTICIPANTS:
                fail(f"A participant is one of {', '.join(_PARTICIPANTS)}", "Encounter.participant")
        if self.activities and not self.care_plan:
            fail("Activities belong to a care plan", "Encounter.basedOn")
        if self.funding is not None and self.funding not in FUNDING:
            fail(f"The funding stream is one of {', '.join(FUNDING)}", "Encounter.extension")
        if self.allocation_number is not None and self.funding != "wmo":
            fail("An allocation number is for Wmo visits", "Encounter.extension")
        if self.funding == "wmo" and not self.allocation_number:
            fail(
                "A Wmo visit needs its allocation number (ToewijzingNummer)", "Encounter.extension"
            )
        if len(set(self.problems)) != len(self.problems) or not set(self.problems) <= (
            _OMAHA_PROBLEMS
        ):
            fail("The problems are distinct Omaha System problems (01..42)", "Encounter.reasonCode")


def visit_to_fhir(visit: Visit, canon: Canon = DEFAULT_CANON) -> dict[str, Any]:
    nl, _, act = MODES[visit.mode]
    extensions: list[dict[str, Any]] = []
    if visit.funding:
        extensions.append(
            {
                "url": canon.extension("funding-stream"),
                "valueCoding": coding(
                    canon.code_system("funding-stream"), visit.funding, FUNDING[visit.funding][0]
                ),
            }
        )
    if visit.product_code:
        extensions.append(
            {"url": canon.extension("product-code"), "valueString": visit.product_code}
        )
    if visit.allocation_number:
        extensions.append(
            {"url": canon.extension("allocation-number"), "valueString": visit.allocation_number}
        )
    extensions += [
        {"url": canon.extension("served-activity"), "valueString": key} for key in visit.activities
    ]
    resource: dict[str, Any] = {
        "resourceType": "Encounter",
        "id": visit.id,
        "meta": {"profile": [canon.profile("visit")]},
        "text": narrative(
            f"{nl} op {visit.start.date().isoformat()}",
            [
                ("Tijd", f"{visit.start.isoformat()} - {visit.end.isoformat()}"),
                ("Minuten", str(visit.minutes)),
                ("Financiering", FUNDING[visit.funding][0] if visit.funding else ""),
                ("Prestatie", visit.product_code or ""),
                ("Toewijzing", visit.allocation_number or ""),
            ],
            [f"Aanwezig: {who}" for who in visit.participants]
            + [f"Omaha {code} {problem_name(code)}" for code in visit.problems],
        ),
    }
    if extensions:
        resource["extension"] = extensions
    resource.update(
        {
            "status": visit.status,
            "class": coding(_ACT_CODE, act, _CLASS_DISPLAY[act]),
            "type": [{"coding": [coding(canon.code_system("contact-mode"), visit.mode, nl)]}],
            "subject": {"reference": f"Patient/{visit.patient}"},
            "participant": [{"individual": {"reference": who}} for who in visit.participants],
            "period": {"start": visit.start.isoformat(), "end": visit.end.isoformat()},
            "length": {"value": visit.minutes, "unit": "min", "system": _UCUM, "code": "min"},
        }
    )
    if visit.problems:
        problems = canon.code_system("omaha-problems")
        resource["reasonCode"] = [
            {"coding": [coding(problems, code, problem_name(code))]} for code in visit.problems
        ]
    if visit.care_plan:
        resource["basedOn"] = [{"reference": f"CarePlan/{visit.care_plan}"}]
    if visit.team:
        resource["serviceProvider"] = {"reference": f"Organization/{visit.team}"}
    return resource


def visit_from_fhir(resource: Any, canon: Canon = DEFAULT_CANON) -> Visit:
    read = Reader(resource, "Encounter", canon.profile("visit"))
    types = read.need("type")
    mode = code_in(
        types[0] if len(types) == 1 else None,
        canon.code_system("contact-mode"),
        "Encounter.type",
        MODES,
    )
    klass = read.need("class")
    if (
        not isinstance(klass, dict)
        or klass.get("system") != _ACT_CODE
        or klass.get("code") != MODES[mode][2]
    ):
        fail(f"class must be v3-ActCode {MODES[mode][2]} for a {mode} contact", "Encounter.class")
    period = read.need("period")
    length = read.need("length")
    if (
        length.get("code") != "min"
        or length.get("system") != _UCUM
        or not isinstance(length.get("value"), int)
    ):
        fail("length is whole minutes (UCUM min)", "Encounter.length")

    def one(name: str) -> str | None:
        found = [e.get("valueString") for _, e in read.extensions(canon.extension(name))]
        if len(found) > 1:
            fail(f"At most one {name}", "Encounter.extension")
        return found[0] if found else None

    funding_ext = list(read.extensions(canon.extension("funding-stream")))
    if len(funding_ext) > 1:
        fail("At most one funding stream", "Encounter.extension")
    funding = (
        code_in(
            {"coding": [funding_ext[0][1].get("valueCoding")]},
            canon.code_system("funding-stream"),
            f"Encounter.extension[{funding_ext[0][0]}]",
            FUNDING,
        )
        if funding_ext
        else None
    )
    based = read.get("basedOn") or []
    if len(based) > 1:
        fail("A visit serves at most one plan", "Encounter.basedOn")
    team = read.get("serviceProvider")
    reasons = read.get("reasonCode") or []
    return Visit(
        id=read.text("id") or "",
        patient=reference_id(read.need("subject"), "Patient", read.path("subject")),
        mode=mode,
        status=read.code("status", STATUSES),
        start=datetime_of(period.get("start"), "Encounter.period.start"),
        end=datetime_of(period.get("end"), "Encounter.period.end"),
        minutes=int(length["value"]),
        participants=tuple(
            reference_to(
                p.get("individual") if isinstance(p, dict) else None,
                _PARTICIPANTS,
                f"Encounter.participant[{i}].individual",
            )
            for i, p in enumerate(read.need("participant"))
        ),
        team=reference_id(team, "Organization", "Encounter.serviceProvider") if team else None,
        care_plan=reference_id(based[0], "CarePlan", "Encounter.basedOn[0]") if based else None,
        activities=tuple(
            str(e.get("valueString"))
            for _, e in read.extensions(canon.extension("served-activity"))
        ),
        funding=funding,
        product_code=one("product-code"),
        allocation_number=one("allocation-number"),
        problems=tuple(
            code_in(
                reason,
                canon.code_system("omaha-problems"),
                f"Encounter.reasonCode[{index}]",
                _OMAHA_PROBLEMS,
            )
            for index, reason in enumerate(reasons if isinstance(reasons, list) else [None])
        ),
    )
