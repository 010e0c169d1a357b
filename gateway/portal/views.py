"""What each portal page shows: asked of the API with the person's token, then rendered.

Nothing here reaches the dossier any other way than through :class:`~gateway.portal.api.Api`;
what the API does not return for this token, no page can show.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from lxml import html as lxml_html

from gateway.portal.api import Api
from gateway.portal.chart import Series, domain_chart
from gateway.portal.grants import ALL, CATEGORIES, Described, describe
from gateway.portal.pages import e, format_day, format_moment, name_of
from gateway.portal.texts import PortalTexts
from mappings.care.base import Canon, MappingError
from mappings.care.crisisplan import crisis_plan_from_fhir
from mappings.care.zrm_codes import DOMAINS, MOMENTS

__all__ = [
    "DOSSIER_TYPES",
    "access_page",
    "apps_page",
    "crisis_plan_refs",
    "data_page",
    "log_page",
    "names",
    "plan_page",
    "record_page",
    "scores_page",
    "shared_page",
]

#: what a client's download holds: their own dossier's types (never the shared directory)
DOSSIER_TYPES = (
    "Patient",
    "RelatedPerson",
    "CareTeam",
    "CarePlan",
    "Goal",
    "Condition",
    "Observation",
    "QuestionnaireResponse",
    "Encounter",
    "Procedure",
    "Consent",
    "Claim",
    "ClaimResponse",
    "Coverage",
    "AuditEvent",
)
_ACTOR_TYPES = ("Organization", "Practitioner", "CareTeam", "RelatedPerson")
_BTG = "BTG"
_RECENT_DAYS = 90


# -- names --------------------------------------------------------------------------------


async def names(api: Api, references: Iterable[str]) -> dict[str, str]:
    """The names of the people and organisations referred to, as far as the token sees."""
    wanted: dict[str, set[str]] = defaultdict(set)
    for reference in references:
        kind, _, ident = reference.partition("/")
        if ident and kind in (
            "Patient",
            "Practitioner",
            "Organization",
            "CareTeam",
            "RelatedPerson",
            "PractitionerRole",
            "Group",
        ):
            wanted[kind].add(ident)
    found: dict[str, str] = {}
    for kind, ids in wanted.items():
        for start in range(0, len(ids), 50):
            chunk = sorted(ids)[start : start + 50]
            for resource in await api.search(kind, [("_id", ",".join(chunk))]):
                name = name_of(resource)
                if name:
                    found[f"{kind}/{resource.get('id')}"] = name
    return found


def _ref(value: Any) -> str:
    return str((value or {}).get("reference", "")) if isinstance(value, dict) else ""


def _display(value: Any, known: dict[str, str], texts: PortalTexts) -> str:
    reference = _ref(value)
    if reference in known:
        return known[reference]
    if isinstance(value, dict) and value.get("display"):
        return str(value["display"])
    return texts.t("unknown")


def _concept(value: Any) -> str:
    if not isinstance(value, dict):
        return ""
    if value.get("text"):
        return str(value["text"])
    for coding in value.get("coding", []):
        if isinstance(coding, dict) and coding.get("display"):
            return str(coding["display"])
    return ""


def _period(texts: PortalTexts, period: Any) -> str:
    if not isinstance(period, dict) or not period.get("start"):
        return ""
    start = format_day(texts, period["start"])
    if period.get("end"):
        return texts.t("from_to", start=start, end=format_day(texts, period["end"]))
    return texts.t("from", start=start)


# -- plans ----------------------------------------------------------------------------------


def _plan_kind(plan: dict[str, Any], canon: Canon) -> str | None:
    system = canon.code_system("plan-kind")
    for concept in plan.get("category", []):
        for coding in concept.get("coding", []) if isinstance(concept, dict) else []:
            if isinstance(coding, dict) and coding.get("system") == system:
                return str(coding.get("code"))
    return None


def crisis_plan_refs(plans: Iterable[dict[str, Any]], canon: Canon) -> list[str]:
    return [f"CarePlan/{p['id']}" for p in plans if _plan_kind(p, canon) == "crisisplan"]


def _crisis_html(
    texts: PortalTexts, plan: dict[str, Any], known: dict[str, str], canon: Canon
) -> str:
    """A crisis plan read with the mapping's own reader (:mod:`mappings.care.crisisplan`);
    one that does not fit its profile is shown as a plan."""
    try:
        crisis = crisis_plan_from_fhir(plan, canon)
    except MappingError:
        return _plan_html(texts, plan, {}, known)
    rows = "".join(
        f"<tr><td>{e(known.get(a.who, texts.t('unknown')))}</td><td>{e(a.what)}</td>"
        f"<td>{e(a.telephone or '')}</td></tr>"
        for a in crisis.actions
    )
    ident = e(plan["id"])
    period = {
        "start": crisis.start.isoformat(),
        "end": crisis.end.isoformat() if crisis.end else None,
    }
    return (
        f"<section class='card crisis' aria-labelledby='crisis-{ident}'>"
        f"<h2 id='crisis-{ident}'>{e(texts.t('crisis_title'))}</h2>"
        f"<p>{e(texts.t('period'))}: {e(_period(texts, period))}</p>"
        f"<h3>{e(texts.t('warning_signs'))}</h3><ul>"
        + "".join(f"<li>{e(s)}</li>" for s in crisis.warning_signs)
        + f"</ul><h3>{e(texts.t('who_to_call'))}</h3><div class='table-wrap'><table><thead><tr>"
        f"<th scope='col'>{e(texts.t('who_does'))}</th><th scope='col'>{e(texts.t('what'))}"
        f"</th><th scope='col'>{e(texts.t('telephone'))}</th></tr></thead><tbody>{rows}"
        "</tbody></table></div></section>"
    )


def _plan_html(
    texts: PortalTexts,
    plan: dict[str, Any],
    goals: dict[str, dict[str, Any]],
    known: dict[str, str],
) -> str:
    subject = _ref(plan.get("subject"))
    whose = ""
    if subject.startswith("Group/"):
        whose = (
            f"<p class='household'><strong>{e(texts.t('household'))}</strong>: "
            f"{e(texts.t('plan_of', names=known.get(subject, texts.t('unknown'))))}</p>"
        )
    plan_goals = [goals[_ref(g)] for g in plan.get("goal", []) if _ref(g) in goals]
    goal_items = "".join(
        f"<li>{e(_concept(g.get('description')))}"
        f" <span class='status'>({e(texts.status(str(g.get('lifecycleStatus', ''))))})</span></li>"
        for g in plan_goals
    )
    rows = []
    for activity in plan.get("activity", []):
        detail = activity.get("detail", {}) if isinstance(activity, dict) else {}
        who = ", ".join(_display(p, known, texts) for p in detail.get("performer", []))
        rows.append(
            f"<tr><td>{e(detail.get('description', ''))}</td><td>{e(who)}</td>"
            f"<td>{e(texts.status(str(detail.get('status', ''))))}</td></tr>"
        )
    activities = ""
    if rows:
        activities = (
            f"<h3>{e(texts.t('activities'))}</h3><div class='table-wrap'><table><thead><tr>"
            f"<th scope='col'>{e(texts.t('what'))}</th><th scope='col'>"
            f"{e(texts.t('who_does'))}</th><th scope='col'>{e(texts.t('status'))}</th>"
            f"</tr></thead><tbody>{''.join(rows)}</tbody></table></div>"
        )
    goals_html = f"<h3>{e(texts.t('goals'))}</h3><ul>{goal_items}</ul>" if goal_items else ""
    return (
        f"<section class='card' aria-labelledby='plan-{e(plan['id'])}'>"
        f"<h2 id='plan-{e(plan['id'])}'>{e(plan.get('title') or texts.t('plan_title'))}</h2>"
        f"{whose}<p>{e(texts.t('period'))}: {e(_period(texts, plan.get('period')))}</p>"
        + (f"<p>{e(plan['description'])}</p>" if plan.get("description") else "")
        + f"{goals_html}{activities}</section>"
    )


async def _plans_and_visits(
    api: Api, texts: PortalTexts, canon: Canon, today: dt.date, *, client: bool, me: str = ""
) -> str:
    plans = await api.search("CarePlan", [("status", "active"), ("_count", "100")])
    goals = {f"Goal/{g['id']}": g for g in await api.search("Goal", [("_count", "200")])}
    since = (today - dt.timedelta(days=_RECENT_DAYS)).isoformat()
    visits = await api.search(
        "Encounter", [("date", f"ge{since}"), ("_sort", "-date"), ("_count", "20")], limit=20
    )
    teams = await api.search("CareTeam", [("status", "active"), ("_count", "50")]) if client else []
    references = {
        _ref(p)
        for plan in plans
        for a in plan.get("activity", [])
        for p in (a.get("detail", {}) if isinstance(a, dict) else {}).get("performer", [])
    }
    references |= {_ref(p.get("subject")) for p in plans}
    references |= {_ref(p.get("individual")) for v in visits for p in v.get("participant", [])}
    references |= {_ref(m.get("member")) for t in teams for m in t.get("participant", [])}
    known = await names(api, references)
    if me and me not in known:  # the viewer, named in a plan they may see
        known[me] = texts.t("you")
    parts: list[str] = []
    crisis = [p for p in plans if _plan_kind(p, canon) == "crisisplan"]
    others = [p for p in plans if _plan_kind(p, canon) != "crisisplan"]
    parts.extend(_plan_html(texts, p, goals, known) for p in others)
    parts.extend(_crisis_html(texts, p, known, canon) for p in crisis)
    if not client and not plans and not visits:
        return f"<p>{e(texts.t('nothing_shared'))}</p>"
    if not plans:
        parts.append(f"<p>{e(texts.t('no_plans'))}</p>")
    rows = []
    for visit in visits:
        who = ", ".join(
            _display(p.get("individual"), known, texts) for p in visit.get("participant", [])
        )
        what = ", ".join(_concept(t) for t in visit.get("type", [])) or _concept(
            visit.get("serviceType")
        )
        rows.append(
            f"<tr><td>{e(format_moment(texts, str((visit.get('period') or {}).get('start', ''))))}"
            f"</td><td>{e(what)}</td><td>{e(who)}</td></tr>"
        )
    visits_html = (
        f"<div class='table-wrap'><table><thead><tr><th scope='col'>{e(texts.t('when'))}</th>"
        f"<th scope='col'>{e(texts.t('what'))}</th><th scope='col'>{e(texts.t('who'))}</th>"
        "</tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table></div>"
        if rows
        else f"<p>{e(texts.t('no_visits'))}</p>"
    )
    parts.append(
        f"<section class='card' aria-labelledby='visits'><h2 id='visits'>"
        f"{e(texts.t('visits_title'))}</h2>{visits_html}</section>"
    )
    if teams:
        members = sorted(
            {known.get(_ref(m.get("member")), "") for t in teams for m in t.get("participant", [])}
            - {""}
        )
        parts.append(
            f"<section class='card' aria-labelledby='team'><h2 id='team'>"
            f"{e(texts.t('team_title'))}</h2><ul>"
            + "".join(f"<li>{e(m)}</li>" for m in members)
            + "</ul></section>"
        )
    return "".join(parts)


async def plan_page(api: Api, texts: PortalTexts, canon: Canon, today: dt.date) -> str:
    return await _plans_and_visits(api, texts, canon, today, client=True)


# -- scores -------------------------------------------------------------------------------


async def _series(api: Api, patient: str, texts: PortalTexts) -> list[Series]:
    progress = await api.get(f"Patient/{patient}/$zrm-progress")
    goals = await api.search("Goal", [("subject", f"Patient/{patient}"), ("_count", "200")])
    targets: dict[tuple[str, str], int] = {}
    for goal in goals:
        for target in goal.get("target", []):
            if not isinstance(target, dict) or not isinstance(target.get("detailInteger"), int):
                continue
            for coding in (target.get("measure") or {}).get("coding", []):
                targets[(str(coding.get("system")), str(coding.get("code")))] = int(
                    target["detailInteger"]
                )
    english = texts.language == "en"
    moments = {code: (en if english else nl) for code, nl, en in MOMENTS}
    found = []
    for parameter in progress.get("parameter", []):
        parts = {p.get("name"): p for p in parameter.get("part", []) if isinstance(p, dict)}
        version = str(parts.get("version", {}).get("valueString", ""))
        coding = parts.get("domain", {}).get("valueCoding", {})
        code = str(coding.get("code", ""))
        domain_names = {c: (nl, en) for c, nl, en in DOMAINS.get(version, ())}
        nl_name, en_name = domain_names.get(code, (code, code))
        points = []
        for point in parameter.get("part", []):
            if point.get("name") != "point":
                continue
            values = {p.get("name"): p for p in point.get("part", [])}
            moment = str(values.get("moment", {}).get("valueCode", ""))
            points.append(
                (
                    str(values["date"]["valueString"]),
                    int(values["score"]["valueInteger"]),
                    moments.get(moment, moment),
                )
            )
        if points:
            found.append(
                Series(
                    code,
                    f"{en_name if english else nl_name}" + (f" ({version})" if version else ""),
                    tuple(points),
                    targets.get((str(coding.get("system")), code)),
                )
            )
    return found


async def scores_page(api: Api, texts: PortalTexts, patient: str) -> str:
    series = await _series(api, patient, texts)
    if not series:
        return f"<p>{e(texts.t('no_scores'))}</p>"
    charts = "".join(
        f"<li><h2 class='chart-title' id='zrm-{i}-h'>{e(s.name)}</h2>"
        f"{domain_chart(s, texts.t('target'), f'zrm-{i}')}</li>"
        for i, s in enumerate(series)
    )
    moments: dict[str, str] = {}
    for s in series:
        for d, _, moment in s.points:
            moments.setdefault(d[:10], moment)
    dates = sorted(moments)
    head = "".join(
        f"<th scope='col'>{e(format_day(texts, d))}"
        + (f"<br><span class='moment'>{e(moments[d])}</span>" if moments[d] else "")
        + "</th>"
        for d in dates
    )
    rows = []
    for s in series:
        by_date = {d[:10]: score for d, score, _ in s.points}
        cells = "".join(f"<td>{by_date.get(d, '')}</td>" for d in dates)
        target = "" if s.target is None else str(s.target)
        rows.append(f"<tr><th scope='row'>{e(s.name)}</th>{cells}<td>{target}</td></tr>")
    table = (
        f"<div class='table-wrap'><table class='scores'><caption>{e(texts.t('scores_table'))}"
        f"</caption><thead><tr><th scope='col'>{e(texts.t('domain'))}</th>{head}"
        f"<th scope='col'>{e(texts.t('target'))}</th></tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table></div>"
    )
    return (
        f"<p>{e(texts.t('scores_intro'))}</p>"
        f"<ul class='charts' aria-label='{e(texts.t('chart_label'))}'>{charts}</ul>{table}"
    )


# -- who may see what -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class GrantView:
    consent: dict[str, Any]
    described: Described
    active: bool


def _active(consent: dict[str, Any], described: Described, today: dt.date) -> bool:
    if consent.get("status") != "active":
        return False
    return not (described.end and described.end[:10] < today.isoformat())


def grant_words(texts: PortalTexts, view: GrantView, known: dict[str, str]) -> str:
    described = view.described
    who = texts.join([known.get(a, texts.t("unknown")) for a in described.actors]) or texts.t(
        "unknown"
    )
    if described.everything:
        what = texts.t("everything")
        if described.except_labels:
            labels = [texts.t(f"label:{c}") if c == "PSY" else c for c in described.except_labels]
            what += " " + texts.t("except", what=texts.join(labels))
    else:
        parts = [texts.t(f"cat:{c}") for c in described.categories if c != ALL]
        if described.types:
            parts.append(
                texts.t("types", types=texts.join([texts.type_name(t) for t in described.types]))
            )
        if described.instances:
            parts.append(texts.t("single", count=str(len(described.instances))))
        what = texts.join(parts) or texts.t("unknown")
    until = texts.t("until", date=format_day(texts, described.end)) if described.end else ""
    key = "grant_line_write" if described.writes else "grant_line"
    line = texts.t(key, who=f"<strong>{e(who)}</strong>", what=e(what), until=e(until))
    if described.emergency is not None:
        line += f" <strong class='btg'>{e(texts.t('btg', reason=described.emergency))}</strong>"
    return line


async def grants_of(
    api: Api, patient: str, canon: Canon, today: dt.date
) -> tuple[list[GrantView], list[str], dict[str, str]]:
    """The client's Consents as grants, their crisis plans, and the names of the actors."""
    consents = await api.search("Consent", [("patient", f"Patient/{patient}"), ("_count", "200")])
    plans = await api.search("CarePlan", [("_count", "200")])
    crisis = crisis_plan_refs(plans, canon)
    views = []
    for consent in consents:
        described = describe(consent, crisis)
        views.append(GrantView(consent, described, _active(consent, described, today)))
    known = await names(api, {a for v in views for a in v.described.actors})
    return views, crisis, known


