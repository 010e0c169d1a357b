"""Compile search filters into SQL predicates on the ``resources`` table.

Every filter becomes ``r.pk IN (SELECT res_pk FROM search_<type> WHERE ...)`` (or a
predicate on ``r`` itself for ``_id``/``_lastUpdated``); a parameter stored per kind of
resource (an access-log entry's type, action, ...: ADR 0041) also admits the members of the
kinds whose rows match; chains and ``_has`` nest another
query over ``resources`` that carries the caller's access filter too, so a chain can never
match on something the caller may not see. Comparison semantics follow FHIR R4
search.html (prefixes for number, date and quantity; token, string, reference and uri
modifiers).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy import (
    BindParameter,
    ColumnElement,
    CompoundSelect,
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
    union_all,
)

from gateway.search.dates import parse_date_range, to_micros
from gateway.search.extract import kinded, normalise, split_reference
from gateway.search.params import Filter, split_escaped
from gateway.search.registry import Registry, SearchParam
from gateway.store.access import AccessFilter, Condition
from gateway.store.schema import INDEX_TABLES, resources, search_kind, search_reference
from mappings.core.clock import Clock
from mappings.core.errors import Invalid, NotSupported

__all__ = ["Compiler", "Form", "Keys", "clause_of", "with_kinds"]

PREFIXES = ("eq", "ne", "gt", "lt", "ge", "le", "sa", "eb", "ap")
_TOP = "\U0010ffff"
_DAY = 86_400_000_000


#: the keys a filter admits: a query of an index's keys, or (a parameter stored per kind,
#: ADR 0041) of those and of the kinds' members
Keys = Select[Any] | CompoundSelect[Any]


def with_kinds(
    index: Table, code: str, resource_type: str, clause: ColumnElement[bool]
) -> Select[Any] | None:
    """The keys of the resources whose kind's rows (those under a key below zero) of
    ``code`` satisfy ``clause`` (ADR 0041); None when ``code`` is not stored per kind."""
    if not kinded(resource_type, code):
        return None
    kinds = select(index.c.res_pk).where(
        index.c.res_type == resource_type, index.c.param == code, clause, index.c.res_pk < 0
    )
    return select(search_kind.c.res_pk).where(
        search_kind.c.res_type == resource_type, search_kind.c.kind.in_(kinds)
    )


def _probe(rows: Keys, table: FromClause) -> ColumnElement[bool]:
    """``rows`` holds ``table``'s key: an EXISTS probe of each of its queries."""
    probes = []
    for part in rows.selects if isinstance(rows, CompoundSelect) else [rows]:
        assert isinstance(part, Select)  # a union of plain queries (``Compiler._rows``)
        probes.append(exists(part.where(part.selected_columns[0] == table.c.pk)))
    return or_(*probes)


