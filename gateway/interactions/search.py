"""search-type and search-system (FHIR R4 http.html#search), answered as a searchset Bundle.

Matches are embedded as their stored JSON bytes (``orjson.Fragment``): a search never
parses the resources it returns unless ``_summary`` or ``_elements`` ask for a subset.
Paging links repeat the applied parameters with ``_offset``, so they stay right however
far the client pages.
"""

from __future__ import annotations

import functools
from typing import Any
from urllib.parse import urlencode

import orjson

from gateway.interactions.common import check_type, loads
from gateway.interactions.model import Context, FhirRequest, FhirResponse
from gateway.interactions.summary import subset
from gateway.search.execute import Match, Page, one_statement_page, run_search
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
    page = _one_statement(context, session, search, owned)
    if page is None:
        page = run_search(session.connection, compiler, search, context.access, owned=owned)
    if owned:  # only a caller's disclosures are kept (its access-log entry names them)
        for match in (*page.matches, *page.included):
            context.disclose(match.res_type, match.res_id, match.pk, match.patients)
    return FhirResponse(200, searchset(context, search, page))


def _one_statement(
    context: Context, session: Session, search: SearchRequest, owned: bool
) -> Page | None:
    """The page in one statement on PostgreSQL (ADR 0044), the epoch it read confirming the
    one the caller's decisions were made under; None when the search needs more (on the
    event loop it then runs again on a thread, where :func:`run_search` answers it)."""
    if session.dialect.name != "postgresql":
        return None
    if session.ahead is None:
        session.flush()  # a search inside a transaction Bundle sees what it wrote
    found = one_statement_page(
        session.driver_rows,
        session.dialect,
        context.services.compiler,
        search,
        context.access,
        owned=owned,
    )
    if found is None:
        return None
    page, epoch = found
    session.confirm_epoch_as(epoch)
    return page


def _entry(context: Context, search: SearchRequest, match: Match, mode: str) -> Any:
    """A searchset entry; as one ``orjson.Fragment`` of its bytes unless ``_summary`` or
    ``_elements`` ask for a subset of the resource (a page holds up to a hundred: building
    and serializing a dict of each was a twentieth of an open search)."""
    if search.summary in ("true", "text", "data") or search.elements:
        return {
            "fullUrl": f"{context.services.base_url}/{match.res_type}/{match.res_id}",
            "resource": subset(
                loads(match.content), context.services.definitions, search.summary, search.elements
            ),
            "search": {"mode": mode},
        }
    return orjson.Fragment(
        b"".join(
            (
                _full_url_prefix(context.services.base_url),
                match.res_type.encode(),  # a type's name and an id need no escaping in JSON
                b"/",
                match.res_id.encode(),
                b'","resource":',
                match.content,
                _MODES[mode],
            )
        )
    )


#: the closing bytes of an entry, per search mode
_MODES = {mode: b',"search":{"mode":"' + mode.encode() + b'"}}' for mode in ("match", "include")}


@functools.lru_cache(maxsize=8)
def _full_url_prefix(base_url: str) -> bytes:
    """An entry's opening bytes up to its resource's type: the base escaped for JSON once."""
    return b'{"fullUrl":' + orjson.dumps(f"{base_url}/")[:-1]


def _links(context: Context, search: SearchRequest, page: Page) -> list[dict[str, str]]:
    """The searchset's links: each repeats the applied parameters (encoded once), then
    ``_offset`` when not at the start, then ``_count`` when the client did not give it."""
    url = f"{context.services.base_url}/{search.resource_type or ''}?"
    echoed = urlencode(search.echo)
    counted = any(name == "_count" for name, _ in search.echo)

    def link(relation: str, offset: int) -> dict[str, str]:
        extra = [f"_offset={offset}"] if offset else []
        if not counted:
            extra.append(f"_count={search.count}")
        return {"relation": relation, "url": url + "&".join(filter(None, (echoed, *extra)))}

    links = [link("self", search.offset)]
    if search.summary != "count":
        if search.offset > 0:
            links.append(link("first", 0))
            links.append(link("previous", max(0, search.offset - search.count)))
        if page.has_next:
            links.append(link("next", search.offset + search.count))
    return links


def searchset(context: Context, search: SearchRequest, page: Page) -> dict[str, Any]:
    bundle: dict[str, Any] = {
        "resourceType": "Bundle",
        "id": context.services.ids.new(),
        "meta": {"lastUpdated": format_instant(context.services.clock.now())},
        "type": "searchset",
    }
    if page.total is not None:
        bundle["total"] = page.total
    bundle["link"] = _links(context, search, page)
    entries = [_entry(context, search, m, "match") for m in page.matches]
    entries += [_entry(context, search, m, "include") for m in page.included]
    if search.warnings:
        entries.append(
            {"resource": operation_outcome(search.warnings), "search": {"mode": "outcome"}}
        )
    if entries:
        bundle["entry"] = entries
    return bundle