async def directory(api: Api, patient: str) -> dict[str, list[tuple[str, str]]]:
    """Whom the client can grant access, per kind: (reference, name)."""
    found: dict[str, list[tuple[str, str]]] = {}
    for kind in _ACTOR_TYPES:
        params = [("_count", "200")]
        if kind == "RelatedPerson":
            params.append(("patient", f"Patient/{patient}"))
        entries = []
        for resource in await api.search(kind, params):
            name = name_of(resource)
            if name:
                entries.append((f"{kind}/{resource['id']}", name))
        found[kind] = sorted(entries, key=lambda x: x[1].lower())
    return found


def grant_form(
    texts: PortalTexts,
    csrf: str,
    people: dict[str, list[tuple[str, str]]],
    today: dt.date,
    *,
    editing: GrantView | None = None,
    known: dict[str, str] | None = None,
    has_crisis: bool = True,
) -> str:
    chosen = set(editing.described.categories) if editing else set()
    end = (
        editing.described.end[:10]
        if editing and editing.described.end
        else (today + dt.timedelta(days=365)).isoformat()
    )
    if editing is None:
        groups = "".join(
            f"<optgroup label='{e(texts.t(f'group:{kind}'))}'>"
            + "".join(f"<option value='{e(ref)}'>{e(name)}</option>" for ref, name in entries)
            + "</optgroup>"
            for kind, entries in people.items()
            if entries
        )
        recipient = (
            f"<label for='recipient'>{e(texts.t('recipient'))}</label>"
            f"<select id='recipient' name='recipient' required><option value=''>"
            f"{e(texts.t('choose'))}</option>{groups}</select>"
        )
        heading, action, button = texts.t("new_grant"), "grant", texts.t("grant")
        hidden = ""
    else:
        who = texts.join(
            [(known or {}).get(a, texts.t("unknown")) for a in editing.described.actors]
        )
        recipient = ""
        heading, action, button = texts.t("change_grant", who=who), "change", texts.t("save")
        hidden = f"<input type='hidden' name='consent' value='{e(editing.consent['id'])}'>"
    boxes = []
    for category in (*CATEGORIES, ALL):
        if category == "crisis" and not has_crisis:
            continue
        checked = " checked" if category in chosen else ""
        boxes.append(
            f"<div class='check'><input type='checkbox' id='cat-{category}' name='category' "
            f"value='{category}'{checked}><label for='cat-{category}'>"
            f"{e(texts.t(f'cat:{category}'))}</label></div>"
        )
    return (
        f"<section class='card' aria-labelledby='grant-form'><h2 id='grant-form'>{e(heading)}"
        f"</h2><form method='post' action='/portal/access'>"
        f"<input type='hidden' name='csrf' value='{e(csrf)}'>"
        f"<input type='hidden' name='action' value='{action}'>{hidden}{recipient}"
        f"<fieldset><legend>{e(texts.t('what_categories'))}</legend>{''.join(boxes)}"
        f"</fieldset><p class='hint'>{e(texts.t('always_patient'))}</p>"
        f"<label for='end'>{e(texts.t('end_date'))}</label>"
        f"<input type='date' id='end' name='end' value='{e(end)}' min='{today.isoformat()}' "
        f"required><p><button type='submit'>{e(button)}</button>"
        + (f" <a href='/portal/access'>{e(texts.t('cancel'))}</a>" if editing else "")
        + "</p></form></section>"
    )


