"""The people and organisations of a dossier, with Dutch identifiers checked.

Builders refuse an identifier that is not valid in its system (a BSN failing the
eleven test, an AGB-code that is not eight digits, ...) with an error naming the
element, so a wrong number never reaches a declaration.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from mappings.care.base import DEFAULT_CANON, Canon, Reader, date_of, fail, narrative, reference_id
from mappings.nl.identifiers import (
    AGB,
    BIG,
    BSN,
    MUNICIPALITY,
    SYSTEMS,
    URA,
    UZI_PERSON,
    UZOVI,
    identifier_error,
)

__all__ = [
    "CareOrganization",
    "Client",
    "NetworkMember",
    "Professional",
    "client_from_fhir",
    "client_to_fhir",
    "network_member_from_fhir",
    "network_member_to_fhir",
    "organization_from_fhir",
    "organization_to_fhir",
    "professional_from_fhir",
    "professional_to_fhir",
]

_GENDERS = ("male", "female", "other", "unknown")
_ROLE_CODE = "http://terminology.hl7.org/CodeSystem/v3-RoleCode"
#: relations of a network member (v3-RoleCode), with Dutch displays
RELATIONS = {
    "FAMMEMB": "familielid",
    "CHILD": "kind",
    "DAU": "dochter",
    "SON": "zoon",
    "PRN": "ouder",
    "SIB": "broer of zus",
    "SPS": "echtgeno(o)t(e)",
    "FRND": "vriend(in)",
    "NBOR": "buur",
}


def _identifiers(pairs: list[tuple[str, str | None]], where: str) -> list[dict[str, Any]]:
    found = []
    for system, value in pairs:
        if value is None:
            continue
        error = identifier_error(system, value)
        if error:
            fail(error, f"{where}.identifier")
        found.append({"system": system, "value": value})
    return found


def _identifier_of(read: Reader, system: str) -> str | None:
    values = [
        i.get("value")
        for i in read.get("identifier") or []
        if isinstance(i, dict) and i.get("system") == system
    ]
    if len(values) > 1:
        fail(f"At most one {SYSTEMS[system].title}", read.path("identifier"))
    if not values:
        return None
    if not isinstance(values[0], str):
        fail(f"The {SYSTEMS[system].title} is a string", read.path("identifier"))
    error = identifier_error(system, values[0])
    if error:
        fail(error, read.path("identifier"))
    return values[0]


def _name(family: str, given: tuple[str, ...]) -> dict[str, Any]:
    name: dict[str, Any] = {"use": "official", "family": family}
    if given:
        name["given"] = list(given)
    return name


def _name_of(read: Reader) -> tuple[str, tuple[str, ...]]:
    names = read.need("name")
    first = names[0] if isinstance(names, list) and names and isinstance(names[0], dict) else {}
    family = first.get("family")
    if not isinstance(family, str) or not family:
        fail("A family name is required", read.path("name[0].family"))
    return family, tuple(str(g) for g in first.get("given", []))


def _telecom(telephone: str | None) -> list[dict[str, Any]]:
    return [{"system": "phone", "value": telephone}] if telephone else []


def _telephone_of(read: Reader) -> str | None:
    phones = [
        t.get("value")
        for t in read.get("telecom") or []
        if isinstance(t, dict) and t.get("system") == "phone"
    ]
    return str(phones[0]) if phones else None


@dataclass(frozen=True, slots=True)
class Client:
    id: str
    family: str
    given: tuple[str, ...] = ()
    bsn: str | None = None
    birth_date: dt.date | None = None
    gender: str | None = None
    telephone: str | None = None

    def __post_init__(self) -> None:
        if self.gender is not None and self.gender not in _GENDERS:
            fail(f"gender is one of {', '.join(_GENDERS)}", "Patient.gender")
        if self.bsn is not None and identifier_error(BSN, self.bsn):
            fail(str(identifier_error(BSN, self.bsn)), "Patient.identifier")


def client_to_fhir(client: Client, canon: Canon = DEFAULT_CANON) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "resourceType": "Patient",
        "id": client.id,
        "text": narrative(
            f"Cliënt {' '.join(client.given)} {client.family}".replace("  ", " "),
            [("Geboortedatum", client.birth_date.isoformat() if client.birth_date else "")],
        ),
    }
    identifiers = _identifiers([(BSN, client.bsn)], "Patient")
    if identifiers:
        resource["identifier"] = identifiers
    resource["name"] = [_name(client.family, client.given)]
    if client.telephone:
        resource["telecom"] = _telecom(client.telephone)
    if client.gender:
        resource["gender"] = client.gender
    if client.birth_date:
        resource["birthDate"] = client.birth_date.isoformat()
    return resource


def client_from_fhir(resource: Any, canon: Canon = DEFAULT_CANON) -> Client:
    read = Reader(resource, "Patient")
    family, given = _name_of(read)
    birth = read.get("birthDate")
    return Client(
        id=read.text("id") or "",
        family=family,
        given=given,
        bsn=_identifier_of(read, BSN),
        birth_date=date_of(birth, "Patient.birthDate") if birth else None,
        gender=read.code("gender", _GENDERS) if read.get("gender") else None,
        telephone=_telephone_of(read),
    )


@dataclass(frozen=True, slots=True)
class Professional:
    id: str
    family: str
    given: tuple[str, ...] = ()
    agb: str | None = None
    uzi: str | None = None
    big: str | None = None

    def __post_init__(self) -> None:
        _identifiers([(AGB, self.agb), (UZI_PERSON, self.uzi), (BIG, self.big)], "Practitioner")


def professional_to_fhir(
    professional: Professional, canon: Canon = DEFAULT_CANON
) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "resourceType": "Practitioner",
        "id": professional.id,
        "text": narrative(
            f"Zorgverlener {' '.join(professional.given)} {professional.family}".replace("  ", " "),
            [("AGB", professional.agb or ""), ("BIG", professional.big or "")],
        ),
    }
    identifiers = _identifiers(
        [(AGB, professional.agb), (UZI_PERSON, professional.uzi), (BIG, professional.big)],
        "Practitioner",
    )
    if identifiers:
        resource["identifier"] = identifiers
    resource["name"] = [_name(professional.family, professional.given)]
    return resource


def professional_from_fhir(resource: Any, canon: Canon = DEFAULT_CANON) -> Professional:
    read = Reader(resource, "Practitioner")
    family, given = _name_of(read)
    return Professional(
        id=read.text("id") or "",
        family=family,
        given=given,
        agb=_identifier_of(read, AGB),
        uzi=_identifier_of(read, UZI_PERSON),
        big=_identifier_of(read, BIG),
    )


@dataclass(frozen=True, slots=True)
class CareOrganization:
    """A GP practice, a care team, an insurer or a municipality."""

    id: str
    name: str
    agb: str | None = None
    ura: str | None = None
    uzovi: str | None = None
    part_of: str | None = None  # Organization ID (a team of a larger organisation)
    municipality: str | None = None  # CBS gemeentecode

    def __post_init__(self) -> None:
        if not self.name:
            fail("An organisation has a name", "Organization.name")
        _identifiers(
            [
                (AGB, self.agb),
                (URA, self.ura),
                (UZOVI, self.uzovi),
                (MUNICIPALITY, self.municipality),
            ],
            "Organization",
        )


def organization_to_fhir(
    organization: CareOrganization, canon: Canon = DEFAULT_CANON
) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "resourceType": "Organization",
        "id": organization.id,
        "text": narrative(
            organization.name,
            [
                ("AGB", organization.agb or ""),
                ("URA", organization.ura or ""),
                ("UZOVI", organization.uzovi or ""),
                ("Gemeentecode", organization.municipality or ""),
            ],
        ),
    }
    identifiers = _identifiers(
        [
            (AGB, organization.agb),
            (URA, organization.ura),
            (UZOVI, organization.uzovi),
            (MUNICIPALITY, organization.municipality),
        ],
        "Organization",
    )
    if identifiers:
        resource["identifier"] = identifiers
    resource["active"] = True
    resource["name"] = organization.name
    if organization.part_of:
        resource["partOf"] = {"reference": f"Organization/{organization.part_of}"}
    return resource


def organization_from_fhir(resource: Any, canon: Canon = DEFAULT_CANON) -> CareOrganization:
    read = Reader(resource, "Organization")
    part_of = read.get("partOf")
    return CareOrganization(
        id=read.text("id") or "",
        name=read.text("name") or "",
        agb=_identifier_of(read, AGB),
        ura=_identifier_of(read, URA),
        uzovi=_identifier_of(read, UZOVI),
        municipality=_identifier_of(read, MUNICIPALITY),
        part_of=reference_id(part_of, "Organization", "Organization.partOf") if part_of else None,
    )


@dataclass(frozen=True, slots=True)
class NetworkMember:
    """Someone from the client's own network: family, a friend, a neighbour."""

    id: str
    patient: str
    family: str
    relation: str  # a key of RELATIONS
    given: tuple[str, ...] = ()
    telephone: str | None = None

    def __post_init__(self) -> None:
        if self.relation not in RELATIONS:
            fail(f"The relation is one of {', '.join(RELATIONS)}", "RelatedPerson.relationship")


