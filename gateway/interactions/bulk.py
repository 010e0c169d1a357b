"""FHIR Bulk Data Access for back offices: ``$export`` kick-off, status, download.

``GET [base]/$export``, ``[base]/Patient/$export`` and ``[base]/Group/{id}/$export`` with
``Prefer: respond-async`` answer ``202 Accepted`` and a ``Content-Location`` to poll; the job
row and its outbox row are written in one transaction, and the delivery worker runs it
(:mod:`gateway.exports`). The status answers 202 with ``X-Progress`` while it runs, then the
manifest; each file is NDJSON (``application/fhir+ndjson``) behind the same token.

Only backend apps (system scopes) may export, and they get exactly what a search would give
them under the clients' Consents; a job and its files belong to the app that asked, and
expire (``Settings``: one hour by default).
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any
from urllib.parse import parse_qsl, urlencode

import orjson

from consent.context import Kind
from gateway.interactions.common import check_type
from gateway.interactions.model import Context, FhirRequest, FhirResponse
from gateway.search.dates import to_micros
from gateway.search.params import parse_search
from gateway.store.exports import delete_job, file_content, files_of, job_of, new_job
from gateway.store.repository import Session
from mappings.core.clock import format_instant
from mappings.core.errors import FhirError, Forbidden, Gone, Invalid, NotFound

__all__ = ["EXPORT_TTL", "export_file", "export_status", "kick_off"]

EXPORT_TTL = dt.timedelta(hours=1)
NDJSON = "application/fhir+ndjson"
_FORMATS = (NDJSON, "application/ndjson", "ndjson")


def _owner(context: Context) -> str | None:
    """The app an export belongs to; None in open mode (no caller)."""
    caller = context.caller
    if caller is None:
        return None
    who = getattr(caller, "who", None)
    if who is None or who.kind != Kind.SYSTEM:
        raise Forbidden("Exports are for backend apps (system scopes)")
    return str(who.client_id)


def kick_off(context: Context, request: FhirRequest, session: Session, *args: str) -> FhirResponse:
    """Start an export; ``args``: nothing (system), ``Patient``, or ``Group`` and its id."""
    owner = _owner(context)
    level = "system" if not args else ("patient" if args[0] == "Patient" else "group")
    group = args[1] if level == "group" else None
    if args:
        check_type(context, args[0])
    if "respond-async" not in (request.header("prefer") or ""):
        raise Invalid("An export runs asynchronously: send Prefer: respond-async", "Prefer")
    options = _options(context, request)
    if group is not None and session.current("Group", group, context.access) is None:
        raise NotFound(f"Group/{group} is not known")
    now = context.services.clock.now()
    job_id = str(uuid.uuid4())
    query = urlencode(request.query)
    described = {
        "request": f"{context.services.base_url}/{request.path}" + (f"?{query}" if query else ""),
        "level": level,
        "group": group,
        "transactionTime": format_instant(now),
        **options,
    }
    micros = to_micros(now)
    expires = micros + int(EXPORT_TTL.total_seconds() * 1_000_000)
    new_job(session, job_id, owner, orjson.dumps(described).decode(), micros, expires)
    status = f"{context.services.base_url}/$export-status/{job_id}"
    return FhirResponse(202, None, {"Content-Location": status})


def _options(context: Context, request: FhirRequest) -> dict[str, Any]:
    served = context.services.definitions.served
    found: dict[str, Any] = {"types": [], "since": None, "typeFilters": []}
    for name, value in request.query:
        if name == "_outputFormat":
            if value not in _FORMATS:
                raise Invalid("_outputFormat is application/fhir+ndjson", "_outputFormat")
        elif name == "_type":
            types = [t for t in value.split(",") if t]
            unknown = [t for t in types if t not in served]
            if unknown:
                raise Invalid(f"_type names types served here, not {unknown[0][:40]}", "_type")
            found["types"] += types
        elif name == "_since":
            try:
                since = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
            except ValueError:
                raise Invalid(
                    "_since is an instant (YYYY-MM-DDThh:mm:ss+zz:zz)", "_since"
                ) from None
            if since.tzinfo is None:
                raise Invalid("_since has a time zone", "_since")
            found["since"] = format_instant(since)
        elif name == "_typeFilter":
            for item in value.split(","):
                resource_type, _, query = item.partition("?")
                if resource_type not in served or not query:
                    raise Invalid("_typeFilter is Type?search, of a served type", "_typeFilter")
                try:
                    parse_search(
                        resource_type,
                        parse_qsl(query, keep_blank_values=True),
                        context.services.registry,
                        strict=True,
                    )
                except FhirError as error:
                    raise Invalid(f"_typeFilter: {error.diagnostics}", "_typeFilter") from None
                found["typeFilters"].append(item)
        elif name not in ("_format", "_pretty"):
            raise Invalid(f"An export does not take {name[:40]}", name)
    return found


def _job(context: Context, session: Session, job_id: str) -> dict[str, Any]:
    row = job_of(session, job_id)
    if row is None:
        raise NotFound("No such export")
    owner = _owner(context)
    if owner is not None and row["owner"] != owner:
        raise NotFound("No such export")
    if row["expires"] < to_micros(context.services.clock.now()):
        raise Gone("The export has expired")
    return row


def export_status(context: Context, request: FhirRequest, session: Session) -> FhirResponse:
    """``GET``: progress or the manifest; ``DELETE``: cancel the export and its files."""
    job_id = request.path.rsplit("/", 1)[-1]
    job = _job(context, session, job_id)
    if request.method == "DELETE":
        delete_job(session, job_id)
        return FhirResponse(202, None)
    if job["state"] in ("accepted", "running"):
        return FhirResponse(202, None, {"X-Progress": job["state"], "Retry-After": "1"})
    if job["state"] == "error":
        raise FhirError(f"The export failed: {job['error']}")
    described = orjson.loads(job["request"])
    files = files_of(session, job_id)
    base = context.services.base_url
    manifest = {
        "transactionTime": described["transactionTime"],
        "request": described["request"],
        "requiresAccessToken": True,
        "output": [
            {"type": t, "url": f"{base}/$export-file/{job_id}/{t}/{part}", "count": count}
            for t, part, count in files
        ],
        "error": [],
    }
    expires = dt.datetime.fromtimestamp(job["expires"] / 1_000_000, dt.UTC)
    return FhirResponse(
        200,
        orjson.dumps(manifest),
        {"Expires": expires.strftime("%a, %d %b %Y %H:%M:%S GMT")},
        media="application/json",
    )


def export_file(context: Context, request: FhirRequest, session: Session) -> FhirResponse:
    """One NDJSON part of a finished export."""
    _, job_id, resource_type, part = request.path.strip("/").split("/")
    job = _job(context, session, job_id)
    if job["state"] != "complete" or not part.isdigit():
        raise NotFound("No such file")
    content = file_content(session, job_id, resource_type, int(part))
    if content is None:
        raise NotFound("No such file")
    return FhirResponse(200, content, media=NDJSON)
