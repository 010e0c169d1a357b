"""The crisis plan: a CarePlan of its own category with the warning signs, and the network
members who act and what they do when things go wrong."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from mappings.care.base import (
    DEFAULT_CANON,
    Canon,
    Reader,
    coding,
    date_of,
    fail,
    narrative,
    reference_id,
    reference_to,
)
from mappings.care.plans import (
    PLAN_STATUSES,
    STATUS_NL,
    check_plan,
    check_plan_kind,
    plan_period,
)

__all__ = ["CrisisAction", "CrisisPlan", "crisis_plan_from_fhir", "crisis_plan_to_fhir"]


@dataclass(frozen=True, slots=True)
class CrisisAction:
    """Who acts (a network member or professional) and what they do."""

    key: str
    who: str  # RelatedPerson/ID, Practitioner/ID, PractitionerRole/ID, Organization/ID
    what: str
    telephone: str | None = None


@dataclass(frozen=True, slots=True)
class CrisisPlan:
    id: str
    patient: str
    status: str
    start: dt.date
    author: str
    warning_signs: tuple[str, ...]
    actions: tuple[CrisisAction, ...]
    end: dt.date | None = None
    care_team: str | None = None
    agreed_with: tuple[str, ...] = field(default=())  # RelatedPerson IDs who agreed to it

    def __post_init__(self) -> None:
        check_plan(self.status, self.start, self.end)
        if not self.actions:
            fail("A crisis plan says who acts", "CarePlan.activity")
        if len({a.key for a in self.actions}) != len(self.actions):
            fail("Action keys are unique in a plan", "CarePlan.activity")
        for action in self.actions:
            if (
                action.who.split("/", 1)[0] not in _CRISIS_ACTORS
                or not action.what
                or not action.key
            ):
                fail(
                    "Each action has who (network or professional) and what",
                    "CarePlan.activity.detail",
                )


_CRISIS_ACTORS = ("RelatedPerson", "Practitioner", "PractitionerRole", "Organization")


def crisis_plan_to_fhir(plan: CrisisPlan, canon: Canon = DEFAULT_CANON) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "resourceType": "CarePlan",
        "id": plan.id,
        "meta": {"profile": [canon.profile("crisisplan")]},
        "text": narrative(
            "Crisisplan",
            [("Status", STATUS_NL[plan.status]), ("Cliënt", f"Patient/{plan.patient}")],
            [f"Signaal: {sign}" for sign in plan.warning_signs]
            + [
                f"{a.who}: {a.what}" + (f" (tel. {a.telephone})" if a.telephone else "")
                for a in plan.actions
            ],
        ),
    }
    extensions: list[dict[str, Any]] = [
        {"url": canon.extension("warning-sign"), "valueString": s} for s in plan.warning_signs
    ]
    extensions += [
        {
            "url": canon.extension("agreed-with"),
            "valueReference": {"reference": f"RelatedPerson/{r}"},
        }
        for r in plan.agreed_with
    ]
    if extensions:
        resource["extension"] = extensions
    resource.update(
        {
            "status": plan.status,
            "intent": "plan",
            "category": [
                {"coding": [coding(canon.code_system("plan-kind"), "crisisplan", "Crisisplan")]}
            ],
            "title": "Crisisplan",
            "subject": {"reference": f"Patient/{plan.patient}"},
            "period": plan_period(plan.start, plan.end),
            "author": {"reference": plan.author},
        }
    )
    if plan.care_team:
        resource["careTeam"] = [{"reference": f"CareTeam/{plan.care_team}"}]
    activities = []
    for action in plan.actions:
        detail: dict[str, Any] = {
            "kind": "Task",
            "status": "not-started",
            "description": action.what,
            "performer": [{"reference": action.who}],
        }
        element: dict[str, Any] = {"id": action.key}
        if action.telephone:
            element["extension"] = [
                {"url": canon.extension("crisis-telephone"), "valueString": action.telephone}
            ]
        element["detail"] = detail
        activities.append(element)
    resource["activity"] = activities
    return resource


def crisis_plan_from_fhir(resource: Any, canon: Canon = DEFAULT_CANON) -> CrisisPlan:
    read = Reader(resource, "CarePlan", canon.profile("crisisplan"))
    check_plan_kind(read, canon, "crisisplan")
    period = read.need("period")
    actions = []
    for index, value in enumerate(read.need("activity")):
        where = f"CarePlan.activity[{index}]"
        detail = value.get("detail") if isinstance(value, dict) else None
        if not isinstance(detail, dict) or len(detail.get("performer") or []) != 1:
            fail("Each action has exactly one performer", f"{where}.detail.performer")
        phones = [
            e.get("valueString")
            for e in value.get("extension", [])
            if e.get("url") == canon.extension("crisis-telephone")
        ]
        actions.append(
            CrisisAction(
                key=str(value.get("id") or ""),
                who=reference_to(
                    detail["performer"][0], _CRISIS_ACTORS, f"{where}.detail.performer[0]"
                ),
                what=str(detail.get("description") or ""),
                telephone=phones[0] if phones else None,
            )
        )
    care_team = read.get("careTeam")
    return CrisisPlan(
        id=read.text("id") or "",
        patient=reference_id(read.need("subject"), "Patient", read.path("subject")),
        status=read.code("status", PLAN_STATUSES),
        start=date_of(period.get("start"), "CarePlan.period.start"),
        end=date_of(period["end"], "CarePlan.period.end") if "end" in period else None,
        author=reference_to(
            read.need("author"), ("Practitioner", "PractitionerRole"), read.path("author")
        ),
        warning_signs=tuple(
            str(e.get("valueString")) for _, e in read.extensions(canon.extension("warning-sign"))
        ),
        actions=tuple(actions),
        care_team=reference_id(care_team[0], "CareTeam", "CarePlan.careTeam[0]")
        if care_team
        else None,
        agreed_with=tuple(
            reference_id(e.get("valueReference"), "RelatedPerson", f"CarePlan.extension[{i}]")
            for i, e in read.extensions(canon.extension("agreed-with"))
        ),
    )
