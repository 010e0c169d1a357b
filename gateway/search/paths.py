"""Evaluate SearchParameter expressions into typed values.

The official R4 expressions are FHIRPath. Most are plain paths (``Observation.subject``),
sometimes with a type cast (``(Observation.value as Quantity)``), a reference-type filter
(``.where(resolve() is Patient)``, which fhirpathpy cannot evaluate: it has no resolve()),
or a field filter (``.where(system='email')``). Those compile here into steps over the
JSON, driven by the element definitions, so every value comes out with its FHIR type and
indexing costs microseconds. Anything else falls back to fhirpathpy, with the value's type
inferred from its shape.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from mappings.core.definitions import Definitions, Node

__all__ = [
    "RelativeEvaluator",
    "Typed",
    "compile_expression",
    "compile_relative",
    "compares_values",
    "first_keys",
    "split_by_key",
    "split_by_second_key",
]


@dataclass(frozen=True, slots=True)
class Typed:
    """A value found by an expression, with its FHIR type name."""

    value: Any
    type: str


Evaluator = Callable[[dict[str, Any]], list[Typed]]
RelativeEvaluator = Callable[[list[Typed]], list[Typed]]
_ROOT = "Root"
_Step = tuple[str, str | tuple[str, str] | None]

_TOKEN = re.compile(
    r"\s*(?:(?P<as>as)\s+(?P<astype>[A-Za-z]+)"
    r"|\.where\(resolve\(\)\s+is\s+(?P<resolve>[A-Za-z]+)\)"
    r"|\.where\((?P<field>[A-Za-z]+)\s*=\s*'(?P<literal>[^']*)'\)"
    r"|\.where\(hasExtension\('(?P<hasext>[^']+)'\)\)"
    r"|\.(?:as|ofType)\((?P<cast>[A-Za-z]+)\)"
    r"|\.extension\('(?P<ext>[^']+)'\)"
    r"|\.(?P<name>[A-Za-z]+))"
)


def _parse_branch(branch: str, resource_type: str) -> list[_Step] | None:
    text = branch.strip()
    steps: list[_Step] = []
    if text.startswith("("):
        close = _matching_paren(text)
        inner = _parse_branch(text[1:close], resource_type) if close > 0 else None
        if inner is None:
            return None
        steps, text = inner, text[close + 1 :]
    elif text.startswith(resource_type):
        text = text[len(resource_type) :]
    else:
        return None
    position = 0
    while position < len(text):
        match = _TOKEN.match(text, position)
        if match is None:
            return None
        position = match.end()
        if match["as"]:
            steps.append(("cast", match["astype"]))
        elif match["resolve"]:
            steps.append(("resolve", match["resolve"]))
        elif match["field"]:
            steps.append(("where", (match["field"], match["literal"])))
        elif match["hasext"]:
            steps.append(("has-extension", match["hasext"]))
        elif match["cast"]:
            steps.append(("cast", match["cast"]))
        elif match["ext"]:
            steps.append(("extension", match["ext"]))
        else:
            steps.append(("name", match["name"]))
    return steps


def _matching_paren(text: str) -> int:
    depth = 0
    for index, char in enumerate(text):
        depth += (char == "(") - (char == ")")
        if depth == 0:
            return index
    return -1


def _split(expression: str) -> list[str]:
    parts, depth, current = [], 0, ""
    for char in expression:
        depth += (char == "(") - (char == ")")
        if char == "|" and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += char
    return [p.strip() for p in [*parts, current] if p.strip()]


class _PathEvaluator:
    def __init__(
        self, definitions: Definitions, resource_type: str, branches: list[list[_Step]]
    ) -> None:
        self.definitions = definitions
        self.resource_type = resource_type
        self.branches = branches

    def __call__(self, resource: dict[str, Any]) -> list[Typed]:
        return self.from_items([Typed(resource, self.resource_type)])

    def from_items(self, start: list[Typed]) -> list[Typed]:
        """The expression's values, starting from ``start`` instead of the resource."""
        out: list[Typed] = []
        for steps in self.branches:
            items = list(start)
            for kind, argument in steps:
                items = self._step(items, kind, argument)
                if not items:
                    break
            out.extend(items)
        return out

    def by_key(self) -> dict[str, Evaluator] | None:
        """The expression split by the resource's top-level JSON key each branch starts
        from (a choice element has a key per type): evaluated on a resource holding only
        that key, each part gives exactly the values the whole expression takes from it,
        item by item of an array, since every step maps items one by one. None when a
        branch does not start with an element of the resource."""
        node = self.definitions.resources.get(self.resource_type)
        if node is None:
            return None
        parts: dict[str, list[list[_Step]]] = {}
        for steps in self.branches:
            if not steps or steps[0][0] != "name":
                return None
            name = steps[0][1]
            keys = [key for key, _, _ in node.by_name.get(str(name), ())]
            for key in keys:
                parts.setdefault(key, []).append(steps)
        return {
            key: _PathEvaluator(self.definitions, self.resource_type, branches)
            for key, branches in parts.items()
        }

    def by_second_key(self, key: str) -> dict[str, Evaluator] | None:
        """This part of the expression (every branch starts at the top-level ``key``, see
        :meth:`by_key`) split again by the key of that element each branch reads next:
        evaluated on a resource whose ``key`` holds only that one entry, each part gives
        exactly the values the whole expression takes from it. None when a branch does
        anything but name a child there (a ``where`` on the element, a cast, an
        extension: those look at the element as a whole)."""
        node = self.definitions.resources.get(self.resource_type)
        if node is None:
            return None
        parts: dict[str, list[list[_Step]]] = {}
        for steps in self.branches:
            if len(steps) < 2 or steps[0][0] != "name" or steps[1][0] != "name":
                return None
            found = [e for e in node.by_name.get(str(steps[0][1]), ()) if e[0] == key]
            if not found:
                return None
            _, element, type_name = found[0]
            child = (
                element.node if element.node is not None else self.definitions.types.get(type_name)
            )
            if child is None:
                return None
            for sub, _, _ in child.by_name.get(str(steps[1][1]), ()):
                parts.setdefault(sub, []).append(steps)
        return {
            sub: _PathEvaluator(self.definitions, self.resource_type, branches)
            for sub, branches in parts.items()
        }

    def first_keys(self) -> list[frozenset[str] | None]:
        """Per branch, the resource's top-level keys the branch starts from: on a resource
        that holds none of them the branch gives nothing. A choice element named and cast
        at once (``value.as(Quantity)``) starts from the keys of that type only. An empty
        set for a branch that is the resource itself; None where it cannot be told."""
        node = self.definitions.resources.get(self.resource_type)
        out: list[frozenset[str] | None] = []
        for steps in self.branches:
            if not steps:
                out.append(frozenset())
            elif steps[0][0] == "extension":
                out.append(frozenset({"extension"}))
            elif steps[0][0] != "name" or node is None:
                out.append(None)
            else:
                cast = steps[1][1] if len(steps) > 1 and steps[1][0] == "cast" else None
                out.append(
                    frozenset(
                        key
                        for key, element, type_name in node.by_name.get(str(steps[0][1]), ())
                        if cast is None or _cast_keeps(_item_type(element, type_name), cast)
                    )
                )
        return out

    def _step(self, items: list[Typed], kind: str, argument: Any) -> list[Typed]:
        if kind == "cast":
            return [i for i in items if _cast_keeps(i.type, argument)]
        if kind == "resolve":
            return [i for i in items if _reference_type(i.value) in (argument, None)]
        if kind == "where":
            field, literal = argument
            return [i for i in items if isinstance(i.value, dict) and i.value.get(field) == literal]
        if kind == "has-extension":
            return [
                i
                for i in items
                if isinstance(i.value, dict)
                and any(e.get("url") == argument for e in i.value.get("extension", []))
            ]
        if kind == "extension":
            return [
                Typed(e, "Extension")
                for i in items
                if isinstance(i.value, dict)
                for e in i.value.get("extension", [])
                if e.get("url") == argument
            ]
        return self._child(items, argument)

    def _child(self, items: list[Typed], name: str) -> list[Typed]:
        out: list[Typed] = []
        for item in items:
            if not isinstance(item.value, dict):
                continue
            node = self._lookup_node(item)
            if node is None:
                continue
            for key, element, type_name in node.by_name.get(name, ()):
                raw = item.value.get(key)
                if raw is None:
                    continue
                for value in raw if isinstance(raw, list) else [raw]:
                    if value is None:
                        continue
                    if element.node is not None:
                        out.append(_Nested(value, "BackboneElement", element.node))
                    else:
                        out.append(Typed(value, type_name))
        return out

    def _lookup_node(self, item: Typed) -> Node | None:
        if isinstance(item, _Nested):
            return item.node
        if item.type == self.resource_type:
            return self.definitions.resources[self.resource_type]
        return self.definitions.types.get(item.type)


