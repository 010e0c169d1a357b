"""How deep a resource may nest: one limit, enforced once, where a body is parsed.

FHIR itself sets no depth, but everything that walks a resource (the validator, the
profile checker, the XML codec, the JSON encoder of the store) has one, and a request must
never reach it. A JSON body may nest objects and arrays :data:`MAX_DEPTH` deep (a
QuestionnaireResponse's items nest some twenty levels within it); an XML body may nest
elements as deep. Deeper is a 400 naming the path where it went too deep.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

__all__ = ["MAX_DEPTH", "Step", "containers", "path_of", "too_deep"]

MAX_DEPTH = 100


#: a container on a walk: (value, depth, the step of its parent, its key or index there)
Step = tuple[Any, int, "Step | None", str | int]


def too_deep(value: Any, root: str = "$") -> str | None:
    """The path of the first container nested deeper than :data:`MAX_DEPTH` (None: none).

    Walks with an explicit stack (:func:`containers`), so that the check itself has no
    depth limit; the path is spelled out only for the one that is too deep (a large body
    has tens of thousands of values, and this runs on every body).
    """
    return next((path_of(step) for step in containers(value, root) if step[1] > MAX_DEPTH), None)


def containers(value: Any, root: str = "$") -> Iterator[Step]:
    """Every object and array of ``value``, itself first (depth 1, named ``root``), in
    document order, each as a :data:`Step`: values that are neither are never visited, and
    nothing builds a path until :func:`path_of` is asked for one. The walk goes into an
    object or array only when the caller comes back for the next step."""
    if not isinstance(value, dict | list):
        return
    stack: list[Step] = [(value, 1, None, root)]
    while stack:
        step = stack.pop()
        yield step
        node, depth = step[0], step[1]
        if isinstance(node, dict):
            for key, item in reversed(node.items()):
                if isinstance(item, dict | list):
                    stack.append((item, depth + 1, step, key))
        else:
            for index in range(len(node) - 1, -1, -1):
                item = node[index]
                if isinstance(item, dict | list):
                    stack.append((item, depth + 1, step, index))


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
