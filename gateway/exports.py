"""Running a Bulk Data export (a job of :mod:`gateway.interactions.bulk`), in the worker.

The job is read under the asking app's access, rebuilt from its registration as at every
delivery (:mod:`gateway.delivery`): what clients granted it, nothing more. Each type is
streamed from the store in chunks (one query each; memory holds one chunk) and written as
NDJSON parts of at most :data:`PART_LINES` resources, each part in a transaction of its own;
the clients whose resources left get an access-log entry each.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import parse_qsl

import orjson
from sqlalchemy import insert, select, update

from consent.audit import Access, audit_event
from consent.context import AccessContext
from gateway.interactions.authorize import write_events
from gateway.interactions.dossier import server_context
from gateway.interactions.model import Services
from gateway.search.dates import to_micros
from gateway.search.execute import Match, stream_search
from gateway.search.params import parse_search
from gateway.store.access import AccessFilter
from gateway.store.repository import Session
from gateway.store.schema import export_files, export_jobs

__all__ = ["PART_LINES", "AccessOf", "run_export"]

#: ``access_of(session, owner)``: what the app ``owner`` may read now, and who it is
AccessOf = Callable[[Session, str | None], tuple[AccessFilter, AccessContext | None]]

PART_LINES = 10_000
_CHUNK = 1_000


def run_export(
    services: Services,
    job_id: str,
    access_of: AccessOf,
) -> None:
    """Run the job ``job_id`` to ``complete`` (or ``error``, saying why)."""
    with services.store.read() as session:
        job = (
            session.connection.execute(select(export_jobs).where(export_jobs.c.id == job_id))
            .mappings()
            .first()
        )
    if job is None or job["state"] not in ("accepted", "running"):
        return  # cancelled meanwhile, or done
    _set(services, job_id, state="running")
    described = orjson.loads(job["request"])
    try:
        patients = _export(services, job_id, described, job["owner"], access_of)
    except Exception as error:
        _set(services, job_id, state="error", error=type(error).__name__)
        raise
    now = to_micros(services.clock.now())
    _set(services, job_id, state="complete", finished=now)
    _log(services, job["owner"], access_of, patients, job_id)


def _set(services: Services, job_id: str, **values: Any) -> None:
    services.store.write(
        lambda s: s.connection.execute(
            update(export_jobs).where(export_jobs.c.id == job_id).values(**values)
        )
    )


def _queries(
    services: Services, described: dict[str, Any], session: Session
) -> Iterator[tuple[str, list[tuple[str, str]]]]:
    """(type, query) of every search the export is made of."""
    registry = services.registry
    level = described["level"]
    compartment = {t for t, params in registry.compartment.items() if params}
    types = described["types"] or sorted(services.definitions.served)
    if level != "system":
        types = [t for t in types if t in compartment or t == "Patient"]
    types = [t for t in types if t != "AuditEvent"]  # the access log is the client's own
    since = [("_lastUpdated", f"ge{described['since']}")] if described["since"] else []
    filters: dict[str, list[list[tuple[str, str]]]] = {}
    for item in described["typeFilters"]:
        resource_type, _, query = item.partition("?")
        filters.setdefault(resource_type, []).append(parse_qsl(query, keep_blank_values=True))
    members = _members(session, described["group"]) if level == "group" else None
    for resource_type in types:
        for extra in filters.get(resource_type, [[]]):
            base = [*since, *extra]
            if members is None:
                yield resource_type, base
                continue
            params = (
                ["_id"] if resource_type == "Patient" else list(registry.compartment[resource_type])
            )
            for start in range(0, len(members), 100):
                ids = members[start : start + 100]
                for param in params:
                    value = ",".join(ids if param == "_id" else (f"Patient/{i}" for i in ids))
                    yield resource_type, [*base, (param, value)]


def _members(session: Session, group: str) -> list[str]:
    current = session.current("Group", group)
    if current is None or current.content is None:
        return []
    found = orjson.loads(current.content)
    return sorted(
        {
            str(m["entity"]["reference"]).removeprefix("Patient/")
            for m in found.get("member", [])
            if str((m.get("entity") or {}).get("reference", "")).startswith("Patient/")
        }
    )


def _export(
    services: Services,
    job_id: str,
    described: dict[str, Any],
    owner: str | None,
    access_of: AccessOf,
) -> set[str]:
    patients: set[str] = set()
    parts: dict[str, int] = {}
    with services.store.read() as session:
        access, _ = access_of(session, owner)
        written: dict[str, set[str]] = {}
        for resource_type, query in list(_queries(services, described, session)):
            search = parse_search(resource_type, query, services.registry, strict=True)
            seen = written.setdefault(resource_type, set())
            lines: list[bytes] = []
            for chunk in stream_search(
                session.connection, services.compiler, search, access, _CHUNK
            ):
                fresh = [m for m in chunk if m.res_id not in seen]
                seen.update(m.res_id for m in fresh)
                patients |= _owners(session, fresh)
                lines += [m.content for m in fresh]
                while len(lines) >= PART_LINES:
                    _part(services, job_id, resource_type, parts, lines[:PART_LINES])
                    lines = lines[PART_LINES:]
            if lines:
                _part(services, job_id, resource_type, parts, lines)
    return patients


def _owners(session: Session, matches: list[Match]) -> set[str]:
    found: set[str] = set()
    for owners in session.patients_of([m.pk for m in matches]).values():
        found |= set(owners)
    return found


def _part(
    services: Services, job_id: str, resource_type: str, parts: dict[str, int], lines: list[bytes]
) -> None:
    number = parts.get(resource_type, 0) + 1
    parts[resource_type] = number
    content = b"\n".join(lines) + b"\n"
    services.store.write(
        lambda s: s.connection.execute(
            insert(export_files).values(
                job_id=job_id,
                res_type=resource_type,
                part=number,
                count=len(lines),
                content=content,
            )
        )
    )


def _log(
    services: Services, owner: str | None, access_of: AccessOf, patients: set[str], job_id: str
) -> None:
    if not patients:
        return
    with services.store.read() as session:
        _, who = access_of(session, owner)
    now = services.clock.now()
    events = [
        audit_event(
            who or server_context("export", "operator"),
            Access(
                interaction="$export",
                outcome="0",
                recorded=now,
                patient=patient,
                objects=(),
                description=f"bulk export {job_id}",
            ),
            services.base_url,
        )
        for patient in sorted(patients)
    ]
    services.store.write(lambda s: write_events(services, s, events))
