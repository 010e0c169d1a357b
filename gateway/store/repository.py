"""Versioned storage of resources, with their search index, in one database transaction.

:class:`Store` hands out :class:`Session` objects, one per interaction: a read session or a
write session (serialised on SQLite by ``BEGIN IMMEDIATE``). A write that loses a race
(another process updated the same resource first, or created the same id) raises
:class:`RetryWrite` inside the session; :meth:`Store.write` rolls back and runs the whole
unit again, so no write is ever lost and no partial write is ever kept.
"""

from __future__ import annotations

import datetime as dt
import logging
import random
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import orjson
from sqlalchemy import (
    ColumnElement,
    Connection,
    Engine,
    Row,
    and_,
    bindparam,
    delete,
    false,
    insert,
    or_,
    select,
    tuple_,
    update,
)
from sqlalchemy.exc import IntegrityError, OperationalError

from consent.policy import Target
from gateway.search.dates import to_micros
from gateway.search.extract import Extractor
from gateway.store.access import ACCESS_TYPES, AccessFilter
from gateway.store.engine import SNAPSHOT, WRITE
from gateway.store.schema import (
    INDEX_TABLES,
    access_epoch,
    patient_compartment,
    resource_versions,
    resources,
    search_reference,
    search_token,
)
from mappings.core.clock import Clock, format_instant
from mappings.core.errors import Conflict, Forbidden, PreconditionFailed

_privileged = logging.getLogger("eigendossier.privileged")

__all__ = ["Current", "RetryWrite", "Session", "Store", "Stored"]

T = TypeVar("T")
_MAX_ATTEMPTS = 20


_CURRENT = select(resources).where(
    resources.c.res_type == bindparam("t"), resources.c.res_id == bindparam("i")
)
_CURRENT_FOR_UPDATE = _CURRENT.with_for_update()
_INSERT_RESOURCE = insert(resources).returning(resources.c.pk)
_ADVANCE = (
    update(resources)
    .where(resources.c.pk == bindparam("pk_"), resources.c.version_id == bindparam("expected"))
    .values(
        version_id=bindparam("version_id"),
        last_updated=bindparam("last_updated"),
        deleted=bindparam("deleted"),
        content=bindparam("content"),
    )
)
_EPOCH = select(access_epoch.c.n).where(access_epoch.c.id == 1)
_RAISE_EPOCH = update(access_epoch).where(access_epoch.c.id == 1).values(n=access_epoch.c.n + 1)
_PENDING_TABLES = {"compartment": patient_compartment, "versions": resource_versions}


class RetryWrite(Exception):
    """Another writer got there first; the unit of work runs again from the start."""


@dataclass(frozen=True, slots=True)
class Current:
    """The current row of a resource (possibly a delete marker)."""

    pk: int
    res_type: str
    res_id: str
    version_id: int
    last_updated: int
    deleted: bool
    content: bytes | None


@dataclass(frozen=True, slots=True)
class Stored:
    """What a write produced: the new version and its exact stored bytes."""

    res_type: str
    res_id: str
    version_id: int
    last_updated: int
    content: bytes | None
    created: bool


class Store:
    """The database behind the dossier; one per app, passed in from ``create_app``."""

    def __init__(self, engine: Engine, extractor: Extractor, clock: Clock) -> None:
        self.engine = engine
        self.extractor = extractor
        self.clock = clock

    @contextmanager
    def read(self, *, snapshot: bool = True) -> Iterator[Session]:
        """A read session; ``snapshot=False`` for an interaction of a single statement."""
        with self.engine.connect() as raw:
            connection = raw.execution_options(**{SNAPSHOT: snapshot})
            with connection.begin():
                yield Session(self, connection)

    def write(self, unit: Callable[[Session], T]) -> T:
        """Run ``unit`` in one write transaction; run it again when it lost a race."""
        for attempt in range(_MAX_ATTEMPTS):
            try:
                with self.engine.connect() as raw:
                    connection = raw.execution_options(**{WRITE: True})
                    with connection.begin():
                        session = Session(self, connection)
                        result = unit(session)
                        session.flush()
                        if session.access_changed:  # last: the row lock is held briefly
                            connection.execute(_RAISE_EPOCH)
                        return result
            except (RetryWrite, IntegrityError):
                time.sleep(random.uniform(0, 0.002 * (attempt + 1)))  # noqa: S311 (jitter)
                continue
            except OperationalError as error:
                if "deadlock" in str(error.orig).lower() or "serializ" in str(error.orig).lower():
                    continue
                raise
        raise Conflict("The resource is being changed by others; try again")

    def dispose(self) -> None:
        self.engine.dispose()


