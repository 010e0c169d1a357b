"""The krachtplan ("plan van aanpak") as a CarePlan with Goals.

A krachtplan is made with the client at the kitchen table: for a Patient or a household
(Group: one household, one plan), the life domains it addresses (ZRM 2017 domains, an
extension) and the problems (Conditions), its Goals, and activities each with an owner
as the client would say it: the client, the network (a RelatedPerson), a volunteer, the
team, or a specialist who flies in for one task. An activity has a status and progress
notes. Updating the plan is a PUT of the same CarePlan: the store keeps every version.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from mappings.care.base import (
    DEFAULT_CANON,
    Canon,
    Reader,
    code_in,
    coding,
    date_of,
    datetime_of,
    fail,
    narrative,
    reference_id,
    reference_to,
)
from mappings.care.plans import (
    ACTIVITY_STATUSES,
    GOAL_STATUSES,
    OWNER_NL,
    OWNER_TYPES,
    PLAN_STATUSES,
    STATUS_NL,
    ZRM_2017,
    check_plan,
    check_plan_kind,
    plan_period,
)

__all__ = [
    "Activity",
    "Krachtplan",
    "PlanGoal",
    "ProgressNote",
    "krachtplan_from_fhir",
    "krachtplan_to_fhir",
]


@dataclass(frozen=True, slots=True)
class ProgressNote:
    text: str
    time: dt.datetime  # with a time zone
    author: str | None = None  # Practitioner/ID, Patient/ID or RelatedPerson/ID


@dataclass(frozen=True, slots=True)
class Activity:
    """One thing to do; ``key`` is stable across versions of the plan (visits cite it)."""

    key: str
    description: str
    owner: str
    status: str
    performer: str | None = None  # Type/ID of the one who does it, fitting the owner
    goals: tuple[str, ...] = ()  # keys of the plan's goals it works towards
    progress: tuple[ProgressNote, ...] = ()


@dataclass(frozen=True, slots=True)
class PlanGoal:
    """A goal in the client's words, optionally a ZRM 2017 domain and target score."""

    key: str  # the Goal's id is {plan id}-goal-{key}
    description: str
    status: str = "active"
    domain: str | None = None
    target_score: int | None = None


@dataclass(frozen=True, slots=True)
class Krachtplan:
    id: str
    subject: str  # Patient/ID or Group/ID (a household)
    status: str
    start: dt.date
    author: str  # Practitioner/ID or PractitionerRole/ID
    title: str
    end: dt.date | None = None
    care_team: str | None = None  # CareTeam ID
    domains: tuple[str, ...] = ()  # ZRM 2017 domain codes
    problems: tuple[str, ...] = ()  # Condition IDs
    goals: tuple[PlanGoal, ...] = ()
    activities: tuple[Activity, ...] = ()

    def __post_init__(self) -> None:
        check_plan(self.status, self.start, self.end)
        if self.subject.split("/", 1)[0] not in ("Patient", "Group"):
            fail("A krachtplan is for a Patient or a household (Group)", "CarePlan.subject")
        for domain in self.domains:
            if domain not in ZRM_2017:
                fail("Life domains are ZRM 2017 domains", "CarePlan.extension")
        keys = [g.key for g in self.goals]
        if len(set(keys)) != len(keys) or len({a.key for a in self.activities}) != len(
            self.activities
        ):
            fail("Goal and activity keys are unique in a plan", "CarePlan.activity")
        for goal in self.goals:
            if goal.status not in GOAL_STATUSES:
                fail(
                    f"A goal's status is one of {', '.join(GOAL_STATUSES)}", "Goal.lifecycleStatus"
                )
            if goal.domain is not None and goal.domain not in ZRM_2017:
                fail("A goal's domain is a ZRM 2017 domain", "Goal.target.measure")
            if goal.target_score is not None and (
                goal.domain is None or not 1 <= goal.target_score <= 5
            ):
                fail("A target score (1 to 5) belongs to a domain", "Goal.target.detailInteger")
        for activity in self.activities:
            _check_activity(activity, set(keys))


