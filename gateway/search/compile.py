"""Compile search filters into SQL predicates on the ``resources`` table.

Every filter becomes ``r.pk IN (SELECT res_pk FROM search_<type> WHERE ...)`` (or a
predicate on ``r`` itself for ``_id``/``_lastUpdated``); chains and ``_has`` nest another
query over ``resources`` that carries the caller's access filter too, so a chain can never
match on something the caller may not see. Comparison semantics follow FHIR R4
search.html (prefixes for number, date and quantity; token, string, reference and uri
modifiers).
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy import (
    ColumnElement,
    FromClause,
    Select,
    Table,
    and_,
    exists,
    false,
    literal,
    not_,
    or_,
    select,
    true,
)

from gateway.search.dates import parse_date_range, to_micros
from gateway.search.extract import normalise, split_reference
from gateway.search.params import Filter, split_escaped
from gateway.search.registry import Registry, SearchParam
from gateway.store.access import AccessFilter, Condition
from gateway.store.schema import INDEX_TABLES, resources, search_reference
from mappings.core.clock import Clock
from mappings.core.errors import Invalid, NotSupported

__all__ = ["Compiler"]

PREFIXES = ("eq", "ne", "gt", "lt", "ge", "le", "sa", "eb", "ap")
_TOP = "\U0010ffff"
_DAY = 86_400_000_000


def _prefixed(value: str) -> tuple[str, str]:
    if len(value) > 2 and value[:2] in PREFIXES and not value[2].isalpha():
        return value[:2], value[2:]
    return "eq", value


def _like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


class Compiler:
    """Filters of one resource type -> a SQL predicate, with the access filter applied."""

    def __init__(self, registry: Registry, base_url: str, clock: Clock) -> None:
        self.registry = registry
        self.base_url = base_url.rstrip("/")
        self.clock = clock

    def base_query(
        self,
        resource_type: str | None,
        access: AccessFilter,
        table: FromClause = resources,
        *,
        live: bool = True,
    ) -> list[ColumnElement[bool]]:
        """Type, not deleted (``live``), and the access filter. A query driven by an index
        filter needs neither type nor the deleted test: a delete removes its index rows."""
        clauses: list[ColumnElement[bool]] = [table.c.deleted.is_(False)] if live else []
        if resource_type is not None:
            clauses.insert(0, table.c.res_type == resource_type)
        if not access.is_unrestricted:
            clauses.append(access.predicate(table))
        return clauses

    def condition(self, resource_type: str, filters: list[Filter]) -> Condition:
        """A granular scope's search filters as a predicate on any alias of ``resources``."""
        unrestricted = AccessFilter.unrestricted()

        def condition(table: FromClause) -> ColumnElement[bool]:
            return and_(
                true(),
                *(self.predicate(resource_type, f, unrestricted, table) for f in filters),
            )

        return condition

    def predicate(
        self,
        resource_type: str | None,
        item: Filter,
        access: AccessFilter,
        table: FromClause = resources,
        *,
        correlated: bool = False,
    ) -> ColumnElement[bool]:
        """The SQL predicate of one filter on ``table``.

        ``correlated``: an EXISTS probe of the index for each candidate row, instead of an
        ``IN`` list that drives the query. A search lets its first filter drive and checks the
        others per candidate, so a broad filter never materialises its whole match set.
        """
        if item.name.startswith("_has"):
            return self._has(resource_type, item, access, table)
        if item.name == "_id":
            return self._id(item, table)
        if item.name == "_lastUpdated":
            return or_(
                *(
                    self._date_clause(v, table.c.last_updated, table.c.last_updated + 1)
                    for v in item.values
                )
            )
        if item.name == "_type":
            return table.c.res_type.in_(sorted(set(item.values)))
        if resource_type is None:
            return self._common(item, table)
        param = self.registry.get(resource_type, item.name)
        if param is None:
            raise Invalid(f"Unknown search parameter '{item.name}'", item.name)
        if item.modifier == "missing":
            return self._missing(param, item, table)
        if param.type == "token" and item.modifier == "not":
            index = INDEX_TABLES[param.type]
            inner = or_(*(self._token(param, index, v, None) for v in item.values))
            return not_(table.c.pk.in_(self._rows(index, param.code, resource_type, inner)))
        rows = self.index_rows(resource_type, item, access)
        if correlated:
            return exists(rows.where(rows.selected_columns[0] == table.c.pk))
        return table.c.pk.in_(rows)

    def index_rows(
        self, resource_type: str | None, item: Filter, access: AccessFilter
    ) -> Select[Any]:
        """The keys a type-binding filter (see :meth:`binds_type`) admits, from its index."""
        assert resource_type is not None
        param = self.registry.get(resource_type, item.name)
        if param is None:
            raise Invalid(f"Unknown search parameter '{item.name}'", item.name)
        if item.chain is not None:
            return self._chain(param, item, access)
        index = INDEX_TABLES[param.type]
        handler = getattr(self, f"_{param.type}")
        value_clauses = [handler(param, index, v, item.modifier) for v in item.values]
        code = f"{param.code}:of-type" if item.modifier == "of-type" else param.code
        return self._rows(index, code, resource_type, or_(*value_clauses))

    @staticmethod
    def binds_type(item: Filter) -> bool:
        """True when the filter only admits rows of the searched type (it reads an index
        table keyed by type), so the query needs no ``res_type`` test of its own."""
        plain = not item.name.startswith("_has") and item.name not in (
            "_id",
            "_lastUpdated",
            "_type",
        )
        return plain and item.modifier not in ("not", "missing")

    def _common(self, item: Filter, table: FromClause) -> ColumnElement[bool]:
        """A parameter of Resource itself across all types (``_tag``, ``_profile``, ...)."""
        param = self.registry.common(item.name)
        if param is None:
            raise Invalid(f"Unknown search parameter '{item.name}' across types", item.name)
        if item.chain is not None or item.modifier in ("missing", "of-type"):
            raise NotSupported(f"{item.name} across types takes values only", item.name)
        index = INDEX_TABLES[param.type]
        handler = getattr(self, f"_{param.type}")
        modifier = None if item.modifier == "not" else item.modifier
        clause = or_(*(handler(param, index, v, modifier) for v in item.values))
        rows = select(index.c.res_pk).where(index.c.param == param.code, clause)
        found = table.c.pk.in_(rows)
        return not_(found) if item.modifier == "not" else found

    @staticmethod
    def _rows(
        index: Table, code: str, resource_type: str, clause: ColumnElement[bool]
    ) -> Select[Any]:
        return select(index.c.res_pk).where(
            index.c.res_type == resource_type, index.c.param == code, clause
        )

    # -- parameters answered from the resources table ---------------------------------

    def _id(self, item: Filter, table: FromClause) -> ColumnElement[bool]:
        if item.modifier not in (None, "not"):
            raise NotSupported(f"_id:{item.modifier} is not supported", "_id")
        clause = table.c.res_id.in_(list(item.values))
        return not_(clause) if item.modifier == "not" else clause

    def _missing(self, param: SearchParam, item: Filter, table: FromClause) -> ColumnElement[bool]:
        if item.values not in (("true",), ("false",)):
            raise Invalid(":missing takes true or false", item.name)
        index = INDEX_TABLES[param.type]
        present = table.c.pk.in_(
            select(index.c.res_pk).where(
                index.c.res_type == param.resource_type, index.c.param == param.code
            )
        )
        return not_(present) if item.values == ("true",) else present

    # -- token --------------------------------------------------------------------------

    def _token(
        self, param: SearchParam, index: Table, value: str, modifier: str | None
    ) -> ColumnElement[bool]:
        if modifier == "text":
            return index.c.text.like(f"%{_like_escape(normalise(value))}%", escape="\\")
        if modifier == "of-type":
            parts = split_escaped(value, "|")
            if len(parts) != 3:
                raise Invalid(":of-type takes system|code|value", param.code)
            return and_(index.c.system == parts[0], index.c.code == f"{parts[1]}|{parts[2]}")
        if modifier not in (None, "not"):
            raise NotSupported(f"Modifier :{modifier} is not supported on token", param.code)
        parts = split_escaped(value, "|")
        if len(parts) == 1:
            return index.c.code == parts[0]
        if len(parts) != 2:
            raise Invalid("A token is [system]|[code]", param.code)
        system, code = parts
        if not system:
            return and_(index.c.code == code, index.c.system.is_(None))
        if not code:
            return index.c.system == system
        return and_(index.c.system == system, index.c.code == code)

    # -- string and uri ------------------------------------------------------------------

    def _string(
        self, param: SearchParam, index: Table, value: str, modifier: str | None
    ) -> ColumnElement[bool]:
        if modifier == "exact":
            return index.c.value_exact == value
        norm = normalise(value)
        if modifier == "contains":
            return index.c.value_norm.like(f"%{_like_escape(norm)}%", escape="\\")
        if modifier is not None:
            raise NotSupported(f"Modifier :{modifier} is not supported on string", param.code)
        return and_(index.c.value_norm >= norm, index.c.value_norm < norm + _TOP)

    def _uri(
        self, param: SearchParam, index: Table, value: str, modifier: str | None
    ) -> ColumnElement[bool]:
        if modifier == "below":
            return index.c.value.like(f"{_like_escape(value)}%", escape="\\")
        if modifier == "above":
            return literal(value).like(index.c.value + "%")
        if modifier is not None:
            raise NotSupported(f"Modifier :{modifier} is not supported on uri", param.code)
        return index.c.value == value

    # -- reference ----------------------------------------------------------------------

    def _reference(
        self, param: SearchParam, index: Table, value: str, modifier: str | None
    ) -> ColumnElement[bool]:
        if modifier is not None and not modifier[:1].isupper():
            raise NotSupported(f"Modifier :{modifier} is not supported on reference", param.code)
        if "/" not in value:
            clause = index.c.target_id == value
            return and_(clause, index.c.target_type == modifier) if modifier else clause
        target_type, target_id, url = split_reference(value, self.base_url)
        if url is not None:
            return index.c.url == url
        clause = and_(index.c.target_type == target_type, index.c.target_id == target_id)
        if modifier and modifier != target_type:
            return false()
        return clause

    def _chain(self, param: SearchParam, item: Filter, access: AccessFilter) -> Select[Any]:
        if param.type != "reference":
            raise Invalid("Only reference parameters can be chained", item.name)
        targets = [item.modifier] if item.modifier else list(param.targets)
        assert item.chain is not None
        inner_name, _, rest = item.chain.partition(".")
        inner_name, _, inner_modifier = inner_name.partition(":")
        alternatives = []
        for target in targets:
            if self.registry.get(target, inner_name) is None and inner_name not in ("_id",):
                continue
            inner = resources.alias()
            inner_filter = Filter(inner_name, inner_modifier or None, item.values, rest or None)
            ids = select(inner.c.res_id).where(
                *self.base_query(target, access, inner),
                self.predicate(target, inner_filter, access, inner),
            )
            alternatives.append(
                and_(
                    search_reference.c.target_type == target, search_reference.c.target_id.in_(ids)
                )
            )
        if not alternatives:
            raise Invalid(f"'{inner_name}' is not a parameter of the chained type", item.name)
        rows = select(search_reference.c.res_pk).where(
            search_reference.c.res_type == param.resource_type,
            search_reference.c.param == param.code,
            or_(*alternatives),
        )
        return rows

    def _has(
        self, resource_type: str | None, item: Filter, access: AccessFilter, table: FromClause
    ) -> ColumnElement[bool]:
        parts = item.name.split(":", 3)
        if len(parts) != 4 or resource_type is None:
            raise Invalid("_has takes _has:Type:reference:parameter=value", item.name)
        _, source, link, rest = parts
        reference = self.registry.get(source, link)
        if reference is None or reference.type != "reference":
            raise Invalid(f"'{link}' is not a reference parameter of {source}", item.name)
        name, _, modifier = rest.partition(":")
        inner = resources.alias()
        inner_filter = (
            Filter(rest, None, item.values)
            if rest.startswith("_has")
            else Filter(
                name.partition(".")[0],
                modifier or None,
                item.values,
                name.partition(".")[2] or None,
            )
        )
        ref = search_reference.alias()
        ids = (
            select(ref.c.target_id)
            .join(inner, inner.c.pk == ref.c.res_pk)
            .where(
                ref.c.res_type == source,
                ref.c.param == link,
                ref.c.target_type == resource_type,
                *self.base_query(source, access, inner),
                self.predicate(source, inner_filter, access, inner),
            )
        )
        return table.c.res_id.in_(ids)

    # -- date ---------------------------------------------------------------------------

    def _date(
        self, param: SearchParam, index: Table, value: str, modifier: str | None
    ) -> ColumnElement[bool]:
        if modifier is not None:
            raise NotSupported(f"Modifier :{modifier} is not supported on date", param.code)
        return self._date_clause(value, index.c.low, index.c.high)

    def _date_clause(self, value: str, low: Any, high: Any) -> ColumnElement[bool]:
        prefix, text = _prefixed(value)
        try:
            v_low, v_high = parse_date_range(text)
        except ValueError:
            raise Invalid(f"'{text}' is not a valid date", "date") from None
        contained = and_(low >= v_low, high <= v_high)
        if prefix == "ap":
            width = max(_DAY, abs(to_micros(self.clock.now()) - v_low) // 10)
            return and_(low < v_high + width, high > v_low - width)
        clauses: dict[str, ColumnElement[bool]] = {
            "eq": contained,
            "ne": not_(contained),
            "gt": high > v_high,
            "lt": low < v_low,
            "ge": or_(high > v_high, contained),
            "le": or_(low < v_low, contained),
            "sa": low >= v_high,
            "eb": high <= v_low,
        }
        return clauses[prefix]

    # -- composite -------------------------------------------------------------------------

    def _composite(
        self, param: SearchParam, index: Table, value: str, modifier: str | None
    ) -> ColumnElement[bool]:
        if modifier is not None:
            raise NotSupported(f"Modifier :{modifier} is not supported on composite", param.code)
        parts = split_escaped(value, "$")
        if len(parts) != 2:
            raise Invalid("A composite value is token$value", param.code)
        token, second = parts
        kind = param.components[1][0]
        c = index.c
        clauses = [self._token(param, index, token, None)]
        if kind == "quantity":
            pieces = split_escaped(second, "|")
            prefix, number = _prefixed(pieces[0])
            clauses.append(self._numeric(prefix, number, c.v_value, param.code))
            if len(pieces) == 3 and pieces[1]:
                clauses.append(c.v_system == pieces[1])
            if len(pieces) == 3 and pieces[2]:
                clauses.append(c.v_code == pieces[2])
        elif kind == "date":
            clauses.append(self._date_clause(second, c.v_low, c.v_high))
        elif kind == "string":
            norm = normalise(second)
            clauses.append(and_(c.v_code >= norm, c.v_code < norm + _TOP))
        elif kind == "token":
            system, bar, code = second.rpartition("|")
            clauses.append(c.v_code == code)
            if bar and system:
                clauses.append(c.v_system == system)
        elif kind == "reference":
            target_type, target_id, url = split_reference(second, self.base_url)
            if url is not None:
                clauses.append(c.v_code == url)
            else:
                clauses.append(c.v_code == (target_id or second))
                if target_type:
                    clauses.append(c.v_system == target_type)
        else:
            clauses.append(c.v_code == second)
        return and_(*clauses)

    # -- number and quantity ----------------------------------------------------------------

    def _number(
        self, param: SearchParam, index: Table, value: str, modifier: str | None
    ) -> ColumnElement[bool]:
        if modifier is not None:
            raise NotSupported(f"Modifier :{modifier} is not supported on number", param.code)
        prefix, text = _prefixed(value)
        return self._numeric(prefix, text, index.c.value, param.code)

    def _quantity(
        self, param: SearchParam, index: Table, value: str, modifier: str | None
    ) -> ColumnElement[bool]:
        if modifier is not None:
            raise NotSupported(f"Modifier :{modifier} is not supported on quantity", param.code)
        parts = split_escaped(value, "|")
        if len(parts) not in (1, 3):
            raise Invalid("A quantity is [prefix]number|[system]|[code]", param.code)
        prefix, text = _prefixed(parts[0])
        clauses = [self._numeric(prefix, text, index.c.value, param.code)]
        if len(parts) == 3:
            system, code = parts[1], parts[2]
            if system:
                clauses.append(index.c.system == system)
            if code:
                clauses.append(index.c.code == code)
        return and_(*clauses)

    @staticmethod
    def _numeric(prefix: str, text: str, column: Any, code: str) -> ColumnElement[bool]:
        try:
            number = Decimal(text)
        except InvalidOperation:
            raise Invalid(f"'{text}' is not a number", code) from None
        if not number.is_finite():
            raise Invalid(f"'{text}' is not a number", code)
        exponent = number.as_tuple().exponent
        half = Decimal(5).scaleb(int(exponent) - 1) if isinstance(exponent, int) else Decimal(0)
        low, high, exact = float(number - half), float(number + half), float(number)
        margin = abs(exact) * 0.1
        clauses: dict[str, ColumnElement[bool]] = {
            "eq": and_(column >= low, column < high),
            "ne": or_(column < low, column >= high),
            "gt": column > exact,
            "lt": column < exact,
            "ge": column >= exact,
            "le": column <= exact,
            "sa": column > exact,
            "eb": column < exact,
            "ap": and_(column >= exact - margin, column <= exact + margin),
        }
        return clauses[prefix]
