"""The definitions of the care mappings (code systems, value sets, profiles, operations, ...),
and the profile checker over them."""

from __future__ import annotations

import functools
from typing import Any

from mappings.care.base import DEFAULT_CANON, Canon, whole_value_set
from mappings.care.declarations import (
    declaration_code_systems,
    declaration_search_parameters,
    declaration_value_sets,
)
from mappings.care.omaha import omaha_code_systems, omaha_concept_map, omaha_value_sets
from mappings.care.operations import operation_definitions
from mappings.care.outcomes import outcome_measure
from mappings.care.plans import plan_code_systems
from mappings.care.profiles import structure_definitions
from mappings.care.summary import summary_code_systems
from mappings.care.visits import visit_code_systems
from mappings.care.zrm_codes import zrm_code_systems, zrm_questionnaires, zrm_value_sets
from mappings.core.errors import Issue
from mappings.core.profile import ProfileChecker
from mappings.nl.identifiers import naming_systems

__all__ = ["CareDefinitions", "definition_resources"]

PUBLISHED = "2026-11-22"


def definition_resources(canon: Canon = DEFAULT_CANON) -> list[dict[str, Any]]:
    """Every CodeSystem, ValueSet, ConceptMap, Questionnaire, NamingSystem and
    StructureDefinition of the project, ready to load into a gateway."""
    systems = [
        *zrm_code_systems(canon),
        *omaha_code_systems(canon),
        *plan_code_systems(canon),
        *visit_code_systems(canon),
        *declaration_code_systems(canon),
        *summary_code_systems(canon),
    ]
    value_sets = [
        *zrm_value_sets(canon),
        *omaha_value_sets(canon),
        *(
            whole_value_set(canon, name)
            for name in ("plan-kind", "activity-owner", "contact-mode", "funding-stream")
        ),
        *declaration_value_sets(canon),
        whole_value_set(canon, "summary-section"),
    ]
    for resource in [*systems, *value_sets]:
        resource.setdefault("date", PUBLISHED)
    return [
        *systems,
        *value_sets,
        omaha_concept_map(canon),
        *operation_definitions(canon, PUBLISHED),
        *declaration_search_parameters(canon),
        outcome_measure(canon, PUBLISHED),
        *zrm_questionnaires(canon),
        *naming_systems(PUBLISHED),
        *structure_definitions(canon),
    ]


class CareDefinitions:
    """The resources of one canonical base, indexed; checks resources against profiles."""

    def __init__(self, canon: Canon = DEFAULT_CANON) -> None:
        self.canon = canon
        self.resources = definition_resources(canon)
        self._code_systems = {
            r["url"]: r for r in self.resources if r["resourceType"] == "CodeSystem"
        }
        self._value_sets = {r["url"]: r for r in self.resources if r["resourceType"] == "ValueSet"}
        definitions = [r for r in self.resources if r["resourceType"] == "StructureDefinition"]
        #: our search parameters, by base type, in the shape of the vendored R4 ones
        self.search_parameters: dict[str, list[dict[str, Any]]] = {}
        for r in self.resources:
            if r["resourceType"] == "SearchParameter":
                for base in r["base"]:
                    self.search_parameters.setdefault(base, []).append(
                        {k: r[k] for k in ("code", "type", "expression", "url")}
                    )
        self.checker = ProfileChecker(definitions, self.expand)

    @functools.lru_cache(maxsize=64)  # noqa: B019 (one instance per process)
    def expand(self, url: str) -> frozenset[tuple[str, str]] | None:
        """The (system, code) pairs of one of our value sets; None if not ours."""
        valueset = self._value_sets.get(url.split("|", 1)[0])
        if valueset is None:
            return None
        found: set[tuple[str, str]] = set()
        for include in valueset["compose"]["include"]:
            system = include["system"]
            if "concept" in include:
                found.update((system, c["code"]) for c in include["concept"])
            elif system in self._code_systems:
                found.update(
                    (system, code) for code in _codes(self._code_systems[system]["concept"])
                )
        return frozenset(found)

    def knows(self, profile: str) -> bool:
        return self.checker.knows(profile)

    def check(self, resource: dict[str, Any], profile: str) -> list[Issue]:
        return self.checker.check(resource, profile)


def _codes(concepts: list[dict[str, Any]]) -> list[str]:
    found = []
    for concept in concepts:
        abstract = any(
            p.get("code") == "abstract" and p.get("valueBoolean")
            for p in concept.get("property", [])
        )
        if not abstract:
            found.append(concept["code"])
        found.extend(_codes(concept.get("concept", [])))
    return found
