"""``Patient/{id}/$summary``: what a GP system displays of a client's dossier, as a document.

A FHIR document Bundle: a ``Composition`` (LOINC 60591-5, patient summary) whose sections
are the active krachtplan with its goals and activities, the latest ZRM score per domain
with the change since the first, the crisis plan with who to call, the visits of the last
90 days, and the care team; every section has a Dutch narrative, so a system that only
shows text shows all of it. The resources of a section follow the Composition in the
Bundle.

The caller gives only what it may see (the gateway searches under the caller's consent);
a section with nothing to show says "nothing you may see", in the same words whether there
is nothing or nothing visible, so the document never reveals what it leaves out.
"""

from __future__ import annotations

import datetime as dt
import html
import uuid
from collections.abc import Iterable, Mapping
from typing import Any

from mappings.care.base import DEFAULT_CANON, Canon, MappingError, code_system
from mappings.care.crisisplan import crisis_plan_from_fhir
from mappings.care.plans import OWNER_NL
from mappings.care.visits import MODES
from mappings.care.zrm import zrm_progress
from mappings.care.zrm_codes import DOMAIN_NAMES

__all__ = ["RECENT_DAYS", "SECTIONS", "summary_code_systems", "summary_document"]

_LOINC = "http://loinc.org"
_EMPTY = "http://terminology.hl7.org/CodeSystem/list-empty-reason"
RECENT_DAYS = 90
NOTHING = "Geen gegevens die u mag inzien."

#: section code -> (Dutch title, English)
SECTIONS: dict[str, tuple[str, str]] = {
    "krachtplan": ("Krachtplan", "Strength-based care plan"),
    "zrm": ("Zelfredzaamheid (ZRM)", "Self-sufficiency (ZRM)"),
    "crisisplan": ("Crisisplan", "Crisis plan"),
    "contacten": ("Recente contacten", "Recent visits and contacts"),
    "zorgteam": ("Zorgteam", "Care team"),
}


def summary_code_systems(canon: Canon = DEFAULT_CANON) -> list[dict[str, Any]]:
    """The sections of the summary document."""
    return [
        code_system(
            canon,
            "summary-section",
            "SummarySection",
            "Secties van de samenvatting",
            "The sections of Patient/$summary, the document a GP system displays.",
            [(code, nl, en) for code, (nl, en) in SECTIONS.items()],
        )
    ]


def _div(title: str, items: Iterable[str]) -> dict[str, str]:
    listed = "".join(f"<li>{html.escape(item)}</li>" for item in items)
    body = f"<ul>{listed}</ul>" if listed else f"<p>{html.escape(NOTHING)}</p>"
    return {
        "status": "generated",
        "div": f'<div xmlns="http://www.w3.org/1999/xhtml"><h2>{html.escape(title)}</h2>'
        f"{body}</div>",
    }


def _ref(resource: dict[str, Any]) -> str:
    return f"{resource['resourceType']}/{resource['id']}"


def _profiled(resource: dict[str, Any], profile: str) -> bool:
    return profile in (resource.get("meta") or {}).get("profile", [])


def _section(
    canon: Canon, code: str, lines: list[str], entries: list[dict[str, Any]]
) -> dict[str, Any]:
    title = SECTIONS[code][0]
    section: dict[str, Any] = {
        "title": title,
        "code": {
            "coding": [{"system": canon.code_system("summary-section"), "code": code}],
            "text": title,
        },
        "text": _div(title, lines),
    }
    if entries and lines:
        section["entry"] = [{"reference": _ref(r)} for r in entries]
    else:
        section["emptyReason"] = {
            "coding": [{"system": _EMPTY, "code": "unavailable", "display": "Unavailable"}],
            "text": NOTHING,
        }
    return section


