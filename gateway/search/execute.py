"""Run a parsed search as one SQL query (plus a count when its matches do not fit in a few
pages, plus includes), paged; or, on PostgreSQL, where every statement is a round trip,
its page, total and the access epoch as one statement (:func:`one_statement_page`).

The access filter is part of every query here: of the count (so totals reveal nothing),
of the page, of ``_include`` targets and of ``_revinclude`` sources.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from sqlalchemy import (
    BindParameter,
    ColumnElement,
    Connection,
    Integer,
    Select,
    and_,
    bindparam,
    func,
    literal,
    null,
    or_,
    select,
    true,
    union_all,
)

from gateway.search.compile import Compiler, Form, Keys, with_kinds
from gateway.search.extract import kinded
from gateway.search.params import Filter, Include, SearchRequest
from gateway.store.access import AccessFilter
from gateway.store.schema import INDEX_TABLES, resources, search_kind, search_reference
from gateway.store.session_base import (
    EPOCH,
    OWNERS,
    driver_params,
    driver_rows,
    lookup_rows,
    owners_of,
)
from mappings.core.errors import Invalid

__all__ = ["Match", "Page", "one_statement_page", "run_search", "stream_search"]

MAX_INCLUDED = 1000
#: at most this many keys read beyond a page (and the next key), so that a search whose
#: matches fit in a few pages has its total without a count of its own (ADR 0022)
_PEEK = 300
MAX_ITERATIONS = 4
_SORT_COLUMN = {
    "token": "code",
    "string": "value_norm",
    "reference": "target_id",
    "quantity": "value",
    "number": "value",
    "uri": "value",
}


class Match(NamedTuple):
    """A matched resource's row: a tuple, made once per row of every page (a frozen
    dataclass's constructor cost a twentieth of an open search, ADR 0024)."""

    pk: int
    res_type: str
    res_id: str
    content: bytes
    #: its compartment's patients, when the page was read for a caller whose access log
    #: names them (``run_search(owned=True)``, ADR 0035); None: not asked
    patients: frozenset[str] | None = None


@dataclass(slots=True)
class Page:
    total: int | None
    matches: list[Match] = field(default_factory=list)
    included: list[Match] = field(default_factory=list)
    has_next: bool = False


def run_search(
    connection: Connection,
    compiler: Compiler,
    request: SearchRequest,
    access: AccessFilter,
    *,
    owned: bool = False,
) -> Page:
    """One page of matches (and the total, and includes) of ``request`` for ``access``;
    ``owned``: the page's matches with their compartments' patients, read with their bytes
    (a caller's access-log entry names them).

    The first filter that reads an index table drives the query (``pk IN (...)``, an index
    range); every other filter is an EXISTS probe per candidate. The page query selects
    keys only, up to three pages' more when a total is wanted (at most ``_PEEK``): when
    those are all there are, they are the total, and no count runs. The stored bytes of the
    page are fetched afterwards by key.
    """
    wants_total = request.total != "none" or request.summary == "count"
    if request.summary == "count" or request.count == 0:
        return Page(_Plan(compiler, request, access).count(connection) if wants_total else None)
    limit = request.count + 1
    if wants_total:  # a few pages' keys more: a total of a few pages needs no count then
        limit += min(3 * request.count, _PEEK)
    pks = _shaped_keys(connection, compiler, request, access, limit)
    if pks is None:  # a search without a shape: its statement built for it alone
        keys = _keys(_Plan(compiler, request, access), compiler, request, limit, request.offset)
        pks = list(connection.execute(keys).scalars().all())
    has_next = len(pks) > request.count
    total: int | None = None
    if wants_total:
        # keys read short of their limit are every match from the offset on (an offset
        # past the last match reads none, and says nothing of how many there are)
        complete = len(pks) < limit and (request.offset == 0 or bool(pks))
        total = (
            request.offset + len(pks)
            if complete
            else _Plan(compiler, request, access).count(connection)
        )
    page = Page(total, _by_keys(connection, pks[: request.count], owned), has_next=has_next)
    if request.includes or request.revincludes:
        page.included = _included(connection, compiler, request, page.matches, access)
    return page