def _check_activity(activity: Activity, goals: set[str]) -> None:
    where = "CarePlan.activity"
    if not activity.key or not activity.description:
        fail("An activity has a key and a description", where)
    if activity.owner not in OWNER_NL:
        fail(f"An owner is one of {', '.join(OWNER_NL)}", f"{where}.extension")
    if activity.status not in ACTIVITY_STATUSES:
        fail(
            f"An activity's status is one of {', '.join(ACTIVITY_STATUSES)}",
            f"{where}.detail.status",
        )
    if (
        activity.performer is not None
        and activity.performer.split("/", 1)[0] not in OWNER_TYPES[activity.owner]
    ):
        fail(
            f"The {activity.owner} is one of {', '.join(OWNER_TYPES[activity.owner])}",
            f"{where}.detail.performer",
        )
    if not set(activity.goals) <= goals:
        fail("An activity works towards goals of the same plan", f"{where}.detail.goal")


def _activity_to_fhir(plan_id: str, activity: Activity, canon: Canon) -> dict[str, Any]:
    detail: dict[str, Any] = {
        "kind": "Task",
        "status": activity.status,
        "description": activity.description,
    }
    if activity.performer:
        detail["performer"] = [{"reference": activity.performer}]
    if activity.goals:
        detail["goal"] = [{"reference": f"Goal/{plan_id}-goal-{key}"} for key in activity.goals]
    element: dict[str, Any] = {
        "id": activity.key,
        "extension": [
            {
                "url": canon.extension("activity-owner"),
                "valueCoding": coding(
                    canon.code_system("activity-owner"), activity.owner, OWNER_NL[activity.owner]
                ),
            }
        ],
    }
    if activity.progress:
        element["progress"] = [_note(note) for note in activity.progress]
    element["detail"] = detail
    return element


def _note(note: ProgressNote) -> dict[str, Any]:
    found: dict[str, Any] = {"text": note.text, "time": note.time.isoformat()}
    if note.author:
        found["authorReference"] = {"reference": note.author}
    return found


def _note_of(value: Any, where: str) -> ProgressNote:
    if not isinstance(value, dict) or not isinstance(value.get("text"), str) or not value["text"]:
        fail("A progress note has text", f"{where}.text")
    author = None
    if "authorReference" in value:
        author = reference_to(
            value["authorReference"],
            ("Practitioner", "PractitionerRole", "Patient", "RelatedPerson"),
            f"{where}.authorReference",
        )
    return ProgressNote(value["text"], datetime_of(value.get("time"), f"{where}.time"), author)


def krachtplan_to_fhir(plan: Krachtplan, canon: Canon = DEFAULT_CANON) -> list[dict[str, Any]]:
    """The CarePlan, then a Goal per goal of the plan."""
    care_plan: dict[str, Any] = {
        "resourceType": "CarePlan",
        "id": plan.id,
        "meta": {"profile": [canon.profile("krachtplan")]},
        "text": narrative(
            f"Krachtplan: {plan.title}",
            [
                ("Status", STATUS_NL[plan.status]),
                ("Voor", plan.subject),
                (
                    "Periode",
                    f"{plan.start.isoformat()} tot "
                    + (plan.end.isoformat() if plan.end else "nader te bepalen"),
                ),
                ("Leefgebieden", ", ".join(ZRM_2017[d] for d in plan.domains)),
            ],
            [f"Doel: {g.description}" for g in plan.goals]
            + [
                f"{OWNER_NL[a.owner]}: {a.description} ({STATUS_NL[a.status]})"
                for a in plan.activities
            ],
        ),
    }
    if plan.domains:
        care_plan["extension"] = [
            {
                "url": canon.extension("life-domain"),
                "valueCoding": coding(canon.code_system("zrm-2017"), domain, ZRM_2017[domain]),
            }
            for domain in plan.domains
        ]
    care_plan.update(
        {
            "status": plan.status,
            "intent": "plan",
            "category": [
                {
                    "coding": [
                        coding(
                            canon.code_system("plan-kind"),
                            "krachtplan",
                            "Krachtplan (plan van aanpak)",
                        )
                    ]
                }
            ],
            "title": plan.title,
            "subject": {"reference": plan.subject},
            "period": plan_period(plan.start, plan.end),
            "author": {"reference": plan.author},
        }
    )
    if plan.care_team:
        care_plan["careTeam"] = [{"reference": f"CareTeam/{plan.care_team}"}]
    if plan.problems:
        care_plan["addresses"] = [{"reference": f"Condition/{c}"} for c in plan.problems]
    if plan.goals:
        care_plan["goal"] = [{"reference": f"Goal/{plan.id}-goal-{g.key}"} for g in plan.goals]
    if plan.activities:
        care_plan["activity"] = [_activity_to_fhir(plan.id, a, canon) for a in plan.activities]
    goals = [_goal_to_fhir(plan, goal, canon) for goal in plan.goals]
    return [care_plan, *goals]


