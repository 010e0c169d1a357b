"""batch and transaction (FHIR R4 http.html#transaction).

A transaction runs in ONE database transaction: every entry succeeds or nothing is kept.
Entries are processed in the order the spec gives (DELETE, POST, PUT/PATCH, GET), after
``urn:uuid`` full URLs and conditional references (``Patient?identifier=...``) have been
resolved to the ids they will have. Each entry is re-dispatched through the same routing
table as an HTTP request, in the transaction's session. A batch runs each entry on its
own; a failing entry becomes an OperationOutcome in its response entry.
"""

from __future__ import annotations

import base64
import logging
import re
import traceback
import uuid
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import orjson

from gateway.interactions import crud
from gateway.interactions.model import Context, FhirRequest, FhirResponse
from gateway.store.repository import Session, instant_of
from mappings.core.clock import format_instant
from mappings.core.errors import (
    FhirError,
    Invalid,
    Issue,
    PreconditionFailed,
    ServerError,
    Unprocessable,
)

log = logging.getLogger("eigendossier.interactions")

__all__ = ["process_bundle"]

_ORDER = {"DELETE": 0, "POST": 1, "PUT": 2, "PATCH": 2, "GET": 3, "HEAD": 3}
_REASONS = {200: "OK", 201: "Created", 204: "No Content", 304: "Not Modified"}
MAX_ENTRIES = 10_000


@dataclass(slots=True)
class _Entry:
    index: int
    method: str
    path: str
    query: list[tuple[str, str]]
    full_url: str | None
    resource: Any
    headers: dict[str, str]
    target_id: str | None = None  # the id a POST or conditional PUT will store under


def _parse_entry(index: int, raw: Any) -> _Entry:
    where = f"Bundle.entry[{index}]"
    if not isinstance(raw, dict) or not isinstance(raw.get("request"), dict):
        raise Invalid("Each entry needs a request", f"{where}.request")
    request = raw["request"]
    method, url = request.get("method"), request.get("url")
    if method not in _ORDER or not isinstance(url, str) or not url:
        raise Invalid("The entry's request needs a method and a url", f"{where}.request")
    parts = urlsplit(url)
    headers = {
        name.lower(): request[key]
        for key, name in (
            ("ifMatch", "If-Match"),
            ("ifNoneExist", "If-None-Exist"),
            ("ifNoneMatch", "If-None-Match"),
            ("ifModifiedSince", "If-Modified-Since"),
        )
        if isinstance(request.get(key), str)
    }
    return _Entry(
        index,
        method,
        parts.path.strip("/"),
        parse_qsl(parts.query, True),
        raw.get("fullUrl"),
        raw.get("resource"),
        headers,
    )


def _sub_request(entry: _Entry, prefer: str | None) -> FhirRequest:
    headers = dict(entry.headers)
    if prefer:
        headers["prefer"] = prefer
    body = _patch_body(entry) if entry.method == "PATCH" else entry.resource
    return FhirRequest(entry.method, entry.path, entry.query, headers, body)


def _patch_body(entry: _Entry) -> Any:
    """A PATCH entry carries its JSON Patch as a Binary (FHIR R4 http.html#patch)."""
    binary = entry.resource
    where = f"Bundle.entry[{entry.index}].resource"
    if not isinstance(binary, dict) or binary.get("resourceType") != "Binary":
        raise Invalid("A PATCH entry carries a Binary holding a JSON Patch", where)
    if binary.get("contentType") != "application/json-patch+json":
        raise Invalid("Only JSON Patch (application/json-patch+json) is supported", where)
    try:
        return orjson.loads(base64.b64decode(binary.get("data", ""), validate=True))
    except (ValueError, orjson.JSONDecodeError):
        raise Invalid("The Binary's data is not a base64 JSON Patch", where) from None


def _entry_response(response: FhirResponse) -> dict[str, Any]:
    out: dict[str, Any] = {
        "status": f"{response.status} {_REASONS.get(response.status, '')}".strip()
    }
    if "Location" in response.headers:
        out["location"] = response.headers["Location"]
    if "ETag" in response.headers:
        out["etag"] = response.headers["ETag"]
    if response.last_updated is not None:
        out["lastModified"] = instant_of(response.last_updated)
    elif "Last-Modified" in response.headers:
        moment = parsedate_to_datetime(response.headers["Last-Modified"])
        out["lastModified"] = format_instant(moment)
    return out


