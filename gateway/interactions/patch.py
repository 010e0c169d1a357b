"""JSON Patch (RFC 6902) on a resource, as FHIR R4 http.html#patch allows.

Operations add, remove, replace, move, copy and test, with JSON Pointers (RFC 6901).
The patched resource is validated like any other write; the id and resourceType cannot
be patched away. FHIRPath Patch is not supported (the CapabilityStatement says so).
"""

from __future__ import annotations

import copy
from typing import Any

from mappings.core.errors import Invalid, Unprocessable

__all__ = ["apply_patch"]


def _pointer(path: Any) -> list[str]:
    if not isinstance(path, str) or (path and not path.startswith("/")):
        raise Invalid("A JSON Patch path is a JSON Pointer such as /status", "path")
    if path == "":
        return []
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def _parent(document: Any, parts: list[str]) -> tuple[Any, str]:
    if not parts:
        raise Unprocessable("The patch cannot replace the whole resource")
    target = document
    for part in parts[:-1]:
        target = _child(target, part)
    return target, parts[-1]


def _child(container: Any, key: str) -> Any:
    try:
        if isinstance(container, list):
            return container[_index(key, len(container))]
        if isinstance(container, dict):
            return container[key]
    except (KeyError, IndexError, ValueError):
        pass
    raise Unprocessable(f"The patch path does not exist (at '{key}')")


def _get(document: Any, parts: list[str]) -> Any:
    target = document
    for part in parts:
        target = _child(target, part)
    return target


def _add(document: Any, parts: list[str], value: Any) -> None:
    container, key = _parent(document, parts)
    if isinstance(container, list):
        index = len(container) if key == "-" else _index(key, len(container) + 1)
        container.insert(index, value)
    elif isinstance(container, dict):
        container[key] = value
    else:
        raise Unprocessable("The patch path does not lead into an object or array")


def _remove(document: Any, parts: list[str]) -> Any:
    container, key = _parent(document, parts)
    if isinstance(container, list):
        return container.pop(_index(key, len(container)))
    if isinstance(container, dict) and key in container:
        return container.pop(key)
    raise Unprocessable("The patch removes something that is not there")


def _index(key: str, bound: int) -> int:
    """An array index of a JSON Pointer (RFC 6901): ASCII digits, no leading zero."""
    valid = key.isascii() and key.isdigit() and (key == "0" or not key.startswith("0"))
    if not valid or len(key) > 9 or int(key) >= bound:
        raise Unprocessable(f"Array index '{key[:20]}' is out of range")
    return int(key)


def _operation(document: Any, operation: Any) -> None:
    if not isinstance(operation, dict) or "op" not in operation:
        raise Invalid("Each JSON Patch operation is an object with 'op' and 'path'")
    op, parts = operation["op"], _pointer(operation.get("path"))
    if op in ("add", "replace", "test") and "value" not in operation:
        raise Invalid(f"JSON Patch '{op}' needs a value")
    if op == "add":
        _add(document, parts, copy.deepcopy(operation["value"]))
    elif op == "remove":
        _remove(document, parts)
    elif op == "replace":
        _remove(document, parts)
        _add(document, parts, copy.deepcopy(operation["value"]))
    elif op in ("move", "copy"):
        source = _pointer(operation.get("from"))
        value = _remove(document, source) if op == "move" else copy.deepcopy(_get(document, source))
        _add(document, parts, value)
    elif op == "test":
        if _get(document, parts) != operation["value"]:
            raise Unprocessable("JSON Patch test failed")
    else:
        raise Invalid(f"Unknown JSON Patch operation '{op}'")


def apply_patch(resource: dict[str, Any], patch: Any) -> dict[str, Any]:
    """``resource`` with ``patch`` (a JSON Patch document) applied; the input is not changed."""
    if not isinstance(patch, list):
        raise Invalid("A JSON Patch document is an array of operations")
    document = copy.deepcopy(resource)
    for operation in patch:
        _operation(document, operation)
    if not isinstance(document, dict):
        raise Unprocessable("The patch must leave a resource")
    if document.get("id") != resource.get("id") or (
        document.get("resourceType") != resource.get("resourceType")
    ):
        raise Unprocessable("A patch cannot change id or resourceType")
    return document
