"""Dutch identifier systems (the Nictiz NamingSystem URIs) and their checks.

| identifier | form | check |
| --- | --- | --- |
| BSN (burgerservicenummer) | nine digits | the eleven test ("elfproef"): weights 9..2 and -1 |
| AGB-code (Vektis AGB register) | eight digits | form only |
| URA (UZI register subscriber number) | one to eight digits | form only |
| UZI number, person or system | nine digits | form only |
| UZOVI (insurer) | four digits | form only |
| BIG number | eleven digits | form only |
| CBS gemeentecode (municipality) | four digits, leading zeros kept | form only |

Sources: Logius / Wet algemene bepalingen BSN (elfproef), Vektis AGB register, CIBG
UZI register FAQ, Nictiz NamingSystem definitions; see docs/mappings.md.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import orjson

from mappings.core.errors import Issue
from mappings.core.limits import containers, path_of

__all__ = [
    "AGB",
    "BIG",
    "BSN",
    "MUNICIPALITY",
    "SYSTEMS",
    "URA",
    "UZI_PERSON",
    "UZI_SYSTEM",
    "UZOVI",
    "IdentifierSystem",
    "bsn_error",
    "identifier_error",
    "identifier_issues",
    "is_bsn",
    "naming_systems",
]

_NS = "http://fhir.nl/fhir/NamingSystem"
BSN = f"{_NS}/bsn"
AGB = f"{_NS}/agb-z"
URA = f"{_NS}/ura"
UZI_PERSON = f"{_NS}/uzi-nr-pers"
UZI_SYSTEM = f"{_NS}/uzi-nr-sys"
UZOVI = f"{_NS}/uzovi"
BIG = f"{_NS}/big"
#: No Nictiz NamingSystem for the CBS municipality code was found: this URI is ours.
MUNICIPALITY = "https://eigendossier.nl/fhir/NamingSystem/cbs-gemeentecode"

_BSN_WEIGHTS = (9, 8, 7, 6, 5, 4, 3, 2, -1)


@dataclass(frozen=True, slots=True)
class IdentifierSystem:
    """One Dutch identifier system: its URI, OID, name and the digits it has."""

    uri: str
    oid: str  # empty when the system has none
    name: str
    title: str
    description: str
    min_digits: int
    max_digits: int
    kind: str  # NamingSystem.kind: identifier

    def error(self, value: str) -> str | None:
        """Why ``value`` is not one of these, or None when it is."""
        if not (value.isascii() and value.isdigit()):
            return f"A {self.title} is digits only"
        if not self.min_digits <= len(value) <= self.max_digits:
            size = (
                f"exactly {self.max_digits}"
                if self.min_digits == self.max_digits
                else f"{self.min_digits} to {self.max_digits}"
            )
            return f"A {self.title} has {size} digits"
        if self.uri == BSN:
            return bsn_error(value)
        return None


SYSTEMS: dict[str, IdentifierSystem] = {
    system.uri: system
    for system in (
        IdentifierSystem(
            BSN,
            "2.16.840.1.113883.2.4.6.3",
            "BSN",
            "BSN",
            "Burgerservicenummer: the Dutch citizen service number, nine digits that pass the "
            "eleven test; its use in care is governed by the Wbsn-z.",
            9,
            9,
            "identifier",
        ),
        IdentifierSystem(
            AGB,
            "2.16.840.1.113883.2.4.6.1",
            "AGB",
            "AGB-code",
            "AGB-code from the Vektis AGB register: eight digits, for care professionals and "
            "for care organisations and their locations.",
            8,
            8,
            "identifier",
        ),
        IdentifierSystem(
            URA,
            "2.16.528.1.1007.3.3",
            "URA",
            "URA number",
            "UZI register subscriber number (URA): identifies a care organisation; at most "
            "eight digits.",
            1,
            8,
            "identifier",
        ),
        IdentifierSystem(
            UZI_PERSON,
            "2.16.528.1.1007.3.1",
            "UZIPerson",
            "UZI number (person)",
            "UZI number of a card holder: nine digits, for life.",
            9,
            9,
            "identifier",
        ),
        IdentifierSystem(
            UZI_SYSTEM,
            "2.16.528.1.1007.3.2",
            "UZISystem",
            "UZI number (system)",
            "UZI number of a service (server) certificate: nine digits.",
            9,
            9,
            "identifier",
        ),
        IdentifierSystem(
            UZOVI,
            "2.16.840.1.113883.2.4.6.4",
            "UZOVI",
            "UZOVI number",
            "UZOVI number of a health insurer: four digits.",
            4,
            4,
            "identifier",
        ),
        IdentifierSystem(
            BIG,
            "2.16.528.1.1007.5.1",
            "BIG",
            "BIG number",
            "BIG register number of a care professional: eleven digits.",
            11,
            11,
            "identifier",
        ),
        IdentifierSystem(
            MUNICIPALITY,
            "",
            "CBSGemeentecode",
            "CBS municipality code",
            "CBS gemeentecode of a Dutch municipality: four digits with leading zeros (0363 "
            "Amsterdam); the receiver of an iWmo declaration.",
            4,
            4,
            "identifier",
        ),
    )
}


def bsn_error(value: str) -> str | None:
    """Why ``value`` is not a BSN, or None when it is one."""
    if len(value) != 9 or not value.isascii() or not value.isdigit():
        return "A BSN has exactly nine digits"
    total = sum(int(digit) * weight for digit, weight in zip(value, _BSN_WEIGHTS, strict=True))
    if total % 11 != 0 or total == 0:
        return "The BSN fails the eleven test (elfproef)"
    return None


def is_bsn(value: str) -> bool:
    """Whether ``value`` is a well-formed BSN (nine digits passing the eleven test)."""
    return bsn_error(value) is None


def identifier_error(system: str, value: str) -> str | None:
    """Why ``value`` is not valid in ``system``; None when valid or the system is not Dutch."""
    known = SYSTEMS.get(system)
    return known.error(value) if known else None


def identifier_issues(resource: dict[str, Any]) -> list[Issue]:
    """Every Identifier anywhere in ``resource`` (its own, a Reference's, a contained
    resource's) whose system is one of ours and whose value is not valid in it, each
    naming the element (``Patient.identifier[0].value``)."""
    try:
        text = orjson.dumps(resource)
    except (orjson.JSONEncodeError, TypeError):
        text = b""
    if text and _SYSTEM_TEXTS.search(text) is None:
        return []  # none of our systems is anywhere in it: nothing to walk (most writes)
    return [
        Issue("error", "value", message, (f"{where}.value",))
        for identifier, where in _identifiers(resource, str(resource.get("resourceType")))
        if (message := _value_error(identifier)) is not None
    ]


#: our systems as they stand in a resource's JSON: a URI has nothing JSON escapes, so a
#: resource whose JSON holds none of these has no Identifier in any of our systems
_SYSTEM_TEXTS = re.compile(b"|".join(re.escape(uri.encode()) for uri in SYSTEMS))


def _value_error(identifier: dict[str, Any]) -> str | None:
    value = identifier.get("value")
    if not isinstance(value, str):
        return f"A {SYSTEMS[identifier['system']].title} needs a value"
    return identifier_error(identifier["system"], value)


def _identifiers(value: Any, where: str) -> Iterator[tuple[dict[str, Any], str]]:
    """(Identifier, FHIRPath) of each object with one of our systems and a value: an
    Identifier (a Coding has a code, a ContactPoint's system is no URI), in document
    order. Only containers are walked, and only a match's path is spelled out."""
    for step in containers(value, where):
        node = step[0]
        if isinstance(node, dict):
            system = node.get("system")
            if isinstance(system, str) and system in SYSTEMS and "value" in node:
                yield node, path_of(step)


def naming_systems(date: str) -> list[dict[str, Any]]:
    """The NamingSystem resources of the Dutch identifiers (``date``: their publication)."""
    return [
        {
            "resourceType": "NamingSystem",
            "id": f"nl-{system.name.lower()}",
            "name": system.name,
            "status": "active",
            "kind": system.kind,
            "date": date,
            "publisher": "Eigen Dossier",
            "description": system.description,
            "jurisdiction": [{"coding": [{"system": "urn:iso:std:iso:3166", "code": "NL"}]}],
            "uniqueId": [
                {"type": "uri", "value": system.uri, "preferred": True},
                *([{"type": "oid", "value": system.oid, "preferred": False}] if system.oid else []),
            ],
        }
        for system in SYSTEMS.values()
    ]
