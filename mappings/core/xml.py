"""FHIR R4 XML <-> JSON, driven by the element definitions (FHIR R4 xml.html, json.html).

Parsing is hardened: no DTD, no entity expansion, no network, no huge trees, and a
document that declares a DOCTYPE is refused. Element order on output follows the
definitions, as the XML format requires; ids of elements and Extension.url are attributes.
"""

from __future__ import annotations

import re
from typing import Any

from lxml import etree

from mappings.core.definitions import Definitions, ElementDef, Node
from mappings.core.errors import Invalid
from mappings.core.limits import MAX_DEPTH
from mappings.core.uris import FHIR_NS, XHTML_NS

__all__ = ["XmlCodec"]

_F = f"{{{FHIR_NS}}}"
_PARSER = etree.XMLParser(
    resolve_entities=False,
    no_network=True,
    load_dtd=False,
    dtd_validation=False,
    huge_tree=False,
    remove_comments=True,
    remove_pis=True,
)


def parse_hardened(data: bytes) -> etree._Element:
    """Parse untrusted XML bytes; raise :class:`Invalid` on anything unsafe or malformed."""
    try:
        tree = etree.fromstring(data, _PARSER).getroottree()
    except etree.XMLSyntaxError as error:
        if "depth" in str(error).lower():  # libxml2's own limit, beyond ours
            raise Invalid(f"The body nests deeper than {MAX_DEPTH} elements") from None
        raise Invalid(f"XML is not well-formed (line {error.lineno})") from None
    if tree.docinfo.doctype:  # type: ignore[union-attr]
        raise Invalid("XML with a DOCTYPE is refused")
    return tree.getroot()


