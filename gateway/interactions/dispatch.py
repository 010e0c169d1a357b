"""The one routing table of the FHIR interactions, for HTTP and for Bundle entries alike.

A route is (method, path pattern) -> (interaction, whether it writes). :func:`dispatch`
finds the route, opens a read or write session of the store (or uses the one it is given,
inside a transaction), and calls the interaction. The CapabilityStatement is generated
from :data:`ROUTES`, so it cannot claim an interaction that is not routed.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from gateway.interactions import authorize, bundle, care, crud, history, operations, search
from gateway.interactions.model import Context, FhirRequest, FhirResponse
from gateway.store.repository import Session
from mappings.core.errors import FhirError, MethodNotAllowed, NotFound

__all__ = ["ROUTES", "Route", "dispatch", "match_route"]

Interaction = Callable[..., FhirResponse]

_TYPE = r"(?P<type>[A-Z][A-Za-z]+)"
_ID = r"(?P<id>[^/?]+)"


@dataclass(frozen=True, slots=True)
class Route:
    method: str
    pattern: re.Pattern[str]
    interaction: Interaction
    writes: bool
    name: str  # the FHIR interaction code (CapabilityStatement) or operation
    single_statement: bool = False  # a read of one statement needs no snapshot


def _route(
    method: str,
    pattern: str,
    interaction: Interaction,
    name: str,
    *,
    writes: bool = False,
    single: bool = False,
) -> Route:
    return Route(method, re.compile(f"^{pattern}$"), interaction, writes, name, single)


ROUTES: tuple[Route, ...] = (
    _route("GET", "metadata", operations.capabilities, "capabilities"),
    _route("GET", "", search.search_system, "search-system"),
    _route("POST", "", bundle.process_bundle, "transaction", writes=True),
    _route("GET", "_history", history.history, "history-system"),
    _route("GET", f"{_TYPE}/_history", history.history, "history-type"),
    _route("GET", f"{_TYPE}/{_ID}/_history", history.history, "history-instance"),
    _route("GET", f"{_TYPE}/{_ID}/_history/(?P<vid>[^/]+)", crud.vread, "vread", single=True),
    _route("GET", r"Consent/\$explain", authorize.explain, "$explain"),
    _route("POST", r"Consent/\$explain", authorize.explain, "$explain"),
    _route(
        "POST",
        rf"(?P<type>Patient)/{_ID}/\$break-the-glass",
        authorize.break_the_glass,
        "$break-the-glass",
        writes=True,
    ),
    _route(
        "GET",
        rf"(?P<type>Patient)/{_ID}/\$zrm-progress",
        care.zrm_progress_operation,
        "$zrm-progress",
    ),
    _route("POST", rf"{_TYPE}/\$validate", operations.validate, "$validate"),
    _route("POST", rf"{_TYPE}/{_ID}/\$validate", operations.validate, "$validate"),
    _route("POST", f"{_TYPE}/_search", search.search_type, "search-type"),
    _route("GET", _TYPE, search.search_type, "search-type"),
    _route("POST", _TYPE, crud.create, "create", writes=True),
    _route("PUT", _TYPE, crud.conditional_update, "update", writes=True),
    _route("DELETE", _TYPE, crud.conditional_delete, "delete", writes=True),
    _route("PATCH", _TYPE, crud.conditional_patch, "patch", writes=True),
    _route("GET", f"{_TYPE}/{_ID}", crud.read, "read", single=True),
    _route("PUT", f"{_TYPE}/{_ID}", crud.update, "update", writes=True),
    _route("PATCH", f"{_TYPE}/{_ID}", crud.patch, "patch", writes=True),
    _route("DELETE", f"{_TYPE}/{_ID}", crud.delete, "delete", writes=True),
)


def match_route(method: str, path: str) -> tuple[Route, dict[str, str]]:
    """The route for ``method`` and ``path``; 405 when the path exists for other methods."""
    method = "GET" if method == "HEAD" else method
    path = path.strip("/")
    allowed = []
    for route in ROUTES:
        found = route.pattern.match(path)
        if found is None:
            continue
        if route.method == method:
            return route, {k: v for k, v in found.groupdict().items() if v is not None}
        allowed.append(route.method)
    if allowed:
        raise MethodNotAllowed(
            f"{method} is not allowed here", headers={"Allow": ", ".join(sorted(set(allowed)))}
        )
    raise NotFound("No such endpoint on this FHIR server")


def _arguments(route: Route, groups: dict[str, str]) -> list[Any]:
    args: list[Any] = []
    for key in ("type", "id", "vid"):
        if key in groups:
            args.append(groups[key])
    return args


def dispatch(
    context: Context, request: FhirRequest, session: Session | None = None
) -> FhirResponse:
    """Run ``request`` through its interaction, in ``session`` or a session of its own."""
    route, groups = match_route(request.method, request.path)
    args = _arguments(route, groups)
    if route.interaction is bundle.process_bundle and session is None:
        return bundle.process_bundle(context, request, None)  # it opens its own transactions
    if session is not None:
        return run(route, context, request, session, args)
    store = context.services.store
    if route.writes:
        return store.write(lambda s: run(route, context, request, s, args))
    with store.read(snapshot=not route.single_statement) as read_session:
        return run(route, context, request, read_session, args)


def run(
    route: Route, context: Context, request: FhirRequest, session: Session, args: list[Any]
) -> FhirResponse:
    """One interaction in ``session``: narrowed to what the caller may do, and recorded.

    A write's access-log entry is written in the write's own transaction; a refusal is
    recorded apart (the transaction it happened in rolls back).
    """
    caller = context.caller
    if caller is None:
        return route.interaction(context, request, session, *args)
    scoped = caller.scoped(context, route.name, session)
    guard = session.guard
    session.guard = scoped.write if route.writes else None
    try:
        response = route.interaction(scoped, request, session, *args)
    except FhirError as error:
        _refused(scoped, route, request, session, args, error)
        raise
    finally:
        session.guard = guard
    caller.recorded(scoped, route.name, request, session, _target(args))
    return response


def _target(args: list[Any]) -> tuple[str, str] | None:
    return (str(args[0]), str(args[1])) if len(args) >= 2 else None


def _refused(
    context: Context,
    route: Route,
    request: FhirRequest,
    session: Session | None,
    args: list[Any],
    error: FhirError,
) -> None:
    if context.caller is not None and error.status in (401, 403, 404):
        reason = error.issues[0].diagnostics if error.issues else ""
        context.caller.refused(
            context, route.name, request, session, _target(args), error.status, reason
        )


def create_with_id(
    context: Context,
    request: FhirRequest,
    session: Session,
    resource_type: str,
    resource_id: str,
) -> FhirResponse:
    """A transaction's POST entry whose id was assigned beforehand, as a create."""
    route = Route(
        "POST",
        re.compile(""),
        lambda c, r, s: crud.store_new(
            c, r, s, crud.validated_for(c, r, resource_type), resource_id
        ),
        writes=True,
        name="create",
    )
    return run(route, context, request, session, [])