#: one value's clause: its kind (a key of :data:`_CLAUSES` or :data:`_DATES`) and the
#: values bound in it
Form = tuple[str, tuple[Any, ...]]


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
        #: searches' statements compiled per shape (:mod:`gateway.search.execute`)
        self.shapes: dict[Any, Any] = {}

    def base_query(
        self,
        resource_type: str | None,
        access: AccessFilter,
        table: FromClause = resources,
        *,
        live: bool = True,
        of_type: str | None = None,
    ) -> list[ColumnElement[bool]]:
        """Type, not deleted (``live``), and the access filter. A query driven by an index
        filter needs neither type nor the deleted test: a delete removes its index rows;
        ``of_type`` is then the type its index gives every row. What the access filter
        says of types is decided for the rows' one type, and left out of the SQL (as for
        a read by id, ADR 0033): each list of types is a table SQLite builds at every
        execution (ADR 0035)."""
        clauses: list[ColumnElement[bool]] = [table.c.deleted.is_(False)] if live else []
        if resource_type is not None:
            clauses.insert(0, table.c.res_type == resource_type)
        if not access.is_unrestricted:
            clauses.append(access.predicate(table, of_type=resource_type or of_type))
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
        slots: Iterator[BindParameter[Any]] | None = None,
    ) -> ColumnElement[bool]:
        """The SQL predicate of one filter on ``table``.

        ``correlated``: an EXISTS probe of the index for each candidate row, instead of an
        ``IN`` list that drives the query. A search lets its first filter drive and checks the
        others per candidate, so a broad filter never materialises its whole match set.
        ``slots``: see :meth:`index_rows`.
        """
        if item.name.startswith("_has"):
            return self._has(resource_type, item, access, table)
        if item.name == "_id":
            return self._id(item, table)
        if item.name == "_lastUpdated":
            low, high = table.c.last_updated, table.c.last_updated + 1
            return or_(*(self._date_clause(v, low, high, slots) for v in item.values))
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
            inner = or_(*(self._value_clause(param, index, v, None) for v in item.values))
            return not_(table.c.pk.in_(self._rows(index, param.code, resource_type, inner)))
        rows = self.index_rows(resource_type, item, access, slots)
        if correlated:
            return _probe(rows, table)
        return table.c.pk.in_(rows)

    def index_rows(
        self,
        resource_type: str | None,
        item: Filter,
        access: AccessFilter,
        slots: Iterator[BindParameter[Any]] | None = None,
    ) -> Keys:
        """The keys a type-binding filter (see :meth:`binds_type`) admits, from its index.

        ``slots``: bind the values of the filter's forms to these parameters, one each, in
        the order of its values and of each form's values, instead of as literals: the
        statement of a search's shape (:mod:`gateway.search.execute`)."""
        assert resource_type is not None
        param = self.registry.get(resource_type, item.name)
        if param is None:
            raise Invalid(f"Unknown search parameter '{item.name}'", item.name)
        if item.chain is not None:
            return self._chain(param, item, access)
        index = INDEX_TABLES[param.type]
        value_clauses = [
            self._value_clause(param, index, v, item.modifier, slots) for v in item.values
        ]
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
        modifier = None if item.modifier == "not" else item.modifier
        clause = or_(*(self._value_clause(param, index, v, modifier) for v in item.values))
        rows = select(index.c.res_pk).where(index.c.param == param.code, clause)
        found = table.c.pk.in_(rows)
        return not_(found) if item.modifier == "not" else found

    @staticmethod
    def _rows(index: Table, code: str, resource_type: str, clause: ColumnElement[bool]) -> Keys:
        """The keys whose rows of ``code`` satisfy ``clause``: their own, and (a parameter
        stored per kind) their kind's."""
        own = select(index.c.res_pk).where(
            index.c.res_type == resource_type, index.c.param == code, clause
        )
        members = with_kinds(index, code, resource_type, clause)
        return own if members is None else union_all(own, members)

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
        rows = self._rows(index, param.code, param.resource_type, true())
        present = table.c.pk.in_(rows)
        return not_(present) if item.values == ("true",) else present

    # -- token --------------------------------------------------------------------------

    def _value_clause(
        self,
        param: SearchParam,
        index: Table,
        value: str,
        modifier: str | None,
        slots: Iterator[BindParameter[Any]] | None = None,
    ) -> ColumnElement[bool]:
        """The clause of one value of ``param`` on its index: from the value's form (its
        values bound to ``slots`` when given) for the kinds that have forms, else from the
        kind's own method (``_number``, ``_quantity``, ``_composite``)."""
        if param.type not in _FORMS:
            return getattr(self, f"_{param.type}")(param, index, value, modifier)  # type: ignore[no-any-return]
        return clause_of(index, self.form(param, value, modifier), slots)

    def form(self, param: SearchParam, value: str, modifier: str | None) -> Form:
        """The clause ``value`` asks of ``param``'s index as a :data:`Form`: which clause,
        and the values bound in it (the same clause for every value of its kind, so that a
        search's SQL is compiled once per shape: :mod:`gateway.search.execute`)."""
        if param.type not in _FORMS:
            raise NotSupported(f"{param.type} values have no form", param.code)
        return _FORMS[param.type](self, param, value, modifier)

    def forms_of(self, resource_type: str, item: Filter) -> list[Form] | None:
        """The forms of ``item``'s values, when its clause is one for every filter of those
        forms with only the values bound otherwise (:meth:`index_rows` and
        :meth:`predicate` with ``slots``): a value of a token, string, uri, reference or
        date parameter of the type, or of ``_lastUpdated``. None for a chain, ``_has``,
        ``_id``, ``_type``, ``:missing``, ``:not``, a number, a quantity, a composite."""
        if item.chain is not None:
            return None
        if item.name == "_lastUpdated":
            return [self.date_form(v) for v in item.values] if item.modifier is None else None
        if not self.binds_type(item):
            return None
        param = self.registry.get(resource_type, item.name)
        if param is None or param.type not in _FORMS:
            return None
        return [self.form(param, value, item.modifier) for value in item.values]

    def _token_form(self, param: SearchParam, value: str, modifier: str | None) -> Form:
        if modifier == "text":
            return "token:text", (f"%{_like_escape(normalise(value))}%",)
        if modifier == "of-type":
            parts = split_escaped(value, "|")
            if len(parts) != 3:
                raise Invalid(":of-type takes system|code|value", param.code)
            return "token:system-code", (parts[0], f"{parts[1]}|{parts[2]}")
        if modifier not in (None, "not"):
            raise NotSupported(f"Modifier :{modifier} is not supported on token", param.code)
        parts = split_escaped(value, "|")
        if len(parts) == 1:
            return "token:code", (parts[0],)
        if len(parts) != 2:
            raise Invalid("A token is [system]|[code]", param.code)
        system, code = parts
        if not system:
            return "token:code-without-system", (code,)
        if not code:
            return "token:system", (system,)
        return "token:system-code", (system, code)

    # -- string and uri ------------------------------------------------------------------

    def _string_form(self, param: SearchParam, value: str, modifier: str | None) -> Form:
        if modifier == "exact":
            return "string:exact", (value,)
        norm = normalise(value)
        if modifier == "contains":
            return "string:contains", (f"%{_like_escape(norm)}%",)
        if modifier is not None:
            raise NotSupported(f"Modifier :{modifier} is not supported on string", param.code)
        return "string:starts", (norm, norm + _TOP)

    def _uri_form(self, param: SearchParam, value: str, modifier: str | None) -> Form:
        if modifier == "below":
            return "uri:below", (f"{_like_escape(value)}%",)
        if modifier == "above":
            return "uri:above", (value,)
        if modifier is not None:
            raise NotSupported(f"Modifier :{modifier} is not supported on uri", param.code)
        return "uri:equal", (value,)

    # -- reference ----------------------------------------------------------------------

    def _reference_form(self, param: SearchParam, value: str, modifier: str | None) -> Form:
        if modifier is not None and not modifier[:1].isupper():
            raise NotSupported(f"Modifier :{modifier} is not supported on reference", param.code)
        if "/" not in value:
            if modifier:
                return "reference:type-id", (modifier, value)
            return "reference:id", (value,)
        target_type, target_id, url = split_reference(value, self.base_url)
        if url is not None:
            return "reference:url", (url,)
        if modifier and modifier != target_type:
            return "never", ()
        return "reference:type-id", (target_type, target_id)

    def _chain(self, param: SearchParam, item: Filter, access: AccessFilter) -> Keys:
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
        return self._rows(search_reference, param.code, param.resource_type, or_(*alternatives))

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
        conditions = (
            ref.c.res_type == source,
            ref.c.param == link,
            ref.c.target_type == resource_type,
            *self.base_query(source, access, inner),
            self.predicate(source, inner_filter, access, inner),
        )
        ids: Keys = (
            select(ref.c.target_id).join(inner, inner.c.pk == ref.c.res_pk).where(*conditions)
        )
        if kinded(source, link):  # the sources' kinds' rows too (ADR 0041, ADR 0043)
            member = search_kind.alias()
            through_kinds = (
                select(ref.c.target_id)
                .join(member, member.c.kind == ref.c.res_pk)
                .join(inner, inner.c.pk == member.c.res_pk)
                .where(member.c.res_type == source, *conditions)
            )
            ids = union_all(ids, through_kinds)
        return table.c.res_id.in_(ids)

    # -- date ---------------------------------------------------------------------------

    def _date_form(self, param: SearchParam, value: str, modifier: str | None) -> Form:
        if modifier is not None:
            raise NotSupported(f"Modifier :{modifier} is not supported on date", param.code)
        return self.date_form(value)

    def _date_clause(
        self,
        value: str,
        low: Any,
        high: Any,
        slots: Iterator[BindParameter[Any]] | None = None,
    ) -> ColumnElement[bool]:
        form = self.date_form(value)
        return _DATES[form[0]](low, high, *_values(form, slots))

    def date_form(self, value: str) -> Form:
        """A date value with its prefix (``ge2024``) as a form on a (low, high) range."""
        prefix, text = _prefixed(value)
        try:
            v_low, v_high = parse_date_range(text)
        except ValueError:
            raise Invalid(f"'{text}' is not a valid date", "date") from None
        if prefix == "ap":
            width = max(_DAY, abs(to_micros(self.clock.now()) - v_low) // 10)
            return "date:ap", (v_low - width, v_high + width)
        return f"date:{prefix}", (v_low, v_high)

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
        clauses = [clause_of(index, self._token_form(param, token, None))]
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


#: the clause a value asks, by kind (a :data:`Form`'s tag), on an index table's columns
#: ``c``; the values are bound as they are given (literals, or a compiled shape's slots)
_CLAUSES: dict[str, Callable[..., ColumnElement[bool]]] = {
    "token:text": lambda c, pattern: c.text.like(pattern, escape="\\"),
    "token:code": lambda c, code: c.code == code,
    "token:code-without-system": lambda c, code: and_(c.code == code, c.system.is_(None)),
    "token:system": lambda c, system: c.system == system,
    "token:system-code": lambda c, system, code: and_(c.system == system, c.code == code),
    "string:exact": lambda c, value: c.value_exact == value,
    "string:contains": lambda c, pattern: c.value_norm.like(pattern, escape="\\"),
    "string:starts": lambda c, norm, above: and_(c.value_norm >= norm, c.value_norm < above),
    "uri:below": lambda c, pattern: c.value.like(pattern, escape="\\"),
    "uri:above": lambda c, value: _bound(value).like(c.value + "%"),
    "uri:equal": lambda c, value: c.value == value,
    "reference:id": lambda c, target_id: c.target_id == target_id,
    "reference:type-id": lambda c, target_type, target_id: and_(
        c.target_type == target_type, c.target_id == target_id
    ),
    "reference:url": lambda c, url: c.url == url,
    "never": lambda _c: false(),
}

#: a date range's clause by prefix on the (low, high) columns of what is searched, for the
#: value's range (v_low, v_high) (FHIR R4 search.html#prefix; ``ap``: widened by a tenth
#: of its distance from now, a day at least)
_DATES: dict[str, Callable[..., ColumnElement[bool]]] = {
    "date:eq": lambda low, high, v_low, v_high: and_(low >= v_low, high <= v_high),
    "date:ne": lambda low, high, v_low, v_high: not_(and_(low >= v_low, high <= v_high)),
    "date:gt": lambda _low, high, _v_low, v_high: high > v_high,
    "date:lt": lambda low, _high, v_low, _v_high: low < v_low,
    "date:ge": lambda low, high, v_low, v_high: or_(
        high > v_high, and_(low >= v_low, high <= v_high)
    ),
    "date:le": lambda low, high, v_low, v_high: or_(
        low < v_low, and_(low >= v_low, high <= v_high)
    ),
    "date:sa": lambda low, _high, _v_low, v_high: low >= v_high,
    "date:eb": lambda _low, high, v_low, _v_high: high <= v_low,
    "date:ap": lambda low, high, lowest, highest: and_(low < highest, high > lowest),
}

_FORMS: dict[str, Callable[[Compiler, SearchParam, str, str | None], Form]] = {
    "token": Compiler._token_form,
    "string": Compiler._string_form,
    "uri": Compiler._uri_form,
    "reference": Compiler._reference_form,
    "date": Compiler._date_form,
}


def clause_of(
    index: Table, form: Form, slots: Iterator[BindParameter[Any]] | None = None
) -> ColumnElement[bool]:
    """The clause of ``form`` on ``index``: its values bound as literals, or, with ``slots``,
    the next of those in their place (a compiled shape's parameters)."""
    tag = form[0]
    if tag.startswith("date:"):
        return _DATES[tag](index.c.low, index.c.high, *_values(form, slots))
    return _CLAUSES[tag](index.c, *_values(form, slots))


def _values(form: Form, slots: Iterator[BindParameter[Any]] | None) -> Sequence[Any]:
    """What ``form`` binds: its own values, or as many of ``slots``."""
    return form[1] if slots is None else [next(slots) for _ in form[1]]


def _bound(value: Any) -> ColumnElement[Any]:
    """A value as the left side of a comparison: a slot as it is, a literal bound."""
    return value if isinstance(value, BindParameter) else literal(value)
