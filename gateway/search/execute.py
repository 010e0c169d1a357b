"""Run a parsed search as one SQL query (plus a count when its matches do not fit in a few
pages, plus includes), paged.

The access filter is part of every query here: of the count (so totals reveal nothing),
of the page, of ``_include`` targets and of ``_revinclude`` sources.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import ColumnElement, Connection, Select, func, select

from gateway.search.compile import Compiler
from gateway.search.params import Include, SearchRequest
from gateway.store.access import AccessFilter
from gateway.store.schema import INDEX_TABLES, resources, search_reference
from gateway.store.session_base import lookup_rows
from mappings.core.errors import Invalid

__all__ = ["Match", "Page", "run_search", "stream_search"]

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


@dataclass(frozen=True, slots=True)
class Match:
    pk: int
    res_type: str
    res_id: str
    content: bytes


@dataclass(slots=True)
class Page:
    total: int | None
    matches: list[Match] = field(default_factory=list)
    included: list[Match] = field(default_factory=list)
    has_next: bool = False


def run_search(
    connection: Connection, compiler: Compiler, request: SearchRequest, access: AccessFilter
) -> Page:
    """One page of matches (and the total, and includes) of ``request`` for ``access``.

    The first filter that reads an index table drives the query (``pk IN (...)``, an index
    range); every other filter is an EXISTS probe per candidate. The page query selects
    keys only, up to three pages' more when a total is wanted (at most ``_PEEK``): when
    those are all there are, they are the total, and no count runs. The stored bytes of the
    page are fetched afterwards by key.
    """
    plan = _Plan(compiler, request, access)
    where = plan.where
    wants_total = request.total != "none" or request.summary == "count"
    if request.summary == "count" or request.count == 0:
        return Page(plan.count(connection) if wants_total else None)
    limit = request.count + 1
    if wants_total:  # a few pages' keys more: a total of a few pages needs no count then
        limit += min(3 * request.count, _PEEK)
    keys = (
        select(resources.c.pk)
        .where(*where)
        .order_by(*_order(compiler, request), resources.c.pk)
        .limit(limit)
        .offset(request.offset)
    )
    pks = list(connection.execute(keys).scalars().all())
    has_next = len(pks) > request.count
    total: int | None = None
    if wants_total:
        # keys read short of their limit are every match from the offset on (an offset
        # past the last match reads none, and says nothing of how many there are)
        complete = len(pks) < limit and (request.offset == 0 or bool(pks))
        total = request.offset + len(pks) if complete else plan.count(connection)
    page = Page(total, _by_keys(connection, pks[: request.count]), has_next=has_next)
    if request.includes or request.revincludes:
        page.included = _included(connection, compiler, request, page.matches, access)
    return page


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

    def __init__(self, compiler: Compiler, request: SearchRequest, access: AccessFilter) -> None:
        driving = (
            next((f for f in request.filters if compiler.binds_type(f)), None)
            if request.resource_type is not None
            else None
        )
        self.where = compiler.base_query(
            None if driving is not None else request.resource_type, access, live=driving is None
        )
        self.index_only: Select[Any] | None = None
        if driving is not None:
            rows = compiler.index_rows(request.resource_type, driving, access)
            self.where.append(resources.c.pk.in_(rows))
            if len(request.filters) == 1 and access.is_unrestricted:
                self.index_only = rows
        for item in request.filters:
            if item is not driving:
                self.where.append(
                    compiler.predicate(
                        request.resource_type,
                        item,
                        access,
                        correlated=compiler.binds_type(item) and request.resource_type is not None,
                    )
                )

    def count(self, connection: Connection) -> int:
        if self.index_only is None:
            return _count(connection, self.where)
        distinct = self.index_only.distinct().subquery()  # a resource may match twice
        counted = connection.execute(select(func.count()).select_from(distinct))
        return int(counted.scalar_one())


def _by_keys(connection: Connection, pks: list[int]) -> list[Match]:
    if not pks:
        return []
    found: dict[int, Match] = {}
    for start in range(0, len(pks), 100):  # a page is at most 100 (a compiled form per size)
        for pk, res_type, res_id, content in lookup_rows(
            connection, "by_keys", pks[start : start + 100]
        ):
            found[pk] = Match(pk, res_type, res_id, content)
    return [found[pk] for pk in pks if pk in found]


def _order(compiler: Compiler, request: SearchRequest) -> list[Any]:
    order: list[Any] = []
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
            column = (
                select(aggregate(index.c[name]))
                .where(index.c.res_pk == resources.c.pk, index.c.param == code)
                .scalar_subquery()
            )
        order.append(column.desc().nulls_last() if descending else column.asc().nulls_last())
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
    refs = select(search_reference.c.target_type, search_reference.c.target_id).where(
        search_reference.c.res_pk.in_(pks),
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
        sources = select(search_reference.c.res_pk).where(
            search_reference.c.res_type == include.source,
            search_reference.c.param == include.param,
            search_reference.c.target_type == target_type,
            search_reference.c.target_id.in_(ids),
        )
        clause = (resources.c.res_type == include.source) & resources.c.pk.in_(sources)
        found += _fetch(connection, compiler, access, clause, MAX_INCLUDED)
    return found