def network_member_to_fhir(member: NetworkMember, canon: Canon = DEFAULT_CANON) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "resourceType": "RelatedPerson",
        "id": member.id,
        "text": narrative(
            f"{' '.join(member.given)} {member.family}".strip(),
            [("Relatie", RELATIONS[member.relation]), ("Telefoon", member.telephone or "")],
        ),
        "active": True,
        "patient": {"reference": f"Patient/{member.patient}"},
        "relationship": [
            {
                "coding": [
                    {
                        "system": _ROLE_CODE,
                        "code": member.relation,
                        "display": RELATIONS[member.relation],
                    }
                ]
            }
        ],
        "name": [_name(member.family, member.given)],
    }
    if member.telephone:
        resource["telecom"] = _telecom(member.telephone)
    return resource


def network_member_from_fhir(resource: Any, canon: Canon = DEFAULT_CANON) -> NetworkMember:
    read = Reader(resource, "RelatedPerson")
    family, given = _name_of(read)
    relations = read.need("relationship")
    relation = read.the_code(relations[0], _ROLE_CODE, "RelatedPerson.relationship[0]", RELATIONS)
    return NetworkMember(
        id=read.text("id") or "",
        patient=reference_id(read.need("patient"), "Patient", "RelatedPerson.patient"),
        family=family,
        relation=relation,
        given=given,
        telephone=_telephone_of(read),
    )
