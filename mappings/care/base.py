"""What the care mappings share: the canonical base, reading FHIR with clear errors,
Dutch narratives, and small FHIR shapes.

All canonical URLs of the project hang under one configurable base (``Canon``), e.g.
``{base}/CodeSystem/zrm-2017`` and ``{base}/StructureDefinition/zrm-observation``.
"""

from __future__ import annotations

import datetime as dt
import html
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, NoReturn

from mappings.core.errors import Issue, Unprocessable

__all__ = [
    "DEFAULT_CANON",
    "Canon",
    "MappingError",
    "Reader",
    "code_system",
    "coding",
    "concept_list",
    "date_of",
    "narrative",
    "reference_id",
    "whole_value_set",
]

DEFAULT_BASE = "https://eigendossier.nl/fhir"


@dataclass(frozen=True, slots=True)
class Canon:
    """The project's canonical base; every profile, code system and extension lives here."""

    base: str = DEFAULT_BASE

    def url(self, kind: str, name: str) -> str:
        return f"{self.base.rstrip('/')}/{kind}/{name}"

    def code_system(self, name: str) -> str:
        return self.url("CodeSystem", name)

    def value_set(self, name: str) -> str:
        return self.url("ValueSet", name)

    def profile(self, name: str) -> str:
        return self.url("StructureDefinition", name)

    def extension(self, name: str) -> str:
        return self.url("StructureDefinition", name)


DEFAULT_CANON = Canon()


class MappingError(Unprocessable):
    """FHIR input that does not fit the profile: 422, naming the element."""


def code_system(
    canon: Canon,
    name: str,
    computable: str,
    title: str,
    description: str,
    concepts: Iterable[tuple[str, str, str]],
    *,
    version: str | None = None,
) -> dict[str, Any]:
    """One of our CodeSystems: Dutch displays, English designations, complete."""
    listed = concept_list(concepts)
    resource: dict[str, Any] = {
        "resourceType": "CodeSystem",
        "id": name,
        "url": canon.code_system(name),
        "name": computable,
        "title": title,
        "status": "active",
        "experimental": False,
        "publisher": "Eigen Dossier",
        "description": description,
        "language": "nl",
        "caseSensitive": True,
        "valueSet": canon.value_set(name),
        "content": "complete",
        "count": len(listed),
        "concept": listed,
    }
    if version:
        resource["version"] = version
    return resource


def concept_list(concepts: Iterable[tuple[str, str, str]]) -> list[dict[str, Any]]:
    """CodeSystem concepts of (code, Dutch display, English designation)."""
    return [
        {"code": code, "display": nl, "designation": [{"language": "en", "value": en}]}
        for code, nl, en in concepts
    ]


def whole_value_set(canon: Canon, name: str) -> dict[str, Any]:
    """The ValueSet of every code of our CodeSystem ``name``."""
    return {
        "resourceType": "ValueSet",
        "id": name,
        "url": canon.value_set(name),
        "name": "".join(part.title() for part in name.split("-")),
        "title": f"All codes of {name}",
        "status": "active",
        "publisher": "Eigen Dossier",
        "compose": {"include": [{"system": canon.code_system(name)}]},
    }


def fail(message: str, expression: str) -> NoReturn:
    raise MappingError(message, expression)


def coding(system: str, code: str, display: str | None = None) -> dict[str, Any]:
    found: dict[str, Any] = {"system": system, "code": code}
    if display:
        found["display"] = display
    return found


def narrative(
    title: str, rows: Iterable[tuple[str, str]], lines: Iterable[str] = ()
) -> dict[str, Any]:
    """A generated Dutch narrative: a heading, a table of label/value rows, and lines."""
    cells = "".join(
        f"<tr><th>{html.escape(label)}</th><td>{html.escape(value)}</td></tr>"
        for label, value in rows
        if value
    )
    table = f"<table>{cells}</table>" if cells else ""
    items = "".join(f"<li>{html.escape(line)}</li>" for line in lines)
    listing = f"<ul>{items}</ul>" if items else ""
    div = (
        f'<div xmlns="http://www.w3.org/1999/xhtml"><p><b>{html.escape(title)}</b></p>'
        f"{table}{listing}</div>"
    )
    return {"status": "generated", "div": div}