def _keys(
    plan: _Plan,
    compiler: Compiler,
    request: SearchRequest,
    limit: int | BindParameter[int],
    offset: int | BindParameter[int],
) -> Select[Any]:
    """The statement of a page's keys: sorted, then by key. Unsorted, with one filter and
    no access filter, the keys come from the filter's index alone, in its order: its rows
    are those of live resources of the type (a delete removes them), so a probe of
    ``resources`` for each would add nothing."""
    if plan.index_only is not None and not request.sort:
        key = plan.index_only.selected_columns[0]
        return plan.index_only.distinct().order_by(key).limit(limit).offset(offset)
    return (
        select(resources.c.pk)
        .where(*plan.where)
        .order_by(*_order(compiler, request), resources.c.pk)
        .limit(limit)
        .offset(offset)
    )


@dataclass(frozen=True, slots=True)
class _Shape:
    """A search's page-of-keys statement compiled once for every search of its shape: its
    text, its parameters' order for a positional driver, and what is bound in it that
    the shape fixes (parameter codes, the access filter's values)."""

    sql: str
    order: tuple[str, ...]
    fixed: dict[str, Any]


#: compiled shapes kept per process; when full, it starts again (shapes are few: a
#: client's searches repeat with other values)
_SHAPES_KEPT = 2048


def _shaped_keys(
    connection: Connection,
    compiler: Compiler,
    request: SearchRequest,
    access: AccessFilter,
    limit: int,
) -> list[int] | None:
    """The page's keys through the compiled statement of the search's shape, or None for
    a search that has none: one without a type, with a filter whose values have no forms
    (:meth:`Compiler.forms_of`), or under granular scopes' conditions (new per request).

    A shape is the type, each filter's name, modifier and the forms of its values
    (:meth:`Compiler.forms_of`: which clause each value asks), the sort, the access
    filter and the database. Building and compiling a statement per search was a third of an
    open search's interpreter time (ADR 0024); with the shape's statement kept, a search
    works out only its values.
    """
    shaped = _shape_of(compiler, request, access, connection.dialect)
    if shaped is None:
        return None
    key, values = shaped
    kept = _kept_shape(
        compiler,
        ("keys", *key),
        lambda: _compile_shape(compiler, request, access, connection.dialect, len(values), _keys),
    )
    bound = {**kept.fixed, **_slots(values), "page_limit": limit, "page_offset": request.offset}
    return [row[0] for row in driver_rows(connection, kept.sql, driver_params(bound, kept.order))]


def _shape_of(
    compiler: Compiler, request: SearchRequest, access: AccessFilter, dialect: Any
) -> tuple[tuple[Any, ...], list[Any]] | None:
    """The key of ``request``'s shape on ``dialect`` and its values in the order the
    statement binds them; None for a search that has no shape (see :func:`_shaped_keys`)."""
    if request.resource_type is None or access.conditions:
        return None
    forms: list[Form] = []
    shape: list[Any] = [dialect.name, request.resource_type, tuple(request.sort), access]
    for item in _Plan.in_order(compiler, request):  # as the statement binds them
        own = compiler.forms_of(request.resource_type, item)
        if own is None:
            return None
        forms.extend(own)
        shape.append((item.name, item.modifier, tuple(tag for tag, _ in own)))
    return tuple(shape), [v for _, values in forms for v in values]


def _kept_shape(compiler: Compiler, key: tuple[Any, ...], compile: Callable[[], _Shape]) -> _Shape:
    """The statement compiled for ``key``, compiled now if it is not kept yet."""
    kept = compiler.shapes.get(key)
    if kept is None:
        kept = compile()
        if len(compiler.shapes) >= _SHAPES_KEPT:
            compiler.shapes.clear()
        compiler.shapes[key] = kept
    return kept


def _slots(values: list[Any]) -> dict[str, Any]:
    return {f"s{n}": value for n, value in enumerate(values)}


def _compile_shape(
    compiler: Compiler,
    request: SearchRequest,
    access: AccessFilter,
    dialect: Any,
    values: int,
    build: Callable[..., Select[Any]],
) -> _Shape:
    """The statement ``build`` makes of ``request``'s plan, its page and offset, compiled
    with ``request``'s values as slots."""
    slots: Iterator[BindParameter[Any]] = iter([bindparam(f"s{n}", None) for n in range(values)])
    plan = _Plan(compiler, request, access, slots)
    limit = bindparam("page_limit", 0, type_=Integer)
    statement = build(plan, compiler, request, limit, bindparam("page_offset", 0, type_=Integer))
    compiled = statement.compile(dialect=dialect, compile_kwargs={"render_postcompile": True})
    fixed = compiled.construct_params()
    return _Shape(compiled.string, tuple(compiled.positiontup or ()), dict(fixed))