async def access_page(
    api: Api,
    texts: PortalTexts,
    patient: str,
    canon: Canon,
    today: dt.date,
    csrf: str,
    *,
    change: str | None = None,
    notice: str = "",
    done: tuple[str | None, str | None] = (None, None),
) -> str:
    """The client's grants, the form to give (or change) one, and ``notice`` (escaped) or
    what ``done`` says was just done to which Consent (named from the Consent itself)."""
    views, crisis, known = await grants_of(api, patient, canon, today)
    what, which = done
    if what in ("granted", "withdrawn"):
        for view in views:
            if str(view.consent.get("id")) == which:
                who = texts.join([known.get(a, texts.t("unknown")) for a in view.described.actors])
                notice = e(texts.t(what, who=who))
    active = [v for v in views if v.active]
    ended = [v for v in views if not v.active]
    items = []
    for view in active:
        ident = str(view.consent["id"])
        who = texts.join([known.get(a, texts.t("unknown")) for a in view.described.actors])
        change_link = (
            f"<a href='/portal/access?change={e(ident)}'>{e(texts.t('change'))}"
            f"<span class='visually-hidden'>: {e(who)}</span></a> "
            if view.described.made_here
            else ""
        )
        items.append(
            f"<li id='grant-{e(ident)}'><p>{grant_words(texts, view, known)}</p>{change_link}"
            f"<form method='post' action='/portal/access' class='inline'>"
            f"<input type='hidden' name='csrf' value='{e(csrf)}'>"
            f"<input type='hidden' name='action' value='withdraw'>"
            f"<input type='hidden' name='consent' value='{e(ident)}'>"
            f"<button type='submit' aria-label='{e(texts.t('withdraw_named', who=who))}'>"
            f"{e(texts.t('withdraw'))}</button></form></li>"
        )
    listing = (
        f"<ul class='grants'>{''.join(items)}</ul>"
        if items
        else f"<p>{e(texts.t('no_grants'))}</p>"
    )
    history = ""
    if ended:
        history = (
            f"<details><summary>{e(texts.t('ended'))} ({len(ended)})</summary><ul>"
            + "".join(
                f"<li id='grant-{e(v.consent['id'])}'>{grant_words(texts, v, known)}</li>"
                for v in ended
            )
            + "</ul></details>"
        )
    editing = next((v for v in active if str(v.consent["id"]) == change), None)
    people = await directory(api, patient) if editing is None else {}
    form = grant_form(
        texts, csrf, people, today, editing=editing, known=known, has_crisis=bool(crisis)
    )
    message = f"<p class='notice' role='status'>{notice}</p>" if notice else ""
    return f"{message}<p>{e(texts.t('access_intro'))}</p>{listing}{history}{form}"


