"""Validate FHIR R4 JSON against the official definitions.

Checks what FHIR R4 ``validation.html`` lists for a base-spec validator, from the vendored
StructureDefinitions: known elements only, cardinality (min and JSON array vs. single),
types and the primitive regexes, no empty objects/arrays/strings, narrative XHTML as
narrative.html allows it (an allow-list of elements and attributes, no active content:
txt-1, txt-2), reference format, and **required value-set bindings** (which the fhir.resources
models do not check). Each fault is an :class:`Issue` whose ``expression`` is the FHIRPath
of the element, e.g. ``Observation.component[1].code``.
"""

from __future__ import annotations

import re
from typing import Any

import orjson
from lxml import etree

from mappings.core.definitions import Definitions, ElementDef, Node
from mappings.core.errors import Issue
from mappings.core.uris import XHTML_NS

__all__ = ["REFERENCE_FORMAT", "Validator", "narrative_problem"]

REFERENCE_FORMAT = re.compile(
    r"^(#.*|urn:(uuid|oid):\S+|[A-Za-z][A-Za-z0-9]+/[A-Za-z0-9\-.]{1,64}"
    r"(/_history/[A-Za-z0-9\-.]{1,64})?|[a-z][a-z0-9+.\-]*:\S+)$"
)
_INT32 = (-(2**31), 2**31 - 1)
#: a top-level element's JSON up to this size is remembered once it validated (larger
#: ones rarely repeat); at most this many are remembered, then the memory starts afresh
_MEMO_BYTES = 2048
_MEMO_SIZE = 16384
_XHTML_PARSER = etree.XMLParser(
    resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False
)
#: R4 narrative (narrative.html, invariant txt-1): the basic HTML formatting elements, links,
#: images, tables; nothing that runs, embeds, submits or loads.
_ELEMENTS = frozenset(
    """a abbr acronym address area b bdo big blockquote br caption cite code col colgroup dd
    del dfn div dl dt em h1 h2 h3 h4 h5 h6 hr i img ins kbd li map ol p pre q s samp small
    span strike strong sub sup table tbody td tfoot th thead tr tt u ul var""".split()  # noqa: SIM905
)
_ATTRIBUTES = frozenset(
    """id class style title lang dir accesskey tabindex href name rel rev hreflang type shape
    coords src alt width height longdesc usemap ismap border align valign hspace vspace
    rowspan colspan headers scope abbr axis char charoff span summary frame rules cellpadding
    cellspacing nowrap bgcolor start value compact cite datetime clear""".split()  # noqa: SIM905
)
_XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"
_URL_ATTRIBUTES = frozenset({"href", "src", "longdesc", "usemap", "cite"})
_SAFE_SCHEMES = re.compile(r"^(https?:|ftp:|mailto:|tel:|urn:|#|/|\./|\.\./|[^:]*$)", re.I)
_ACTIVE_STYLE = re.compile(
    r"expression\s*\(|javascript:|vbscript:|@import|behavio(u)?r\s*:|-moz-binding", re.I
)
_STYLE_URL = re.compile(r"url\s*\(\s*['\"]?([^)'\"]*)", re.I)


