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

import itertools
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from sqlalchemy import (
    Boolean,
    ColumnElement,
    FromClause,
    Select,
    and_,
    case,
    false,
    func,
    literal_column,
    not_,
    or_,
    select,
    true,
    tuple_,
)
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.visitors import InternalTraversal

from consent.decision import Reach, admits
from consent.policy import Grant, Rule, Selector, Target
from gateway.store.schema import patient_compartment, resources, search_token

__all__ = ["ACCESS_TYPES", "AccessFilter", "Condition"]

#: The types whose changes change who may see what, apart from dossier membership (which
#: every query reads live): the Consents, and the CareTeams, PractitionerRoles and
#: Organizations through which a caller is one of a Consent's actors. A write of one of
#: them raises the store's access epoch (``Store.access_epoch``).
ACCESS_TYPES = frozenset({"Consent", "CareTeam", "PractitionerRole", "Organization"})

#: A granular-scope condition: a predicate on (an alias of) the resources table.
Condition = Callable[[FromClause], ColumnElement[bool]]

#: The filters of decisions, one object per distinct filter in a process (ADR 0033): a
#: filter is a key of the compiled statements' caches, which find one by identity at once
#: but compare an equal copy rule by rule at every lookup. When two requests made the same
#: filter at once (the first requests of a caller), the copy kept for the caller and the
#: one the caches were keyed by differed, and every later read walked both.
_ONE_OF_EACH: dict[AccessFilter, AccessFilter] = {}
_ONE_OF_EACH_LOCK = threading.Lock()
_ONE_OF_EACH_SIZE = 1024


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
    #: the hash, worked out once: a filter is a key of the compiled statements' caches at
    #: every read, and hashing its grants (nested rule trees) each time cost 3 % of a
    #: consent-on read
    _hash: int = field(default=0, init=False, compare=False, repr=False)

    def __hash__(self) -> int:
        if not self._hash:
            fields = (
                self.resource_types,
                self.patients,
                self.compartment_types,
                self.excluded,
                self.grants,
                self.conditions,
            )
            object.__setattr__(self, "_hash", hash(fields) or 1)
        return self._hash

    @classmethod
    def of(
        cls, scope: Reach, conditions: tuple[tuple[str, tuple[Condition, ...]], ...]
    ) -> AccessFilter:
        """The filter of a decision (:func:`consent.decision.reach`), its granular scopes'
        conditions compiled into predicates: the process's one object of that filter."""
        made = cls(
            resource_types=scope.types,
            patients=scope.patients,
            compartment_types=scope.compartment_types,
            grants=scope.grants,
            conditions=conditions,
        )
        with _ONE_OF_EACH_LOCK:
            found = _ONE_OF_EACH.get(made)
            if found is None:
                if len(_ONE_OF_EACH) >= _ONE_OF_EACH_SIZE:
                    _ONE_OF_EACH.clear()
                _ONE_OF_EACH[made] = found = made
        return found

    @classmethod
    def unrestricted(cls) -> AccessFilter:
        return cls()

    @classmethod
    def nothing(cls) -> AccessFilter:
        """The filter that admits nothing (every authorized request starts with it): one
        object for the process, as the filters of decisions are."""
        return _NOTHING

    @property
    def is_unrestricted(self) -> bool:
        return (
            self.resource_types is None
            and self.patients is None
            and not self.excluded
            and not self.conditions
        )

    def predicate(
        self, table: FromClause = resources, of_type: str | None = None
    ) -> ColumnElement[bool]:
        """A SQL predicate on ``resources`` (or an alias of it) that admits what is allowed.

        ``of_type``: the type of every row the predicate will see (a read of one resource
        by type and id); what the filter says of types is then decided here and left out
        of the SQL. Each list of types in a statement is a table SQLite builds anew at
        every execution: a read of one resource under twenty grants spent most of its
        database time building them (ADR 0033)."""
        if table is resources and not self.conditions:  # conditions are new per request
            return _on_resources(self) if of_type is None else _on_type(self, of_type)
        return _predicate(self, table, of_type)

    def admits(self, target: Target) -> bool:
        """The decision in Python, for a resource (version) about to be written: the same
        :func:`consent.decision.admits` the SQL of this filter answers for reads."""
        if (target.resource_type, target.resource_id) in self.excluded:
            return False
        scope = Reach(
            self.resource_types,
            self.patients,
            self.compartment_types,
            self.grants,
            tuple((t, ()) for t, _ in self.conditions),
        )
        return admits(scope, target).allowed


_NOTHING = AccessFilter(resource_types=frozenset())


