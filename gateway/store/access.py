"""The access-filter seam: what a request may see, compiled into every query.

The store never returns a row that the filter excludes: the filter is a SQL predicate on
the ``resources`` table added to reads, searches (including chained, ``_has``,
``_include`` and ``_revinclude`` sub-queries) and history, never a filter on results.
``consent`` decides (the client's Consents reduced to :class:`consent.policy.Grant` rule
trees for this request); this module turns that decision into SQL, and evaluates the very
same rules in Python for a resource about to be written (:meth:`AccessFilter.admits`).
``--open`` development mode uses :meth:`AccessFilter.unrestricted`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace

from sqlalchemy import ColumnElement, FromClause, and_, false, not_, or_, select, true, tuple_

from consent.policy import Grant, Rule, Selector, Target, decide
from gateway.store.schema import patient_compartment, resources, search_token

__all__ = ["AccessFilter", "Condition"]

#: A granular-scope condition: a predicate on (an alias of) the resources table.
Condition = Callable[[FromClause], ColumnElement[bool]]


@dataclass(frozen=True, slots=True)
class AccessFilter:
    """Allowed types x (own patients + the client's grants), minus excluded resources.

    ``resource_types``: None means every type (the scopes' upper bound otherwise).
    ``patients``: None means every patient; otherwise a resource of a type in
    ``compartment_types`` is visible when it lies in the compartment of one of these
    patients (the client's own dossier) or a ``grant`` permits it. Resources of other types
    (practitioners, organisations, terminology) are not in any dossier.
    ``excluded``: (type, id) pairs never visible. ``conditions``: per type, search
    predicates of granular scopes (``Observation.rs?category=...``); a row of that type
    must satisfy one of them.
    """

    resource_types: frozenset[str] | None = None
    patients: frozenset[str] | None = None
    compartment_types: frozenset[str] = field(default_factory=frozenset)
    excluded: frozenset[tuple[str, str]] = field(default_factory=frozenset)
    grants: tuple[Grant, ...] = ()
    conditions: tuple[tuple[str, tuple[Condition, ...]], ...] = ()

    @classmethod
    def unrestricted(cls) -> AccessFilter:
        return cls()

    @classmethod
    def nothing(cls) -> AccessFilter:
        return cls(resource_types=frozenset())

    @property
    def is_unrestricted(self) -> bool:
        return (
            self.resource_types is None
            and self.patients is None
            and not self.excluded
            and not self.conditions
        )

    def predicate(self, table: FromClause = resources) -> ColumnElement[bool]:
        """A SQL predicate on ``resources`` (or an alias of it) that admits what is allowed."""
        columns = table.c
        clauses: list[ColumnElement[bool]] = []
        if self.resource_types is not None:
            if not self.resource_types:
                return false()
            clauses.append(columns.res_type.in_(sorted(self.resource_types)))
        for resource_type, conditions in self.conditions:
            clauses.append(or_(columns.res_type != resource_type, *(c(table) for c in conditions)))
        if self.patients is not None:
            region: list[ColumnElement[bool]] = [
                not_(columns.res_type.in_(sorted(self.compartment_types)))
            ]
            if self.patients:
                region.append(_in_compartment(table, sorted(self.patients)))
            if self.grants:
                region.append(_granted(table, self.grants))
            clauses.append(or_(*region))
        if self.excluded:
            clauses.append(
                not_(tuple_(columns.res_type, columns.res_id).in_(sorted(self.excluded)))
            )
        return and_(true(), *clauses)

    def admits(self, target: Target) -> bool:
        """The decision in Python, for a resource (version) about to be written.

        Every client whose dossier would hold it must be the caller's own or permit it:
        a client cannot write into a household's plan what another member has not allowed,
        nor add a stranger to their household. (Reading asks less of the client's own: a
        household plan is theirs to read. For everyone else both ask the same.)

        A type held back by granular-scope conditions is not admitted: those conditions are
        search expressions, decided in SQL only, so writes under them are refused.
        """
        if self.resource_types is not None and target.resource_type not in self.resource_types:
            return False
        if (target.resource_type, target.resource_id) in self.excluded:
            return False
        if any(t == target.resource_type for t, _ in self.conditions):
            return False
        if self.patients is None or target.resource_type not in self.compartment_types:
            return True
        if not target.patients:
            return False
        others = target.patients - self.patients
        if not others:
            return True
        return decide(self.grants, replace(target, patients=others)).allowed


def _in_compartment(table: FromClause, patients: list[str]) -> ColumnElement[bool]:
    return table.c.pk.in_(
        select(patient_compartment.c.res_pk).where(patient_compartment.c.patient_id.in_(patients))
    )


def _granted(table: FromClause, grants: tuple[Grant, ...]) -> ColumnElement[bool]:
    """Some client whose dossier holds the row permits it, and none of them does not.

    One branch per distinct rule tree, over all the patients whose Consents give it: fifty
    clients granting their GP practice the same thing are one compartment test on fifty
    patients, not fifty branches: (in p1 and R) or (in p2 and R) = in (p1, p2) and R. The
    second half asks each client of the row (one, but for a household's resources).
    """
    patients_of: dict[Rule, set[str]] = {}
    for grant in grants:
        patients_of.setdefault(grant.rule, set()).add(grant.patient)
    rules = [(rule, sorted(patients)) for rule, patients in patients_of.items()]
    some = or_(
        *(
            and_(_in_compartment(table, patients), _permitted(table, rule))
            for rule, patients in rules
        )
    )
    member = patient_compartment.alias()
    permits = or_(
        *(
            and_(member.c.patient_id.in_(patients), _permitted(table, rule))
            for rule, patients in rules
        )
    )
    objector = (
        select(member.c.res_pk)
        .where(member.c.res_pk == table.c.pk, not_(permits))
        .correlate(table)
        .exists()
    )
    return and_(some, not_(objector))


def _permitted(table: FromClause, rule: Rule) -> ColumnElement[bool]:
    """Where ``rule`` decides permit (a matching deny exception wins over it)."""
    denied = [_denied(table, e) for e in rule.exceptions]
    permitted = [_permitted(table, e) for e in rule.exceptions]
    return and_(
        _matches(table, rule.selector),
        not_(or_(false(), *denied)),
        or_(true() if rule.permit else false(), *permitted),
    )


def _denied(table: FromClause, rule: Rule) -> ColumnElement[bool]:
    """Where ``rule`` decides deny."""
    denied = [_denied(table, e) for e in rule.exceptions]
    permitted = [_permitted(table, e) for e in rule.exceptions]
    fallback = false() if rule.permit else not_(or_(false(), *permitted))
    return and_(_matches(table, rule.selector), or_(fallback, *denied))


def _matches(table: FromClause, selector: Selector) -> ColumnElement[bool]:
    columns = table.c
    clauses: list[ColumnElement[bool]] = []
    if selector.types is not None:
        clauses.append(columns.res_type.in_(sorted(selector.types)))
    if selector.ids is not None:
        clauses.append(tuple_(columns.res_type, columns.res_id).in_(sorted(selector.ids)))
    if selector.labels is not None:
        labelled = select(search_token.c.res_pk).where(
            search_token.c.param == "_security",
            or_(
                *(
                    and_(search_token.c.system == (system or None), search_token.c.code == code)
                    if system
                    else search_token.c.code == code
                    for system, code in sorted(selector.labels)
                )
            ),
        )
        clauses.append(columns.pk.in_(labelled))
    return and_(true(), *clauses)