def date_of(text: str, expression: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except (TypeError, ValueError):
        fail("A full date (YYYY-MM-DD) is required", expression)


def datetime_of(text: Any, expression: str) -> dt.datetime:
    """An instant with a time zone, as FHIR dateTime with a time must carry."""
    try:
        moment = dt.datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    except ValueError:
        fail("A date and time with a time zone is required", expression)
    if moment.tzinfo is None or not isinstance(text, str) or "T" not in text:
        fail("A date and time with a time zone is required", expression)
    return moment


def instant_text(moment: dt.datetime) -> str:
    return moment.isoformat()


def reference_id(reference: Any, resource_type: str, expression: str) -> str:
    """The id in ``{"reference": "Type/id"}``; an error naming the element otherwise."""
    text = reference.get("reference") if isinstance(reference, dict) else None
    if not isinstance(text, str) or not text.startswith(f"{resource_type}/"):
        fail(f"A reference to a {resource_type} is required", expression)
    found = text.split("/", 1)[1]
    if not found or "/" in found:
        fail(f"A reference to a {resource_type} is required", expression)
    return found


def reference_to(reference: Any, types: tuple[str, ...], expression: str) -> str:
    """``Type/id`` of a reference to one of ``types``."""
    text = reference.get("reference") if isinstance(reference, dict) else None
    if not isinstance(text, str) or text.split("/", 1)[0] not in types or text.count("/") != 1:
        fail(f"A reference to one of {', '.join(types)} is required", expression)
    return text


class Reader:
    """Reads one resource for a mapping; every fault names its element."""

    def __init__(self, resource: Any, resource_type: str, profile: str | None = None) -> None:
        if not isinstance(resource, dict) or resource.get("resourceType") != resource_type:
            fail(f"A {resource_type} is required", resource_type)
        self.resource = resource
        self.type = resource_type
        if profile is not None:
            profiles = resource.get("meta", {}).get("profile", [])
            if profile not in profiles:
                fail(f"meta.profile must name {profile}", f"{resource_type}.meta.profile")

    def path(self, name: str) -> str:
        return f"{self.type}.{name}"

    def get(self, name: str) -> Any:
        return self.resource.get(name)

    def need(self, name: str) -> Any:
        value = self.resource.get(name)
        if value in (None, "", [], {}):
            fail(f"{name} is required", self.path(name))
        return value

    def text(self, name: str, *, required: bool = True) -> str | None:
        value = self.need(name) if required else self.resource.get(name)
        if value is not None and not isinstance(value, str):
            fail(f"{name} must be a string", self.path(name))
        return value

    def code(self, name: str, allowed: Iterable[str]) -> str:
        value = self.text(name)
        options = tuple(allowed)
        if value not in options:
            fail(f"{name} must be one of {', '.join(options)}", self.path(name))
        assert value is not None
        return value

    def extensions(self, url: str) -> Iterator[tuple[int, dict[str, Any]]]:
        for index, extension in enumerate(self.resource.get("extension", [])):
            if isinstance(extension, dict) and extension.get("url") == url:
                yield index, extension

    def the_code(self, concept: Any, system: str, expression: str, allowed: Iterable[str]) -> str:
        return code_in(concept, system, expression, allowed)


def code_in(concept: Any, system: str, expression: str, allowed: Iterable[str]) -> str:
    """The one code from ``system`` in a CodeableConcept; one of ``allowed``."""
    codings = concept.get("coding", []) if isinstance(concept, dict) else []
    found = [c.get("code") for c in codings if isinstance(c, dict) and c.get("system") == system]
    if len(found) != 1:
        fail(f"Exactly one coding from {system} is required", expression)
    if found[0] not in set(allowed):
        fail(f"Unknown code {found[0]!s:.40} for {system}", expression)
    return str(found[0])


def extension_value(extension: dict[str, Any], kind: str, expression: str) -> Any:
    key = f"value{kind}"
    if key not in extension:
        fail(f"The extension needs {key}", expression)
    return extension[key]


def issue(message: str, expression: str) -> Issue:
    return Issue("error", "invalid", message, (expression,))
