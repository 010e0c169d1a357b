"""The Omaha System export: per finished visit the problems, interventions and ratings.

A back office of a Buurtzorg-style organisation keeps its production and outcome figures in
the Omaha System. For a month (``2026-11``) or a day (``2026-11-03``), optionally one team,
every finished visit (``Encounter`` with the visit profile) becomes one JSON record, one per
line (NDJSON)::

    {"format": "eigendossier-omaha/1", "visit": "henk-202611-01", "version": "1",
     "client": "henk", "team": "buurtteam-oost", "date": "2026-11-01",
     "start": "...", "end": "...", "minutes": 35, "mode": "home",
     "participants": ["Practitioner/sanne"],
     "problems": [{"code": "24", "name": "Huid", "domain": "physiological",
                   "interventions": [{"category": "treatments-procedures", ...}],
                   "rating": {"knowledge": 3, "behavior": 3, "status": 2,
                              "targets": {"status": 4}}}]}

The problems are those the visit addressed (``reasonCode``), then any other problem an
intervention or a rating at the visit names; ``rating`` is the KBS rating taken at that
visit (``Observation.encounter``), absent when none was. The client is the dossier's id:
no name, no BSN (the back office is the provider's own, and holds its client list).

Records are upserts keyed by ``visit`` and ``version``: a visit changed after an export comes
again with a higher version. The records go out in messages of ``per_message`` visits, each
a :class:`Parcel` whose key derives from its content: a rerun with nothing changed leaves
nothing new in the outbox.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import orjson

from mappings.care.base import DEFAULT_CANON, Canon
from mappings.care.omaha import (
    CATEGORIES,
    Intervention,
    OmahaRating,
    intervention_from_fhir,
    omaha_from_fhir,
    problem_domain,
    problem_name,
)
from mappings.care.visits import Visit, visit_from_fhir
from mappings.core.errors import FhirError, Unprocessable
from mappings.core.plugins import Disclosure, Dossier, Parcel

__all__ = ["FORMAT", "Exported", "Period", "export_omaha", "omaha_records", "write_omaha_file"]

FORMAT = "eigendossier-omaha/1"
CONTENT_TYPE = "application/x-ndjson"
#: the visits whose interventions and ratings one search asks for (the search limit)
_PER_SEARCH = 100
_LOCAL = ZoneInfo("Europe/Amsterdam")
_CATEGORY_NL = {code: nl for code, nl, _ in CATEGORIES}
_ID = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")


@dataclass(frozen=True, slots=True)
class Period:
    """A month (``2026-11``) or one day (``2026-11-03``), in Dutch local time."""

    text: str
    first: dt.date
    last: dt.date

    @classmethod
    def parse(cls, text: str) -> Period:
        try:
            if len(text) == 7:
                first = dt.date.fromisoformat(f"{text}-01")
                following = dt.date(first.year + first.month // 12, first.month % 12 + 1, 1)
                return cls(text, first, following - dt.timedelta(days=1))
            if len(text) == 10:
                day = dt.date.fromisoformat(text)
                return cls(text, day, day)
        except ValueError:
            pass
        raise Unprocessable(
            f"{text[:20]!r} is not a period: a month YYYY-MM or a day YYYY-MM-DD", "period"
        )


@dataclass(frozen=True, slots=True)
class Exported:
    period: Period
    visits: int
    clients: int
    messages: int
    new: int  # messages not in the outbox before (0 on a rerun with nothing changed)


def export_omaha(
    dossier: Dossier,
    period: str,
    destination: str,
    *,
    team: str | None = None,
    per_message: int = 1000,
    canon: Canon = DEFAULT_CANON,
) -> Exported:
    """Leave the period's records in the outbox for ``destination``, and log the export in
    each client's access log, in one transaction."""
    if not 1 <= per_message <= 10_000:
        raise Unprocessable("per-message is 1 to 10000 visits", "per-message")
    chosen = Period.parse(period)
    lines: list[bytes] = []
    visits_of: dict[str, list[str]] = defaultdict(list)
    for record in omaha_records(dossier, chosen, team=team, canon=canon):
        lines.append(orjson.dumps(record))
        visits_of[record["client"]].append(f"Encounter/{record['visit']}")
    messages = [lines[i : i + per_message] for i in range(0, len(lines), per_message)]
    scope = f"{chosen.text}:{team or 'all'}"
    parcels = [
        _parcel(scope, chosen, team, index, len(messages), b"\n".join(chunk) + b"\n")
        for index, chunk in enumerate(messages, start=1)
    ]
    disclosures = _disclosures(visits_of, chosen, f"to the back office '{destination}'")
    new = dossier.send(destination, parcels, disclosures) if parcels else 0
    return Exported(chosen, len(lines), len(visits_of), len(parcels), new)


def write_omaha_file(
    dossier: Dossier, period: str, out: Path, *, team: str | None = None
) -> tuple[int, int]:
    """The period's records into the file ``out`` instead of the outbox: (visits,
    clients). Written beside it first, logged, then put in place: a file that exists was
    logged, and a failure leaves no file."""
    chosen = Period.parse(period)
    visits_of: dict[str, list[str]] = defaultdict(list)
    partial = out.with_name(out.name + ".partial")
    try:
        with partial.open("wb") as file:
            for record in omaha_records(dossier, chosen, team=team):
                file.write(orjson.dumps(record) + b"\n")
                visits_of[record["client"]].append(f"Encounter/{record['visit']}")
        dossier.disclose(_disclosures(visits_of, chosen, "written to a file by the operator"))
        partial.replace(out)
    except OSError as error:
        raise Unprocessable(f"{out} cannot be written ({error.strerror})", "out") from None
    finally:
        partial.unlink(missing_ok=True)
    return sum(len(v) for v in visits_of.values()), len(visits_of)


