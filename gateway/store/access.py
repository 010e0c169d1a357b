"""The access-filter seam: what a request may see, compiled into every query.

The store never returns a row that the filter excludes: the filter is a SQL predicate on
the ``resources`` table added to reads, searches (including chained, ``_has``,
``_include`` and ``_revinclude`` sub-queries) and history, never a filter on results.
``consent`` builds the filter from the client's Consent resources; ``--open`` development
mode uses :meth:`AccessFilter.unrestricted`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import ColumnElement, FromClause, and_, not_, or_, select, true, tuple_

from gateway.store.schema import patient_compartment, resources

__all__ = ["AccessFilter"]


@dataclass(frozen=True, slots=True)
class AccessFilter:
    """Allowed resource types x allowed patients, minus excluded resources.

    ``resource_types``: None means every type. ``patients``: None means every patient;
    otherwise a resource of a type in ``compartment_types`` is visible only when it lies
    in the compartment of one of these patients. ``excluded``: (type, id) pairs never
    visible (a nested deny provision on specific data).
    """

    resource_types: frozenset[str] | None = None
    patients: frozenset[str] | None = None
    compartment_types: frozenset[str] = field(default_factory=frozenset)
    excluded: frozenset[tuple[str, str]] = field(default_factory=frozenset)

    @classmethod
    def unrestricted(cls) -> AccessFilter:
        return cls()

    @property
    def is_unrestricted(self) -> bool:
        return self.resource_types is None and self.patients is None and not self.excluded

    def predicate(self, table: FromClause = resources) -> ColumnElement[bool]:
        """A SQL predicate on ``resources`` (or an alias of it) that admits what is allowed."""
        columns = table.c
        clauses: list[ColumnElement[bool]] = []
        if self.resource_types is not None:
            clauses.append(columns.res_type.in_(sorted(self.resource_types)))
        if self.patients is not None:
            in_compartment = columns.pk.in_(
                select(patient_compartment.c.res_pk).where(
                    patient_compartment.c.patient_id.in_(sorted(self.patients))
                )
            )
            clauses.append(
                or_(not_(columns.res_type.in_(sorted(self.compartment_types))), in_compartment)
            )
        if self.excluded:
            clauses.append(
                not_(tuple_(columns.res_type, columns.res_id).in_(sorted(self.excluded)))
            )
        return and_(true(), *clauses)