class Validator:
    """A base-spec validator bound to one set of definitions."""

    def __init__(self, definitions: Definitions) -> None:
        self.definitions = definitions
        #: (resource type, key, JSON) of top-level elements that validated without a fault:
        #: an element's faults depend on its own value only (its path aside), and the
        #: codes, categories and subjects of one kind of resource repeat from write to write
        self._valid: set[tuple[str, str, bytes]] = set()

    def validate(self, resource: Any, *, served_only: bool = True) -> list[Issue]:
        """All faults of ``resource``; an empty list means valid."""
        issues: list[Issue] = []
        self._resource(resource, "", issues, served_only=served_only)
        return issues

    # -- resources and objects ------------------------------------------------------

    def _resource(self, value: Any, prefix: str, issues: list[Issue], *, served_only: bool) -> None:
        if not isinstance(value, dict):
            issues.append(_error("invalid", "A resource must be a JSON object", prefix or "$"))
            return
        resource_type = value.get("resourceType")
        node = (
            self.definitions.resources.get(resource_type)
            if isinstance(resource_type, str)
            else None
        )
        if node is None or (
            served_only and resource_type not in self.definitions.served and prefix == ""
        ):
            where = f"{prefix}.resourceType" if prefix else "resourceType"
            issues.append(_error("not-supported", "Unknown or unsupported resourceType", where))
            return
        path = prefix or str(resource_type)
        self._object(value, node, path, issues, root=True, memo=not prefix)
        resource_id = value.get("id")
        # R4 types Resource.id as a plain string in the snapshot; it is an `id` all the same
        if isinstance(resource_id, str) and not self.definitions.primitives["id"].fullmatch(
            resource_id
        ):
            issues.append(_error("value", "Not a valid resource id", f"{path}.id"))

    def _object(
        self,
        value: dict[str, Any],
        node: Node,
        path: str,
        issues: list[Issue],
        *,
        root: bool = False,
        memo: bool = False,
    ) -> None:
        if not value:
            issues.append(_error("invalid", "An object must not be empty", path))
            return
        for key, item in value.items():
            if root and key == "resourceType":
                continue
            if memo and isinstance(item, dict | list) and "_" + key not in value:
                self._remembered_member(value, key, item, node, path, issues)
            else:
                self._member(value, key, item, node, path, issues)
        for element in node.elements:
            if element.min > 0 and not _present(value, element):
                issues.append(
                    _error(
                        "required",
                        f"Missing required element '{element.name}'",
                        f"{path}.{element.name}",
                    )
                )

    def _remembered_member(
        self, owner: dict[str, Any], key: str, item: Any, node: Node, path: str, issues: list[Issue]
    ) -> None:
        """A top-level element (an object or array, no ``_`` sibling) as :meth:`_member`
        checks it, skipped when the same JSON under the same key of the same resource type
        validated before; only an element without faults is remembered."""
        try:
            blob = orjson.dumps(item)
        except (orjson.JSONEncodeError, TypeError):
            blob = b""
        if not blob or len(blob) > _MEMO_BYTES:
            self._member(owner, key, item, node, path, issues)
            return
        remembered = (path, key, blob)
        if remembered in self._valid:
            return
        before = len(issues)
        self._member(owner, key, item, node, path, issues)
        if len(issues) == before:
            if len(self._valid) >= _MEMO_SIZE:
                self._valid.clear()
            self._valid.add(remembered)

    def _member(
        self, owner: dict[str, Any], key: str, item: Any, node: Node, path: str, issues: list[Issue]
    ) -> None:
        extension_of = key[1:] if key.startswith("_") else None
        found = node.keys.get(extension_of or key)
        if found is None:
            issues.append(_error("structure", f"Unknown element '{key}'", f"{path}.{key}"))
            return
        element, type_name = found
        where = f"{path}.{element.name}"
        if element.many != isinstance(item, list):
            message = "must be an array" if element.many else "must not be an array"
            issues.append(_error("structure", f"Element '{key}' {message}", where))
            return
        items = item if isinstance(item, list) else [item]
        if not items:
            issues.append(_error("invalid", "An array must not be empty", where))
            return
        if extension_of is not None:
            self._primitive_extensions(items, element, type_name, where, issues)
            return
        paired = owner.get("_" + key)
        for index, entry in enumerate(items):
            at = f"{where}[{index}]" if element.many else where
            if entry is None:
                if not (isinstance(paired, list) and index < len(paired) and paired[index]):
                    issues.append(_error("invalid", "null only where an extension stands", at))
                continue
            self._value(entry, element, type_name, at, issues)

    def _primitive_extensions(
        self, items: list[Any], element: ElementDef, type_name: str, where: str, issues: list[Issue]
    ) -> None:
        if not self.definitions.is_primitive(type_name):
            issues.append(_error("structure", "Only primitives take a '_' element", where))
            return
        element_node = self.definitions.types["Element"]
        for entry in items:
            if entry is None:
                continue
            if not isinstance(entry, dict):
                issues.append(_error("structure", "A '_' element must be an object", where))
                continue
            self._object(entry, element_node, where, issues)

    # -- values -------------------------------------------------------------------------

    def _value(
        self, value: Any, element: ElementDef, type_name: str, path: str, issues: list[Issue]
    ) -> None:
        if type_name == "xhtml":
            self._xhtml(value, path, issues)
        elif type_name in self.definitions.primitives:
            self._primitive(value, element, type_name, path, issues)
        elif type_name == "Resource":
            self._resource(value, path, issues, served_only=False)
        elif not isinstance(value, dict):
            issues.append(_error("structure", f"Expected a {type_name} object", path))
        elif element.node is not None:
            self._object(value, element.node, path, issues)
        else:
            node = self.definitions.types.get(type_name)
            if node is None:
                issues.append(_error("structure", f"Unknown type {type_name}", path))
                return
            self._object(value, node, path, issues)
            self._complex_rules(value, element, type_name, path, issues)

    def _primitive(
        self, value: Any, element: ElementDef, type_name: str, path: str, issues: list[Issue]
    ) -> None:
        kind = self.definitions.json_kind(type_name)
        if kind == "string":
            ok = isinstance(value, str)
        elif kind == "boolean":
            ok = isinstance(value, bool)
        elif kind == "integer":
            ok = isinstance(value, int) and not isinstance(value, bool)
        else:  # number
            ok = isinstance(value, int | float) and not isinstance(value, bool)
        if not ok:
            issues.append(_error("structure", f"Expected a JSON {kind} ({type_name})", path))
            return
        if kind == "integer" and not _INT32[0] <= value <= _INT32[1]:
            issues.append(_error("value", "Integer out of range", path))
        elif type_name == "positiveInt" and value < 1:
            issues.append(_error("value", "positiveInt must be 1 or more", path))
        elif type_name == "unsignedInt" and value < 0:
            issues.append(_error("value", "unsignedInt must be 0 or more", path))
        elif kind == "string":
            if not value.strip(" \t\r\n"):  # XML whitespace, as the spec regexes mean it
                issues.append(_error("value", "A string must not be empty or blank", path))
            elif not self.definitions.primitives[type_name].fullmatch(value):
                issues.append(_error("value", f"Not a valid {type_name}", path))
            elif element.binding is not None and type_name == "code":
                self._code_binding(value, element, path, issues)

    def _code_binding(self, code: str, element: ElementDef, path: str, issues: list[Issue]) -> None:
        valueset = self.definitions.valuesets.get(element.binding or "")
        if valueset is None:
            return
        if not any(code in codes for codes in valueset.values()):
            issues.append(
                _error(
                    "code-invalid", f"Code is not in the required value set {element.binding}", path
                )
            )

    def _complex_rules(
        self,
        value: dict[str, Any],
        element: ElementDef,
        type_name: str,
        path: str,
        issues: list[Issue],
    ) -> None:
        if type_name == "Reference":
            reference = value.get("reference")
            if isinstance(reference, str) and not REFERENCE_FORMAT.match(reference):
                issues.append(_error("value", "Malformed reference", f"{path}.reference"))
        if element.binding is None:
            return
        valueset = self.definitions.valuesets.get(element.binding)
        if valueset is None:
            return
        codings = [value] if type_name == "Coding" else value.get("coding", [])
        for index, coding in enumerate(codings if isinstance(codings, list) else []):
            system = coding.get("system", "") if isinstance(coding, dict) else None
            if not isinstance(system, str) or not isinstance(coding.get("code"), str | None):
                continue  # types first (reported above), bindings only of well-typed codings
            codes = valueset.get(system)
            if codes is not None and coding.get("code") not in codes:
                at = path if type_name == "Coding" else f"{path}.coding[{index}]"
                issues.append(
                    _error(
                        "code-invalid",
                        f"Code is not in the required value set {element.binding}",
                        f"{at}.code",
                    )
                )

    def _xhtml(self, value: Any, path: str, issues: list[Issue]) -> None:
        if not isinstance(value, str):
            issues.append(_error("structure", "Narrative must be an XHTML string", path))
            return
        problem = narrative_problem(value)
        if problem is not None:
            issues.append(_error("value", problem, path))


