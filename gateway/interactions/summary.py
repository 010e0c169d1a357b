"""``_summary`` and ``_elements``: subsets of a resource (FHIR R4 search.html#summary).

A subsetted resource carries the SUBSETTED tag in meta.tag, as the spec requires.
"""

from __future__ import annotations

from typing import Any

from mappings.core.definitions import Definitions, Node
from mappings.core.uris import SUBSETTED

__all__ = ["subset"]

_ALWAYS = ("resourceType", "id", "meta")


def _keep(resource: dict[str, Any], names: set[str], node: Node) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in resource.items():
        bare = key.lstrip("_")
        element = node.keys.get(bare)
        name = element[0].name if element else bare
        if key in _ALWAYS or name in names:
            out[key] = value
    return out


def _summary_names(node: Node) -> set[str]:
    return {e.name for e in node.elements if e.summary or e.min > 0}


def subset(
    resource: dict[str, Any],
    definitions: Definitions,
    summary: str | None,
    elements: tuple[str, ...] | None,
) -> dict[str, Any]:
    """The subset of ``resource`` that ``_summary``/``_elements`` ask for (the same when none)."""
    node = definitions.resources.get(resource.get("resourceType", ""))
    if node is None or (summary in (None, "false") and not elements):
        return resource
    if summary == "data":
        out = {k: v for k, v in resource.items() if k != "text"}
    elif summary == "text":
        out = _keep(resource, {"text"} | {e.name for e in node.elements if e.min > 0}, node)
    elif summary == "true":
        out = _keep(resource, _summary_names(node), node)
    else:
        out = _keep(resource, set(elements or ()), node)
    meta = dict(out.get("meta") or {})
    tags = [t for t in meta.get("tag", []) if t.get("code") != "SUBSETTED"]
    meta["tag"] = [*tags, {"system": SUBSETTED, "code": "SUBSETTED"}]
    out["meta"] = meta
    return out
