"""The lane that takes requests for resource types past Starlette's router (ADR 0020):
exactly the paths the router would have sent to the FHIR endpoint, nothing else."""

from __future__ import annotations

import asyncio
from collections.abc import MutableMapping
from typing import Any

import pytest
from starlette.middleware import Middleware
from starlette.responses import Response

from gateway.http.app import _Gateway, _Incoming, _ResourceLane, _respond


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


def _scope(path: str, headers: list[tuple[bytes, bytes]], query: bytes = b"") -> dict[str, Any]:
    return {
        "type": "http",
        "method": "GET",
        "path": path,
        "root_path": "",
        "raw_path": path.encode(),
        "query_string": query,
        "headers": headers,
        "client": ("10.0.0.7", 50123),
    }


class _Marked:
    """A middleware of the stack: it marks the requests that went through it."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self.app({**scope, "through_stack": True}, receive, send)


def test_a_request_without_an_origin_goes_to_the_endpoint_before_the_stack() -> None:
    """A GP system's request (no Origin: no CORS headers to add) skips Starlette's
    middleware; a browser's (with Origin) takes the stack, where CORS answers it, and the
    lane within it; a path the lane does not take takes the stack either way."""
    seen: list[tuple[str, bool]] = []

    class Endpoint:
        async def serve(self, scope: Any, receive: Any, send: Any, path: str) -> None:
            seen.append((path, bool(scope.get("through_stack"))))
            await Response(b"endpoint")(scope, receive, send)

    endpoint = Endpoint()
    app = _Gateway(
        routes=[],
        middleware=[
            Middleware(_Marked),
            Middleware(_ResourceLane, endpoint=endpoint, mount="/fhir"),  # type: ignore[arg-type]
        ],
        endpoint=endpoint,  # type: ignore[arg-type]
        mount="/fhir",
    )

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: MutableMapping[str, Any]) -> None:
        return None

    origin = (b"origin", b"https://app.example.nl")
    asyncio.run(app(_scope("/fhir/Patient/anna", [(b"accept", b"*/*")]), receive, send))
    asyncio.run(app(_scope("/fhir/Patient/anna", [origin]), receive, send))
    asyncio.run(
        app(_scope("/fhir/Patient/anna", [(b"Origin", b"https://a.example.nl")]), receive, send)
    )
    assert seen == [("Patient/anna", False), ("Patient/anna", True), ("Patient/anna", True)]


def test_the_endpoint_reads_the_request_from_its_scope_as_starlette_would() -> None:
    """Of a repeated header the endpoint's dict keeps the last (as before) and ``first`` the
    first (as Starlette's ``headers.get``); the query keeps blank values and its order; of
    ``_format`` and ``_pretty`` the last counts; the address is the client's host."""
    scope = _scope(
        "/fhir/Patient",
        [(b"accept", b"application/fhir+xml"), (b"accept", b"application/json")],
        b"name=anna&name=&_format=xml&_format=json&_pretty=true",
    )
    incoming = _Incoming(scope, lambda: None, "Patient")  # type: ignore[arg-type]
    assert incoming.first("accept") == "application/fhir+xml"
    assert incoming.headers["accept"] == "application/json"
    assert incoming.first("content-length") is None
    assert incoming.query == [
        ("name", "anna"),
        ("name", ""),
        ("_format", "xml"),
        ("_format", "json"),
        ("_pretty", "true"),
    ]
    assert incoming.option("_format") == "json" and incoming.option("_count") is None
    assert (incoming.method, incoming.path, incoming.address) == ("GET", "Patient", "10.0.0.7")
    assert _Incoming({**scope, "client": None}, lambda: None, "").address is None  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("status", "headers", "body", "content_type", "expected"),
    [
        (
            200,
            {"ETag": 'W/"1"'},
            b"{}",
            "application/fhir+json; charset=utf-8",
            [
                (b"etag", b'W/"1"'),
                (b"content-length", b"2"),
                (b"content-type", b"application/fhir+json; charset=utf-8"),
            ],
        ),
        (304, {"ETag": 'W/"1"'}, b"", None, [(b"etag", b'W/"1"')]),
        (204, {}, b"", None, []),
        (400, {}, b"", None, [(b"content-length", b"0")]),
        (
            200,
            {"Content-Type": "text/csv"},
            b"a",
            "application/fhir+json",
            [(b"content-type", b"text/csv"), (b"content-length", b"1")],
        ),
    ],
)
def test_a_response_leaves_with_the_headers_starlette_would_give_it(
    status: int,
    headers: dict[str, str],
    body: bytes,
    content_type: str | None,
    expected: list[tuple[bytes, bytes]],
) -> None:
    sent: list[dict[str, Any]] = []

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(dict(message))

    asyncio.run(_respond(send, status, headers, body, content_type))
    assert sent == [
        {"type": "http.response.start", "status": status, "headers": expected},
        {"type": "http.response.body", "body": body},
    ]
    media = content_type if "content-type" not in {k.lower() for k in headers} else None
    made = Response(body, status, headers, media_type=media)
    assert sorted(made.raw_headers) == sorted(expected)  # what Starlette's Response makes
