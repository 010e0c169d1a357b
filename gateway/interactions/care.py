"""Operations on the care mappings: ``Patient/{id}/$zrm-progress``.

The progress view reads the client's ZRM Observations through the ordinary search path,
so the caller's consent filter applies to every score shown, and each is logged.
"""

from __future__ import annotations

from typing import Any

import orjson

from gateway.interactions.common import check_type
from gateway.interactions.model import Context, FhirRequest, FhirResponse
from gateway.search.execute import run_search
from gateway.search.params import MAX_COUNT, parse_search
from gateway.store.repository import Session
from mappings.care.zrm import zrm_progress
from mappings.core.errors import NotFound

__all__ = ["zrm_progress_operation"]

_OPERATION = "$zrm-progress"


def zrm_progress_operation(
    context: Context, request: FhirRequest, session: Session, resource_type: str, resource_id: str
) -> FhirResponse:
    """The client's ZRM scores over time: a Parameters resource, a ``series`` per
    version and domain, each with its points in date order."""
    check_type(context, resource_type)
    if session.current("Patient", resource_id, context.access) is None:
        raise NotFound(f"Patient/{resource_id} is not known")
    observations: list[dict[str, Any]] = []
    offset = 0
    while True:
        query = [
            ("subject", f"Patient/{resource_id}"),
            ("category", "survey"),
            ("_count", str(MAX_COUNT)),
            ("_offset", str(offset)),
        ]
        search = parse_search("Observation", query, context.services.registry, strict=True)
        page = run_search(session.connection, context.services.compiler, search, context.access)
        for match in page.matches:
            context.disclose(match.res_type, match.res_id)
            observations.append(orjson.loads(match.content))
        if not page.has_next:
            break
        offset += MAX_COUNT
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
