"""Operations on the care mappings: ``Patient/{id}/$zrm-progress`` and ``$summary``.

The progress view reads the client's ZRM Observations through the ordinary search path,
so the caller's consent filter applies to every score shown, and each is logged.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import orjson

from gateway.interactions.common import check_type
from gateway.interactions.model import Context, FhirRequest, FhirResponse
from gateway.search.execute import run_search
from gateway.search.params import MAX_COUNT, MAX_VALUES, parse_search
from gateway.store.repository import Session
from mappings.care.summary import RECENT_DAYS, summary_document
from mappings.care.zrm import zrm_progress
from mappings.core.errors import NotFound

__all__ = ["summary_operation", "zrm_progress_operation"]

_OPERATION = "$zrm-progress"


def zrm_progress_operation(
    context: Context, request: FhirRequest, session: Session, resource_type: str, resource_id: str
) -> FhirResponse:
    """The client's ZRM scores over time: a Parameters resource, a ``series`` per
    version and domain, each with its points in date order."""
    check_type(context, resource_type)
    if session.current("Patient", resource_id, context.access) is None:
        raise NotFound(f"Patient/{resource_id} is not known")
    query = [("subject", f"Patient/{resource_id}"), ("category", "survey")]
    observations = _visible(context, session, "Observation", query)
    canon = context.services.care.canon
    series = []
    for version, domains in sorted(zrm_progress(observations, canon).items()):
        for domain, points in domains.items():
            series.append(
                {
                    "name": "series",
                    "part": [
                        {"name": "version", "valueString": version},
                        {
                            "name": "domain",
                            "valueCoding": {
                                "system": canon.code_system(f"zrm-{version}"),
                                "code": domain,
                            },
                        },
                        *(
                            {
                                "name": "point",
                                "part": [
                                    {"name": "date", "valueString": point.date},
                                    {"name": "score", "valueInteger": point.score},
                                    *(
                                        [{"name": "moment", "valueCode": point.moment}]
                                        if point.moment
                                        else []
                                    ),
                                    {
                                        "name": "observation",
                                        "valueReference": {
                                            "reference": f"Observation/{point.observation}"
                                        },
                                    },
                                ],
                            }
                            for point in points
                        ),
                    ],
                }
            )
    body: dict[str, Any] = {"resourceType": "Parameters"}
    if series:
        body["parameter"] = series
    return FhirResponse(200, body)


#: what ``$summary`` reads, per type: the client's own, as the caller may see it
_SUMMARY_QUERIES: dict[str, list[tuple[str, str]]] = {
    "CarePlan": [("subject", "Patient/{id}"), ("status", "active")],
    "Goal": [("subject", "Patient/{id}")],
    "Observation": [("subject", "Patient/{id}"), ("category", "survey")],
    "Encounter": [("subject", "Patient/{id}"), ("date", "ge{since}")],
    "CareTeam": [("subject", "Patient/{id}"), ("status", "active")],
    "RelatedPerson": [("patient", "Patient/{id}")],
}


def _visible(
    context: Context, session: Session, resource_type: str, query: list[tuple[str, str]]
) -> list[dict[str, Any]]:
    """Every match the caller may see (each disclosed: the access log records it)."""
    found: list[dict[str, Any]] = []
    offset = 0
    while True:
        items = [*query, ("_count", str(MAX_COUNT)), ("_offset", str(offset))]
        search = parse_search(resource_type, items, context.services.registry, strict=True)
        page = run_search(session.connection, context.services.compiler, search, context.access)
        for match in page.matches:
            context.disclose(match.res_type, match.res_id)
            found.append(orjson.loads(match.content))
        if not page.has_next:
            return found
        offset += MAX_COUNT


def summary_operation(
    context: Context, request: FhirRequest, session: Session, resource_type: str, resource_id: str
) -> FhirResponse:
    """The client's summary document (:mod:`mappings.care.summary`), from what the caller
    may see: every section searched under the caller's consent."""
    check_type(context, resource_type)
    current = session.current("Patient", resource_id, context.access)
    if current is None or current.content is None:
        raise NotFound(f"Patient/{resource_id} is not known")
    context.disclose("Patient", resource_id)
    now = context.services.clock.now()
    since = (now - dt.timedelta(days=RECENT_DAYS)).date().isoformat()
    found = {
        resource_type: _visible(
            context,
            session,
            resource_type,
            [(name, value.format(id=resource_id, since=since)) for name, value in query],
        )
        for resource_type, query in _SUMMARY_QUERIES.items()
    }
    members = sorted(
        {
            str(p.get("member", {}).get("reference", "")).removeprefix("Practitioner/")
            for team in found["CareTeam"]
            for p in team.get("participant", [])
            if str(p.get("member", {}).get("reference", "")).startswith("Practitioner/")
        }
    )
    found["Practitioner"] = (
        _visible(context, session, "Practitioner", [("_id", ",".join(members[:MAX_VALUES]))])
        if members
        else []
    )
    document = summary_document(
        orjson.loads(current.content),
        found,
        now,
        context.services.base_url,
        context.services.care.canon,
    )
    return FhirResponse(200, document)