def one_statement_page(
    rows: Callable[[str, Any], list[Any]],
    dialect: Any,
    compiler: Compiler,
    request: SearchRequest,
    access: AccessFilter,
    *,
    owned: bool = False,
) -> tuple[Page, int | None] | None:
    """A page of ``request`` read in one statement (PostgreSQL, ADR 0044), with the access
    epoch as that statement saw it; None for a search that needs more than one (includes,
    a count alone, no shape: :func:`run_search` answers those).

    The statement holds the page's keys and one more (is there a next page?), the bytes
    (and, ``owned``, the patients) of the page's resources, the total when one is wanted,
    and the epoch: one snapshot without a transaction, one round trip, where
    :func:`run_search` spends a statement each on the keys, the rows and, past a few
    pages, the count. ``rows`` runs it: the session's driver, or the rows run ahead on the
    event loop."""
    if request.includes or request.revincludes:
        return None
    if request.summary == "count" or request.count == 0:
        return None
    shaped = _shape_of(compiler, request, access, dialect)
    if shaped is None:
        return None
    key, values = shaped
    total = request.total != "none"
    kept = _kept_shape(
        compiler,
        ("page", owned, total, *key),
        lambda: _compile_shape(
            compiler,
            request,
            access,
            dialect,
            len(values),
            functools.partial(_one_statement, owned=owned, total=total),
        ),
    )
    bound = {
        **kept.fixed,
        **_slots(values),
        "page_limit": request.count + 1,
        "page_offset": request.offset,
        "page_upto": request.offset + request.count,
    }
    found = rows(kept.sql, driver_params(bound, kept.order))
    epoch, counted = found[0][0], found[0][1]
    page = Page(counted if total else None)
    for row in found:
        pk = row[2]
        if pk is None:  # the one row of an empty page: the epoch and total alone
            continue
        if row[3] is None:  # the key past the page
            page.has_next = True
        elif owned:
            page.matches.append(Match(pk, row[3], row[4], row[5], owners_of(row[6])))
        else:
            page.matches.append(Match(pk, row[3], row[4], row[5]))
    return page, epoch


def _one_statement(
    plan: _Plan,
    compiler: Compiler,
    request: SearchRequest,
    limit: BindParameter[int],
    offset: BindParameter[int],
    *,
    owned: bool,
    total: bool,
) -> Select[Any]:
    """:func:`one_statement_page`'s statement: the matches' keys, with what they are sorted
    by (a CTE, read once); their page, numbered in the search's order (the key last);
    joined to the rows of the page's resources; beside them the epoch and the count; one
    row with no key when the page is empty."""
    sorts = _sorts(compiler, request)
    if plan.index_only is not None and not sorts:
        matches = plan.index_only.distinct().cte("matches")
    else:
        sorted_by = [column.label(f"sort{n}") for n, (column, _) in enumerate(sorts)]
        matches = select(resources.c.pk, *sorted_by).where(*plan.where).cte("matches")
    key = matches.c[0]
    order = [_direction(matches.c[f"sort{n}"], down) for n, (_, down) in enumerate(sorts)]
    order.append(key)  # the key breaks ties, as in run_search's order
    page = (
        select(key.label("pk"), func.row_number().over(order_by=order).label("n"))
        .order_by(*order)
        .limit(limit)
        .offset(offset)
        .subquery("page")
    )
    counted = select(func.count()).select_from(matches).scalar_subquery() if total else null()
    anchor = select(literal(1).label("one")).subquery("anchor")
    upto = bindparam("page_upto", 0, type_=Integer)
    joined = anchor.outerjoin(page, true()).outerjoin(
        resources, and_(resources.c.pk == page.c.pk, page.c.n <= upto)
    )
    columns: list[Any] = [
        EPOCH.scalar_subquery(),
        counted,
        page.c.pk,
        resources.c.res_type,
        resources.c.res_id,
        resources.c.content,
    ]
    if owned:
        columns.append(OWNERS)
    return select(*columns).select_from(joined).order_by(page.c.n)


def stream_search(
    connection: Connection,
    compiler: Compiler,
    request: SearchRequest,
    access: AccessFilter,
    chunk: int = 1000,
) -> Iterator[list[Match]]:
    """Every match of ``request`` for ``access``, in chunks of at most ``chunk``.

    For work over a whole period (declarations, exports), not for pages a person reads:
    no count, no includes, no sort. One query, read as it goes (a server-side cursor on
    PostgreSQL), so the database evaluates the filters once however long the stream is,
    and memory holds one chunk.
    """
    where = _Plan(compiler, request, access).where
    query = (
        select(resources.c.pk, resources.c.res_type, resources.c.res_id, resources.c.content)
        .where(*where)
        .order_by(resources.c.pk)
    )
    streaming = connection.execution_options(stream_results=True, yield_per=chunk)
    for rows in streaming.execute(query).partitions(chunk):
        yield [Match(*row) for row in rows]


