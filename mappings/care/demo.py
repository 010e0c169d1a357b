"""A realistic demo dossier, built with the domain API (so every resource fits its profile).

Anna Jansen (fictional; BSN 999911120 is a test number that passes the eleven test)
lives alone; her daughter Lisa is her network. Buurtteam Oost works with her: a krachtplan
about money, housing and her network, three ZRM 2017 measurements showing progress, home
visits and a phone call, a crisis plan with Lisa, an Omaha rating for the nurses, and her
GP practice; and a declarable month of six more clients (:mod:`mappings.care.demo_month`).
Anna's Consent lets her care team read and record in her dossier; her GP
sees nothing until she grants it (see the README).
"""

from __future__ import annotations

import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

from mappings.care.base import DEFAULT_CANON, Canon, narrative
from mappings.care.crisisplan import CrisisAction, CrisisPlan, crisis_plan_to_fhir
from mappings.care.declarations import DECLARANT
from mappings.care.demo_month import demo_month
from mappings.care.krachtplan import (
    Activity,
    Krachtplan,
    PlanGoal,
    ProgressNote,
    krachtplan_to_fhir,
)
from mappings.care.omaha import OmahaRating, omaha_to_fhir
from mappings.care.people import (
    CareOrganization,
    Client,
    NetworkMember,
    Professional,
    client_to_fhir,
    network_member_to_fhir,
    organization_to_fhir,
    professional_to_fhir,
)
from mappings.care.visits import Visit, visit_to_fhir
from mappings.care.zrm import ZrmAssessment, zrm_to_fhir

__all__ = ["demo_dossier"]

_AMSTERDAM = ZoneInfo("Europe/Amsterdam")
NURSE = "Practitioner/sanne"


def _at(day: dt.date, hour: int, minute: int = 0) -> dt.datetime:
    return dt.datetime(day.year, day.month, day.day, hour, minute, tzinfo=_AMSTERDAM)