# -- who looked ---------------------------------------------------------------------------


def _agent(event: dict[str, Any], code: str) -> dict[str, Any] | None:
    for agent in event.get("agent", []):
        for coding in (agent.get("type") or {}).get("coding", []):
            if coding.get("code") == code:
                return dict(agent)
    return None


def _requester_key(event: dict[str, Any]) -> str:
    """Who asked: the person (a reference), else the organisation a backend system acts
    for (its identifier), else whatever the log names."""
    agents = event.get("agent", [])
    requester = agents[0] if agents else None
    if requester and _ref(requester.get("who")):
        return _ref(requester.get("who"))
    responsible = _agent(event, "RESP")
    return _who_key(responsible) if responsible else _who_key(requester)


def _who_key(agent: dict[str, Any] | None) -> str:
    if not agent:
        return ""
    who = agent.get("who") or {}
    if who.get("reference"):
        return str(who["reference"])
    identifier = who.get("identifier") or {}
    return f"{identifier.get('system', '')}|{identifier.get('value', '')}"


def _what(event: dict[str, Any], texts: PortalTexts) -> str:
    """What was done, in words: "bekeek plannen (3)", "zocht in metingen"."""
    counts: dict[str, int] = defaultdict(int)
    for entity in event.get("entity", []):
        reference = _ref(entity.get("what"))
        if reference and not reference.startswith("Patient/"):
            counts[reference.split("/")[0]] += 1
    parts = [
        f"{texts.type_name(kind)}{f' ({n})' if n > 1 else ''}" for kind, n in sorted(counts.items())
    ]
    searched = _searched_type(event)
    if not parts and searched:
        return texts.t("searched", what=texts.type_name(searched))
    action = texts.t(f"action:{event.get('action', 'E')}")
    return texts.t("objects", action=action, what=texts.join(parts or [texts.type_name("Patient")]))