def _count(connection: Connection, where: list[ColumnElement[bool]]) -> int:
    counted = connection.execute(select(func.count()).select_from(resources).where(*where))
    return int(counted.scalar_one())


class _Plan:
    """The WHERE clause of a search, and the cheaper count when one filter is all there is."""

    def __init__(
        self,
        compiler: Compiler,
        request: SearchRequest,
        access: AccessFilter,
        slots: Iterator[BindParameter[Any]] | None = None,
    ) -> None:
        driving = self.driving(compiler, request)
        self.where = compiler.base_query(
            None if driving is not None else request.resource_type,
            access,
            live=driving is None,
            of_type=request.resource_type,  # the driving index's rows are all of it
        )
        self.index_only: Select[Any] | None = None
        if driving is not None:
            rows = compiler.index_rows(request.resource_type, driving, access, slots)
            self.where.append(resources.c.pk.in_(rows))
            # (not a parameter stored per kind: its kinds' rows are under keys of no resource)
            if len(request.filters) == 1 and access.is_unrestricted and isinstance(rows, Select):
                self.index_only = rows
        for item in self.in_order(compiler, request):  # slots are taken in this order
            if item is not driving:
                self.where.append(
                    compiler.predicate(
                        request.resource_type,
                        item,
                        access,
                        correlated=compiler.binds_type(item) and request.resource_type is not None,
                        slots=slots,
                    )
                )

    @staticmethod
    def driving(compiler: Compiler, request: SearchRequest) -> Filter | None:
        """The filter whose index drives the query: the first that binds the type."""
        if request.resource_type is None:
            return None
        return next((f for f in request.filters if compiler.binds_type(f)), None)

    @classmethod
    def in_order(cls, compiler: Compiler, request: SearchRequest) -> list[Filter]:
        """The filters in the order the WHERE clause holds them: the driving one first."""
        driving = cls.driving(compiler, request)
        return [
            *([driving] if driving is not None else []),
            *(f for f in request.filters if f is not driving),
        ]

    def count(self, connection: Connection) -> int:
        if self.index_only is None:
            return _count(connection, self.where)
        distinct = self.index_only.distinct().subquery()  # a resource may match twice
        counted = connection.execute(select(func.count()).select_from(distinct))
        return int(counted.scalar_one())


def _by_keys(connection: Connection, pks: list[int], owned: bool = False) -> list[Match]:
    if not pks:
        return []
    found: dict[int, Match] = {}
    lookup = "by_keys_owned" if owned else "by_keys"
    for start in range(0, len(pks), 100):  # a page is at most 100 (a compiled form per size)
        rows = lookup_rows(connection, lookup, pks[start : start + 100])
        if not owned:
            for row in rows:
                found[row[0]] = Match(*row)
            continue
        for pk, res_type, res_id, content, patient in rows:  # a row per compartment entry
            seen = found.get(pk)
            if seen is None:
                owners = frozenset() if patient is None else frozenset((patient,))
                found[pk] = Match(pk, res_type, res_id, content, owners)
            elif patient is not None:
                found[pk] = seen._replace(patients=(seen.patients or frozenset()) | {patient})
    return [found[pk] for pk in pks if pk in found]


def _order(compiler: Compiler, request: SearchRequest) -> list[Any]:
    """The ORDER BY of ``request``'s sort (before the key, which breaks ties)."""
    return [_direction(column, descending) for column, descending in _sorts(compiler, request)]


def _direction(column: Any, descending: bool) -> Any:
    return column.desc().nulls_last() if descending else column.asc().nulls_last()


