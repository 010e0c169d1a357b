"""The search parameters each served type supports, compiled from the official definitions.

One :class:`SearchParam` per (type, code), carrying its compiled evaluator. The registry is
also what the CapabilityStatement lists, so it can never claim a parameter that is not
indexed. Composite parameters of a token and one other value are indexed as pairs; special
parameters are not indexed (the CapabilityStatement leaves them out); ``_id`` and
``_lastUpdated`` are answered from the resources table itself.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from gateway.search.paths import Evaluator, RelativeEvaluator, compile_expression, compile_relative
from mappings.core.definitions import Definitions

__all__ = ["COMMON_PARAMS", "INDEXED_TYPES", "Registry", "SearchParam"]

INDEXED_TYPES = frozenset(
    {"token", "string", "date", "reference", "quantity", "number", "uri", "composite"}
)
COMPONENT_TYPES = frozenset({"token", "string", "date", "reference", "quantity", "uri"})
_FROM_TABLE = {"_id", "_lastUpdated"}
#: the parameters of Resource itself that a search across all types takes
COMMON_PARAMS = frozenset({"_tag", "_profile", "_security", "_source"})


@dataclass(frozen=True, slots=True)
class SearchParam:
    """One SearchParameter of one resource type (FHIR R4 searchparameter.html)."""

    resource_type: str
    code: str
    type: str
    expression: str
    url: str
    evaluate: Evaluator = field(compare=False, repr=False)
    targets: tuple[str, ...] = ()
    # composite only: (component parameter type, evaluator relative to each item)
    components: tuple[tuple[str, RelativeEvaluator], ...] = field(
        default=(), compare=False, repr=False
    )

    @property
    def from_table(self) -> bool:
        """True for parameters answered from the resources table, not an index table."""
        return self.code in _FROM_TABLE


class Registry:
    """Search parameters by resource type and code, plus the patient compartment."""

    def __init__(
        self,
        definitions: Definitions,
        ours: Mapping[str, list[dict[str, Any]]] | None = None,
    ) -> None:
        """``ours``: our own search parameters by type (``CareDefinitions.search_parameters``:
        their expressions name our extensions under the canonical base of this gateway)."""
        self.definitions = definitions
        self.by_type: dict[str, dict[str, SearchParam]] = {}
        ours = ours or {}
        for resource_type in definitions.served:
            params: dict[str, SearchParam] = {}
            official = definitions.search_parameters.get(resource_type, [])
            for raw in [*official, *ours.get(resource_type, [])]:
                param = self._compile(resource_type, raw)
                if param is not None:
                    params[param.code] = param
            self.by_type[resource_type] = params
        self.compartment: dict[str, tuple[str, ...]] = {
            t: tuple(codes) for t, codes in definitions.compartment.items()
        }
        #: where a resource of a compartment type may name a household (a Group) instead of
        #: a Patient: its compartment parameters and ``subject``. Such a resource lies in the
        #: compartment of every Patient member of that Group ("one household, one plan").
        self.household: dict[str, frozenset[str]] = {
            t: frozenset(codes) | ({"subject"} & set(self.by_type.get(t, {})))
            for t, codes in self.compartment.items()
            if t not in ("Patient", "Group") and t in self.by_type
        }

    def _compile(self, resource_type: str, raw: dict[str, Any]) -> SearchParam | None:
        if raw["type"] not in INDEXED_TYPES:
            return None
        components: tuple[tuple[str, RelativeEvaluator], ...] = ()
        if raw["type"] == "composite":
            found = self._components(resource_type, raw)
            if found is None:
                return None
            components = found
        return SearchParam(
            resource_type=resource_type,
            code=raw["code"],
            type=raw["type"],
            expression=raw["expression"],
            url=raw["url"],
            evaluate=compile_expression(self.definitions, resource_type, raw["expression"]),
            targets=tuple(raw.get("target", ())),
            components=components,
        )

    def _components(
        self, resource_type: str, raw: dict[str, Any]
    ) -> tuple[tuple[str, RelativeEvaluator], ...] | None:
        """A token and one more value, each with its relative evaluator; None otherwise."""
        by_url = {p["url"]: p for p in self.definitions.search_parameters.get(resource_type, [])}
        parts: list[tuple[str, RelativeEvaluator]] = []
        for component in raw.get("component", []):
            definition = by_url.get(component["definition"])
            evaluate = compile_relative(self.definitions, resource_type, component["expression"])
            if definition is None or evaluate is None or definition["type"] not in COMPONENT_TYPES:
                return None
            parts.append((definition["type"], evaluate))
        if len(parts) != 2 or parts[0][0] != "token":
            return None
        return tuple(parts)

    def get(self, resource_type: str, code: str) -> SearchParam | None:
        return self.by_type.get(resource_type, {}).get(code)

    def common(self, code: str) -> SearchParam | None:
        """A parameter every resource has (``_tag``, ``_profile``, ``_security``,
        ``_source``), for a search across all types; None for any other code."""
        if code not in COMMON_PARAMS:
            return None
        return next((p[code] for p in self.by_type.values() if code in p), None)

    def indexed(self, resource_type: str) -> list[SearchParam]:
        """The parameters whose values go into the index tables on write."""
        return [p for p in self.by_type.get(resource_type, {}).values() if not p.from_table]
