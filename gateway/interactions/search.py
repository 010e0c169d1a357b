"""search-type and search-system (FHIR R4 http.html#search), answered as a searchset Bundle.

Matches are embedded as their stored JSON bytes (``orjson.Fragment``): a search never
parses the resources it returns unless ``_summary`` or ``_elements`` ask for a subset.
Paging links repeat the applied parameters with ``_offset``, so they stay right however
far the client pages.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

import orjson

from gateway.interactions.common import check_type, loads
from gateway.interactions.model import Context, FhirRequest, FhirResponse
from gateway.interactions.summary import subset
from gateway.search.execute import Match, Page, run_search
from gateway.search.params import SearchRequest, parse_search
from gateway.store.repository import Session
from mappings.core.clock import format_instant
from mappings.core.errors import operation_outcome

__all__ = ["search_system", "search_type", "searchset"]


def search_type(
    context: Context, request: FhirRequest, session: Session, resource_type: str
) -> FhirResponse:
    check_type(context, resource_type)
    return _search(context, request, session, resource_type)


def search_system(context: Context, request: FhirRequest, session: Session) -> FhirResponse:
    return _search(context, request, session, None)


def _search(
    context: Context, request: FhirRequest, session: Session, resource_type: str | None
) -> FhirResponse:
    strict = request.prefer.get("handling") == "strict"
    search = parse_search(resource_type, request.query, context.services.registry, strict=strict)
    compiler, owned = context.services.compiler, context.caller is not None
    page = run_search(session.connection, compiler, search, context.access, owned=owned)
    for match in (*page.matches, *page.included):
        context.disclose(match.res_type, match.res_id, match.pk, match.patients)
    return FhirResponse(200, searchset(context, search, page))


def _entry(context: Context, search: SearchRequest, match: Match, mode: str) -> dict[str, Any]:
    resource: Any = orjson.Fragment(match.content)
    if search.summary in ("true", "text", "data") or search.elements:
        resource = subset(
            loads(match.content), context.services.definitions, search.summary, search.elements
        )
    return {
        "fullUrl": f"{context.services.base_url}/{match.res_type}/{match.res_id}",
        "resource": resource,
        "search": {"mode": mode},
    }


def _link(context: Context, search: SearchRequest, relation: str, offset: int) -> dict[str, str]:
    path = search.resource_type or ""
    items = [*search.echo, ("_offset", str(offset))] if offset else list(search.echo)
    if not any(name == "_count" for name, _ in items):
        items.append(("_count", str(search.count)))
    query = urlencode(items)
    return {"relation": relation, "url": f"{context.services.base_url}/{path}?{query}"}


def searchset(context: Context, search: SearchRequest, page: Page) -> dict[str, Any]:
    bundle: dict[str, Any] = {
        "resourceType": "Bundle",
        "id": context.services.ids.new(),
        "meta": {"lastUpdated": format_instant(context.services.clock.now())},
        "type": "searchset",
    }
    if page.total is not None:
        bundle["total"] = page.total
    links = [_link(context, search, "self", search.offset)]
    if search.summary != "count":
        if search.offset > 0:
            links.append(_link(context, search, "first", 0))
            links.append(_link(context, search, "previous", max(0, search.offset - search.count)))
        if page.has_next:
            links.append(_link(context, search, "next", search.offset + search.count))
    bundle["link"] = links
    entries = [_entry(context, search, m, "match") for m in page.matches]
    entries += [_entry(context, search, m, "include") for m in page.included]
    if search.warnings:
        entries.append(
            {"resource": operation_outcome(search.warnings), "search": {"mode": "outcome"}}
        )
    if entries:
        bundle["entry"] = entries
    return bundle