def _goal_to_fhir(plan: Krachtplan, goal: PlanGoal, canon: Canon) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "resourceType": "Goal",
        "id": f"{plan.id}-goal-{goal.key}",
        "meta": {"profile": [canon.profile("krachtplan-goal")]},
        "text": narrative(f"Doel: {goal.description}", [("Plan", f"CarePlan/{plan.id}")]),
        "lifecycleStatus": goal.status,
        "description": {"text": goal.description},
        "subject": {"reference": plan.subject},
        "startDate": plan.start.isoformat(),
    }
    if goal.domain is not None:
        target: dict[str, Any] = {
            "measure": {
                "coding": [
                    coding(canon.code_system("zrm-2017"), goal.domain, ZRM_2017[goal.domain])
                ]
            }
        }
        if goal.target_score is not None:
            target["detailInteger"] = goal.target_score
        resource["target"] = [target]
    return resource


def krachtplan_from_fhir(
    resources: Sequence[dict[str, Any]], canon: Canon = DEFAULT_CANON
) -> Krachtplan:
    plans = [r for r in resources if isinstance(r, dict) and r.get("resourceType") == "CarePlan"]
    if len(plans) != 1:
        fail("Exactly one krachtplan CarePlan is required", "CarePlan")
    read = Reader(plans[0], "CarePlan", canon.profile("krachtplan"))
    check_plan_kind(read, canon, "krachtplan")
    if read.get("intent") != "plan":
        fail("intent must be plan", read.path("intent"))
    plan_id = read.text("id") or ""
    period = read.need("period")
    domains = tuple(
        read.the_code(
            {"coding": [e.get("valueCoding")]},
            canon.code_system("zrm-2017"),
            f"CarePlan.extension[{i}]",
            ZRM_2017,
        )
        for i, e in read.extensions(canon.extension("life-domain"))
    )
    goal_refs = [
        reference_id(ref, "Goal", f"CarePlan.goal[{i}]")
        for i, ref in enumerate(read.get("goal") or [])
    ]
    prefix = f"{plan_id}-goal-"
    by_id = {r.get("id"): r for r in resources if r.get("resourceType") == "Goal"}
    goals = []
    for index, goal_id in enumerate(goal_refs):
        if not goal_id.startswith(prefix) or goal_id not in by_id:
            fail(
                "Each goal of the plan is given, with the id {plan}-goal-{key}",
                f"CarePlan.goal[{index}]",
            )
        goals.append(_goal_of(by_id[goal_id], goal_id[len(prefix) :], canon))
    activities = tuple(
        _activity_of(a, index, prefix, canon) for index, a in enumerate(read.get("activity") or [])
    )
    care_team = read.get("careTeam")
    return Krachtplan(
        id=plan_id,
        subject=reference_to(read.need("subject"), ("Patient", "Group"), read.path("subject")),
        status=read.code("status", PLAN_STATUSES),
        start=date_of(period.get("start"), "CarePlan.period.start"),
        end=date_of(period["end"], "CarePlan.period.end") if "end" in period else None,
        author=reference_to(
            read.need("author"), ("Practitioner", "PractitionerRole"), read.path("author")
        ),
        title=read.text("title") or "",
        care_team=reference_id(care_team[0], "CareTeam", "CarePlan.careTeam[0]")
        if care_team
        else None,
        domains=domains,
        problems=tuple(
            reference_id(ref, "Condition", f"CarePlan.addresses[{i}]")
            for i, ref in enumerate(read.get("addresses") or [])
        ),
        goals=tuple(goals),
        activities=activities,
    )


