"""How deep a resource may nest: one limit, enforced once, where a body is parsed.

FHIR itself sets no depth, but everything that walks a resource (the validator, the
profile checker, the XML codec, the JSON encoder of the store) has one, and a request must
never reach it. A JSON body may nest objects and arrays :data:`MAX_DEPTH` deep (a
QuestionnaireResponse's items nest some twenty levels within it); an XML body may nest
elements as deep. Deeper is a 400 naming the path where it went too deep.
"""

from __future__ import annotations

from typing import Any

__all__ = ["MAX_DEPTH", "too_deep"]

MAX_DEPTH = 100


def too_deep(value: Any, root: str = "$") -> str | None:
    """The path of the first container nested deeper than :data:`MAX_DEPTH` (None: none).

    Walks with an explicit stack, so that the check itself has no depth limit.
    """
    stack: list[tuple[Any, int, str]] = [(value, 1, root)]
    while stack:
        node, depth, path = stack.pop()
        if not isinstance(node, dict | list):
            continue
        if depth > MAX_DEPTH:
            return path
        if isinstance(node, dict):
            stack.extend((item, depth + 1, f"{path}.{key}") for key, item in node.items())
        else:
            stack.extend((item, depth + 1, f"{path}[{i}]") for i, item in enumerate(node))
    return None
