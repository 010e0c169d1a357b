"""read, vread, create, update, patch and delete, plain and conditional (FHIR R4 http.html)."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl

from gateway.interactions.common import (
    check_id,
    check_type,
    loads,
    parse_etag,
    stored_response,
    validated,
    version_headers,
    version_number,
)
from gateway.interactions.model import Context, FhirRequest, FhirResponse
from gateway.interactions.patch import apply_patch
from gateway.interactions.summary import subset
from gateway.search.execute import run_search
from gateway.search.params import parse_search
from gateway.store.repository import Current, Session
from mappings.core.errors import (
    Gone,
    Invalid,
    Issue,
    NotFound,
    PreconditionFailed,
    operation_outcome,
)

__all__ = [
    "conditional_delete",
    "conditional_patch",
    "conditional_update",
    "create",
    "delete",
    "find_matches",
    "patch",
    "read",
    "update",
    "validated_for",
    "visible",
    "vread",
]


def _summary_params(request: FhirRequest) -> tuple[str | None, tuple[str, ...] | None]:
    summary, elements = None, None
    for name, value in request.query:
        if name == "_summary":
            summary = None if value == "false" else value
        elif name == "_elements":
            elements = tuple(e.strip() for e in value.split(",") if e.strip())
    return summary, elements


def visible(context: Context, session: Session, resource_type: str, resource_id: str) -> Current:
    """The current row (perhaps a delete) of a resource the caller may see; 404 otherwise."""
    check_type(context, resource_type)
    check_id(resource_id)
    current = session.current(resource_type, resource_id, context.access)
    if current is None:
        raise NotFound(f"{resource_type}/{resource_id} is not known")
    context.disclose(resource_type, resource_id, current.pk, current.patients)
    return current


def read(
    context: Context, request: FhirRequest, session: Session, resource_type: str, resource_id: str
) -> FhirResponse:
    current = visible(context, session, resource_type, resource_id)
    headers = version_headers(current.version_id, current.last_updated)
    if current.deleted or current.content is None:
        raise Gone(f"{resource_type}/{resource_id} was deleted", headers=headers)
    if parse_etag(request.header("if-none-match"), "If-None-Match") == current.version_id:
        return FhirResponse(304, None, headers)
    summary, elements = _summary_params(request)
    if summary or elements:
        resource = subset(loads(current.content), context.services.definitions, summary, elements)
        return FhirResponse(200, resource, headers)
    return FhirResponse(200, current.content, headers)


def vread(
    context: Context,
    request: FhirRequest,
    session: Session,
    resource_type: str,
    resource_id: str,
    version: str,
) -> FhirResponse:
    number = version_number(version)
    visible(context, session, resource_type, resource_id)
    if number is None:
        raise NotFound(f"{resource_type}/{resource_id} has no such version")
    found = session.version(resource_type, resource_id, number)
    if found is None:
        raise NotFound(f"Version {version} of {resource_type}/{resource_id} is not known")
    deleted, content = found
    if deleted or content is None:
        raise Gone(f"Version {version} of {resource_type}/{resource_id} is a delete")
    return FhirResponse(200, content, {"ETag": f'W/"{version}"'})


def find_matches(
    context: Context, session: Session, resource_type: str, query: list[tuple[str, str]]
) -> list[str]:
    """Ids matching a conditional interaction's criteria (at most two: enough to decide)."""
    search = parse_search(resource_type, query, context.services.registry, strict=True)
    if not search.filters:
        raise PreconditionFailed("A conditional interaction needs search criteria")
    search.count, search.total, search.sort = 2, "none", []
    page = run_search(session.connection, context.services.compiler, search, context.access)
    return [m.res_id for m in page.matches]


def _criteria(text: str) -> list[tuple[str, str]]:
    return parse_qsl(text.lstrip("?"), keep_blank_values=True)


def validated_for(context: Context, request: FhirRequest, resource_type: str) -> dict[str, Any]:
    """The body of a create of ``resource_type``, checked."""
    check_type(context, resource_type)
    return validated(context, request.body, resource_type)


def create(
    context: Context, request: FhirRequest, session: Session, resource_type: str
) -> FhirResponse:
    check_type(context, resource_type)
    resource = validated(context, request.body, resource_type)
    condition = request.header("if-none-exist")
    if condition:
        found = find_matches(context, session, resource_type, _criteria(condition))
        if len(found) > 1:
            raise PreconditionFailed("If-None-Exist matches more than one resource")
        if found:
            current = session.current(resource_type, found[0])
            assert current is not None and current.content is not None
            headers = version_headers(current.version_id, current.last_updated)
            headers["Location"] = (
                f"{context.services.base_url}/{resource_type}/{found[0]}"
                f"/_history/{current.version_id}"
            )
            return FhirResponse(200, current.content, headers)
    return store_new(context, request, session, resource)