class XmlCodec:
    """Convert between the JSON form (dicts) and the XML form (bytes) of resources."""

    def __init__(self, definitions: Definitions) -> None:
        self.definitions = definitions

    # -- JSON -> XML -------------------------------------------------------------------

    def to_xml(self, resource: dict[str, Any], *, pretty: bool = False) -> bytes:
        root = self._resource_element(resource)
        return bytes(
            etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=pretty)
        )

    def _resource_element(self, resource: dict[str, Any]) -> etree._Element:
        resource_type = resource["resourceType"]
        root = etree.Element(_F + resource_type, nsmap={None: FHIR_NS})  # type: ignore[dict-item]
        self._write_children(root, resource, self.definitions.resources[resource_type])
        return root

    def _write_children(
        self,
        parent: etree._Element,
        obj: dict[str, Any],
        node: Node,
        attributes: tuple[str, ...] = (),
    ) -> None:
        for element in node.elements:
            if element.name in attributes:
                continue
            keys = (
                [element.name + t[0].upper() + t[1:] for t in element.types]
                if element.choice
                else [element.name]
            )
            for key in keys:
                if key in obj or f"_{key}" in obj:
                    self._write_key(parent, key, obj, element, node.keys[key][1])

    def _write_key(
        self,
        parent: etree._Element,
        key: str,
        obj: dict[str, Any],
        element: ElementDef,
        type_name: str,
    ) -> None:
        values = obj.get(key)
        extras = obj.get(f"_{key}")
        values = values if isinstance(values, list) else [values]
        extras = extras if isinstance(extras, list) else [extras] * len(values)
        if len(extras) > len(values):
            values = values + [None] * (len(extras) - len(values))
        for value, extra in zip(values, extras, strict=False):
            if value is None and extra is None:
                continue
            self._write_value(parent, key, value, extra, element, type_name)

    def _write_value(
        self,
        parent: etree._Element,
        key: str,
        value: Any,
        extra: Any,
        element: ElementDef,
        type_name: str,
    ) -> None:
        if type_name == "xhtml":
            parent.append(parse_hardened(value.encode("utf-8")))
            return
        child = etree.SubElement(parent, _F + key)
        if type_name in self.definitions.primitives:
            if extra and "id" in extra:
                child.set("id", extra["id"])
            if value is not None:
                child.set("value", _primitive_text(value))
            if extra:
                self._write_children(child, extra, self.definitions.types["Element"], ("id",))
        elif type_name == "Resource":
            child.append(self._resource_element(value))
        else:
            if "id" in value:
                child.set("id", value["id"])
            attributes: tuple[str, ...] = ("id",)
            if type_name == "Extension":
                child.set("url", value["url"])
                attributes = ("id", "url")
            node = element.node or self.definitions.types[type_name]
            self._write_children(child, value, node, attributes)

    # -- XML -> JSON -------------------------------------------------------------------

    def from_xml(self, data: bytes) -> dict[str, Any]:
        root = parse_hardened(data)
        deep = _too_deep(root)
        if deep is not None:
            raise Invalid(f"The body nests deeper than {MAX_DEPTH} elements", deep[:300])
        return self._read_resource(root)

    def _read_resource(self, element: etree._Element) -> dict[str, Any]:
        if not isinstance(element.tag, str) or not element.tag.startswith(_F):
            raise Invalid("The root element is not in the FHIR namespace")
        resource_type = element.tag[len(_F) :]
        node = self.definitions.resources.get(resource_type)
        if node is None:
            raise Invalid("Unknown resource type", "resourceType")
        result: dict[str, Any] = {"resourceType": resource_type}
        self._read_children(element, node, result, resource_type)
        return result

    def _read_children(
        self, parent: etree._Element, node: Node, out: dict[str, Any], path: str
    ) -> None:
        extras: dict[str, list[Any]] = {}
        for child in parent:
            if not isinstance(child.tag, str):
                continue
            if child.tag == f"{{{XHTML_NS}}}div" and "div" in node.keys:
                out["div"] = etree.tostring(child, encoding=str, with_tail=False)
                continue
            if not child.tag.startswith(_F):
                raise Invalid("Element outside the FHIR namespace", path)
            key = child.tag[len(_F) :]
            found = node.keys.get(key)
            if found is None:
                raise Invalid(f"Unknown element '{key}'", f"{path}.{key}")
            element, type_name = found
            value, extra = self._read_value(child, element, type_name, f"{path}.{key}")
            if element.many:
                out.setdefault(key, []).append(value)
                extras.setdefault(key, []).append(extra)
            elif key in out or key in extras:
                raise Invalid(f"Element '{key}' must not repeat", f"{path}.{key}")
            else:
                if value is not None:
                    out[key] = value
                if extra is not None:
                    extras[key] = [extra]
        for key, items in extras.items():
            if any(item is not None for item in items):
                out[f"_{key}"] = items if node.keys[key][0].many else items[0]
            if key in out and isinstance(out[key], list) and all(v is None for v in out[key]):
                del out[key]

    def _read_value(
        self, child: etree._Element, element: ElementDef, type_name: str, path: str
    ) -> tuple[Any, Any]:
        if type_name in self.definitions.primitives:
            extra: dict[str, Any] = {}
            if child.get("id") is not None:
                extra["id"] = child.get("id")
            self._read_children(child, self.definitions.types["Element"], extra, path)
            raw = child.get("value")
            value = None if raw is None else self._primitive_value(raw, type_name, path)
            return value, (extra or None)
        if type_name == "Resource":
            inner = [c for c in child if isinstance(c.tag, str)]
            if len(inner) != 1:
                raise Invalid("A resource element holds exactly one resource", path)
            return self._read_resource(inner[0]), None
        node = element.node or self.definitions.types.get(type_name)
        if node is None:
            raise Invalid(f"Unknown type {type_name}", path)
        complex_value: dict[str, Any] = {}
        if child.get("id") is not None:
            complex_value["id"] = child.get("id")
        if type_name == "Extension" and child.get("url") is not None:
            complex_value["url"] = child.get("url")
        self._read_children(child, node, complex_value, path)
        return complex_value, None

    def _primitive_value(self, raw: str, type_name: str, path: str) -> Any:
        kind = self.definitions.json_kind(type_name)
        try:
            if kind == "boolean":
                if raw not in ("true", "false"):
                    raise ValueError(raw)
                return raw == "true"
            if kind == "integer":
                return int(raw)
            if kind == "number":
                number = float(raw)
                return int(raw) if raw.lstrip("-").isdigit() else number
        except ValueError:
            raise Invalid(f"Not a valid {type_name}", path) from None
        return raw


def _too_deep(root: etree._Element) -> str | None:
    """The path of the first element nested deeper than the limit (an explicit stack)."""
    stack = [(root, 1)]
    while stack:
        element, depth = stack.pop()
        if depth > MAX_DEPTH:
            names = [e.tag.rpartition("}")[2] for e in element.iterancestors()]
            tag = element.tag.rpartition("}")[2] if isinstance(element.tag, str) else "?"
            return ".".join([*reversed(names), tag])
        stack.extend((child, depth + 1) for child in element)
    return None


#: characters XML 1.0 cannot carry (C0 controls but tab, CR, LF; lone surrogates; FFFE/FFFF)
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def _primitive_text(value: Any) -> str:
    """A primitive as XML text. Valid FHIR strings hold no character XML cannot carry; an
    OperationOutcome that quotes a request may, and shows U+FFFD in its place."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return _NOT_XML.sub("\ufffd", str(value))
