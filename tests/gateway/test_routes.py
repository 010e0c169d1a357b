"""The routing table's one pattern per method and number of path segments finds what
trying its routes in order finds."""

from __future__ import annotations

import re

import pytest

from gateway.interactions import routes
from gateway.interactions.routes import ROUTES, Route, match_route
from mappings.core.errors import FhirError, MethodNotAllowed, NotFound

#: a path for every route of the table, and near misses of each
PATHS = (
    "",
    "metadata",
    "metadata/x",
    "_history",
    "$export",
    "$export-status/job-1",
    "$export-status/",
    "$export-status/job 1",
    "$export-file/job-1/Patient/12",
    "$export-file/job-1/Patient/x",
    "$purge-everything",
    "$Nope",
    "Patient/$export",
    "Group/$export",
    "Observation/$export",
    "Group/g1/$export",
    "Observation/_history",
    "Observation/o1/_history",
    "Observation/o1/_history/3",
    "Observation/o1/_history/3/x",
    "Consent/$explain",
    "Consent/$explain/x",
    "Observation/$explain",
    "Patient/p1/$break-the-glass",
    "Observation/o1/$break-the-glass",
    "Patient/p1/$zrm-progress",
    "Patient/p1/$summary",
    "Patient/$summary",
    "Observation/$validate",
    "Observation/o1/$validate",
    "Observation/_search",
    "Observation",
    "Observation/o1",
    "Observation/o1/x",
    "Observation/o 1",
    "AuditEvent",
    "AuditEvent/a1",
    "AuditEvent/_search",
    "AuditEvent/$validate",
    "observation/o1",
    "x/y",
    "Nonsense/x/y/z/w",
)
METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def _one_by_one(method: str, path: str) -> tuple[Route, dict[str, str]] | None:
    """The first route of ``method`` that matches ``path`` and supports its type, trying
    the routes one by one in the table's order (what ``match_route`` did before)."""
    method = "GET" if method == "HEAD" else method
    path = path.strip("/")
    for route in ROUTES:
        if route.method != method:
            continue
        found = route.pattern.match(path)
        if found is None:
            continue
        groups = {k: v for k, v in found.groupdict().items() if v is not None}
        if route.supports(groups.get("type")):
            return route, groups
    return None


@pytest.mark.parametrize("method", METHODS)
def test_one_pattern_finds_the_route_trying_them_in_order_finds(method: str) -> None:
    for path in PATHS:
        expected = _one_by_one(method, path)
        if expected is None:
            with pytest.raises((MethodNotAllowed, NotFound)):
                match_route(method, path)
            continue
        route, groups = match_route(method, path)
        assert route is expected[0], (method, path)
        assert groups == expected[1], (method, path)


def test_every_route_is_an_alternative_of_its_methods_pattern() -> None:
    """Each route is in the pattern of its method and number of segments, in the table's
    order, and in no other."""
    for (method, count), alternatives in routes._FIRST.items():
        own = [
            route
            for route in ROUTES
            if route.method == method and routes.segments(route.pattern.pattern) == count
        ]
        assert own and [route for route, _ in alternatives.routes.values()] == own
    grouped = sorted(len(alternatives.routes) for alternatives in routes._FIRST.values())
    assert sum(grouped) == len(ROUTES)


def test_a_route_matches_paths_of_one_number_of_segments() -> None:
    """A route's pattern matches only paths of as many segments as ``segments`` counts in
    it: no part of it matches a slash (no ``.``, and no class that takes one), so a path
    need only be matched against the routes of its own count."""
    assert routes.segments("^$") == 0
    assert routes.segments(r"^(?P<type>[A-Z][A-Za-z]+)/(?P<id>[^/?]+)/_history$") == 3
    for route in ROUTES:
        source = route.pattern.pattern
        assert not re.search(r"(?<!\\)\.", source), source
        for found in re.findall(r"\[[^\]]*\]", source):
            assert not re.fullmatch(found, "/"), source
        count = routes.segments(source)
        for path in PATHS:
            if route.pattern.match(path):
                assert (path.count("/") + 1 if path else 0) == count, (source, path)


def test_a_first_match_of_a_type_it_does_not_serve_is_passed_over() -> None:
    """The access log is read-only: the create route matches ``POST AuditEvent`` and does
    not support it; no later route does, so the answer is 405 naming what is allowed."""
    with pytest.raises(MethodNotAllowed) as refused:
        match_route("POST", "AuditEvent")
    assert "GET" in refused.value.headers["Allow"]
    route, groups = match_route("POST", "AuditEvent/_search")
    assert route.name == "search-type" and groups == {"type": "AuditEvent"}


def test_an_unknown_path_is_not_found() -> None:
    with pytest.raises(FhirError) as missing:
        match_route("GET", "Nonsense/x/y/z/w")
    assert missing.value.status == 404