def _searched_type(event: dict[str, Any]) -> str | None:
    """The resource type a search asked for (the query's path), if the entry has one."""
    for entity in event.get("entity", []):
        if entity.get("query"):
            try:
                query = base64.b64decode(entity["query"]).decode()
            except (binascii.Error, UnicodeDecodeError, ValueError):
                return None
            kind = query.split("?", 1)[0].strip("/").split("/")[0]
            return kind if kind.isalpha() else None
    return None


def _btg(event: dict[str, Any]) -> str | None:
    for purpose in event.get("purposeOfEvent", []):
        for coding in purpose.get("coding", []):
            if coding.get("code") == _BTG:
                return str(purpose.get("text") or "")
    return None


def _shown(key: str, who: str, me: str) -> bool:
    """Whether the filter ``who`` (others, me, all, or one requester) shows ``key``."""
    if who == "others":
        return key != me
    if who == "me":
        return key == me
    return who in ("all", key)


def _log_row(event: dict[str, Any], texts: PortalTexts, known: dict[str, str], me: str) -> str:
    """One access in words: when, who, organisation, what, outcome, and by which grant."""
    requester = (event.get("agent") or [None])[0]
    key = _requester_key(event)
    person = texts.t("you") if key == me else known.get(key, texts.t("unknown"))
    responsible = _agent(event, "RESP")
    organisation = known.get(_who_key(responsible), "") if responsible else ""
    if organisation == person:
        organisation = ""
    outcome = {"0": "allowed", "4": "refused"}.get(str(event.get("outcome")), "failed")
    consents = [
        str(p).rsplit("/", 1)[-1]
        for p in (requester or {}).get("policy", [])
        if "/Consent/" in str(p)
    ]
    reason = _btg(event)
    btg = ""
    if reason is not None:
        via = e(texts.t("btg_short"))
        btg = f"<p class='btg'><strong>{e(texts.t('btg', reason=reason))}</strong></p>"
    elif consents:  # the grant that allowed it, on the page of grants
        via = ", ".join(
            f"<a href='/portal/access#grant-{e(c)}'>{e(texts.t('your_consent'))}</a>"
            for c in consents
        )
    else:
        via = e(texts.t("own_access")) if key == me else ""
    row_class = " class='btg-row'" if reason is not None else ""
    return (
        f"<tr{row_class}><td>{e(format_moment(texts, str(event.get('recorded', ''))))}</td>"
        f"<td>{e(person)}</td><td>{e(organisation)}</td><td>{e(_what(event, texts))}{btg}</td>"
        f"<td class='outcome-{outcome}'>{e(texts.t(outcome))}</td><td>{via}</td></tr>"
    )


