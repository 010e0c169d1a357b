"""A quarter of ZRM outcomes, read from the dossier and reported without naming anyone.

Per client, per ZRM 2017 domain: the intake score (the score marked ``intake``, else the
first one) and the latest follow-up in the quarter (a later score); the client counts for
their care team's organisation (the active CareTeam's ``managingOrganization``) and for
the neighbourhood of their postcode (its four digits). The reports are written to the
dossier (one id per quarter and team or area: a rerun replaces them), and every client
whose scores were read gets an access-log entry with purpose of use HQUALIMP (quality
improvement); no report carries a client.
"""

from __future__ import annotations

import gc
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from mappings.care.base import DEFAULT_CANON, Canon, MappingError
from mappings.care.outcomes import ClientOutcome, Quarter, outcome_measure, outcome_reports
from mappings.core.plugins import Disclosure, Dossier

__all__ = ["PURPOSE", "Reported", "report_outcomes"]

PURPOSE = "HQUALIMP"  # v3-ActReason: health quality improvement


@dataclass(slots=True)
class Reported:
    quarter: Quarter
    clients: int  # with a follow-up in the quarter
    reports: list[dict[str, Any]]


def _scores(
    dossier: Dossier, quarter: Quarter, canon: Canon
) -> dict[str, dict[str, list[tuple[str, int, bool]]]]:
    """patient -> domain -> (date, score, is intake) of every ZRM 2017 score up to the end."""
    system = canon.code_system("zrm-2017")
    moment = canon.extension("zrm-moment")
    found: dict[str, dict[str, list[tuple[str, int, bool]]]] = defaultdict(
        lambda: defaultdict(list)
    )
    query = [("category", "survey"), ("date", f"le{quarter.end.isoformat()}")]
    for chunk in dossier.search("Observation", query):
        for observation in chunk:
            subject = str((observation.get("subject") or {}).get("reference", ""))
            value = observation.get("valueInteger")
            if (
                not subject.startswith("Patient/")
                or observation.get("status") not in ("final", "amended", "corrected")
                or not isinstance(value, int)
                or isinstance(value, bool)
                or not 1 <= value <= 5
            ):
                continue
            codes = [
                c.get("code")
                for c in (observation.get("code") or {}).get("coding", [])
                if c.get("system") == system
            ]
            if not codes:
                continue
            intake = any(
                e.get("url") == moment and e.get("valueCode") == "intake"
                for e in observation.get("extension", [])
            )
            day = str(observation.get("effectiveDateTime", ""))[:10]
            found[subject.removeprefix("Patient/")][str(codes[0])].append((day, value, intake))
    return found


def _outcome(
    domains: dict[str, list[tuple[str, int, bool]]], quarter: Quarter
) -> dict[str, tuple[int, int]]:
    start, end = quarter.start.isoformat(), quarter.end.isoformat()
    out = {}
    for domain, points in domains.items():
        points.sort()
        intakes = [p for p in points if p[2]]
        first = intakes[0] if intakes else points[0]
        later = [p for p in points if p[0] > first[0] and start <= p[0] <= end]
        if later:
            out[domain] = (first[1], later[-1][1])
    return out


def _teams_and_areas(dossier: Dossier, patients: set[str]) -> tuple[dict[str, str], dict[str, str]]:
    teams: dict[str, str] = {}
    for chunk in dossier.search("CareTeam", [("status", "active")]):
        for team in chunk:
            subject = str((team.get("subject") or {}).get("reference", ""))
            managing = team.get("managingOrganization") or []
            patient = subject.removeprefix("Patient/")
            if patient in patients and managing and patient not in teams:
                teams[patient] = str(managing[0].get("reference", "")).removeprefix("Organization/")
    areas: dict[str, str] = {}
    wanted = sorted(patients)
    for start in range(0, len(wanted), 100):
        ids = ",".join(wanted[start : start + 100])
        for chunk in dossier.search("Patient", [("_id", ids)]):
            for resource in chunk:
                for address in resource.get("address", []):
                    code = str(address.get("postalCode", "")).replace(" ", "")
                    if len(code) >= 4 and code[:4].isdigit():
                        areas[str(resource["id"])] = code[:4]
                        break
    return teams, areas


def report_outcomes(
    dossier: Dossier,
    period: str,
    *,
    record: bool = True,
    canon: Canon = DEFAULT_CANON,
) -> Reported:
    """The quarter's reports (see the module docstring); ``record``: write them, with the
    access-log entries of the clients read (without: the reports are only returned, and the
    reads are logged)."""
    quarter = Quarter.parse(period)
    today = dossier.now().date()
    if quarter.end >= today:
        raise MappingError(
            f"{quarter.text} has not ended: a quarter is reported after it", "period"
        )
    enabled = gc.isenabled()
    gc.disable()  # many small dicts, no cycles (see adapters.declarations.declare)
    try:
        scores = _scores(dossier, quarter, canon)
        per_client = {p: _outcome(d, quarter) for p, d in scores.items()}
        per_client = {p: o for p, o in per_client.items() if o}
        teams, areas = _teams_and_areas(dossier, set(per_client))
    finally:
        if enabled:
            gc.enable()
    outcomes = [
        ClientOutcome(teams.get(p), areas.get(p), scores)
        for p, scores in sorted(per_client.items())
    ]
    now = dossier.now()
    reports = outcome_reports(outcomes, quarter, now, canon)
    disclosures = [
        Disclosure(
            patient,
            PURPOSE,
            "R",
            (),
            None,
            f"ZRM scores counted in the outcome reports of {quarter.text} (no client named)",
        )
        for patient in sorted(scores)
    ]
    if record:
        dossier.record([outcome_measure(canon), *reports], disclosures)
    else:
        dossier.disclose(disclosures)
    return Reported(quarter, len(outcomes), reports)
