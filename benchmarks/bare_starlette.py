"""The framework's own floor: the bare ASGI app's two queries behind Starlette and a thread.

The same reads as ``benchmarks/bare_asgi.py`` over the same SQLite file, but served the
way the gateway serves them: a Starlette route behind Starlette's error and exception
middleware, the database call on anyio's thread pool, the response as a Starlette
``Response``. Nothing of Eigen Dossier runs here; the distance between this app and the bare
one is what the framework and the thread hop cost before any FHIR, token or consent work
(see the README, "Performance", and ADR 0019).
Run: ``BARE_DB=/path/to.db uvicorn benchmarks.bare_starlette:app``.
"""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from benchmarks.bare_asgi import read_observation, search_observations

_FHIR_JSON = "application/fhir+json"


async def read(request: Request) -> Response:
    body = await run_in_threadpool(read_observation, request.path_params["id"])
    if body is None:
        return Response(b"{}", status_code=404, media_type=_FHIR_JSON)
    return Response(body, media_type=_FHIR_JSON)


async def search(request: Request) -> Response:
    subject = request.query_params.get("subject", "").split("/")[-1]
    body = await run_in_threadpool(search_observations, subject)
    return Response(body, media_type=_FHIR_JSON)


app = Starlette(
    routes=[
        Route("/fhir/Observation/{id}", read, methods=["GET"]),
        Route("/fhir/Observation", search, methods=["GET"]),
    ]
)
