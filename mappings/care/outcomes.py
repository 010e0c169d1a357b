"""ZRM outcomes per team and per neighbourhood: the ``Measure`` and its ``MeasureReport``s.

Insurers' contracts with neighbourhood care ask for outcome monitoring; the ZRM is how the
teams measure self-sufficiency. Per quarter and per ZRM 2017 domain a report gives: how
many clients had an intake score and a follow-up in the quarter, the mean change from the
intake to the latest follow-up, and how many improved, stayed the same or got worse.

No identifiable data leaves: a report names no client, and any count under
:data:`MIN_CELL` (a domain's clients, or one of its three strata) is suppressed: left out,
marked with the extension ``suppressed-cell``, and said so in the report's narrative.
"""

from __future__ import annotations

import datetime as dt
import html
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from mappings.care.base import DEFAULT_CANON, Canon, fail
from mappings.care.zrm_codes import DOMAINS

__all__ = [
    "MIN_CELL",
    "ClientOutcome",
    "Quarter",
    "outcome_measure",
    "outcome_reports",
]

MIN_CELL = 5
_VERSION = "2017"
_POPULATION = "http://terminology.hl7.org/CodeSystem/measure-population"
_SCORING = "http://terminology.hl7.org/CodeSystem/measure-scoring"
_DIRECTIONS = (("improved", "Vooruit"), ("stable", "Gelijk"), ("worse", "Achteruit"))


@dataclass(frozen=True, slots=True)
class Quarter:
    """A calendar quarter: ``2026-Q3``."""

    year: int
    number: int

    @classmethod
    def parse(cls, text: str) -> Quarter:
        year, _, quarter = text.partition("-Q")
        if not (year.isdigit() and len(year) == 4 and quarter in ("1", "2", "3", "4")):
            fail("A quarter is written YYYY-Qn (n from 1 to 4)", "period")
        return cls(int(year), int(quarter))

    @property
    def start(self) -> dt.date:
        return dt.date(self.year, 3 * self.number - 2, 1)

    @property
    def end(self) -> dt.date:
        following = (
            dt.date(self.year + 1, 1, 1)
            if self.number == 4
            else dt.date(self.year, 3 * self.number + 1, 1)
        )
        return following - dt.timedelta(days=1)

    @property
    def text(self) -> str:
        return f"{self.year}-Q{self.number}"


@dataclass(frozen=True, slots=True)
class ClientOutcome:
    """One client's intake and latest follow-up score per ZRM 2017 domain (in the quarter).

    Only counted, never shown: ``team`` (an Organization id) and ``area`` (the four digits
    of a postcode) decide which reports the client counts in.
    """

    team: str | None
    area: str | None
    scores: Mapping[str, tuple[int, int]]  # domain -> (intake, latest follow-up)


def outcome_measure(canon: Canon = DEFAULT_CANON, published: str = "2026-12-01") -> dict[str, Any]:
    """The Measure the reports are of: one group per ZRM 2017 domain."""
    return {
        "resourceType": "Measure",
        "id": "zrm-outcomes",
        "url": canon.url("Measure", "zrm-outcomes"),
        "name": "ZrmOutcomes",
        "title": "Uitkomsten zelfredzaamheid (ZRM 2017)",
        "status": "active",
        "date": published,
        "publisher": "Eigen Dossier",
        "description": (
            "Per quarter and ZRM 2017 domain: the clients with an intake score and a follow-up "
            f"in the quarter, the mean change, and how many improved, stayed or got worse. "
            f"Counts under {MIN_CELL} are suppressed; no client is named."
        ),
        "scoring": {"coding": [{"system": _SCORING, "code": "continuous-variable"}]},
        "group": [
            {
                "code": {"coding": [{"system": canon.code_system("zrm-2017"), "code": code}]},
                "description": nl,
                "population": [
                    {
                        "code": {"coding": [{"system": _POPULATION, "code": "initial-population"}]},
                        "description": "Cliënten met een intake en een vervolgmeting",
                        "criteria": {"language": "text/plain", "expression": "intake+follow-up"},
                    },
                    {
                        "code": {"coding": [{"system": _POPULATION, "code": "measure-population"}]},
                        "description": "Idem",
                        "criteria": {"language": "text/plain", "expression": "intake+follow-up"},
                    },
                    {
                        "code": {
                            "coding": [{"system": _POPULATION, "code": "measure-observation"}]
                        },
                        "description": "Verandering van intake tot laatste vervolgmeting",
                        "criteria": {"language": "text/plain", "expression": "latest - intake"},
                    },
                ],
                "stratifier": [
                    {
                        "code": {"text": "richting"},
                        "description": "Vooruit, gelijk of achteruit",
                        "criteria": {"language": "text/plain", "expression": "sign(change)"},
                    }
                ],
            }
            for code, nl, _ in DOMAINS[_VERSION]
        ],
    }