def narrative_problem(text: str) -> str | None:
    """Why ``text`` is not a narrative FHIR R4 allows (None: it is one).

    It must be well-formed XML without a DOCTYPE or processing instruction, an XHTML
    ``<div>`` (txt-3: the root), made only of the allowed elements and attributes (txt-1),
    with no active content (event attributes, ``javascript:`` and other non-web URLs,
    styles that load or run anything), and with some text or an image (txt-2).
    """
    if "<!DOCTYPE" in text.upper() or "<?" in text:
        return "Narrative must not carry a DOCTYPE or processing instruction"
    try:
        root = etree.fromstring(text.encode("utf-8"), _XHTML_PARSER)
    except (etree.XMLSyntaxError, ValueError):
        return "Narrative is not well-formed XHTML"
    if root.tag != f"{{{XHTML_NS}}}div":
        return "Narrative must be an XHTML <div>"
    has_image = False
    for element in root.iter():
        if not isinstance(element.tag, str):  # a comment
            continue
        namespace, _, name = element.tag[1:].partition("}")
        if namespace != XHTML_NS or name not in _ELEMENTS:
            return f"Narrative must not hold <{name or element.tag}> (txt-1)"
        has_image = has_image or name == "img"
        for key, raw in element.attrib.items():
            attribute, content = str(key), str(raw)
            if attribute == _XML_LANG:
                continue
            if attribute not in _ATTRIBUTES:
                return f"Narrative must not carry the attribute '{attribute[:40]}' (txt-1)"
            if attribute in _URL_ATTRIBUTES and not _safe_url(attribute, name, content):
                return f"Narrative must not link to active content ({attribute})"
            if attribute == "style" and not _safe_style(content):
                return "Narrative styles must not run anything or load active content"
    if not has_image and not "".join(str(t) for t in root.itertext()).strip():
        return "Narrative must have some text or an image (txt-2)"
    return None


def _safe_style(style: str) -> bool:
    """No script in a style; an image it names (``url(...)``) is a web or relative URL."""
    if _ACTIVE_STYLE.search(style) or "\\" in style:  # CSS escapes could hide a scheme
        return False
    return all(_safe_url("src", "img", url) for url in _STYLE_URL.findall(style))


def _safe_url(attribute: str, element: str, url: str) -> bool:
    value = "".join(url.split()).lower()  # browsers ignore whitespace inside a scheme
    if attribute == "src" and element == "img" and value.startswith("data:image/"):
        return not value.startswith("data:image/svg")
    return bool(_SAFE_SCHEMES.match(value))


def _present(value: dict[str, Any], element: ElementDef) -> bool:
    if not element.choice:
        return element.name in value or f"_{element.name}" in value
    prefix = element.name
    return any(k.startswith(prefix) and k[len(prefix) : len(prefix) + 1].isupper() for k in value)


def _error(code: str, message: str, expression: str) -> Issue:
    return Issue("error", code, message, (expression,))
