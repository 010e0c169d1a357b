"""Hypothesis strategies for the care models: any valid value the domain allows."""

from __future__ import annotations

import datetime as dt

from hypothesis import strategies as st

from mappings.care.crisisplan import CrisisAction, CrisisPlan
from mappings.care.krachtplan import Activity, Krachtplan, PlanGoal, ProgressNote
from mappings.care.omaha import CATEGORIES, PROBLEMS, Intervention, OmahaRating
from mappings.care.plans import ACTIVITY_STATUSES, GOAL_STATUSES, PLAN_STATUSES
from mappings.care.visits import FUNDING, MODES, STATUSES, Visit
from mappings.care.zrm import ZrmAssessment
from mappings.care.zrm_codes import DOMAINS, MOMENTS

ids = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9\-]{0,20}", fullmatch=True)
keys = st.from_regex(r"[a-z][a-z0-9]{0,10}", fullmatch=True)
words = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=("Cs", "Cc", "Cn")),
    min_size=1,
    max_size=40,
).filter(lambda s: s.strip() == s and s)
days = st.dates(min_value=dt.date(2000, 1, 1), max_value=dt.date(2040, 12, 31))
zones = st.sampled_from(
    [dt.UTC, dt.timezone(dt.timedelta(hours=1)), dt.timezone(dt.timedelta(hours=2))]
)
moments = st.builds(
    lambda day, seconds, zone: (
        dt.datetime.combine(day, dt.time(), zone) + dt.timedelta(seconds=seconds)
    ),
    days,
    st.integers(0, 86399),
    zones,
)
scores = st.integers(1, 5)
practitioners = ids.map(lambda i: f"Practitioner/{i}") | ids.map(lambda i: f"PractitionerRole/{i}")


@st.composite
def zrm_assessments(draw: st.DrawFn) -> ZrmAssessment:
    version = draw(st.sampled_from(sorted(DOMAINS)))
    codes = [code for code, _, _ in DOMAINS[version]]
    scored = draw(st.lists(st.sampled_from(codes), min_size=1, unique=True))
    targets = draw(st.lists(st.sampled_from(scored), unique=True))
    return ZrmAssessment(
        id=draw(ids),
        version=version,
        patient=draw(ids),
        performer=draw(practitioners),
        moment=draw(st.sampled_from([m for m, _, _ in MOMENTS])),
        date=draw(days),
        scores={code: draw(scores) for code in scored},
        targets={code: draw(scores) for code in targets},
    )


_ZRM_2017 = [code for code, _, _ in DOMAINS["2017"]]
_PERFORMERS = {
    "client": ids.map(lambda i: f"Patient/{i}"),
    "network": ids.map(lambda i: f"RelatedPerson/{i}"),
    "volunteer": ids.map(lambda i: f"RelatedPerson/{i}"),
    "team": ids.map(lambda i: f"CareTeam/{i}"),
    "specialist": ids.map(lambda i: f"Organization/{i}"),
}


@st.composite
def plan_goals(draw: st.DrawFn, key: str) -> PlanGoal:
    domain = draw(st.none() | st.sampled_from(_ZRM_2017))
    return PlanGoal(
        key=key,
        description=draw(words),
        status=draw(st.sampled_from(GOAL_STATUSES)),
        domain=domain,
        target_score=draw(st.none() | scores) if domain else None,
    )


@st.composite
def activities(draw: st.DrawFn, key: str, goals: list[str]) -> Activity:
    owner = draw(st.sampled_from(sorted(_PERFORMERS)))
    return Activity(
        key=key,
        description=draw(words),
        owner=owner,
        status=draw(st.sampled_from(ACTIVITY_STATUSES)),
        performer=draw(st.none() | _PERFORMERS[owner]),
        goals=tuple(draw(st.lists(st.sampled_from(goals), unique=True)) if goals else ()),
        progress=tuple(
            draw(
                st.lists(
                    st.builds(ProgressNote, words, moments, st.none() | practitioners), max_size=2
                )
            )
        ),
    )