def _pairs_in(
    kind: ColumnElement[str], ident: ColumnElement[str], pairs: list[tuple[str, str]]
) -> ColumnElement[bool]:
    """``(kind, ident) IN pairs`` written as one ``kind = ? AND ident IN (...)`` per kind.

    SQLite answers a row-value IN list by scanning the whole index; this form it looks up.
    """
    ids: dict[str, set[str]] = {}
    for k, i in pairs:
        ids.setdefault(k, set()).add(i)
    return or_(false(), *(and_(kind == k, ident.in_(sorted(v))) for k, v in sorted(ids.items())))


def instant_of(micros: int) -> str:
    """The R4 instant text for a stored time."""
    moment = dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(microseconds=micros)
    return format_instant(moment)


class Session:
    """One database transaction of the store."""

    def __init__(self, store: Store, connection: Connection) -> None:
        self.store = store
        self._connection = connection
        self._pending: dict[str, list[dict[str, Any]]] = {}
        #: what the caller may write; None means the server itself writes (audit, open mode)
        self.guard: AccessFilter | None = None
        #: (type, id, patients) of every version written in this session, for the audit
        self.written: list[tuple[str, str, frozenset[str]]] = []
        #: a version of one of ACCESS_TYPES was written: the access epoch is raised at commit
        self.access_changed = False

    @contextmanager
    def unguarded(self, reason: str) -> Iterator[Session]:
        """This session without its write guard while the block runs, for ``reason``: a
        write inside a caller's request that the caller's write filter must not refuse (the
        request's access log, the Consent a break-the-glass writes). One of the two
        privileged doors; see :mod:`gateway.interactions.privileged`."""
        _privileged.debug("unguarded write: %s", reason)
        guard, self.guard = self.guard, None
        try:
            yield self
        finally:
            self.guard = guard

    @property
    def connection(self) -> Connection:
        """The transaction's connection, with every pending index row written first."""
        self.flush()
        return self._connection

    def flush(self) -> None:
        """Write the index rows collected by :meth:`put`, one multi-row insert per table."""
        pending, self._pending = self._pending, {}
        for name, rows in pending.items():
            if not rows:
                continue
            table = _PENDING_TABLES[name] if name in _PENDING_TABLES else INDEX_TABLES[name]
            self._connection.execute(insert(table), rows)

    # -- reading ---------------------------------------------------------------------

    def access_epoch(self) -> int | None:
        """The access epoch as this session sees it: while it stands still, no Consent nor
        anything a Consent's actors resolve through has changed (None: no such counter)."""
        return self._connection.execute(_EPOCH).scalar_one_or_none()

    def current(
        self,
        res_type: str,
        res_id: str,
        access: AccessFilter | None = None,
        *,
        for_update: bool = False,
    ) -> Current | None:
        """The current row; ``for_update`` locks it until the transaction ends (PostgreSQL;
        SQLite's write transactions are serialised already)."""
        restricted = access is not None and not access.is_unrestricted
        if restricted:
            assert access is not None
            query = _CURRENT.where(access.predicate())
        else:
            query = _CURRENT_FOR_UPDATE if for_update else _CURRENT
        if for_update and restricted:
            query = query.with_for_update()
        row = self._connection.execute(query, {"t": res_type, "i": res_id}).first()
        return None if row is None else Current(*row)

    def version(
        self, res_type: str, res_id: str, version_id: int
    ) -> tuple[bool, bytes | None] | None:
        row = self.connection.execute(
            select(resource_versions.c.deleted, resource_versions.c.content).where(
                resource_versions.c.res_type == res_type,
                resource_versions.c.res_id == res_id,
                resource_versions.c.version_id == version_id,
            )
        ).first()
        return None if row is None else (bool(row[0]), row[1])

    def history(
        self,
        res_type: str | None,
        res_id: str | None,
        *,
        since: int | None,
        limit: int,
        offset: int,
        access: AccessFilter,
    ) -> list[Row[Any]]:
        """Versions, newest first, of one resource, one type or everything the caller sees."""
        v = resource_versions
        query = select(
            v.c.res_type,
            v.c.res_id,
            v.c.version_id,
            v.c.last_updated,
            v.c.deleted,
            v.c.method,
            v.c.content,
        ).join(
            resources, and_(resources.c.res_type == v.c.res_type, resources.c.res_id == v.c.res_id)
        )
        if res_type is not None:
            query = query.where(v.c.res_type == res_type)
        if res_id is not None:
            query = query.where(v.c.res_id == res_id)
        if since is not None:
            query = query.where(v.c.last_updated >= since)
        if not access.is_unrestricted:
            query = query.where(access.predicate())
        query = query.order_by(v.c.last_updated.desc(), v.c.version_id.desc())
        return list(self.connection.execute(query.limit(limit).offset(offset)))

    # -- writing ---------------------------------------------------------------------

    def put(
        self,
        resource: dict[str, Any],
        *,
        method: str,
        if_match: int | None = None,
        base_version: int | None = None,
        must_create: bool = False,
    ) -> Stored:
        """Store ``resource`` (with its id) as a new version; set meta.versionId/lastUpdated.

        ``if_match`` is the client's precondition (a mismatch is a 412); ``base_version`` is
        the version this write was computed from (a mismatch means another writer won the
        race, and the unit of work runs again).
        """
        res_type, res_id = resource["resourceType"], resource["id"]
        current = self.current(res_type, res_id, for_update=True)
        if must_create and current is not None:
            raise RetryWrite  # the server-assigned id collided; the unit picks a new one
        if self.guard is not None and current is not None and not current.deleted:
            self._check_guard(current)
        if if_match is not None and (current is None or current.version_id != if_match):
            raise PreconditionFailed(
                "If-Match does not match the current version", f"{res_type}.meta.versionId"
            )
        if base_version is not None and (current is None or current.version_id != base_version):
            raise RetryWrite
        version_id = 1 if current is None else current.version_id + 1
        now = to_micros(self.store.clock.now())
        if current is not None and now <= current.last_updated:
            now = current.last_updated + 1
        meta = dict(resource.get("meta") or {})
        meta["versionId"] = str(version_id)
        meta["lastUpdated"] = instant_of(now)
        resource["meta"] = meta
        content = orjson.dumps(resource)
        if current is None:
            row = {
                "res_type": res_type,
                "res_id": res_id,
                "version_id": 1,
                "last_updated": now,
                "deleted": False,
                "content": content,
            }
            pk = self._connection.execute(_INSERT_RESOURCE, row).scalar_one()
        else:
            self._advance(current, version_id, now, deleted=False, content=content)
            pk = current.pk
        self._version_row(res_type, res_id, version_id, now, False, method, content)
        patients = self._reindex(pk, resource, fresh=current is None)
        if self.guard is not None and not self.guard.admits(Target.of(resource, patients)):
            raise Forbidden(f"No grant of the client allows writing this {res_type}")
        self.written.append((res_type, res_id, frozenset(patients)))
        created = current is None or current.deleted
        return Stored(res_type, res_id, version_id, now, content, created)

    def delete(self, res_type: str, res_id: str) -> Stored | None:
        """Mark the resource deleted as a new version; None when there was nothing to delete."""
        current = self.current(res_type, res_id, for_update=True)
        if current is None or current.deleted:
            return None
        patients = self._check_guard(current)
        self.written.append((res_type, res_id, patients))
        version_id = current.version_id + 1
        now = max(to_micros(self.store.clock.now()), current.last_updated + 1)
        self._advance(current, version_id, now, deleted=True, content=None)
        self._version_row(res_type, res_id, version_id, now, True, "DELETE", None)
        self._unindex(current.pk)
        if res_type == "Group":
            self._rehouse(res_id)
        return Stored(res_type, res_id, version_id, now, None, False)

    def _advance(
        self, current: Current, version_id: int, now: int, *, deleted: bool, content: bytes | None
    ) -> None:
        result = self._connection.execute(
            _ADVANCE,
            {
                "pk_": current.pk,
                "expected": current.version_id,
                "version_id": version_id,
                "last_updated": now,
                "deleted": deleted,
                "content": content,
            },
        )
        if result.rowcount != 1:
            raise RetryWrite

    def _version_row(
        self,
        res_type: str,
        res_id: str,
        version_id: int,
        now: int,
        deleted: bool,
        method: str,
        content: bytes | None,
    ) -> None:
        if res_type in ACCESS_TYPES:
            self.access_changed = True
        self._pending.setdefault("versions", []).append(
            {
                "res_type": res_type,
                "res_id": res_id,
                "version_id": version_id,
                "last_updated": now,
                "deleted": deleted,
                "method": method,
                "content": content,
            }
        )

    def _unindex(self, pk: int) -> None:
        for table in (*INDEX_TABLES.values(), patient_compartment):
            self.connection.execute(delete(table).where(table.c.res_pk == pk))

    def _check_guard(self, current: Current) -> frozenset[str]:
        """The patients of the current version; Forbidden if the caller may not change it."""
        patients = self.patients_of([current.pk]).get(current.pk, frozenset())
        if self.guard is None:
            return patients
        resource = orjson.loads(current.content) if current.content else {}
        resource.setdefault("resourceType", current.res_type)
        resource.setdefault("id", current.res_id)
        if not self.guard.admits(Target.of(resource, patients)):
            raise Forbidden(f"No grant of the client allows changing this {current.res_type}")
        return patients

    # -- lookups for the access decision and the audit ---------------------------------------

    def patients_of(self, pks: list[int]) -> dict[int, frozenset[str]]:
        """The compartment patients of each resource pk (unfiltered: for decisions only)."""
        found: dict[int, set[str]] = {}
        for start in range(0, len(pks), 500):
            rows = self.connection.execute(
                select(patient_compartment.c.res_pk, patient_compartment.c.patient_id).where(
                    patient_compartment.c.res_pk.in_(pks[start : start + 500])
                )
            )
            for pk, patient in rows:
                found.setdefault(pk, set()).add(patient)
        return {pk: frozenset(p) for pk, p in found.items()}

    def locate(self, refs: list[tuple[str, str]]) -> dict[tuple[str, str], int]:
        """The pks of resources by (type, id), whether or not the caller may see them."""
        out: dict[tuple[str, str], int] = {}
        for start in range(0, len(refs), 500):
            rows = self.connection.execute(
                select(resources.c.res_type, resources.c.res_id, resources.c.pk).where(
                    _pairs_in(resources.c.res_type, resources.c.res_id, refs[start : start + 500])
                )
            )
            out.update({(t, i): pk for t, i, pk in rows})
        return out

    def referring(self, res_type: str, param: str, targets: list[str]) -> list[Current]:
        """Live resources of ``res_type`` whose reference ``param`` points at ``targets``."""
        pairs = [(kind, ident) for kind, _, ident in (t.partition("/") for t in targets) if ident]
        if not pairs:
            return []
        ref = search_reference.c
        refs = select(ref.res_pk).where(
            ref.res_type == res_type,
            ref.param == param,
            _pairs_in(ref.target_type, ref.target_id, pairs),
        )
        rows = self._connection.execute(
            select(resources).where(resources.c.pk.in_(refs), resources.c.deleted.is_(False))
        )
        return [Current(*row) for row in rows]

    def with_identifier(self, res_type: str, system: str, value: str) -> list[str]:
        """Ids of live resources of ``res_type`` carrying identifier ``system|value``."""
        keys = select(search_token.c.res_pk).where(
            search_token.c.res_type == res_type,
            search_token.c.param == "identifier",
            search_token.c.system == system,
            search_token.c.code == value,
        )
        rows = self._connection.execute(
            select(resources.c.res_id).where(
                resources.c.pk.in_(keys), resources.c.deleted.is_(False)
            )
        )
        return [r.res_id for r in rows]

    def _reindex(self, pk: int, resource: dict[str, Any], *, fresh: bool) -> set[str]:
        """Replace the index rows of ``pk``; a fresh resource has none to delete."""
        if not fresh:
            self._unindex(pk)
        # an evaluator fault propagates: the edge logs it with a correlation id, and the
        # transaction rolls back, so no resource is ever stored unindexed
        extractor = self.store.extractor
        rows, patients = extractor.rows(pk, resource)
        for kind, table_rows in rows.items():
            self._pending.setdefault(kind, []).extend(table_rows)
        households = extractor.households(resource["resourceType"], rows)
        if households:
            patients |= set().union(*self._members(households).values())
        if patients:
            self._pending.setdefault("compartment", []).extend(
                {"res_pk": pk, "patient_id": p} for p in sorted(patients)
            )
        if resource["resourceType"] == "Group":
            self._rehouse(resource["id"])
        return patients

    # -- households: a resource about a Group lies in each Patient member's compartment ----

    def _members(self, groups: set[str]) -> dict[str, set[str]]:
        """The Patient members of each live Group (its own compartment), by Group id."""
        query = (
            select(resources.c.res_id, patient_compartment.c.patient_id)
            .join(patient_compartment, patient_compartment.c.res_pk == resources.c.pk)
            .where(
                resources.c.res_type == "Group",
                resources.c.res_id.in_(sorted(groups)),
                resources.c.deleted.is_(False),
            )
        )
        found: dict[str, set[str]] = {}
        for group, patient in self.connection.execute(query):
            found.setdefault(group, set()).add(patient)
        return found

    def _rehouse(self, group: str) -> None:
        """The members of ``group`` changed: derive again the compartments of the resources
        that name it, from their index rows (direct Patient references and households)."""
        household = self.store.extractor.registry.household
        pairs = sorted((t, p) for t, params in household.items() for p in params)
        if not pairs:
            return
        ref = search_reference.c
        naming = select(ref.res_pk).where(
            ref.target_type == "Group",
            ref.target_id == group,
            tuple_(ref.res_type, ref.param).in_(pairs),
        )
        pks = sorted({pk for (pk,) in self.connection.execute(naming)})
        for start in range(0, len(pks), 500):
            self._rederive(pks[start : start + 500])

    def _rederive(self, pks: list[int]) -> None:
        """Replace the compartment rows of ``pks`` by what their reference rows say now."""
        household = self.store.extractor.registry.household
        compartment = self.store.extractor.registry.compartment
        ref = search_reference.c
        direct = {(t, p) for t in household for p in compartment.get(t, ())}
        patients: dict[int, set[str]] = {pk: set() for pk in pks}
        groups: dict[int, set[str]] = {}
        rows = self.connection.execute(
            select(ref.res_pk, ref.res_type, ref.param, ref.target_type, ref.target_id).where(
                ref.res_pk.in_(pks), ref.target_type.in_(("Patient", "Group"))
            )
        )
        for pk, res_type, param, target_type, target_id in rows:
            if target_type == "Patient" and (res_type, param) in direct:
                patients[pk].add(target_id)
            elif target_type == "Group" and param in household.get(res_type, ()):
                groups.setdefault(pk, set()).add(target_id)
        members = self._members(set().union(*groups.values()))
        for pk, named in groups.items():
            for each in named:
                patients[pk] |= members.get(each, set())
        self._connection.execute(
            delete(patient_compartment).where(patient_compartment.c.res_pk.in_(pks))
        )
        fresh = [{"res_pk": pk, "patient_id": p} for pk in pks for p in sorted(patients[pk])]
        if fresh:
            self._connection.execute(insert(patient_compartment), fresh)
