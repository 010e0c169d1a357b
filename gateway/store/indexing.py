"""The search index of a session's writes, and households: a resource about a Group lies in
the compartment of each Patient member, derived again when the members change."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    delete,
    insert,
    select,
    tuple_,
)

from gateway.store.schema import (
    INDEX_TABLES,
    patient_compartment,
    resources,
    search_reference,
)
from gateway.store.session_base import SessionBase, lookup_rows

if TYPE_CHECKING:
    from gateway.search.extract import IndexRows

__all__ = ["Indexing"]


class Indexing(SessionBase):
    """Index rows and compartments of the resources a session writes."""

    def _unindex(self, pk: int, *, keep_compartment: bool = False) -> None:
        """Drop the index rows of ``pk``; a delete keeps its compartment, so that whoever
        could read the resource learns it is gone (410), and nobody else (404)."""
        tables = (
            INDEX_TABLES.values()
            if keep_compartment
            else (*INDEX_TABLES.values(), patient_compartment)
        )
        for table in tables:
            self.connection.execute(delete(table).where(table.c.res_pk == pk))

    def _reindex(
        self,
        pk: int,
        resource: dict[str, Any],
        *,
        fresh: bool,
        extracted: tuple[IndexRows, set[str]] | None = None,
    ) -> set[str]:
        """Replace the index rows of ``pk``; a fresh resource has none to delete.
        ``extracted``: its rows and patients worked out beforehand (``Store.prepare_new``:
        outside the write lock), their key set here."""
        if not fresh:
            self._unindex(pk)
        # an evaluator fault propagates: the edge logs it with a correlation id, and the
        # transaction rolls back, so no resource is ever stored unindexed
        extractor = self.store.extractor
        if extracted is None:
            rows, patients = extractor.rows(pk, resource)
        else:
            rows, patients = extracted[0], set(extracted[1])
            for table_rows in rows.values():
                for row in table_rows:
                    row["res_pk"] = pk
        for kind, table_rows in rows.items():
            self._pending.setdefault(kind, []).extend(table_rows)
        for member in rows.get("kind", ()):
            self._store_kind(member["kind"], resource)
        households = extractor.households(resource["resourceType"], rows)
        if households:
            patients |= set().union(*self._members(households).values())
        if patients:
            kind = resource["resourceType"]
            self._pending.setdefault("compartment", []).extend(
                {"res_pk": pk, "patient_id": p, "res_type": kind} for p in sorted(patients)
            )
        if resource["resourceType"] == "Group":
            self._rehouse(resource["id"])
        return patients

    def _store_kind(self, kind: int, resource: dict[str, Any]) -> None:
        """Store the rows of ``kind`` (the kind of ``resource``: ADR 0041) unless they are
        stored already: as the process saw committed, as this transaction wrote, or as the
        kind's own ``search_kind`` row says. Two transactions that store one kind at once
        (PostgreSQL) both store its rows: a search tests their presence, so twice is as
        once."""
        if kind in self.store.known_kinds or kind in self.kinds:
            return
        self.kinds.add(kind)  # known to the process once this transaction commits
        # on the driver, and with nothing pending written first: the kinds this transaction
        # stores are in ``self.kinds`` (a flush for each new set, every search entry naming
        # records named by none before, cost such an entry a fifth more: ADR 0043)
        if lookup_rows(self._connection, "kind_stored", [kind]):
            return
        for table, table_rows in self.store.extractor.kind_rows(kind, resource).items():
            self._pending.setdefault(table, []).extend(table_rows)

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
        kinds: dict[int, str] = {}
        groups: dict[int, set[str]] = {}
        rows = self.connection.execute(
            select(ref.res_pk, ref.res_type, ref.param, ref.target_type, ref.target_id).where(
                ref.res_pk.in_(pks), ref.target_type.in_(("Patient", "Group"))
            )
        )
        for pk, res_type, param, target_type, target_id in rows:
            kinds[pk] = res_type
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
        fresh = [
            {"res_pk": pk, "patient_id": p, "res_type": kinds[pk]}
            for pk in pks
            for p in sorted(patients[pk])
        ]
        if fresh:
            self._connection.execute(insert(patient_compartment), fresh)