def _disclosures(visits_of: dict[str, list[str]], period: Period, where: str) -> list[Disclosure]:
    """One access-log entry per client: which of their visits went where (no content)."""
    return [
        Disclosure(
            patient=patient,
            purpose="HOPERAT",
            action="R",
            objects=tuple(visits),
            description=f"Omaha export of {len(visits)} visit(s) of {period.text} {where}",
        )
        for patient, visits in sorted(visits_of.items())
    ]


def _parcel(
    scope: str, period: Period, team: str | None, index: int, count: int, data: bytes
) -> Parcel:
    digest = hashlib.sha256(data).hexdigest()[:24]
    headers = {"Format": FORMAT, "Period": period.text, "Part": f"{index}/{count}"}
    if team:
        headers["Team"] = team
    return Parcel(f"omaha:{scope}:{index}of{count}:{digest}", CONTENT_TYPE, data, headers)


def omaha_records(
    dossier: Dossier, period: Period, *, team: str | None = None, canon: Canon = DEFAULT_CANON
) -> Iterator[dict[str, Any]]:
    """The period's finished visits as records, in the order the dossier finds them; a
    hundred visits at a time with their interventions and ratings."""
    if team is not None and not _ID.match(team):
        raise Unprocessable("team is the id of an Organization", "team")
    query = [
        ("_profile", canon.profile("visit")),
        ("status", "finished"),
        ("date", f"ge{(period.first - dt.timedelta(days=1)).isoformat()}"),
        ("date", f"le{(period.last + dt.timedelta(days=1)).isoformat()}"),
    ]
    if team:
        query.append(("service-provider", f"Organization/{team}"))
    for chunk in dossier.search("Encounter", query, chunk=_PER_SEARCH):
        visits = []
        for resource in chunk:
            visit = _visit(resource, canon)
            day = visit.start.astimezone(_LOCAL).date()
            if period.first <= day <= period.last:
                visits.append((visit, resource))
        if not visits:
            continue
        interventions, ratings = _at_visits(dossier, [v.id for v, _ in visits], canon)
        for visit, resource in visits:
            yield _record(visit, resource, interventions[visit.id], ratings[visit.id])


def _visit(resource: dict[str, Any], canon: Canon) -> Visit:
    try:
        return visit_from_fhir(resource, canon)
    except FhirError as error:
        raise Unprocessable(
            f"Encounter/{resource.get('id')} is not a visit the export can read: "
            f"{error.diagnostics}",
            "Encounter",
        ) from None


def _at_visits(
    dossier: Dossier, visit_ids: Sequence[str], canon: Canon
) -> tuple[dict[str, list[Intervention]], dict[str, list[OmahaRating]]]:
    references = ",".join(f"Encounter/{v}" for v in visit_ids)
    interventions: dict[str, list[Intervention]] = defaultdict(list)
    ratings: dict[str, list[OmahaRating]] = defaultdict(list)
    intervention_profile = canon.profile("omaha-intervention")
    for chunk in dossier.search(
        "Procedure", [("encounter", references), ("_profile", intervention_profile)]
    ):
        for resource in chunk:
            found = intervention_from_fhir(resource, canon)
            interventions[found.encounter].append(found)
    rating_profile = canon.profile("omaha-rating")
    for chunk in dossier.search(
        "Observation", [("encounter", references), ("_profile", rating_profile)]
    ):
        for resource in chunk:
            rating = omaha_from_fhir(resource, canon)
            if rating.encounter is not None:
                ratings[rating.encounter].append(rating)
    return interventions, ratings


def _record(
    visit: Visit,
    resource: dict[str, Any],
    interventions: list[Intervention],
    ratings: list[OmahaRating],
) -> dict[str, Any]:
    codes = list(visit.problems)
    codes += sorted(
        ({i.problem for i in interventions} | {r.problem for r in ratings}) - set(visit.problems)
    )
    latest: dict[str, OmahaRating] = {}
    for rating in sorted(ratings, key=lambda r: (r.date, r.id)):
        latest[rating.problem] = rating
    problems = []
    for code in codes:
        problem: dict[str, Any] = {
            "code": code,
            "name": problem_name(code),
            "domain": problem_domain(code),
            "interventions": [
                {
                    "category": i.category,
                    "name": _CATEGORY_NL[i.category],
                    "description": i.description,
                    **({"performer": i.performer} if i.performer else {}),
                }
                for i in sorted(interventions, key=lambda i: (i.category, i.id))
                if i.problem == code
            ],
        }
        if code in latest:
            rated = latest[code]
            problem["rating"] = {
                **{scale: rated.current[scale] for scale in ("knowledge", "behavior", "status")},
                "targets": dict(sorted(rated.target.items())),
                "date": rated.date.isoformat(),
            }
        problems.append(problem)
    return {
        "format": FORMAT,
        "visit": visit.id,
        "version": str((resource.get("meta") or {}).get("versionId", "")),
        "client": visit.patient,
        "team": visit.team,
        "date": visit.start.astimezone(_LOCAL).date().isoformat(),
        "start": visit.start.isoformat(),
        "end": visit.end.isoformat(),
        "minutes": visit.minutes,
        "mode": visit.mode,
        "participants": list(visit.participants),
        "problems": problems,
    }
