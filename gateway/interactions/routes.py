"""The one routing table of the FHIR interactions, for HTTP and for Bundle entries alike.

A route is (method, path pattern) -> (interaction, whether it writes). The table says what
each type supports: the access log (AuditEvent) is read and searched, never written through
the API. The CapabilityStatement is generated from this table, so it cannot claim an
interaction that is not routed. Handlers never import this module (it imports them): they
reach the table and the dispatcher through :attr:`Context.router`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from gateway.interactions import (
    bulk,
    bundle,
    care,
    consent_operations,
    crud,
    extensions,
    history,
    operations,
    search,
)
from gateway.interactions.model import FhirRequest, FhirResponse
from mappings.core.errors import MethodNotAllowed, NotFound

__all__ = ["READ_ONLY_TYPES", "ROUTES", "Route", "match_route", "route_of"]

Interaction = Callable[..., FhirResponse]

_TYPE = r"(?P<type>[A-Z][A-Za-z]+)"
_ID = r"(?P<id>[^/?]+)"

#: Types whose instances the API never creates, changes or deletes: the access log is
#: written by the gateway itself, as a side effect of every access (NEN 7513).
READ_ONLY_TYPES = frozenset({"AuditEvent"})


@dataclass(frozen=True, slots=True)
class Route:
    method: str
    pattern: re.Pattern[str]
    interaction: Interaction
    writes: bool
    name: str  # the FHIR interaction code (CapabilityStatement) or operation
    #: a read of one statement: it needs no snapshot, and on SQLite the edge serves it on
    #: the event loop (ADR 0020), so it must stay a bounded primary-key read
    single_statement: bool = False
    #: a read the edge may try on the event loop (SQLite) under a budget of database work:
    #: one that goes past it is stopped and served on a reader's thread (ADR 0022)
    on_loop: bool = False
    on: str | None = None  # an operation defined on this one type only

    @property
    def type_level(self) -> bool:
        """Whether the route is an interaction or operation of resource types."""
        return "(?P<type>" in self.pattern.pattern or self.on is not None

    def supports(self, resource_type: str | None) -> bool:
        """Whether this is an interaction of ``resource_type`` (None: no type named)."""
        if self.on is not None and resource_type is not None and resource_type != self.on:
            return False
        return not (self.writes and resource_type in READ_ONLY_TYPES)


def _route(
    method: str,
    pattern: str,
    interaction: Interaction,
    name: str,
    *,
    writes: bool = False,
    single: bool = False,
    loop: bool = False,
    on: str | None = None,
) -> Route:
    on_loop = single or loop
    compiled = re.compile(f"^{pattern}$")
    return Route(method, compiled, interaction, writes, name, single, on_loop, on)


ROUTES: tuple[Route, ...] = (
    _route("GET", "metadata", operations.capabilities, "capabilities"),
    _route("GET", "", search.search_system, "search-system"),
    _route("POST", "", bundle.process_bundle, "transaction", writes=True),
    _route("GET", "_history", history.history, "history-system"),
    _route("POST", r"\$[a-z][a-z0-9-]{0,40}", extensions.plugin_operation, "$operation"),
    _route("GET", r"\$export", bulk.kick_off, "$export", writes=True),
    _route(
        "GET", r"(?P<type>Patient)/\$export", bulk.kick_off, "$export", writes=True, on="Patient"
    ),
    _route(
        "GET", rf"(?P<type>Group)/{_ID}/\$export", bulk.kick_off, "$export", writes=True, on="Group"
    ),
    _route("GET", r"\$export-status/[A-Za-z0-9-]{1,64}", bulk.export_status, "$export-status"),
    _route(
        "DELETE",
        r"\$export-status/[A-Za-z0-9-]{1,64}",
        bulk.export_status,
        "$export-status",
        writes=True,
    ),
    _route(
        "GET",
        r"\$export-file/[A-Za-z0-9-]{1,64}/[A-Z][A-Za-z]{1,63}/[0-9]{1,6}",
        bulk.export_file,
        "$export-file",
    ),
    _route("GET", f"{_TYPE}/_history", history.history, "history-type"),
    _route("GET", f"{_TYPE}/{_ID}/_history", history.history, "history-instance"),
    _route("GET", f"{_TYPE}/{_ID}/_history/(?P<vid>[^/]+)", crud.vread, "vread", single=True),
    _route("GET", r"Consent/\$explain", consent_operations.explain, "$explain", on="Consent"),
    _route("POST", r"Consent/\$explain", consent_operations.explain, "$explain", on="Consent"),
    _route(
        "POST",
        rf"(?P<type>Patient)/{_ID}/\$break-the-glass",
        consent_operations.break_the_glass,
        "$break-the-glass",
        writes=True,
        on="Patient",
    ),
    _route(
        "GET",
        rf"(?P<type>Patient)/{_ID}/\$zrm-progress",
        care.zrm_progress_operation,
        "$zrm-progress",
        on="Patient",
    ),
    _route(
        "GET",
        rf"(?P<type>Patient)/{_ID}/\$summary",
        care.summary_operation,
        "$summary",
        on="Patient",
    ),
    _route("POST", rf"{_TYPE}/\$validate", operations.validate, "$validate"),
    _route("POST", rf"{_TYPE}/{_ID}/\$validate", operations.validate, "$validate"),
    _route("POST", f"{_TYPE}/_search", search.search_type, "search-type"),
    _route("GET", _TYPE, search.search_type, "search-type", loop=True),
    _route("POST", _TYPE, crud.create, "create", writes=True),
    _route("PUT", _TYPE, crud.conditional_update, "update", writes=True),
    _route("DELETE", _TYPE, crud.conditional_delete, "delete", writes=True),
    _route("PATCH", _TYPE, crud.conditional_patch, "patch", writes=True),
    _route("GET", f"{_TYPE}/{_ID}", crud.read, "read", single=True),
    _route("PUT", f"{_TYPE}/{_ID}", crud.update, "update", writes=True),
    _route("PATCH", f"{_TYPE}/{_ID}", crud.patch, "patch", writes=True),
    _route("DELETE", f"{_TYPE}/{_ID}", crud.delete, "delete", writes=True),
)


#: the routes of each method, in the order of ROUTES (the first that matches wins)
_BY_METHOD = {m: tuple(r for r in ROUTES if r.method == m) for m in {r.method for r in ROUTES}}


@dataclass(frozen=True, slots=True)
class _Alternatives:
    """The patterns of one method's routes of one number of segments as one pattern: the
    routes in order, each an alternative in a group of its own (``r<n>``), its groups
    renamed apart (``<name>_<n>``). One match in the regular expression engine finds the
    first route whose pattern matches, as trying the routes one by one would;
    :meth:`Route.supports` is asked after it, as before."""

    pattern: re.Pattern[str]
    #: by alternative's group name: its route, and its groups' (renamed, own) names
    routes: dict[str, tuple[Route, tuple[tuple[str, str], ...]]]

    @classmethod
    def of(cls, routes: tuple[Route, ...]) -> _Alternatives:
        parts = []
        found: dict[str, tuple[Route, tuple[tuple[str, str], ...]]] = {}
        for n, route in enumerate(routes):
            source = route.pattern.pattern.removeprefix("^").removesuffix("$")
            names = tuple(route.pattern.groupindex)
            for name in names:
                source = source.replace(f"(?P<{name}>", f"(?P<{name}_{n}>")
            parts.append(f"(?P<r{n}>{source})$")
            found[f"r{n}"] = (route, tuple((f"{name}_{n}", name) for name in names))
        return cls(re.compile(f"^(?:{'|'.join(parts)})"), found)

    def first(self, path: str) -> tuple[Route, dict[str, str]] | None:
        """The first route whose pattern matches ``path`` and its groups, as
        :func:`_matches` finds it; None when none matches. A first route that does not
        support the type named is left to :func:`_matches` (one that does may follow)."""
        matched = self.pattern.match(path)
        if matched is None or matched.lastgroup is None:
            return None
        route, names = self.routes[matched.lastgroup]
        groups = {own: value for renamed, own in names if (value := matched[renamed]) is not None}
        if not route.supports(groups.get("type")):
            return next(_matches(_BY_METHOD[route.method], path), None)
        return route, groups


def segments(pattern: str) -> int:
    """How many segments every path ``pattern`` matches has: one more than its slashes
    outside a character class (none for the empty path). Each segment of a route is made
    of classes without the slash (``[^/?]``, ``[A-Za-z]``) and literals, so a path with
    another count matches none of the routes counted apart from it."""
    source = pattern.removeprefix("^").removesuffix("$")
    slashes, escaped, in_class = 0, False, False
    for char in source:
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = True
        elif in_class:
            in_class = char != "]"
        elif char == "[":
            in_class = True
        elif char == "/":
            slashes += 1
    return slashes + 1 if source else 0


def _path_segments(path: str) -> int:
    return path.count("/") + 1 if path else 0


#: per method and number of path segments, its routes as one pattern: a path is matched
#: only against the routes of as many segments (a read, against five of GET's sixteen)
_FIRST = {
    (method, count): _Alternatives.of(
        tuple(route for route in routes if segments(route.pattern.pattern) == count)
    )
    for method, routes in _BY_METHOD.items()
    for count in {segments(route.pattern.pattern) for route in routes}
}


def route_of(request: FhirRequest) -> tuple[Route, dict[str, str]]:
    """:func:`match_route` of ``request``, matched once per request (the groups are read,
    never changed); a failure to match is raised each time, and not kept."""
    if request.matched is None:
        request.matched = match_route(request.method, request.path)
    found: tuple[Route, dict[str, str]] = request.matched
    return found


def match_route(method: str, path: str) -> tuple[Route, dict[str, str]]:
    """The route for ``method`` and ``path``; 405 with ``Allow`` when the path exists for
    other methods only (or its type does not support this one). The routes of the method
    are tried first: a request that has one matches fewer patterns than there are routes."""
    method = "GET" if method == "HEAD" else method
    path = path.strip("/")
    alternatives = _FIRST.get((method, _path_segments(path)))
    found = alternatives.first(path) if alternatives is not None else None
    if found is not None:
        return found
    allowed = [route.method for route, _ in _matches(ROUTES, path)]
    if allowed:
        methods = sorted(set(allowed) | ({"HEAD"} if "GET" in allowed else set()))
        raise MethodNotAllowed(
            f"{method} is not allowed here", headers={"Allow": ", ".join(methods)}
        )
    raise NotFound("No such endpoint on this FHIR server")


def _matches(routes: tuple[Route, ...], path: str) -> Iterator[tuple[Route, dict[str, str]]]:
    """The routes among ``routes`` whose pattern matches ``path`` and that support the type
    it names, with the groups matched."""
    for route in routes:
        found = route.pattern.match(path)
        if found is None:
            continue
        groups = {k: v for k, v in found.groupdict().items() if v is not None}
        if route.supports(groups.get("type")):
            yield route, groups