def _result_entry(response: FhirResponse) -> dict[str, Any]:
    entry: dict[str, Any] = {"response": _entry_response(response)}
    if isinstance(response.body, bytes):
        entry["resource"] = orjson.Fragment(response.body)
    elif isinstance(response.body, dict):
        if response.body.get("resourceType") == "OperationOutcome":
            entry["response"]["outcome"] = response.body
        else:
            entry["resource"] = response.body
    return entry


def _error_entry(error: FhirError) -> dict[str, Any]:
    return {"response": {"status": str(error.status), "outcome": error.outcome()}}


def process_bundle(context: Context, request: FhirRequest, session: Session | None) -> FhirResponse:
    """POST [base] with a batch or transaction Bundle."""
    body = request.body
    if not isinstance(body, dict) or body.get("resourceType") != "Bundle":
        raise Invalid("POST to the base takes a batch or transaction Bundle", "resourceType")
    kind = body.get("type")
    if kind not in ("batch", "transaction"):
        raise Invalid("Bundle.type must be batch or transaction", "Bundle.type")
    raw_entries = body.get("entry", [])
    if not isinstance(raw_entries, list) or len(raw_entries) > MAX_ENTRIES:
        raise Invalid(f"Bundle.entry must be a list of at most {MAX_ENTRIES}", "Bundle.entry")
    prefer = request.header("prefer")
    if kind == "batch":  # each entry on its own: its fault is its own OperationOutcome
        results = [_batch_entry(context, i, raw, prefer) for i, raw in enumerate(raw_entries)]
        return _response(context, kind, results)
    entries = [_parse_entry(i, e) for i, e in enumerate(raw_entries)]
    if session is not None:
        results = _transaction(context, entries, prefer, session)
    else:
        results = context.services.store.write(lambda s: _transaction(context, entries, prefer, s))
    return _response(context, kind, results)


def _response(context: Context, kind: str, results: list[dict[str, Any]]) -> FhirResponse:
    bundle = {
        "resourceType": "Bundle",
        "id": context.services.ids.new(),
        "type": f"{kind}-response",
        "entry": results,
    }
    return FhirResponse(200, bundle)


def _batch_entry(context: Context, index: int, raw: Any, prefer: str | None) -> dict[str, Any]:
    """One batch entry, in a transaction of its own; never the whole batch's failure."""
    try:
        entry = _parse_entry(index, raw)
        if entry.method in ("POST", "PUT") and entry.path == "":
            raise Invalid("A batch cannot nest a Bundle", f"Bundle.entry[{index}]")
        return _result_entry(context.router.dispatch(context, _sub_request(entry, prefer)))
    except FhirError as error:
        return _error_entry(error)
    except Exception as error:
        correlation = str(uuid.uuid4())
        frames = "".join(traceback.format_tb(error.__traceback__))
        log.error(
            "unexpected %s in batch entry %d [correlation %s]\n%s",
            type(error).__name__,
            index,
            correlation,
            frames,
        )
        failure = ServerError(f"Internal error; correlation id {correlation}")
        return {"response": {"status": "500", "outcome": failure.outcome()}}


def _transaction(
    context: Context, entries: list[_Entry], prefer: str | None, session: Session
) -> list[dict[str, Any]]:
    router = context.router
    identities = _assign_ids(context, entries, session)
    for entry in entries:
        if entry.resource is not None and _refers_inside(entry.resource, identities):
            entry.resource = _rewrite(context, entry.resource, identities, session, entry.index)
    session.read_ahead([key for entry in entries if (key := _written_key(entry)) is not None])
    results: dict[int, dict[str, Any]] = {}
    for entry in sorted(entries, key=lambda e: (_ORDER[e.method], e.index)):
        if entry.path == "":
            raise Invalid("A transaction cannot nest a Bundle", f"Bundle.entry[{entry.index}]")
        sub = _sub_request(entry, prefer)
        try:
            if entry.method == "POST" and entry.target_id is not None:
                response = router.create_with_id(context, sub, session, entry.path, entry.target_id)
            elif entry.method == "PUT" and entry.target_id is not None:
                sub.path, sub.query = f"{entry.path}/{entry.target_id}", []
                response = router.dispatch(context, sub, session)
            else:
                response = router.dispatch(context, sub, session)
        except FhirError as error:
            error.issues = [
                Issue(i.severity, i.code, f"Entry {entry.index}: {i.diagnostics}", i.expression)
                for i in error.issues
            ]
            raise
        results[entry.index] = _result_entry(response)
    return [results[i] for i in range(len(entries))]