def _suppressed(canon: Canon) -> dict[str, Any]:
    return {"url": canon.extension("suppressed-cell"), "valueBoolean": True}


def _count(canon: Canon, code: str, count: int) -> dict[str, Any]:
    population: dict[str, Any] = {"code": {"coding": [{"system": _POPULATION, "code": code}]}}
    if count < MIN_CELL:
        population["extension"] = [_suppressed(canon)]
    else:
        population["count"] = count
    return population


def _group(canon: Canon, domain: str, changes: Sequence[int]) -> dict[str, Any]:
    group: dict[str, Any] = {
        "code": {"coding": [{"system": canon.code_system("zrm-2017"), "code": domain}]},
        "population": [
            _count(canon, "initial-population", len(changes)),
            _count(canon, "measure-population", len(changes)),
        ],
    }
    if len(changes) < MIN_CELL:
        group["extension"] = [_suppressed(canon)]
        return group
    mean = round(sum(changes) / len(changes), 2)
    group["measureScore"] = {
        "value": mean,
        "unit": "punten",
        "system": "http://unitsofmeasure.org",
        "code": "1",
    }
    counts = {
        "improved": sum(1 for c in changes if c > 0),
        "stable": sum(1 for c in changes if c == 0),
        "worse": sum(1 for c in changes if c < 0),
    }
    group["stratifier"] = [
        {
            "code": [{"text": "richting"}],
            "stratum": [
                {
                    "value": {"coding": [{"code": code}], "text": label},
                    "population": [_count(canon, "measure-population", counts[code])],
                }
                for code, label in _DIRECTIONS
            ],
        }
    ]
    return group


def _report(
    canon: Canon,
    quarter: Quarter,
    now: dt.datetime,
    report_id: str,
    title: str,
    outcomes: list[ClientOutcome],
) -> dict[str, Any]:
    by_domain: dict[str, list[int]] = defaultdict(list)
    for outcome in outcomes:
        for domain, (intake, latest) in outcome.scores.items():
            by_domain[domain].append(latest - intake)
    groups = [_group(canon, code, by_domain.get(code, [])) for code, _, _ in DOMAINS[_VERSION]]
    hidden = sum(1 for g in groups if "extension" in g)
    counted = str(len(outcomes)) if len(outcomes) >= MIN_CELL else f"minder dan {MIN_CELL}"
    lines = [
        f"{title}, {quarter.text}: {counted} cliënten met een ZRM-vervolgmeting.",
        f"Aantallen onder {MIN_CELL} zijn weggelaten (hier {hidden} van de {len(groups)} "
        "domeinen, en strata onder die grens); er staat geen cliënt in dit rapport.",
    ]
    items = "".join(f"<p>{html.escape(line)}</p>" for line in lines)
    return {
        "resourceType": "MeasureReport",
        "id": report_id,
        "text": {
            "status": "generated",
            "div": f'<div xmlns="http://www.w3.org/1999/xhtml">{items}</div>',
        },
        "status": "complete",
        "type": "summary",
        "measure": canon.url("Measure", "zrm-outcomes"),
        "date": now.astimezone(dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
        "period": {"start": quarter.start.isoformat(), "end": quarter.end.isoformat()},
        "group": groups,
    }


def outcome_reports(
    outcomes: Iterable[ClientOutcome],
    quarter: Quarter,
    now: dt.datetime,
    canon: Canon = DEFAULT_CANON,
) -> list[dict[str, Any]]:
    """One MeasureReport for all, one per team (``reporter``) and one per neighbourhood
    (the four digits of the postcode, in the extension ``neighbourhood``)."""
    everyone = list(outcomes)
    by_team: dict[str, list[ClientOutcome]] = defaultdict(list)
    by_area: dict[str, list[ClientOutcome]] = defaultdict(list)
    for outcome in everyone:
        if outcome.team:
            by_team[outcome.team].append(outcome)
        if outcome.area:
            by_area[outcome.area].append(outcome)
    tag = quarter.text.lower()
    reports = [_report(canon, quarter, now, f"zrm-{tag}", "Alle teams", everyone)]
    for team, members in sorted(by_team.items()):
        report = _report(canon, quarter, now, f"zrm-{tag}-team-{team}"[:64], "Team", members)
        report["reporter"] = {"reference": f"Organization/{team}"}
        reports.append(report)
    for area, members in sorted(by_area.items()):
        report = _report(canon, quarter, now, f"zrm-{tag}-wijk-{area}", f"Wijk {area}", members)
        report["extension"] = [{"url": canon.extension("neighbourhood"), "valueString": area}]
        reports.append(report)
    return reports