def _quoted(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _in(column: ColumnElement[Any], values: list[str]) -> ColumnElement[bool]:
    """``column IN (...)`` with the values written into the statement.

    A filter is built once and kept (see :func:`_on_resources`); as bound parameters its
    lists of types and granted patients would be expanded again at every execution, which
    costs more than the query. The values are resource type names and resource ids, which
    the store has validated (letters, digits, ``-`` and ``.``), quoted all the same."""
    return column.in_([literal_column(_quoted(v)) for v in values])


class _AmongIds(ColumnElement[bool]):
    """``column IN ids``, for a list of resource ids (granted patients) written into the
    statement: on SQLite a search in one string of them, elsewhere a list.

    SQLite builds a list in a statement into a table of its own at every execution, and
    probes an index once per value when it can: a read of one resource under the grants
    of a thousand clients built two tables of a thousand ids and spent 0.8 ms doing so
    (ADR 0033). A search in the string ``' id1 id2 ... '`` for ``' ' || column || ' '``
    builds nothing and leaves the row's own compartment entries to be found by their key.
    A resource id has no space in it (letters, digits, ``-`` and ``.``); a list holding
    one all the same stays a list.

    Such a search reads the string from its start, so its cost grows with the ids: over
    the 2,000 clients of a GP practice, 2-16 µs for every compartment row a statement
    tests. Past :data:`_LEAF_IDS` ids the sorted ids are cut into runs of that many, each
    searched in a string of its own, and comparisons with the first id of each run find
    the one run that may hold the row's id, halving the runs at each step (ADR 0052): the
    cost then grows with the logarithm of the ids."""

    __visit_name__ = "eigendossier_among_ids"
    inherit_cache = False  # the key is this class's own: see _cache_key_traversal
    _traverse_internals = [  # noqa: RUF012 (SQLAlchemy's declaration, read per class)
        ("column", InternalTraversal.dp_clauseelement),
        ("ids", InternalTraversal.dp_plain_obj),
    ]
    _cache_key_traversal = _traverse_internals
    _is_implicitly_boolean = True

    def __init__(self, column: ColumnElement[Any], ids: list[str]) -> None:
        self.column = column
        self.ids = tuple(ids)
        self.type = Boolean()

    @property
    def _from_objects(self) -> list[FromClause]:
        return self.column._from_objects

    def as_list(self) -> ColumnElement[bool]:
        return _in(self.column, list(self.ids))


@compiles(_AmongIds)
def _compile_among_ids(element: _AmongIds, compiler: SQLCompiler, **kw: Any) -> str:
    return str(compiler.process(element.as_list(), **kw))


#: the most ids one string of :class:`_AmongIds` holds on SQLite: more are cut into runs
#: of this many, and comparisons find the run to search (about 400 bytes of ids, searched
#: in under a microsecond)
_LEAF_IDS = 64


@compiles(_AmongIds, "sqlite")
def _compile_among_ids_sqlite(element: _AmongIds, compiler: SQLCompiler, **kw: Any) -> str:
    if any(" " in i for i in element.ids):
        return str(compiler.process(element.as_list(), **kw))
    column = compiler.process(element.column, **kw)
    return _among_ids_sql(column, element.ids)


def _among_ids_sql(column: str, ids: tuple[str, ...] | list[str]) -> str:
    """SQLite's test that the text ``column`` is one of ``ids`` (none with a space), written
    into the statement: a search in one string of them, or, past :data:`_LEAF_IDS`, in the
    one run of the sorted ids that may hold it (see :class:`_AmongIds`).

    SQLite compares text by its bytes (the column's collation is BINARY); ids are ASCII,
    whose bytes sort as Python sorts the strings. An id before the first of a run's
    successor and not before its own first can only be in that run."""
    ordered = sorted(set(ids))
    runs = [ordered[n : n + _LEAF_IDS] for n in range(0, len(ordered), _LEAF_IDS)] or [[]]

    def search(first: int, last: int) -> str:  # runs first..last-1
        if last - first == 1:
            listed = _quoted(" " + " ".join(runs[first]) + " ")
            return f"(instr({listed}, ' ' || {column} || ' ') > 0)"
        middle = (first + last) // 2
        bound = _quoted(runs[middle][0])
        return (
            f"(CASE WHEN {column} < {bound} THEN {search(first, middle)}"
            f" ELSE {search(middle, last)} END)"
        )

    return search(0, len(runs))


@lru_cache(maxsize=512)
def _on_resources(access: AccessFilter) -> ColumnElement[bool]:
    """The predicate on the table itself, built once per distinct filter: the same grants
    come back request after request (they are cached per access epoch), and building the
    expression with its lists of granted patients costs more than running it. Kept under
    a key of its own (:class:`_Kept`), so that statements holding it are not walked through
    it again for their cache key."""
    return _Kept(_predicate(access, resources))


@lru_cache(maxsize=1024)
def _on_type(access: AccessFilter, of_type: str) -> ColumnElement[bool]:
    """:func:`_on_resources` for rows of one type (see :meth:`AccessFilter.predicate`)."""
    return _Kept(_predicate(access, resources, of_type))


def _types_in(
    column: ColumnElement[Any], types: frozenset[str] | set[str], of_type: str | None
) -> ColumnElement[bool]:
    """``column IN types``, or, when the row's type is known, the answer itself."""
    if of_type is not None:
        return true() if of_type in types else false()
    return _in(column, sorted(types))


_kept_keys = itertools.count()


class _Kept(ColumnElement[bool]):
    """A predicate built once and used in many statements, known to SQLAlchemy's cache of
    compiled statements by a key of its own instead of by its whole structure.

    SQLAlchemy finds a statement's compiled SQL by a key it works out from the statement's
    every element at each execution; for a search under consent, most of that walk was the
    access filter's expression (its compartment tests, its grants' rule trees: ADR 0022).
    This element is the filter's expression under a key taken once from a counter, never
    given to another: the same key is always the same expression, so SQL compiled for one
    statement holding it is right for the next. Its values are written into the SQL or
    bound once (they never change), so the key need not collect them. Compiled as the
    expression itself, in place and in parentheses (correlation to the enclosing query
    works as before)."""

    __visit_name__ = "eigendossier_kept"
    inherit_cache = False  # the key is this class's own: see _cache_key_traversal
    _traverse_internals = [  # noqa: RUF012 (SQLAlchemy's declaration, read per class)
        ("inner", InternalTraversal.dp_clauseelement),
        ("key", InternalTraversal.dp_string),
    ]
    _cache_key_traversal = [("key", InternalTraversal.dp_string)]  # noqa: RUF012

    _is_implicitly_boolean = True  # a condition itself, never compared with true

    def __init__(self, inner: ColumnElement[bool]) -> None:
        self.inner = inner
        self.key = f"access-filter-{next(_kept_keys)}"
        self.type = inner.type

    @property
    def _from_objects(self) -> list[FromClause]:
        return self.inner._from_objects


@compiles(_Kept)
def _compile_kept(element: _Kept, compiler: SQLCompiler, **kw: Any) -> str:
    return f"({compiler.process(element.inner, **kw)})"  # one term of what holds it


def _predicate(
    access: AccessFilter, table: FromClause, of_type: str | None = None
) -> ColumnElement[bool]:
    columns = table.c
    clauses: list[ColumnElement[bool]] = []
    if access.resource_types is not None:
        if not access.resource_types:
            return false()
        clauses.append(_types_in(columns.res_type, access.resource_types, of_type))
    for resource_type, conditions in access.conditions:
        other = (
            columns.res_type != resource_type
            if of_type is None
            else (true() if of_type != resource_type else false())
        )
        clauses.append(or_(other, *(c(table) for c in conditions)))
    if access.patients is not None:
        region: list[ColumnElement[bool]] = [
            not_(_types_in(columns.res_type, access.compartment_types, of_type))
        ]
        if access.patients:
            region.append(_in_compartment(table, sorted(access.patients)))
        if access.grants:
            region.append(_granted(table, access.grants, of_type))
        clauses.append(or_(*region))
    if access.excluded:
        clauses.append(not_(tuple_(columns.res_type, columns.res_id).in_(sorted(access.excluded))))
    return and_(true(), *clauses)


def _in_compartment(table: FromClause, patients: list[str]) -> ColumnElement[bool]:
    """The row lies in the dossier of one of ``patients``.

    A correlated probe of the row's own compartment entries, not ``pk IN (the dossiers'
    entries)``: SQLite would build the whole list of fifty granted dossiers for every read.
    PostgreSQL may run it as a join from the dossiers' side (a search of many rows): there
    it names the row's type too, so that the join reads the dossiers' entries of that type
    and not their access log (ADR 0038)."""
    return _PerDialect(
        sqlite=_entry_of(table, patients, typed=False).exists(),
        other=_entry_of(table, patients, typed=True).exists(),
    )


def _entry_of(table: FromClause, patients: list[str], *, typed: bool) -> Select[Any]:
    entry = patient_compartment.alias()
    clauses = [entry.c.res_pk == table.c.pk, _AmongIds(entry.c.patient_id, patients)]
    if typed:
        clauses.append(entry.c.res_type == table.c.res_type)
    return select(entry.c.res_pk).where(*clauses).correlate(table)


class _PerDialect(ColumnElement[bool]):
    """One predicate on SQLite and another on PostgreSQL, for the same decision.

    SQLite tests a correlated subquery row by row, through the compartment's index by
    resource; PostgreSQL plans it, and for a search of many rows joins from the side of the
    dossiers instead, through the index by patient and type (ADR 0037, ADR 0038)."""

    __visit_name__ = "eigendossier_per_dialect"
    inherit_cache = False  # the key is this class's own: see _cache_key_traversal
    _traverse_internals = [  # noqa: RUF012 (SQLAlchemy's declaration, read per class)
        ("sqlite", InternalTraversal.dp_clauseelement),
        ("other", InternalTraversal.dp_clauseelement),
    ]
    _cache_key_traversal = _traverse_internals
    _is_implicitly_boolean = True

    def __init__(self, *, sqlite: ColumnElement[bool], other: ColumnElement[bool]) -> None:
        self.sqlite = sqlite
        self.other = other
        self.type = Boolean()

    @property
    def _from_objects(self) -> list[FromClause]:
        return [*self.sqlite._from_objects, *self.other._from_objects]


@compiles(_PerDialect)
def _compile_per_dialect(element: _PerDialect, compiler: SQLCompiler, **kw: Any) -> str:
    return f"({compiler.process(element.other, **kw)})"


@compiles(_PerDialect, "sqlite")
def _compile_per_dialect_sqlite(element: _PerDialect, compiler: SQLCompiler, **kw: Any) -> str:
    return f"({compiler.process(element.sqlite, **kw)})"


def _granted(
    table: FromClause, grants: tuple[Grant, ...], of_type: str | None
) -> ColumnElement[bool]:
    """Some client whose dossier holds the row permits it, and none of them does not.

    One branch per distinct rule tree, over all the patients whose Consents give it: fifty
    clients granting their GP practice the same thing are one compartment test on fifty
    patients, not fifty branches: (in p1 and R) or (in p2 and R) = in (p1, p2) and R.

    On SQLite one probe of the row's compartment entries answers both halves (ADR 0037):
    each entry (one, but for a household's resources) scores 1 when one of its patients'
    rule trees permits the row and 0 when none does; the row is granted when the lowest
    score is 1, which needs at least one entry and no entry of a client who does not permit
    it (the lowest score of no entries is NULL: not granted). On PostgreSQL the two halves
    stay apart, ``EXISTS`` and ``NOT EXISTS``, so that its planner may join from the
    granted dossiers' entries of the row's type when a search spans many rows (ADR 0038).
    """
    patients_of: dict[Rule, set[str]] = {}
    for grant in grants:
        patients_of.setdefault(grant.rule, set()).add(grant.patient)
    rules = [(rule, sorted(patients)) for rule, patients in patients_of.items()]
    member = patient_compartment.alias()
    permits = or_(
        *(
            and_(_AmongIds(member.c.patient_id, patients), _permitted(table, rule, of_type))
            for rule, patients in rules
        )
    )
    lowest = (
        select(func.min(case((permits, 1), else_=0)))
        .where(member.c.res_pk == table.c.pk)
        .correlate(table)
        .scalar_subquery()
    )
    some = or_(
        *(
            and_(
                _entry_of(table, patients, typed=True).exists(),
                _permitted(table, rule, of_type),
            )
            for rule, patients in rules
        )
    )
    objector = (
        select(member.c.res_pk)
        .where(member.c.res_pk == table.c.pk, not_(permits))
        .correlate(table)
        .exists()
    )
    return _PerDialect(sqlite=func.coalesce(lowest, 0) == 1, other=and_(some, not_(objector)))


def _permitted(table: FromClause, rule: Rule, of_type: str | None) -> ColumnElement[bool]:
    """Where ``rule`` decides permit (a matching deny exception wins over it)."""
    denied = [_denied(table, e, of_type) for e in rule.exceptions]
    permitted = [_permitted(table, e, of_type) for e in rule.exceptions]
    return and_(
        _matches(table, rule.selector, of_type),
        not_(or_(false(), *denied)),
        or_(true() if rule.permit else false(), *permitted),
    )


def _denied(table: FromClause, rule: Rule, of_type: str | None) -> ColumnElement[bool]:
    """Where ``rule`` decides deny."""
    denied = [_denied(table, e, of_type) for e in rule.exceptions]
    permitted = [_permitted(table, e, of_type) for e in rule.exceptions]
    fallback = false() if rule.permit else not_(or_(false(), *permitted))
    return and_(_matches(table, rule.selector, of_type), or_(fallback, *denied))


def _matches(table: FromClause, selector: Selector, of_type: str | None) -> ColumnElement[bool]:
    columns = table.c
    clauses: list[ColumnElement[bool]] = []
    if selector.types is not None:
        clauses.append(_types_in(columns.res_type, selector.types, of_type))
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
