"""Check a resource against a profile's differential (StructureDefinition, constraint).

What a differential of ours says, and what is checked: cardinality of each element per
parent (``min``/``max``), extension slices by their URL, the allowed types of a choice
element, reference targets (``targetProfile`` of the base resource types), ``fixed[x]``
(equal), ``pattern[x]`` (contained), ``minValue[x]``/``maxValue[x]`` (bounds of a number,
date or quantity value), and required bindings (at least one coding in
the value set, none from its systems outside it). Each extension whose definition is
known is checked the same way wherever it occurs. The base specification is checked
separately (:mod:`mappings.core.validate`); this adds what the profile adds.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

from mappings.core.errors import Issue

__all__ = ["ProfileChecker"]

_CORE_SD = "http://hl7.org/fhir/StructureDefinition/"

#: value set URL -> {(system, code)} or None when unknown
Expand = Callable[[str], frozenset[tuple[str, str]] | None]


class ProfileChecker:
    """Profiles and extension definitions by URL, and the value sets they bind to."""

    def __init__(self, definitions: Iterable[dict[str, Any]], expand: Expand) -> None:
        self.definitions = {sd["url"]: sd for sd in definitions}
        self.expand = expand

    def knows(self, url: str) -> bool:
        return url in self.definitions and self.definitions[url].get("type") != "Extension"

    def check(self, resource: dict[str, Any], url: str) -> list[Issue]:
        """Every way ``resource`` departs from the profile ``url`` (which must be known)."""
        definition = self.definitions[url]
        issues: list[Issue] = []
        if resource.get("resourceType") != definition["type"]:
            return [_issue(f"The profile is for {definition['type']}", "resourceType")]
        self._differential(resource, definition, definition["type"], issues)
        for extension, where in _extensions(resource, definition["type"]):
            known = self.definitions.get(str(extension.get("url")))
            if known is not None and known.get("type") == "Extension":
                self._differential(extension, known, where, issues)
        return issues

    def _differential(
        self, root: dict[str, Any], definition: dict[str, Any], name: str, issues: list[Issue]
    ) -> None:
        for element in definition["differential"]["element"]:
            parts = element["path"].split(".")[1:]
            if not parts:
                continue
            slice_url = None
            if element.get("sliceName") and parts[-1] in ("extension", "modifierExtension"):
                slice_url = element["type"][0]["profile"][0]
            for parent, where in _nodes(root, name, parts[:-1]):
                children = list(_children(parent, parts[-1], where))
                if slice_url is not None:
                    children = [c for c in children if c[0].get("url") == slice_url]
                    label = f"{where}.{parts[-1]}('{slice_url}')"
                else:
                    label = f"{where}.{parts[-1]}"
                self._cardinality(element, len(children), label, issues)
                for value, key, at in children:
                    self._value(element, value, key, parts[-1], at, issues)

    @staticmethod
    def _cardinality(element: dict[str, Any], count: int, label: str, issues: list[Issue]) -> None:
        least = element.get("min")
        most = element.get("max")
        if least is not None and count < least:
            issues.append(_issue(f"At least {least} required by the profile", label))
        if most not in (None, "*") and count > int(most):
            issues.append(_issue(f"At most {most} allowed by the profile", label))

    def _value(
        self, element: dict[str, Any], value: Any, key: str, name: str, at: str, issues: list[Issue]
    ) -> None:
        types = element.get("type") or []
        if name.endswith("[x]") and types:
            allowed = {name[:-3] + t["code"][0].upper() + t["code"][1:] for t in types}
            if key not in allowed:
                issues.append(_issue(f"The profile allows {', '.join(sorted(allowed))}", at))
                return
        targets = [
            p for t in types if t.get("code") == "Reference" for p in t.get("targetProfile", [])
        ]
        if targets and isinstance(value, dict):
            allowed_types = {p.removeprefix(_CORE_SD) for p in targets}
            reference = value.get("reference")
            if not isinstance(reference, str) or reference.split("/", 1)[0] not in allowed_types:
                issues.append(
                    _issue(f"The reference must be to {' or '.join(sorted(allowed_types))}", at)
                )
        for field, expected in element.items():
            if field.startswith("fixed") and value != expected:
                issues.append(_issue(f"The profile fixes this value to {expected!r:.80}", at))
            if field.startswith("pattern") and not _contains(value, expected):
                issues.append(_issue(f"The profile requires {expected!r:.120}", at))
            if field.startswith(("minValue", "maxValue")):
                _bound(field, expected, value, at, issues)
        binding = element.get("binding")
        if binding and binding.get("strength") == "required":
            self._binding(binding["valueSet"], value, at, issues)

    def _binding(self, valueset: str, value: Any, at: str, issues: list[Issue]) -> None:
        codes = self.expand(valueset)
        if codes is None:
            return
        systems = {system for system, _ in codes}
        if isinstance(value, str):
            if not any(code == value for _, code in codes):
                issues.append(_issue(f"The code is not in the value set {valueset}", at))
            return
        if not isinstance(value, dict):
            return
        codings = [value] if "coding" not in value else value.get("coding", [])
        pairs = [
            (c.get("system"), c.get("code"))
            for c in codings
            if isinstance(c, dict)
            and isinstance(c.get("system"), str | None)
            and isinstance(c.get("code"), str | None)
        ]
        inside = [p for p in pairs if p in codes]
        stray = [p for p in pairs if p[0] in systems and p not in codes]
        if not inside or stray:
            issues.append(_issue(f"A code from the value set {valueset} is required", at))


def _nodes(root: Any, name: str, parts: list[str]) -> Iterator[tuple[dict[str, Any], str]]:
    """The objects at ``parts`` below ``root``, with their FHIRPath."""
    if not parts:
        if isinstance(root, dict):
            yield root, name
        return
    for value, _, where in _children(root, parts[0], name):
        yield from _nodes(value, where, parts[1:])


def _children(parent: Any, part: str, where: str) -> Iterator[tuple[Any, str, str]]:
    """(value, JSON key, FHIRPath) of each value of element ``part`` in ``parent``."""
    if not isinstance(parent, dict):
        return
    if part.endswith("[x]"):
        stem = part[:-3]
        keys = [k for k in parent if k.startswith(stem) and k[len(stem) : len(stem) + 1].isupper()]
    else:
        keys = [part] if part in parent else []
    for key in keys:
        value = parent[key]
        if isinstance(value, list):
            for index, item in enumerate(value):
                yield item, key, f"{where}.{key}[{index}]"
        else:
            yield value, key, f"{where}.{key}"


def _extensions(value: Any, where: str) -> Iterator[tuple[dict[str, Any], str]]:
    """Every extension anywhere in ``value``."""
    if isinstance(value, dict):
        for key, item in value.items():
            if key in ("extension", "modifierExtension") and isinstance(item, list):
                for index, extension in enumerate(item):
                    if isinstance(extension, dict):
                        yield extension, f"{where}.{key}[{index}]"
            yield from _extensions(item, f"{where}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _extensions(item, f"{where}[{index}]")


def _contains(value: Any, pattern: Any) -> bool:
    """FHIR pattern matching: every part of the pattern is in the value."""
    if isinstance(pattern, dict):
        return isinstance(value, dict) and all(
            key in value and _contains(value[key], part) for key, part in pattern.items()
        )
    if isinstance(pattern, list):
        return isinstance(value, list) and all(
            any(_contains(item, part) for item in value) for part in pattern
        )
    return bool(value == pattern)


def _bound(field: str, bound: Any, value: Any, at: str, issues: list[Issue]) -> None:
    """``minValue[x]``/``maxValue[x]``: a number, a date (ISO strings compare in order when
    of the same precision) or a Quantity's value; a value of another shape is the base
    validator's concern."""
    if isinstance(value, dict) and isinstance(bound, dict):
        value, bound = value.get("value"), bound.get("value")
    comparable = (isinstance(value, int | float) and isinstance(bound, int | float)) or (
        isinstance(value, str) and isinstance(bound, str) and len(value) == len(bound)
    )
    if not comparable or isinstance(value, bool):
        return
    if field.startswith("minValue") and value < bound:
        issues.append(_issue(f"The profile requires at least {bound}", at))
    if field.startswith("maxValue") and value > bound:
        issues.append(_issue(f"The profile allows at most {bound}", at))


def _issue(message: str, expression: str) -> Issue:
    return Issue("error", "invariant", message, (expression,))