def _item_type(element: Any, type_name: str) -> str:
    """The type of the items an element gives (see ``_PathEvaluator._child``)."""
    return "BackboneElement" if element.node is not None else type_name


def _cast_keeps(type_name: str, argument: Any) -> bool:
    """Whether ``as(argument)`` / ``ofType(argument)`` keeps an item of ``type_name``."""
    return type_name.lower() == str(argument).lower() or (
        argument == "Quantity"
        and type_name in ("Age", "Duration", "Count", "Distance", "SimpleQuantity")
    )


@dataclass(frozen=True, slots=True)
class _Nested(Typed):
    """A BackboneElement value: its node comes from the resource's own definition."""

    node: Node


def _reference_type(value: Any) -> str | None:
    if not isinstance(value, dict):
        return None
    reference = value.get("reference")
    if isinstance(reference, str) and "/" in reference and not reference.startswith("#"):
        parts = reference.split("/")
        if "_history" in parts:
            parts = parts[: parts.index("_history")]
        return parts[-2] if len(parts) >= 2 else None
    declared = value.get("type")
    return declared if isinstance(declared, str) else None


def _infer_type(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "decimal"
    if isinstance(value, str):
        return "string"
    if isinstance(value, dict):
        if "coding" in value or ("text" in value and len(value) == 1):
            return "CodeableConcept"
        if "reference" in value or ("identifier" in value and "display" in value):
            return "Reference"
        if "start" in value or "end" in value:
            return "Period"
        if "value" in value and ("unit" in value or "code" in value):
            return "Quantity"
        if "code" in value:
            return "Coding"
        if "value" in value:
            return "Identifier"
    return "unknown"


def _fhirpath_evaluator(expression: str, resource_type: str) -> Evaluator:
    import fhirpathpy  # noqa: PLC0415  (only for the rare expression we cannot compile)
    from fhirpathpy.models import models  # noqa: PLC0415

    compiled = fhirpathpy.compile(expression, models["r4"])

    def evaluate(resource: dict[str, Any]) -> list[Typed]:
        values = compiled(resource, {})
        return [Typed(v, _infer_type(v)) for v in values if v is not None]

    return evaluate


def compile_expression(definitions: Definitions, resource_type: str, expression: str) -> Evaluator:
    """A function that evaluates ``expression`` on a resource of ``resource_type``."""
    branches = [_parse_branch(b, resource_type) for b in _split(expression)]
    if all(b is not None for b in branches):
        return _PathEvaluator(definitions, resource_type, [b for b in branches if b is not None])
    return _fhirpath_evaluator(expression, resource_type)


def split_by_key(evaluate: Evaluator) -> dict[str, Evaluator] | None:
    """``evaluate`` split by the top-level key it reads (see ``_PathEvaluator.by_key``);
    None for an expression that is not a plain path (fhirpathpy evaluates it whole)."""
    return evaluate.by_key() if isinstance(evaluate, _PathEvaluator) else None


def compares_values(evaluate: Evaluator) -> bool:
    """Whether ``evaluate`` may look at a value's content, not only at which elements
    there are and their types: a ``where`` compares a field with a literal, and an
    expression that is not a plain path may do anything. One that does not gives, for a
    reference, the same values whatever its id (``resolve() is X`` reads only the type)."""
    if not isinstance(evaluate, _PathEvaluator):
        return True
    return any(kind == "where" for steps in evaluate.branches for kind, _ in steps)


def split_by_second_key(evaluate: Evaluator, key: str) -> dict[str, Evaluator] | None:
    """A part of :func:`split_by_key` (the one for ``key``) split by the key of that
    element it reads next (see ``_PathEvaluator.by_second_key``); None when it cannot be."""
    return evaluate.by_second_key(key) if isinstance(evaluate, _PathEvaluator) else None


def first_keys(evaluate: Evaluator | RelativeEvaluator) -> list[frozenset[str] | None] | None:
    """Per branch, the top-level keys of the resource ``evaluate`` starts from (see
    ``_PathEvaluator.first_keys``; a relative evaluator applied to the resource itself);
    None for an expression that is not a plain path."""
    evaluator = getattr(evaluate, "__self__", evaluate)
    return evaluator.first_keys() if isinstance(evaluator, _PathEvaluator) else None


def compile_relative(
    definitions: Definitions, resource_type: str, expression: str
) -> RelativeEvaluator | None:
    """An evaluator of ``expression`` relative to given items (a composite's component),
    or None when the expression is not a plain path."""
    branches = [_parse_branch(f"{_ROOT}.{b}", _ROOT) for b in _split(expression)]
    if any(b is None for b in branches):
        return None
    evaluator = _PathEvaluator(definitions, resource_type, [b for b in branches if b is not None])
    return evaluator.from_items