def store_new(
    context: Context,
    request: FhirRequest,
    session: Session,
    resource: dict[str, Any],
    resource_id: str | None = None,
) -> FhirResponse:
    """Store ``resource`` under a new server id (or ``resource_id``, chosen beforehand)."""
    resource = dict(resource)
    resource["id"] = resource_id or context.services.ids.new()
    stored = session.put(resource, method="POST", must_create=True)
    return stored_response(context, request, stored, 201, outcome="Created")


def update(
    context: Context, request: FhirRequest, session: Session, resource_type: str, resource_id: str
) -> FhirResponse:
    check_type(context, resource_type)
    check_id(resource_id)
    resource = validated(context, request.body, resource_type, resource_id)
    if_match = parse_etag(request.header("if-match"))
    _writable(context, session, resource_type, resource_id)
    stored = session.put(dict(resource), method="PUT", if_match=if_match)
    return stored_response(
        context,
        request,
        stored,
        201 if stored.created else 200,
        outcome="Created" if stored.created else "Updated",
    )


def _writable(context: Context, session: Session, resource_type: str, resource_id: str) -> None:
    """Defence in depth: an existing resource the caller cannot see cannot be overwritten."""
    if context.access.is_unrestricted:
        return
    exists = session.current(resource_type, resource_id)
    if exists is not None and session.current(resource_type, resource_id, context.access) is None:
        raise NotFound(f"{resource_type}/{resource_id} is not known")


def conditional_update(
    context: Context, request: FhirRequest, session: Session, resource_type: str
) -> FhirResponse:
    check_type(context, resource_type)
    body = request.body
    found = find_matches(context, session, resource_type, request.query)
    if len(found) > 1:
        raise PreconditionFailed("The criteria match more than one resource")
    if not found:
        resource = validated(context, body, resource_type)
        if "id" in resource:
            check_id(str(resource["id"]))
            if session.current(resource_type, str(resource["id"])) is not None:
                raise Invalid("The body's id names another resource than the criteria match")
            stored = session.put(dict(resource), method="PUT")
            return stored_response(context, request, stored, 201, outcome="Created")
        return store_new(context, request, session, resource)
    if isinstance(body, dict) and "id" in body and body["id"] != found[0]:
        raise Invalid("The body's id differs from the resource the criteria match", "id")
    if isinstance(body, dict):
        body = {**body, "id": found[0]}
    request.body = body
    return update(context, request, session, resource_type, found[0])


def _current_for_change(
    context: Context, request: FhirRequest, session: Session, resource_type: str, resource_id: str
) -> Current:
    """The current row the caller may see and change, after the If-Match precondition."""
    current = visible(context, session, resource_type, resource_id)
    if_match = parse_etag(request.header("if-match"))
    if if_match is not None and if_match != current.version_id:
        raise PreconditionFailed("If-Match does not match the current version")
    return current


def delete(
    context: Context, request: FhirRequest, session: Session, resource_type: str, resource_id: str
) -> FhirResponse:
    _current_for_change(context, request, session, resource_type, resource_id)
    stored = session.delete(resource_type, resource_id)
    headers = {} if stored is None else {"ETag": f'W/"{stored.version_id}"'}
    outcome = operation_outcome(
        [Issue("information", "informational", f"{resource_type}/{resource_id} is deleted")]
    )
    return FhirResponse(200, outcome, headers)


def conditional_delete(
    context: Context, request: FhirRequest, session: Session, resource_type: str
) -> FhirResponse:
    check_type(context, resource_type)
    found = find_matches(context, session, resource_type, request.query)
    if len(found) > 1:
        raise PreconditionFailed("The criteria match more than one resource")
    if not found:
        return FhirResponse(204)
    return delete(context, request, session, resource_type, found[0])


def patch(
    context: Context, request: FhirRequest, session: Session, resource_type: str, resource_id: str
) -> FhirResponse:
    current = _current_for_change(context, request, session, resource_type, resource_id)
    if current.deleted or current.content is None:
        raise Gone(f"{resource_type}/{resource_id} was deleted")
    patched = apply_patch(loads(current.content), request.body)
    resource = validated(context, patched, resource_type, resource_id)
    stored = session.put(resource, method="PATCH", base_version=current.version_id)
    return stored_response(context, request, stored, 200, outcome="Patched")


def conditional_patch(
    context: Context, request: FhirRequest, session: Session, resource_type: str
) -> FhirResponse:
    check_type(context, resource_type)
    found = find_matches(context, session, resource_type, request.query)
    if len(found) != 1:
        raise PreconditionFailed("A conditional patch needs exactly one match")
    return patch(context, request, session, resource_type, found[0])
