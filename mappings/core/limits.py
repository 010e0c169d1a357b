"""How deep a resource may nest: one limit, enforced once, where a body is parsed.

FHIR itself sets no depth, but everything that walks a resource (the validator, the
profile checker, the XML codec, the JSON encoder of the store) has one, and a request must
never reach it. A JSON body may nest objects and arrays :data:`MAX_DEPTH` deep (a
QuestionnaireResponse's items nest some twenty levels within it); an XML body may nest
elements as deep. Deeper is a 400 naming the path where it went too deep.
"""

from __future__ import annotations

from typing import Any

__all__ = ["MAX_DEPTH", "Step", "path_of", "too_deep"]

MAX_DEPTH = 100


#: a container on a walk: (value, depth, the step of its parent, its key or index there)
Step = tuple[Any, int, "Step | None", str | int]


def too_deep(value: Any, root: str = "$") -> str | None:
    """The path of the first container nested deeper than :data:`MAX_DEPTH` (None: none).

    Walks with an explicit stack, so that the check itself has no depth limit; only
    containers go on it, and the path is spelled out only for the one that is too deep
    (a large body has tens of thousands of values, and this runs on every body).
    """
    if not isinstance(value, dict | list):
        return None
    stack: list[Step] = [(value, 1, None, root)]
    while stack:
        step = stack.pop()
        node, depth = step[0], step[1]
        if depth > MAX_DEPTH:
            return path_of(step)
        items = node.items() if isinstance(node, dict) else enumerate(node)
        for key, item in items:
            if isinstance(item, dict | list):
                stack.append((item, depth + 1, step, key))
    return None


def path_of(step: Step) -> str:
    """The path of a step: its parent's, then ``.key`` or ``[index]``."""
    parts: list[str] = []
    current: Step | None = step
    while current is not None:
        _, _, parent, key = current
        if parent is None:
            parts.append(str(key))  # the root's name
        else:
            parts.append(f"[{key}]" if isinstance(key, int) else f".{key}")
        current = parent
    return "".join(reversed(parts))