def _written_key(entry: _Entry) -> tuple[str, str] | None:
    """(type, id) of the resource a create, update or delete entry writes, once its id is
    known (a conditional one's after :func:`_assign_ids`)."""
    if entry.method not in ("POST", "PUT", "DELETE") or (entry.query and entry.target_id is None):
        return None
    if entry.target_id is not None:
        return entry.path, entry.target_id
    parts = entry.path.split("/")
    return (parts[0], parts[1]) if len(parts) == 2 and entry.method != "POST" else None


def _assign_ids(context: Context, entries: list[_Entry], session: Session) -> dict[str, str]:
    """fullUrl -> Type/id for every entry that creates or names a resource."""
    identities: dict[str, str] = {}
    seen: set[str] = set()
    for entry in entries:
        resource_type = entry.path.split("/")[0]
        if entry.method == "POST" and entry.path and "/" not in entry.path:
            existing = _conditional_match(
                context, session, resource_type, entry.headers.get("if-none-exist")
            )
            if existing is None:
                entry.target_id = context.services.ids.new()
                identity = f"{resource_type}/{entry.target_id}"
            else:
                entry.method, entry.path = "GET", f"{resource_type}/{existing}"
                identity = entry.path
        elif entry.method == "PUT" and entry.query and "/" not in entry.path:
            found = crud.find_matches(context, session, resource_type, entry.query)
            if len(found) > 1:
                raise PreconditionFailed("Conditional update matches more than one resource")
            entry.target_id = (
                found[0]
                if found
                else (
                    entry.resource.get("id")
                    if isinstance(entry.resource, dict) and "id" in entry.resource
                    else context.services.ids.new()
                )
            )
            if isinstance(entry.resource, dict):
                entry.resource = {**entry.resource, "id": entry.target_id}
            identity = f"{resource_type}/{entry.target_id}"
        else:
            identity = entry.path
        if entry.method in ("PUT", "DELETE", "PATCH"):
            if identity in seen:
                raise Invalid(
                    f"{identity} appears twice in the transaction", f"Bundle.entry[{entry.index}]"
                )
            seen.add(identity)
        if entry.full_url:
            identities[entry.full_url] = identity
    return identities


def _conditional_match(
    context: Context, session: Session, resource_type: str, condition: str | None
) -> str | None:
    if not condition:
        return None
    found = crud.find_matches(
        context, session, resource_type, parse_qsl(condition.lstrip("?"), True)
    )
    if len(found) > 1:
        raise PreconditionFailed("If-None-Exist matches more than one resource")
    return found[0] if found else None


#: a reference in a resource's JSON as orjson writes it (a quote inside a string is
#: escaped, so this is always a key and its text); the text up to its end or an escape
_REFERENCE = re.compile(rb'"reference":"([^"\\]*)(["\\])')


def _refers_inside(resource: Any, identities: dict[str, str]) -> bool:
    """Whether a reference of ``resource`` may need :func:`_rewrite`: one to an entry of
    the transaction, a ``urn:``, a conditional one (``?``), or one that is not plain
    text. Most resources of a load refer only to what is stored already."""
    try:
        text = orjson.dumps(resource)
    except (orjson.JSONEncodeError, TypeError):
        return True
    for found in _REFERENCE.finditer(text):
        if found[2] != b'"':
            return True  # an escape in it: the slow way reads it
        reference = found[1].decode()
        if reference in identities or reference.startswith("urn:") or "?" in reference:
            return True
    return False


def _rewrite(
    context: Context, value: Any, identities: dict[str, str], session: Session, index: int
) -> Any:
    if isinstance(value, list):
        return [_rewrite(context, v, identities, session, index) for v in value]
    if not isinstance(value, dict):
        return value
    out = {}
    for key, item in value.items():
        if key == "reference" and isinstance(item, str):
            out[key] = _resolve(context, item, identities, session, index)
        else:
            out[key] = _rewrite(context, item, identities, session, index)
    return out


def _resolve(
    context: Context, reference: str, identities: dict[str, str], session: Session, index: int
) -> str:
    if reference in identities:
        return identities[reference]
    where = f"Bundle.entry[{index}]"
    if reference.startswith("urn:uuid:") or reference.startswith("urn:oid:"):
        raise Unprocessable(
            f"Reference {reference[:80]} does not resolve inside the transaction", where
        )
    resource_type, question, criteria = reference.partition("?")
    if question and resource_type in context.services.definitions.served:
        found = crud.find_matches(context, session, resource_type, parse_qsl(criteria, True))
        if len(found) != 1:
            raise PreconditionFailed(
                f"Conditional reference to {resource_type} matches {len(found)} resources", where
            )
        return f"{resource_type}/{found[0]}"
    return reference