async def log_page(
    api: Api,
    texts: PortalTexts,
    patient: str,
    start: dt.date,
    end: dt.date,
    who: str,
) -> str:
    limit = 500
    events = await api.search(
        "AuditEvent",
        [
            ("patient", f"Patient/{patient}"),
            ("date", f"ge{start.isoformat()}"),
            ("date", f"le{end.isoformat()}"),
            ("_sort", "-date"),
            ("_count", "100"),
        ],
        limit=limit,
    )
    me = f"Patient/{patient}"
    references: set[str] = set()
    keys: set[str] = set()
    for event in events:
        for agent in event.get("agent", []):
            if _ref(agent.get("who")):
                references.add(_ref(agent.get("who")))
        keys.add(_requester_key(event))
    identified = [k for k in keys if "|" in k]
    known = await names(api, references)
    for key in identified:
        system, _, value = key.partition("|")
        if system and value:
            for org in await api.search("Organization", [("identifier", f"{system}|{value}")]):
                known[key] = name_of(org) or value
    rows = [
        _log_row(event, texts, known, me)
        for event in events
        if _shown(_requester_key(event), who, me)
    ]
    options = [
        ("others", texts.t("log_everyone")),
        ("all", texts.t("log_all")),
        ("me", texts.t("log_you")),
    ]
    options += sorted(
        ((k, known.get(k, texts.t("unknown"))) for k in keys if k and k != me),
        key=lambda x: x[1].lower(),
    )
    select = "".join(
        f"<option value='{e(k)}'{' selected' if k == who else ''}>{e(v)}</option>"
        for k, v in options
    )
    form = (
        f"<form method='get' action='/portal/log' class='filter'><fieldset><legend>"
        f"{e(texts.t('log_filter'))}</legend><label for='from'>{e(texts.t('log_from'))}</label>"
        f"<input type='date' id='from' name='from' value='{start.isoformat()}'>"
        f"<label for='to'>{e(texts.t('log_to'))}</label>"
        f"<input type='date' id='to' name='to' value='{end.isoformat()}'>"
        f"<label for='who'>{e(texts.t('log_who'))}</label><select id='who' name='who'>{select}"
        f"</select><button type='submit'>{e(texts.t('show'))}</button></fieldset></form>"
    )
    more = f"<p>{e(texts.t('more_entries'))}</p>" if len(events) >= limit else ""
    if not rows:
        return f"<p>{e(texts.t('log_intro'))}</p>{form}<p>{e(texts.t('no_entries'))}</p>"
    head = "".join(
        f"<th scope='col'>{e(texts.t(k))}</th>"
        for k in ("when", "who", "organisation", "did", "result", "via")
    )
    return (
        f"<p>{e(texts.t('log_intro'))}</p>{form}<div class='table-wrap'><table class='log'>"
        f"<caption>{e(texts.t('log_title'))}</caption><thead><tr>{head}</tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table></div>{more}"
    )