def demo_dossier(today: dt.date, canon: Canon = DEFAULT_CANON) -> list[dict[str, Any]]:
    """Every resource of the demo, dated relative to ``today``, in an order that loads."""
    start = today - dt.timedelta(days=180)
    middle = today - dt.timedelta(days=90)
    recent = today - dt.timedelta(days=7)
    resources: list[dict[str, Any]] = [
        organization_to_fhir(
            CareOrganization("gp", "Huisartsenpraktijk Zuid", agb="01234567", ura="12345678")
        ),
        _declarant(
            organization_to_fhir(
                CareOrganization("buurtteam-oost", "Buurtteam Oost", agb="87654321"), canon
            ),
            canon,
        ),
        professional_to_fhir(
            Professional("sanne", "de Vries", ("Sanne",), agb="12345678", big="19012345601")
        ),
        client_to_fhir(
            Client(
                "anna",
                "Jansen",
                ("Anna",),
                bsn="999911120",
                birth_date=dt.date(1948, 5, 17),
                gender="female",
                telephone="020-1234567",
            )
        ),
        network_member_to_fhir(
            NetworkMember("lisa", "anna", "Jansen", "DAU", ("Lisa",), "06-12345678")
        ),
        {
            "resourceType": "CareTeam",
            "id": "team-anna",
            "text": narrative(
                "Team rond Anna", [("Team", "Buurtteam Oost")], ["Sanne de Vries", "Lisa Jansen"]
            ),
            "status": "active",
            "name": "Team rond Anna",
            "subject": {"reference": "Patient/anna"},
            "participant": [
                {
                    "member": {"reference": NURSE},
                    "onBehalfOf": {"reference": "Organization/buurtteam-oost"},
                },
                {"member": {"reference": "RelatedPerson/lisa"}},
            ],
            "managingOrganization": [{"reference": "Organization/buurtteam-oost"}],
        },
        {
            "resourceType": "Consent",
            "id": "anna-buurtteam",
            "text": narrative(
                "Anna geeft haar team toegang",
                [("Wie", "Team rond Anna"), ("Mag", "lezen en vastleggen")],
            ),
            "status": "active",
            "scope": {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/consentscope",
                        "code": "patient-privacy",
                    }
                ]
            },
            "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}],
            "patient": {"reference": "Patient/anna"},
            "dateTime": _at(start, 10).isoformat(),
            "policyRule": {
                "coding": [
                    {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "OPTIN"}
                ]
            },
            "provision": {
                "type": "permit",
                "actor": [
                    {
                        "role": {
                            "coding": [
                                {
                                    "system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType",
                                    "code": "IRCP",
                                }
                            ]
                        },
                        "reference": {"reference": "CareTeam/team-anna"},
                    }
                ],
                "action": [
                    {
                        "coding": [
                            {
                                "system": "http://terminology.hl7.org/CodeSystem/consentaction",
                                "code": code,
                            }
                        ]
                    }
                    for code in ("access", "correct")
                ],
            },
        },
        {
            "resourceType": "Condition",
            "id": "anna-schulden",
            "text": narrative("Probleem: schulden", [("Sinds", start.isoformat())]),
            "clinicalStatus": {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
                        "code": "active",
                    }
                ]
            },
            "code": {"text": "Betalingsachterstanden en ongeopende post"},
            "subject": {"reference": "Patient/anna"},
            "recordedDate": start.isoformat(),
        },
    ]
    measurements = [
        (
            "intake",
            start,
            {
                "financien": 1,
                "huisvesting": 3,
                "sociaal-netwerk": 2,
                "basale-adl": 4,
                "instrumentele-adl": 2,
            },
        ),
        (
            "progress",
            middle,
            {
                "financien": 2,
                "huisvesting": 3,
                "sociaal-netwerk": 3,
                "basale-adl": 4,
                "instrumentele-adl": 3,
            },
        ),
        (
            "exit",
            recent,
            {
                "financien": 4,
                "huisvesting": 4,
                "sociaal-netwerk": 4,
                "basale-adl": 4,
                "instrumentele-adl": 4,
            },
        ),
    ]
    full = {
        code: 4
        for code in (
            "werk-opleiding",
            "tijdsbesteding",
            "huiselijke-relaties",
            "geestelijke-gezondheid",
            "lichamelijke-gezondheid",
            "middelengebruik",
            "maatschappelijke-participatie",
            "justitie",
        )
    }
    for index, (moment, day, scores) in enumerate(measurements, start=1):
        targets = {"financien": 4, "sociaal-netwerk": 4} if moment == "intake" else {}
        resources += zrm_to_fhir(
            ZrmAssessment(
                f"anna-zrm-{index}", "2017", "anna", NURSE, moment, day, {**full, **scores}, targets
            ),
            canon,
        )
    plan = Krachtplan(
        id="krachtplan",
        subject="Patient/anna",
        status="active",
        start=start,
        author=NURSE,
        title="Weer grip op geld en post",
        care_team="team-anna",
        domains=("financien", "sociaal-netwerk", "instrumentele-adl"),
        problems=("anna-schulden",),
        goals=(
            PlanGoal(
                "geld", "Ik weet weer wat er binnenkomt en wat eruit gaat", "active", "financien", 4
            ),
            PlanGoal(
                "lisa",
                "Lisa helpt me met de post, zonder dat het te veel wordt",
                "active",
                "sociaal-netwerk",
                4,
            ),
        ),
        activities=(
            Activity(
                "post",
                "Elke zaterdag samen met Lisa de post openen",
                "network",
                "in-progress",
                "RelatedPerson/lisa",
                ("geld", "lisa"),
                (ProgressNote("Drie weken achter elkaar gelukt", _at(middle, 11), NURSE),),
            ),
            Activity(
                "schuldhulp",
                "Aanmelden bij de schuldhulpverlening van de gemeente",
                "team",
                "completed",
                "CareTeam/team-anna",
                ("geld",),
            ),
            Activity(
                "overzicht",
                "Zelf een kasboekje bijhouden",
                "client",
                "in-progress",
                "Patient/anna",
                ("geld",),
            ),
            Activity(
                "budget",
                "Eenmalig budgetadvies door een specialist",
                "specialist",
                "scheduled",
                "Organization/buurtteam-oost",
                ("geld",),
            ),
        ),
    )
    resources += krachtplan_to_fhir(plan, canon)
    resources.append(
        crisis_plan_to_fhir(
            CrisisPlan(
                id="crisisplan",
                patient="anna",
                status="active",
                start=start,
                author=NURSE,
                warning_signs=(
                    "Neemt de telefoon niet op",
                    "Post stapelt zich op",
                    "Slaapt slecht",
                ),
                actions=(
                    CrisisAction(
                        "lisa-belt",
                        "RelatedPerson/lisa",
                        "Belt Anna en gaat langs als ze niet opneemt",
                        "06-12345678",
                    ),
                    CrisisAction(
                        "team-komt",
                        "Organization/buurtteam-oost",
                        "Komt binnen een dag op huisbezoek",
                        "020-7654321",
                    ),
                ),
                care_team="team-anna",
                agreed_with=("lisa",),
            ),
            canon,
        )
    )
    visits = [
        Visit(
            "bezoek-1",
            "anna",
            "home",
            "finished",
            _at(start, 10),
            _at(start, 11),
            60,
            (NURSE, "RelatedPerson/lisa"),
            "buurtteam-oost",
            "krachtplan",
            (),
            "wmo",
            "07A08",
            "20260001",
        ),
        Visit(
            "bezoek-2",
            "anna",
            "home",
            "finished",
            _at(middle, 10),
            _at(middle, 10, 45),
            40,
            (NURSE,),
            "buurtteam-oost",
            "krachtplan",
            ("post",),
            "wmo",
            "07A08",
            "20260001",
        ),
        Visit(
            "bezoek-3",
            "anna",
            "phone",
            "finished",
            _at(recent, 14),
            _at(recent, 14, 15),
            15,
            (NURSE,),
            "buurtteam-oost",
            "krachtplan",
            ("overzicht",),
            "wmo",
            "07A08",
            "20260001",
        ),
    ]
    resources += [visit_to_fhir(v, canon) for v in visits]
    resources.append(
        omaha_to_fhir(
            OmahaRating(
                "anna-omaha-inkomen",
                "anna",
                NURSE,
                "01",
                recent,
                {"knowledge": 3, "behavior": 4, "status": 3},
                {"knowledge": 4, "status": 4},
            ),
            canon,
        )
    )
    resources += demo_month(today, canon)  # a declarable month (README "Declarations")
    return resources


def _declarant(organization: dict[str, Any], canon: Canon) -> dict[str, Any]:
    """The team's organisation is the provider that sends the declarations."""
    organization["type"] = [
        {
            "coding": [
                {
                    "system": canon.code_system("declaration-party"),
                    "code": DECLARANT,
                    "display": "Declarerende zorgaanbieder",
                }
            ]
        }
    ]
    return organization
