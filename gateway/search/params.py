"""Parse a search request's parameters (FHIR R4 search.html).

Splits the query into filters (``name[:modifier][.chain]=value[,value]``, repeated names
AND-ed, commas OR-ed, with ``\\`` escapes) and result parameters (``_count``, ``_sort``,
``_include``...). Unknown parameters become warnings, or a 400 under
``Prefer: handling=strict``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from gateway.search.registry import Registry
from mappings.core.errors import Invalid, Issue, NotSupported

__all__ = [
    "DEFAULT_COUNT",
    "MAX_CHAIN",
    "MAX_COUNT",
    "MAX_FILTERS",
    "MAX_HAS",
    "MAX_OFFSET",
    "MAX_VALUES",
    "Filter",
    "Include",
    "SearchRequest",
    "parse_search",
    "split_escaped",
    "whole_number",
]

DEFAULT_COUNT = 20
MAX_COUNT = 1000
MAX_OFFSET = 10**9  # a page offset beyond it is clamped to it
#: what one search may ask, the same on every database (SQLite's parser has limits that
#: PostgreSQL's does not; a search beyond these is a 400 before any SQL is built)
MAX_VALUES = 100  # comma-separated values of one parameter
MAX_CHAIN = 3  # hops of a chain: subject:Patient.organization.name is two
MAX_HAS = 3  # nested _has
MAX_FILTERS = 40  # search parameters in one query
RESULT_PARAMS = {
    "_count",
    "_offset",
    "_sort",
    "_include",
    "_revinclude",
    "_summary",
    "_elements",
    "_total",
    "_format",
    "_pretty",
    "_contained",
    "_containedType",
}
SUMMARY_MODES = {"true", "false", "count", "data", "text"}
TOTAL_MODES = {"none", "estimate", "accurate"}


@dataclass(frozen=True, slots=True)
class Filter:
    """One ``name[:modifier]=v1,v2`` (values OR-ed); ``chain`` holds the rest after a dot."""

    name: str
    modifier: str | None
    values: tuple[str, ...]
    chain: str | None = None


@dataclass(frozen=True, slots=True)
class Include:
    """``_include`` / ``_revinclude``: source type, parameter, optional target type."""

    source: str
    param: str
    target: str | None
    iterate: bool


@dataclass(slots=True)
class SearchRequest:
    resource_type: str | None
    filters: list[Filter] = field(default_factory=list)
    count: int = DEFAULT_COUNT
    offset: int = 0
    sort: list[tuple[str, bool]] = field(default_factory=list)  # (param, descending)
    includes: list[Include] = field(default_factory=list)
    revincludes: list[Include] = field(default_factory=list)
    summary: str | None = None
    elements: tuple[str, ...] | None = None
    total: str = "accurate"
    warnings: list[Issue] = field(default_factory=list)
    echo: list[tuple[str, str]] = field(default_factory=list)  # the parameters as applied


def split_escaped(text: str, separator: str) -> list[str]:
    """Split on ``separator`` except where escaped with a backslash; unescape the parts."""
    parts, current, escaped = [], [], False
    for char in text:
        if escaped:
            current.append(char)
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == separator:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return parts


def whole_number(name: str, value: str, low: int, high: int) -> int:
    """A whole number of ASCII digits, at least ``low``; above ``high`` it is ``high``
    (a server may page less than asked, and says what it applied in the links)."""
    if not (value.isascii() and value.isdigit()):
        raise Invalid(f"{name} must be a whole number of at least {low}", name)
    number = int(value)
    if number < low:
        raise Invalid(f"{name} must be at least {low}", name)
    return min(high, number)


def _parse_include(value: str, iterate: bool) -> Include:
    parts = value.split(":")
    if len(parts) not in (2, 3) or not all(parts):
        raise Invalid("_include and _revinclude take Type:parameter[:TargetType]", "_include")
    return Include(parts[0], parts[1], parts[2] if len(parts) == 3 else None, iterate)


def _result_param(request: SearchRequest, name: str, modifier: str | None, value: str) -> None:
    if name == "_count":
        request.count = whole_number("_count", value, 0, MAX_COUNT)
    elif name == "_offset":
        request.offset = whole_number("_offset", value, 0, MAX_OFFSET)
    elif name == "_sort":
        for item in value.split(","):
            if item:
                request.sort.append((item.lstrip("-"), item.startswith("-")))
    elif name in ("_include", "_revinclude"):
        include = _parse_include(value, modifier == "iterate")
        (request.includes if name == "_include" else request.revincludes).append(include)
    elif name == "_summary":
        if value not in SUMMARY_MODES:
            raise Invalid("_summary must be true, false, count, data or text", "_summary")
        request.summary = None if value == "false" else value
    elif name == "_elements":
        request.elements = tuple(e.strip() for e in value.split(",") if e.strip())
    elif name == "_total":
        if value not in TOTAL_MODES:
            raise Invalid("_total must be none, estimate or accurate", "_total")
        request.total = "none" if value == "none" else "accurate"
    elif name in ("_contained", "_containedType") and value not in ("false", "container"):
        raise NotSupported(f"{name}={value} is not supported", name)


def parse_search(
    resource_type: str | None,
    items: list[tuple[str, str]],
    registry: Registry,
    *,
    strict: bool = False,
) -> SearchRequest:
    """Parse query items into a :class:`SearchRequest` for ``resource_type`` (None: all types)."""
    request = SearchRequest(resource_type)
    for raw_name, value in items:
        head, _, chain = raw_name.partition(".")
        name, _, modifier = head.partition(":")
        if name in RESULT_PARAMS:
            _result_param(request, name, modifier or None, value)
            if name == "_count":
                request.echo.append((raw_name, str(request.count)))
            elif name not in ("_format", "_pretty", "_offset"):
                request.echo.append((raw_name, value))
            continue
        if not _known(resource_type, name, registry):
            message = f"Unknown search parameter '{name}' was ignored"
            if strict:
                raise Invalid(f"Unknown search parameter '{name}'", raw_name)
            request.warnings.append(Issue("warning", "not-supported", message, (raw_name,)))
            continue
        values = tuple(v for v in split_escaped(value, ","))
        _check_limits(raw_name, chain, values, len(request.filters))
        if name == "_type":
            unknown = [v for v in values if v not in registry.by_type]
            if unknown or modifier or chain:
                raise Invalid("_type names resource types served here", "_type")
        if name.startswith("_has"):
            request.filters.append(Filter(raw_name, None, values))
        else:
            request.filters.append(Filter(name, modifier or None, values, chain or None))
        request.echo.append((raw_name, value))
    return request


def _check_limits(raw_name: str, chain: str, values: tuple[str, ...], before: int) -> None:
    if before >= MAX_FILTERS:
        raise Invalid(f"A search takes at most {MAX_FILTERS} parameters", raw_name[:100])
    if len(values) > MAX_VALUES:
        raise Invalid(f"A parameter takes at most {MAX_VALUES} values", raw_name[:100])
    if raw_name.count("_has:") > MAX_HAS:
        raise Invalid(f"_has nests at most {MAX_HAS} deep", raw_name[:100])
    hops = (
        raw_name.count(".")
        if raw_name.startswith("_has")
        else (chain.count(".") + 1 if chain else 0)
    )
    if hops > MAX_CHAIN:
        raise Invalid(f"A chain has at most {MAX_CHAIN} links", raw_name[:100])


def _known(resource_type: str | None, name: str, registry: Registry) -> bool:
    if name in ("_id", "_lastUpdated", "_has"):
        return True
    if resource_type is None:
        return name == "_type" or registry.common(name) is not None
    return registry.get(resource_type, name) is not None