# -- apps, data -------------------------------------------------------------------------


async def apps_page(api: Api, texts: PortalTexts, csrf: str) -> str:
    items = []
    for grant in await api.authorizations():
        line = texts.t(
            "app_line",
            name=str(grant.get("client_name")),
            date=format_day(texts, str(grant.get("created", ""))),
        )
        if grant.get("current"):
            line += f" ({texts.t('this_portal')})"
        if grant.get("revoked"):
            items.append(f"<li>{e(line)}: <em>{e(texts.t('withdrawn_app'))}</em></li>")
            continue
        items.append(
            f"<li>{e(line)} <form method='post' action='/portal/apps' class='inline'>"
            f"<input type='hidden' name='csrf' value='{e(csrf)}'>"
            f"<input type='hidden' name='authorization' value='{e(grant.get('id'))}'>"
            f"<button type='submit' aria-label='"
            f"{e(texts.t('withdraw_named', who=str(grant.get('client_name'))))}'>"
            f"{e(texts.t('withdraw'))}</button></form></li>"
        )
    listing = (
        f"<ul class='grants'>{''.join(items)}</ul>" if items else f"<p>{e(texts.t('no_apps'))}</p>"
    )
    return f"<p>{e(texts.t('apps_intro'))}</p>{listing}"


def data_page(texts: PortalTexts) -> str:
    return (
        f"<p>{e(texts.t('data_intro'))}</p><ul class='downloads'>"
        f"<li><a href='/portal/data/dossier.json' download>{e(texts.t('download_bundle'))}</a></li>"
        f"<li><a href='/portal/data/dossier.html'>{e(texts.t('download_page'))}</a></li></ul>"
    )


