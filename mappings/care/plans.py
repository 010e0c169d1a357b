"""What the krachtplan and the crisis plan share: plan kinds, statuses, activity owners,
their code systems, and the checks of a plan's status and period.

The plans themselves: :mod:`mappings.care.krachtplan` (the plan made with the client at the
kitchen table) and :mod:`mappings.care.crisisplan` (warning signs, and who acts and how).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from mappings.care.base import (
    DEFAULT_CANON,
    Canon,
    Reader,
    code_system,
    fail,
)
from mappings.care.zrm_codes import DOMAINS as ZRM_DOMAINS

__all__ = [
    "ACTIVITY_STATUSES",
    "GOAL_STATUSES",
    "OWNERS",
    "OWNER_NL",
    "OWNER_TYPES",
    "PLAN_KINDS",
    "PLAN_STATUSES",
    "STATUS_NL",
    "ZRM_2017",
    "check_plan",
    "check_plan_kind",
    "plan_code_systems",
    "plan_period",
]

PLAN_STATUSES = ("draft", "active", "on-hold", "revoked", "completed")
ACTIVITY_STATUSES = (
    "not-started",
    "scheduled",
    "in-progress",
    "on-hold",
    "completed",
    "cancelled",
)
GOAL_STATUSES = ("proposed", "accepted", "active", "on-hold", "completed", "cancelled")

#: who carries out an activity, in the words of the kitchen table
OWNERS: tuple[tuple[str, str, str], ...] = (
    ("client", "Cliënt zelf", "The client"),
    ("network", "Netwerk", "The client's network"),
    ("volunteer", "Vrijwilliger", "A volunteer"),
    ("team", "Het team", "The care team"),
    ("specialist", "Specialist (invliegen)", "A specialist who flies in for one task"),
)
#: the reference types each owner's performer may have
OWNER_TYPES: dict[str, tuple[str, ...]] = {
    "client": ("Patient",),
    "network": ("RelatedPerson",),
    "volunteer": ("RelatedPerson", "Practitioner"),
    "team": ("CareTeam", "Practitioner", "PractitionerRole", "Organization"),
    "specialist": ("Practitioner", "PractitionerRole", "Organization"),
}
PLAN_KINDS: tuple[tuple[str, str, str], ...] = (
    ("krachtplan", "Krachtplan (plan van aanpak)", "Strengths-based plan"),
    ("crisisplan", "Crisisplan", "Crisis plan"),
)
OWNER_NL = {code: nl for code, nl, _ in OWNERS}
ZRM_2017 = {code: nl for code, nl, _ in ZRM_DOMAINS["2017"]}
STATUS_NL = {
    "draft": "concept",
    "active": "actief",
    "on-hold": "gepauzeerd",
    "revoked": "ingetrokken",
    "completed": "afgerond",
    "not-started": "niet begonnen",
    "scheduled": "gepland",
    "in-progress": "bezig",
    "cancelled": "geannuleerd",
}


def plan_code_systems(canon: Canon = DEFAULT_CANON) -> list[dict[str, Any]]:
    """The plan kinds (CarePlan.category) and the activity owners."""
    return [
        code_system(canon, name, computable, title, description, concepts)
        for name, computable, title, description, concepts in (
            (
                "plan-kind",
                "PlanKind",
                "Soort plan",
                "The kinds of plan made with a client.",
                PLAN_KINDS,
            ),
            (
                "activity-owner",
                "ActivityOwner",
                "Wie doet het",
                "Who carries out an activity of a plan, as agreed with the client.",
                OWNERS,
            ),
        )
    ]


def check_plan(status: str, start: dt.date, end: dt.date | None) -> None:
    if status not in PLAN_STATUSES:
        fail(f"status is one of {', '.join(PLAN_STATUSES)}", "CarePlan.status")
    if end is not None and end < start:
        fail("The plan ends after it starts", "CarePlan.period")


def plan_period(start: dt.date, end: dt.date | None) -> dict[str, str]:
    period = {"start": start.isoformat()}
    if end is not None:
        period["end"] = end.isoformat()
    return period


def check_plan_kind(read: Reader, canon: Canon, kind: str) -> None:
    categories = read.need("category")
    codes = {
        c.get("code")
        for concept in categories
        if isinstance(concept, dict)
        for c in concept.get("coding", [])
        if isinstance(c, dict) and c.get("system") == canon.code_system("plan-kind")
    }
    if codes != {kind}:
        fail(f"category must be the plan kind {kind}", read.path("category"))
