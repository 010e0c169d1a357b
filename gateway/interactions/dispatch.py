"""Dispatching a FHIR request: find its route, open a session, narrow, run, record.

:func:`dispatch` finds the route (:mod:`gateway.interactions.routes`), opens a read or
write session of the store (or uses the one it is given, inside a transaction), and calls
the interaction, narrowed to what the caller may do.
"""

from __future__ import annotations

import re
from typing import Any

from gateway.interactions import bundle, crud
from gateway.interactions.authorize import names_access_log
from gateway.interactions.model import Context, FhirRequest, FhirResponse
from gateway.interactions.routes import ROUTES, Route, match_route, route_of
from gateway.store.repository import Session
from mappings.core.errors import FhirError

__all__ = ["Dispatcher", "create_with_id", "dispatch", "shows_access_log"]


class Dispatcher:
    """The router a :class:`Context` carries: what handlers (a Bundle's entries, the
    CapabilityStatement) use to reach the table and each other without importing it."""

    routes = ROUTES

    def dispatch(
        self, context: Context, request: FhirRequest, session: Session | None = None
    ) -> FhirResponse:
        return dispatch(context, request, session)

    def create_with_id(
        self,
        context: Context,
        request: FhirRequest,
        session: Session,
        resource_type: str,
        resource_id: str,
    ) -> FhirResponse:
        return create_with_id(context, request, session, resource_type, resource_id)


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
    route, groups = route_of(request)
    args = _arguments(route, groups)
    if session is None and shows_access_log(route, groups, request):
        context.services.store.catch_up_access_log()
    if route.interaction is bundle.process_bundle and session is None:
        return bundle.process_bundle(context, request, None)  # it opens its own transactions
    if session is not None:
        return run(route, context, request, session, args)
    store = context.services.store
    if route.writes:
        return store.write(lambda s: run(route, context, request, s, args))
    # on PostgreSQL's event loop a search is one statement, or it runs on a thread (ADR 0044)
    ahead = context.budget is not None and context.budget.ahead is not None
    snapshot = not (route.single_statement or (ahead and route.on_loop))
    with store.read(snapshot=snapshot, budget=context.budget) as read_session:
        return run(route, context, request, read_session, args)


#: routes of no type that never answer with a resource of the dossier
_NOTHING_LOGGED = frozenset({"capabilities", "$export-status", "$export-file"})


def shows_access_log(route: Route, groups: dict[str, str], request: FhirRequest) -> bool:
    """Whether ``request`` may answer with AuditEvents: one of the type, one of no type
    (system search and history, Bundles, operations), or one that names the type in its
    query (``_revinclude=AuditEvent:...``, ``_has:AuditEvent:...``). Such a request first
    indexes every access-log entry committed so far (ADR 0021), so it reads no log behind."""
    kind = groups.get("type")
    if kind is None and route.on is None:
        return route.name not in _NOTHING_LOGGED
    return names_access_log(kind, request.query)


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
        session.confirm_epoch()  # a refusal under an epoch that moved is no answer
        _refused(scoped, route, request, session, args, error)
        raise
    finally:
        session.guard = guard
    session.confirm_epoch()  # nothing recorded nor answered under an epoch that moved
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
    """A transaction's POST entry whose id was assigned beforehand, as a create: the same
    route as any create of the type (a type that takes no create is refused with 405)."""
    create, _ = match_route("POST", resource_type)
    route = Route(
        "POST",
        re.compile(""),
        lambda c, r, s: crud.store_new(
            c, r, s, crud.validated_for(c, r, resource_type), resource_id
        ),
        writes=True,
        name=create.name,
    )
    return run(route, context, request, session, [])