def _krachtplan(
    canon: Canon, plans: list[dict[str, Any]], goals: list[dict[str, Any]]
) -> tuple[list[str], list[dict[str, Any]]]:
    active = [
        p
        for p in plans
        if _profiled(p, canon.profile("krachtplan")) and p.get("status") == "active"
    ]
    by_id = {g["id"]: g for g in goals}
    lines: list[str] = []
    entries: list[dict[str, Any]] = []
    for plan in active:
        entries.append(plan)
        start = (plan.get("period") or {}).get("start", "")
        lines.append(f"{plan.get('title', 'Krachtplan')} (sinds {start})")
        for reference in plan.get("goal", []):
            goal = by_id.get(str(reference.get("reference", "")).removeprefix("Goal/"))
            if goal is not None:
                entries.append(goal)
                text = (goal.get("description") or {}).get("text", "")
                lines.append(f"Doel: {text} ({goal.get('lifecycleStatus', '')})")
        for activity in plan.get("activity", []):
            detail = activity.get("detail") or {}
            owner = next(
                (
                    e.get("valueCoding", {}).get("code")
                    for e in activity.get("extension", [])
                    if e.get("url") == canon.extension("activity-owner")
                ),
                None,
            )
            who = f" - {OWNER_NL.get(str(owner), owner)}" if owner else ""
            lines.append(
                f"Actie: {detail.get('description', '')}{who} ({detail.get('status', '')})"
            )
    return lines, entries


def _zrm(
    canon: Canon, observations: list[dict[str, Any]]
) -> tuple[list[str], list[dict[str, Any]]]:
    by_id = {o["id"]: o for o in observations}
    lines: list[str] = []
    entries: list[dict[str, Any]] = []
    for version, domains in sorted(zrm_progress(observations, canon).items()):
        for domain, points in sorted(domains.items()):
            first, last = points[0], points[-1]
            name = DOMAIN_NAMES[version].get(domain, domain)
            change = last.score - first.score
            since = f", {change:+d} sinds {first.date[:10]}" if len(points) > 1 else ""
            lines.append(f"{name}: {last.score} op {last.date[:10]}{since} (ZRM {version})")
            entries.append(by_id[last.observation])
    return lines, entries


def _crisisplan(
    canon: Canon, plans: list[dict[str, Any]], people: Mapping[str, dict[str, Any]]
) -> tuple[list[str], list[dict[str, Any]]]:
    lines: list[str] = []
    entries: list[dict[str, Any]] = []
    for resource in plans:
        if (
            not _profiled(resource, canon.profile("crisisplan"))
            or resource.get("status") != "active"
        ):
            continue
        try:
            plan = crisis_plan_from_fhir(resource, canon)
        except MappingError:
            continue
        entries.append(resource)
        lines += [f"Signaal: {sign}" for sign in plan.warning_signs]
        for action in plan.actions:
            call = f", bel {action.telephone}" if action.telephone else ""
            who = _name(people[action.who]) if action.who in people else action.who
            lines.append(f"{action.what} ({who}{call})")
    return lines, entries


def _contacts(
    visits: list[dict[str, Any]], now: dt.datetime, canon: Canon
) -> tuple[list[str], list[dict[str, Any]]]:
    since = now - dt.timedelta(days=RECENT_DAYS)
    recent = []
    for visit in visits:
        try:
            start = dt.datetime.fromisoformat(str(visit["period"]["start"]).replace("Z", "+00:00"))
        except (KeyError, TypeError, ValueError):
            continue
        if start.tzinfo is not None and since <= start <= now and visit.get("status") == "finished":
            recent.append((start, visit))
    recent.sort(key=lambda pair: (pair[0], pair[1]["id"]), reverse=True)
    lines = []
    for start, visit in recent:
        mode = next(
            (
                c.get("code")
                for t in visit.get("type", [])
                for c in t.get("coding", [])
                if c.get("system") == canon.code_system("contact-mode")
            ),
            None,
        )
        kind = MODES[mode][0] if mode in MODES else "Contact"
        minutes = (visit.get("length") or {}).get("value")
        length = f", {minutes} minuten" if isinstance(minutes, int) else ""
        lines.append(f"{start.date().isoformat()}: {kind}{length}")
    return lines, [visit for _, visit in recent]