def _goal_of(resource: dict[str, Any], key: str, canon: Canon) -> PlanGoal:
    read = Reader(resource, "Goal", canon.profile("krachtplan-goal"))
    description = read.need("description").get("text")
    if not isinstance(description, str) or not description:
        fail("A goal is described in words", "Goal.description.text")
    domain = score = None
    targets = read.get("target") or []
    if len(targets) > 1:
        fail("A plan goal has at most one target", "Goal.target")
    if targets:
        domain = read.the_code(
            targets[0].get("measure"),
            canon.code_system("zrm-2017"),
            "Goal.target[0].measure",
            ZRM_2017,
        )
        score = targets[0].get("detailInteger")
        if score is not None and (not isinstance(score, int) or isinstance(score, bool)):
            fail("A target score is an integer", "Goal.target[0].detailInteger")
    return PlanGoal(key, description, read.code("lifecycleStatus", GOAL_STATUSES), domain, score)


def _activity_of(value: Any, index: int, goal_prefix: str, canon: Canon) -> Activity:
    where = f"CarePlan.activity[{index}]"
    if not isinstance(value, dict) or not isinstance(value.get("detail"), dict):
        fail("An activity has a detail", f"{where}.detail")
    owners = [
        e for e in value.get("extension", []) if e.get("url") == canon.extension("activity-owner")
    ]
    if len(owners) != 1:
        fail("An activity has exactly one owner", f"{where}.extension")
    owner = code_in(
        {"coding": [owners[0].get("valueCoding")]},
        canon.code_system("activity-owner"),
        f"{where}.extension",
        OWNER_NL,
    )
    detail = value["detail"]
    performers = detail.get("performer") or []
    if len(performers) > 1:
        fail("An activity has at most one performer", f"{where}.detail.performer")
    goals = []
    for i, ref in enumerate(detail.get("goal") or []):
        goal_id = reference_id(ref, "Goal", f"{where}.detail.goal[{i}]")
        if not goal_id.startswith(goal_prefix):
            fail("An activity works towards goals of the same plan", f"{where}.detail.goal[{i}]")
        goals.append(goal_id[len(goal_prefix) :])
    description = detail.get("description")
    if not isinstance(description, str) or not description:
        fail("An activity is described in words", f"{where}.detail.description")
    key = value.get("id")
    if not isinstance(key, str) or not key:
        fail("An activity has an id (its key)", f"{where}.id")
    return Activity(
        key=key,
        description=description,
        owner=owner,
        status=detail.get("status")
        if detail.get("status") in ACTIVITY_STATUSES
        else fail("An activity's status is a CarePlan activity status", f"{where}.detail.status"),
        performer=reference_to(performers[0], OWNER_TYPES[owner], f"{where}.detail.performer[0]")
        if performers
        else None,
        goals=tuple(goals),
        progress=tuple(
            _note_of(n, f"{where}.progress[{i}]") for i, n in enumerate(value.get("progress") or [])
        ),
    )


def _activity_status(value: Any, where: str) -> str:
    if value not in ACTIVITY_STATUSES:
        fail(f"An activity's status is one of {', '.join(ACTIVITY_STATUSES)}", where)
    return str(value)