async def dossier(api: Api, patient: str) -> list[dict[str, Any]]:
    """Everything of the client's own dossier the token may read (their whole dossier)."""
    served = {
        str(r.get("type"))
        for rest in (await api.get("metadata")).get("rest", [])
        for r in rest.get("resource", [])
    }
    found: list[dict[str, Any]] = []
    for kind in DOSSIER_TYPES:
        if kind not in served:
            continue
        if kind == "Patient":
            own = await api.read(f"Patient/{patient}")
            found.extend([own] if own else [])
            continue
        params = [("_count", "1000")]
        if kind == "AuditEvent":
            params.append(("patient", f"Patient/{patient}"))
        found.extend(await api.search(kind, params, limit=20000))
    return found


def _text_of(resource: dict[str, Any]) -> str:
    div = (resource.get("text") or {}).get("div")
    if not div:
        return ""
    try:
        return " ".join(lxml_html.fragment_fromstring(str(div)).text_content().split())
    except Exception:
        return ""


def record_page(texts: PortalTexts, resources: list[dict[str, Any]]) -> str:
    by_type: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for resource in resources:
        by_type[str(resource.get("resourceType"))].append(resource)
    sections = []
    for kind in DOSSIER_TYPES:
        if kind not in by_type or kind == "AuditEvent":
            continue
        items = "".join(
            f"<li><strong>{e(kind)}/{e(r.get('id'))}</strong>: "
            f"{e(_text_of(r) or name_of(r) or r.get('title') or r.get('status') or '')}</li>"
            for r in by_type[kind]
        )
        sections.append(
            f"<section><h2>{e(texts.type_name(kind))} ({len(by_type[kind])})</h2>"
            f"<ul>{items}</ul></section>"
        )
    audit = len(by_type.get("AuditEvent", []))
    if audit:
        sections.append(f"<section><h2>{e(texts.t('log_title'))}</h2><p>{audit}</p></section>")
    return "".join(sections)


async def shared_page(
    api: Api, texts: PortalTexts, canon: Canon, today: dt.date, me: str = ""
) -> str:
    """What a network member may see: every client's plans and visits shared with them."""
    patients = await api.search("Patient", [("_count", "50")])
    body = await _plans_and_visits(api, texts, canon, today, client=False, me=me)
    intro = f"<p>{e(texts.t('shared_intro'))}</p>"
    if patients:
        intro += "".join(
            f"<p><strong>{e(texts.t('dossier_of', name=name_of(p) or texts.t('a_client')))}"
            f"</strong></p>"
            for p in patients
        )
    return intro + body
