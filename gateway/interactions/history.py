"""history-instance, history-type and history-system (FHIR R4 http.html#history).

Newest first, with ``_since``, ``_count`` and ``_offset`` paging (``_at`` is refused
with a clear OperationOutcome). A delete is an entry with a request and
response but no resource. The access filter applies through the current row of each
resource, so a resource the caller cannot see shows none of its history.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

import orjson

from gateway.interactions.common import check_type
from gateway.interactions.crud import visible
from gateway.interactions.model import Context, FhirRequest, FhirResponse
from gateway.search.dates import parse_date_range
from gateway.search.params import DEFAULT_COUNT, MAX_COUNT, MAX_OFFSET, whole_number
from gateway.store.repository import Session, instant_of
from mappings.core.clock import format_instant
from mappings.core.errors import Invalid, NotSupported

__all__ = ["history"]


def _paging(request: FhirRequest) -> tuple[int, int, int | None]:
    count, offset, since = DEFAULT_COUNT, 0, None
    for name, value in request.query:
        try:
            if name == "_count":
                count = max(1, whole_number("_count", value, 0, MAX_COUNT))
            elif name == "_offset":
                offset = whole_number("_offset", value, 0, MAX_OFFSET)
            elif name == "_since":
                since = parse_date_range(value)[0]
            elif name == "_at":
                raise NotSupported("_at is not supported on history", "_at")
        except ValueError:
            raise Invalid(f"Invalid value for {name}", name) from None
    return count, offset, since


def history(
    context: Context,
    request: FhirRequest,
    session: Session,
    resource_type: str | None = None,
    resource_id: str | None = None,
) -> FhirResponse:
    if resource_type is not None:
        check_type(context, resource_type)
    if resource_id is not None:
        visible(context, session, str(resource_type), resource_id)
    count, offset, since = _paging(request)
    rows = session.history(
        resource_type,
        resource_id,
        since=since,
        limit=count + 1,
        offset=offset,
        access=context.access,
    )
    path = "/".join(p for p in (resource_type, resource_id, "_history") if p)
    bundle: dict[str, Any] = {
        "resourceType": "Bundle",
        "id": context.services.ids.new(),
        "meta": {"lastUpdated": format_instant(context.services.clock.now())},
        "type": "history",
        "link": _links(context, request, path, count, offset, len(rows) > count),
    }
    for row in rows[:count]:
        context.disclose(str(row.res_type), str(row.res_id))
    entries = [_entry(context, row) for row in rows[:count]]
    if entries:
        bundle["entry"] = entries
    return FhirResponse(200, bundle)


def _links(
    context: Context, request: FhirRequest, path: str, count: int, offset: int, more: bool
) -> list[dict[str, str]]:
    kept = [(n, v) for n, v in request.query if n in ("_since",)] + [("_count", str(count))]

    def url(at: int) -> str:
        items = [*kept, ("_offset", str(at))] if at else kept
        return f"{context.services.base_url}/{path}?{urlencode(items)}"

    links = [{"relation": "self", "url": url(offset)}]
    if offset:
        links.append({"relation": "previous", "url": url(max(0, offset - count))})
    if more:
        links.append({"relation": "next", "url": url(offset + count)})
    return links


def _entry(context: Context, row: Any) -> dict[str, Any]:
    res_type, res_id, version_id, last_updated, deleted, method, content = row
    full_url = f"{context.services.base_url}/{res_type}/{res_id}"
    entry: dict[str, Any] = {"fullUrl": full_url}
    if not deleted and content is not None:
        entry["resource"] = orjson.Fragment(content)
    request_url = f"{res_type}/{res_id}" if method != "POST" else res_type
    entry["request"] = {"method": method, "url": request_url}
    entry["response"] = {
        "status": "201 Created" if version_id == 1 else ("204 No Content" if deleted else "200 OK"),
        "etag": f'W/"{version_id}"',
        "lastModified": instant_of(last_updated),
    }
    return entry