@st.composite
def krachtplans(draw: st.DrawFn) -> Krachtplan:
    start = draw(days)
    goal_keys = draw(st.lists(keys, unique=True, max_size=3))
    activity_keys = draw(st.lists(keys, unique=True, max_size=3))
    return Krachtplan(
        id=draw(ids),
        subject=draw(ids.map(lambda i: f"Patient/{i}") | ids.map(lambda i: f"Group/{i}")),
        status=draw(st.sampled_from(PLAN_STATUSES)),
        start=start,
        end=draw(st.none() | st.dates(min_value=start, max_value=dt.date(2041, 1, 1))),
        author=draw(practitioners),
        title=draw(words),
        care_team=draw(st.none() | ids),
        domains=tuple(draw(st.lists(st.sampled_from(_ZRM_2017), unique=True, max_size=4))),
        problems=tuple(draw(st.lists(ids, unique=True, max_size=2))),
        goals=tuple(draw(plan_goals(k)) for k in goal_keys),
        activities=tuple(draw(activities(k, goal_keys)) for k in activity_keys),
    )


_ACTORS = st.sampled_from(["RelatedPerson", "Practitioner", "PractitionerRole", "Organization"])


@st.composite
def crisis_plans(draw: st.DrawFn) -> CrisisPlan:
    start = draw(days)
    action_keys = draw(st.lists(keys, unique=True, min_size=1, max_size=3))
    return CrisisPlan(
        id=draw(ids),
        patient=draw(ids),
        status=draw(st.sampled_from(PLAN_STATUSES)),
        start=start,
        author=draw(practitioners),
        warning_signs=tuple(draw(st.lists(words, max_size=3))),
        actions=tuple(
            CrisisAction(k, f"{draw(_ACTORS)}/{draw(ids)}", draw(words), draw(st.none() | words))
            for k in action_keys
        ),
        end=draw(st.none() | st.dates(min_value=start, max_value=dt.date(2041, 1, 1))),
        care_team=draw(st.none() | ids),
        agreed_with=tuple(draw(st.lists(ids, unique=True, max_size=2))),
    )


@st.composite
def visits(draw: st.DrawFn) -> Visit:
    start = draw(moments)
    funding = draw(st.none() | st.sampled_from(sorted(FUNDING)))
    care_plan = draw(st.none() | ids)
    return Visit(
        id=draw(ids),
        patient=draw(ids),
        mode=draw(st.sampled_from(sorted(MODES))),
        status=draw(st.sampled_from(STATUSES)),
        start=start,
        end=start + dt.timedelta(minutes=draw(st.integers(0, 600))),
        minutes=draw(st.integers(0, 1440)),
        participants=tuple(
            draw(
                st.lists(
                    practitioners | ids.map(lambda i: f"RelatedPerson/{i}"), min_size=1, max_size=3
                )
            )
        ),
        team=draw(st.none() | ids),
        care_plan=care_plan,
        activities=tuple(draw(st.lists(keys, max_size=2))) if care_plan else (),
        funding=funding,
        product_code=draw(st.none() | st.from_regex(r"[0-9A-Z]{2,8}", fullmatch=True)),
        allocation_number=draw(st.from_regex(r"[0-9]{6,10}", fullmatch=True))
        if funding == "wmo"
        else None,
        problems=tuple(draw(st.lists(st.sampled_from(_PROBLEM_CODES), unique=True, max_size=4))),
    )


_PROBLEM_CODES = [code for _, _, _, problems in PROBLEMS for code, _, _ in problems]
_SCALES = ["knowledge", "behavior", "status"]


@st.composite
def omaha_ratings(draw: st.DrawFn) -> OmahaRating:
    targeted = draw(st.lists(st.sampled_from(_SCALES), unique=True))
    return OmahaRating(
        id=draw(ids),
        patient=draw(ids),
        performer=draw(practitioners),
        problem=draw(st.sampled_from(_PROBLEM_CODES)),
        date=draw(days),
        current={s: draw(scores) for s in _SCALES},
        target={s: draw(scores) for s in targeted},
        encounter=draw(st.none() | ids),
    )


@st.composite
def interventions(draw: st.DrawFn) -> Intervention:
    return Intervention(
        id=draw(ids),
        patient=draw(ids),
        encounter=draw(ids),
        problem=draw(st.sampled_from(_PROBLEM_CODES)),
        category=draw(st.sampled_from([code for code, _, _ in CATEGORIES])),
        date=draw(days),
        description=draw(words),
        performer=draw(st.none() | practitioners),
    )