def _sorts(compiler: Compiler, request: SearchRequest) -> list[tuple[Any, bool]]:
    """What ``request`` sorts by, in turn: each a column (of a resource's row, or the least
    or greatest of its index rows of the parameter) and whether it is descending."""
    order: list[tuple[Any, bool]] = []
    for code, descending in request.sort:
        if code == "_id":
            column: Any = resources.c.res_id
        elif code == "_lastUpdated":
            column = resources.c.last_updated
        else:
            if request.resource_type is None:
                raise Invalid("_sort needs a resource type", "_sort")
            param = compiler.registry.get(request.resource_type, code)
            if param is None:
                raise Invalid(f"Cannot sort by unknown parameter '{code}'", "_sort")
            index = INDEX_TABLES[param.type]
            name = (
                ("high" if descending else "low")
                if param.type == "date"
                else _SORT_COLUMN[param.type]
            )
            aggregate = func.max if descending else func.min
            own: ColumnElement[bool] = index.c.res_pk == resources.c.pk
            if kinded(request.resource_type, code):  # its rows, or its kind's (ADR 0041)
                kind = (
                    select(search_kind.c.kind)
                    .where(search_kind.c.res_pk == resources.c.pk)
                    .correlate(resources)  # the outer query's, two levels up
                )
                own = or_(own, index.c.res_pk.in_(kind))
            column = (
                select(aggregate(index.c[name])).where(own, index.c.param == code).scalar_subquery()
            )
        order.append((column, descending))
    return order


def _fetch(
    connection: Connection,
    compiler: Compiler,
    access: AccessFilter,
    clause: ColumnElement[bool],
    limit: int,
) -> list[Match]:
    query = (
        select(resources.c.pk, resources.c.res_type, resources.c.res_id, resources.c.content)
        .where(*compiler.base_query(None, access), clause)
        .order_by(resources.c.pk)
        .limit(limit)
    )
    return [Match(*row) for row in connection.execute(query)]


def _included(
    connection: Connection,
    compiler: Compiler,
    request: SearchRequest,
    matches: list[Match],
    access: AccessFilter,
) -> list[Match]:
    seen = {(m.res_type, m.res_id) for m in matches}
    frontier, included = list(matches), list[Match]()
    for iteration in range(MAX_ITERATIONS):
        found: list[Match] = []
        for include in request.includes:
            if iteration == 0 or include.iterate:
                found += _forward(connection, compiler, include, frontier, access)
        for include in request.revincludes:
            if iteration == 0 or include.iterate:
                found += _reverse(connection, compiler, include, frontier, access)
        frontier = []
        for match in found:
            if (match.res_type, match.res_id) not in seen and len(included) < MAX_INCLUDED:
                seen.add((match.res_type, match.res_id))
                included.append(match)
                frontier.append(match)
        if not frontier:
            break
    return included


def _forward(
    connection: Connection,
    compiler: Compiler,
    include: Include,
    frontier: list[Match],
    access: AccessFilter,
) -> list[Match]:
    pks = [m.pk for m in frontier if m.res_type == include.source]
    if not pks:
        return []
    holders: ColumnElement[bool] = search_reference.c.res_pk.in_(pks)
    if kinded(include.source, include.param):  # the sources' rows, and their kinds' (ADR 0043)
        kinds = select(search_kind.c.kind).where(search_kind.c.res_pk.in_(pks))
        holders = or_(holders, search_reference.c.res_pk.in_(kinds))
    refs = select(search_reference.c.target_type, search_reference.c.target_id).where(
        holders,
        search_reference.c.param == include.param,
        search_reference.c.target_id.is_not(None),
    )
    if include.target:
        refs = refs.where(search_reference.c.target_type == include.target)
    by_type: dict[str, set[str]] = {}
    for target_type, target_id in connection.execute(refs):
        by_type.setdefault(target_type, set()).add(target_id)
    found: list[Match] = []
    for target_type, ids in by_type.items():
        clause = (resources.c.res_type == target_type) & resources.c.res_id.in_(sorted(ids))
        found += _fetch(connection, compiler, access, clause, MAX_INCLUDED)
    return found


def _reverse(
    connection: Connection,
    compiler: Compiler,
    include: Include,
    frontier: list[Match],
    access: AccessFilter,
) -> list[Match]:
    found: list[Match] = []
    for target_type in sorted({m.res_type for m in frontier}):
        if include.target and include.target != target_type:
            continue
        ids = sorted(m.res_id for m in frontier if m.res_type == target_type)
        naming = and_(
            search_reference.c.target_type == target_type, search_reference.c.target_id.in_(ids)
        )
        sources: Keys = select(search_reference.c.res_pk).where(
            search_reference.c.res_type == include.source,
            search_reference.c.param == include.param,
            naming,
        )
        members = with_kinds(search_reference, include.param, include.source, naming)
        if members is not None:  # the sources whose kind names them (ADR 0043)
            sources = union_all(sources, members)
        clause = (resources.c.res_type == include.source) & resources.c.pk.in_(sources)
        found += _fetch(connection, compiler, access, clause, MAX_INCLUDED)
    return found