def _team(
    teams: list[dict[str, Any]], people: Mapping[str, dict[str, Any]]
) -> tuple[list[str], list[dict[str, Any]]]:
    lines: list[str] = []
    entries: list[dict[str, Any]] = []
    for team in teams:
        if team.get("status") not in (None, "active"):
            continue
        entries.append(team)
        lines.append(str(team.get("name", "Zorgteam")))
        for participant in team.get("participant", []):
            reference = str((participant.get("member") or {}).get("reference", ""))
            person = people.get(reference)
            name = _name(person) if person else (participant.get("member") or {}).get("display")
            if not name:
                continue  # someone the caller may not see: not named
            phones = [
                t.get("value")
                for t in (person or {}).get("telecom", [])
                if t.get("system") == "phone" and t.get("value")
            ]
            role = "netwerk" if reference.startswith("RelatedPerson/") else "professional"
            call = f", bel {phones[0]}" if phones else ""
            lines.append(f"{name} ({role}{call})")
    return lines, entries


def _name(resource: dict[str, Any]) -> str:
    names = resource.get("name") or []
    if not names:
        return ""
    first = names[0]
    return " ".join([*first.get("given", []), str(first.get("family", ""))]).strip()


def summary_document(
    patient: dict[str, Any],
    found: Mapping[str, list[dict[str, Any]]],
    now: dt.datetime,
    base_url: str,
    canon: Canon = DEFAULT_CANON,
) -> dict[str, Any]:
    """The document of ``patient`` from the resources the caller may see, by type
    (CarePlan, Goal, Observation, Encounter, CareTeam, Practitioner, RelatedPerson)."""
    plans, goals = found.get("CarePlan", []), found.get("Goal", [])
    people = {_ref(r): r for t in ("Practitioner", "RelatedPerson") for r in found.get(t, [])}
    parts = {
        "krachtplan": _krachtplan(canon, plans, goals),
        "zrm": _zrm(canon, found.get("Observation", [])),
        "crisisplan": _crisisplan(canon, plans, people),
        "contacten": _contacts(found.get("Encounter", []), now, canon),
        "zorgteam": _team(found.get("CareTeam", []), people),
    }
    name = _name(patient) or "de cliënt"
    moment = now.astimezone(dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    composition: dict[str, Any] = {
        "resourceType": "Composition",
        "id": str(uuid.uuid4()),
        "text": _div(
            f"Samenvatting van het dossier van {name}",
            [f"Opgesteld {moment[:10]} uit wat u mag inzien"],
        ),
        "status": "final",
        "type": {
            "coding": [{"system": _LOINC, "code": "60591-5", "display": "Patient summary Document"}]
        },
        "subject": {"reference": _ref(patient), "display": name},
        "date": moment,
        "author": [{"display": "Eigen Dossier"}],
        "title": f"Samenvatting van het dossier van {name}",
        "section": [_section(canon, code, *parts[code]) for code in SECTIONS],
    }
    included: dict[str, dict[str, Any]] = {_ref(patient): patient}
    for lines, entries in parts.values():
        if lines:
            for resource in entries:
                included.setdefault(_ref(resource), resource)
    return {
        "resourceType": "Bundle",
        "id": str(uuid.uuid4()),
        "identifier": {"system": "urn:ietf:rfc:3986", "value": f"urn:uuid:{uuid.uuid4()}"},
        "type": "document",
        "timestamp": moment,
        "entry": [
            {"fullUrl": f"{base_url}/Composition/{composition['id']}", "resource": composition},
            *(
                {"fullUrl": f"{base_url}/{reference}", "resource": resource}
                for reference, resource in included.items()
            ),
        ],
    }
