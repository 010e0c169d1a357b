"""The lane that takes requests for resource types past Starlette's router (ADR 0020):
exactly the paths the router would have sent to the FHIR endpoint, nothing else."""

from __future__ import annotations

import asyncio
from collections.abc import MutableMapping
from typing import Any

import pytest
from starlette.responses import Response

from gateway.http.app import _ResourceLane


class _Endpoint:
    def __init__(self) -> None:
        self.paths: list[str] = []

    async def serve(self, scope: Any, receive: Any, send: Any, path: str) -> None:
        self.paths.append(path)
        await Response(b"endpoint")(scope, receive, send)


def _through(lane_mount: str, method: str, path: str, root_path: str = "") -> tuple[str, Any]:
    endpoint = _Endpoint()
    routed: list[str] = []

    async def router(scope: Any, receive: Any, send: Any) -> None:
        routed.append(scope["path"])
        await Response(b"router")(scope, receive, send)

    lane = _ResourceLane(router, endpoint, lane_mount)  # type: ignore[arg-type]
    scope = {
        "type": "http",
        "method": method,
        "path": path,
        "root_path": root_path,
        "raw_path": path.encode(),
        "query_string": b"",
        "headers": [],
    }
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(dict(message))

    asyncio.run(lane(scope, receive, send))
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return body.decode(), endpoint.paths[0] if endpoint.paths else None


@pytest.mark.parametrize(
    ("method", "path", "expected"),
    [
        ("GET", "/fhir/Patient/anna", "Patient/anna"),
        ("HEAD", "/fhir/Observation/o1/_history/2", "Observation/o1/_history/2"),
        ("POST", "/fhir/Observation/_search", "Observation/_search"),
        ("DELETE", "/fhir/Patient", "Patient"),
    ],
)
def test_requests_for_resource_types_go_straight_to_the_endpoint(
    method: str, path: str, expected: str
) -> None:
    assert _through("/fhir", method, path) == ("endpoint", expected)


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/fhir"),  # the base itself (a batch is POSTed there)
        ("GET", "/fhir/"),
        ("GET", "/fhir/metadata"),
        ("GET", "/fhir/_history"),
        ("GET", "/fhir/$export"),
        ("GET", "/fhir/.well-known/smart-configuration"),
        ("POST", "/oauth/token"),
        ("GET", "/portal/plan"),
        ("GET", "/fhirPatient/1"),
        ("GET", "/other/Patient/1"),
        ("OPTIONS", "/fhir/Patient/1"),  # not a FHIR method: the router answers 405
        ("GET", "/fhir/Ünïcode"),
    ],
)
def test_everything_else_takes_the_router(method: str, path: str) -> None:
    assert _through("/fhir", method, path) == ("router", None)


def test_at_the_root_only_resource_types_leave_the_router() -> None:
    assert _through("", "GET", "/Patient/1") == ("endpoint", "Patient/1")
    assert _through("", "POST", "/oauth/token") == ("router", None)
    assert _through("", "GET", "/portal") == ("router", None)


def test_a_root_path_is_taken_off_first_as_the_router_does() -> None:
    assert _through("/fhir", "GET", "/gw/fhir/Patient/1", root_path="/gw") == (
        "endpoint",
        "Patient/1",
    )
