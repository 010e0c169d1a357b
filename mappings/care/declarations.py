"""What a declaration needs from the dossier, and what it leaves there, as FHIR.

Three inputs besides the visits (:mod:`mappings.care.visits`):

- an **allocation** (:class:`Allocation`, a ``Coverage``): who pays for which client's care
  under which law, from when to when: a Wmo toewijzing of a municipality (its
  ToewijzingNummer), a Zvw insurance with an insurer (the verzekerdennummer), a GGZ
  trajectory; the payer is an ``Organization`` with a UZOVI number or a CBS municipality code;
- a **tariff** (:class:`Tariff`, a ``ChargeItemDefinition`` per product code, ADR 0013): the
  price in eurocents per unit (minute, hour, contact), valid over a period, for one payer or
  for all;
- the **provider** (:data:`DECLARANT`): the Organization whose AGB code declares.

One output: a **declared line** (:class:`DeclaredLine`, a ``Claim``, ADR 0013) per prestatie
sent, in the client's own dossier, referencing the visits it sums (``item.encounter``), the
payer and the allocation; a credit is a Claim of its own pointing at the line it reverses
(``related``). The payer's answer is a ``ClaimResponse`` per line (:class:`Answer`).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from mappings.care.base import (
    DEFAULT_CANON,
    Canon,
    Reader,
    code_system,
    coding,
    date_of,
    fail,
    narrative,
    reference_id,
    whole_value_set,
)
from mappings.care.visits import FUNDING

__all__ = [
    "DECLARANT",
    "FORMATS",
    "STATES",
    "UNITS",
    "Allocation",
    "Answer",
    "DeclaredLine",
    "Tariff",
    "allocation_from_fhir",
    "allocation_to_fhir",
    "answer_to_fhir",
    "declaration_code_systems",
    "declaration_search_parameters",
    "declaration_value_sets",
    "euros",
    "line_from_fhir",
    "line_to_fhir",
    "product_system",
    "tariff_from_fhir",
    "tariff_to_fhir",
]

_CLAIM_TYPE = "http://terminology.hl7.org/CodeSystem/claim-type"
_PRIORITY = "http://terminology.hl7.org/CodeSystem/processpriority"
_RELATED = "http://terminology.hl7.org/CodeSystem/ex-relatedclaimrelationship"
_ADJUDICATION = "http://terminology.hl7.org/CodeSystem/adjudication"
_PRICE_TYPE = "base"
_EUR = "EUR"

#: format -> (Dutch title, the funding stream it declares, the payer's kind)
FORMATS: dict[str, tuple[str, str, str]] = {
    "wmo323": ("iWmo 3.2 WMO323 declaratie (gemeente)", "wmo", "municipality"),
    "aw319": ("Vektis AW319 v1.4 declaratie wijkverpleging (zorgverzekeraar)", "zvw", "insurer"),
    "gds801": (
        "Vektis GDS801 declaratie GGZ (zorgverzekeraar; niet geverifieerd)",
        "ggz",
        "insurer",
    ),
}

#: tariff unit -> (Dutch, English, iWmo Eenheid (WJ756), Vektis tijdseenheid (COD218))
UNITS: dict[str, tuple[str, str, str, str]] = {
    "minute": ("Minuut", "Minute", "01", "01"),
    "hour": ("Uur", "Hour", "04", "04"),
    "contact": ("Per contact (stuks)", "Per contact (items)", "84", "00"),
}

#: the state of a declared line
STATES: dict[str, tuple[str, str]] = {
    "open": ("Verstuurd, nog geen antwoord", "Sent, no answer yet"),
    "accepted": ("Toegekend", "Accepted"),
    "rejected": ("Afgewezen", "Rejected"),
    "credited": ("Gecrediteerd", "Credited (reversed by a later line)"),
}

#: Organization.type of the provider that declares (one per gateway)
DECLARANT = "declarant"


def product_system(canon: Canon, funding: str) -> str:
    """The code system of the product codes of one funding stream (WMO021 or a municipal
    list, the Vektis prestatiecodelijst 065, the GGZ zorgprestatiemodel list 071)."""
    return canon.code_system(f"product-{funding}")


def euros(cents: int) -> float | int:
    """A FHIR Money value from cents (whole euros stay integers)."""
    return cents // 100 if cents % 100 == 0 else round(cents / 100, 2)


def _cents(value: Any, expression: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float):
        fail("An amount is a number of euros", expression)
    return round(value * 100)


def declaration_code_systems(canon: Canon = DEFAULT_CANON) -> list[dict[str, Any]]:
    """The declaration formats, the tariff units, the line states and the party role."""
    tables = (
        (
            "declaration-format",
            "DeclarationFormat",
            "Declaratieformaat",
            "The file format a line was declared in.",
            [(code, title, code.upper()) for code, (title, _, _) in FORMATS.items()],
        ),
        (
            "tariff-unit",
            "TariffUnit",
            "Tariefeenheid",
            "What one unit of a tariff is: it decides the volume of a declared line.",
            [(code, nl, en) for code, (nl, en, _, _) in UNITS.items()],
        ),
        (
            "declaration-state",
            "DeclarationState",
            "Status van een gedeclareerde regel",
            "Where a declared line stands: sent, accepted or rejected by the payer, or reversed.",
            [(code, nl, en) for code, (nl, en) in STATES.items()],
        ),
        (
            "declaration-party",
            "DeclarationParty",
            "Rol bij declareren",
            "The organisation whose AGB code sends the declarations.",
            [(DECLARANT, "Declarerende zorgaanbieder", "Declaring care provider")],
        ),
    )
    systems = [
        code_system(canon, name, computable, title, description, concepts)
        for name, computable, title, description, concepts in tables
    ]
    for funding in ("wmo", "zvw", "ggz"):
        systems.append(
            {
                "resourceType": "CodeSystem",
                "id": f"product-{funding}",
                "url": product_system(canon, funding),
                "name": f"Product{funding.title()}",
                "title": f"Productcodes {FUNDING[funding][0]}",
                "status": "active",
                "publisher": "Eigen Dossier",
                "description": (
                    "The product or prestatie codes of this funding stream as the contracts use "
                    "them (WMO021 or a municipal list; Vektis prestatiecodelijst 065; GGZ list "
                    "071). The codes are not listed here: a code is known when a tariff "
                    "(ChargeItemDefinition) names it."
                ),
                "caseSensitive": True,
                "content": "not-present",
            }
        )
    return systems


def declaration_search_parameters(canon: Canon = DEFAULT_CANON) -> list[dict[str, Any]]:
    """``Encounter?funding-stream=``: a month's visits of one law, found through the index
    (a declaration reads only its own stream; ``:missing=true`` finds the visits without)."""
    return [
        {
            "resourceType": "SearchParameter",
            "id": "Encounter-funding-stream",
            "url": canon.url("SearchParameter", "Encounter-funding-stream"),
            "name": "FundingStream",
            "status": "active",
            "publisher": "Eigen Dossier",
            "description": "The funding stream (law) a visit is paid under: its extension "
            "funding-stream.",
            "code": "funding-stream",
            "base": ["Encounter"],
            "type": "token",
            "expression": f"Encounter.extension('{canon.extension('funding-stream')}').value",
        }
    ]


def declaration_value_sets(canon: Canon = DEFAULT_CANON) -> list[dict[str, Any]]:
    return [
        whole_value_set(canon, name)
        for name in ("declaration-format", "tariff-unit", "declaration-state")
    ]


# -- allocation (Coverage) ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Allocation:
    """Who pays for a client's care under one law, over a period.

    ``number``: the Wmo ToewijzingNummer (digits), or the insurer's verzekerdennummer.
    """

    id: str
    patient: str
    funding: str
    payer: str  # Organization id
    start: dt.date
    end: dt.date | None = None
    number: str | None = None

    def __post_init__(self) -> None:
        if self.funding not in FUNDING:
            fail(f"The funding stream is one of {', '.join(FUNDING)}", "Coverage.type")
        if self.end is not None and self.end < self.start:
            fail("An allocation ends after it starts", "Coverage.period")
        if self.funding == "wmo" and not (
            self.number
            and self.number.isascii()
            and self.number.isdigit()
            and len(self.number) <= 9
        ):
            fail(
                "A Wmo allocation has its ToewijzingNummer: at most nine digits",
                "Coverage.identifier",
            )

    def covers(self, day: dt.date) -> bool:
        return self.start <= day and (self.end is None or day <= self.end)


def allocation_to_fhir(allocation: Allocation, canon: Canon = DEFAULT_CANON) -> dict[str, Any]:
    period: dict[str, str] = {"start": allocation.start.isoformat()}
    if allocation.end is not None:
        period["end"] = allocation.end.isoformat()
    resource: dict[str, Any] = {
        "resourceType": "Coverage",
        "id": allocation.id,
        "text": narrative(
            f"{FUNDING[allocation.funding][0]}: toewijzing",
            [
                ("Van", period["start"]),
                ("Tot en met", period.get("end", "")),
                ("Nummer", allocation.number or ""),
            ],
        ),
    }
    if allocation.number and allocation.funding == "wmo":
        resource["identifier"] = [
            {"system": canon.url("NamingSystem", "toewijzing"), "value": allocation.number}
        ]
    resource.update(
        {
            "status": "active",
            "type": {
                "coding": [
                    coding(
                        canon.code_system("funding-stream"),
                        allocation.funding,
                        FUNDING[allocation.funding][0],
                    )
                ]
            },
        }
    )
    if allocation.number and allocation.funding != "wmo":
        resource["subscriberId"] = allocation.number
    resource.update(
        {
            "beneficiary": {"reference": f"Patient/{allocation.patient}"},
            "period": period,
            "payor": [{"reference": f"Organization/{allocation.payer}"}],
        }
    )
    return resource


def allocation_from_fhir(resource: Any, canon: Canon = DEFAULT_CANON) -> Allocation:
    read = Reader(resource, "Coverage")
    codings = (read.need("type").get("coding") or []) if isinstance(read.need("type"), dict) else []
    funding = next(
        (
            c.get("code")
            for c in codings
            if isinstance(c, dict) and c.get("system") == canon.code_system("funding-stream")
        ),
        None,
    )
    if funding not in FUNDING:
        fail("type names the funding stream (our funding-stream code system)", "Coverage.type")
    period = read.need("period")
    payors = read.need("payor")
    if len(payors) != 1:
        fail("An allocation has one payer", "Coverage.payor")
    number = read.get("subscriberId")
    for identifier in read.get("identifier") or []:
        if isinstance(identifier, dict) and identifier.get("system") == canon.url(
            "NamingSystem", "toewijzing"
        ):
            number = identifier.get("value")
    return Allocation(
        id=read.text("id") or "",
        patient=reference_id(read.need("beneficiary"), "Patient", "Coverage.beneficiary"),
        funding=str(funding),
        payer=reference_id(payors[0], "Organization", "Coverage.payor[0]"),
        start=date_of(str(period.get("start", ""))[:10], "Coverage.period.start"),
        end=date_of(str(period["end"])[:10], "Coverage.period.end") if period.get("end") else None,
        number=str(number) if number else None,
    )


# -- tariff (ChargeItemDefinition) -------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Tariff:
    """The price of one product of one funding stream, per unit, over a period.

    ``payer``: an Organization id when the tariff is that payer's own (a municipality's
    contract); None for every payer. ``category``: the Wmo ProductCategorie (WMO020).
    """

    id: str
    funding: str
    code: str
    unit: str
    cents: int
    start: dt.date
    end: dt.date | None = None
    payer: str | None = None
    category: str | None = None
    title: str = ""

    def __post_init__(self) -> None:
        if self.funding not in FUNDING:
            fail(f"The funding stream is one of {', '.join(FUNDING)}", "ChargeItemDefinition.code")
        if self.unit not in UNITS:
            fail(
                f"The tariff unit is one of {', '.join(UNITS)}",
                "ChargeItemDefinition.propertyGroup",
            )
        if not 0 <= self.cents <= 99_999_999:
            fail("A tariff is 0 to 999,999.99 euros", "ChargeItemDefinition.propertyGroup")
        if not (self.code and len(self.code) <= 6 and self.code.isascii() and self.code.isalnum()):
            fail("A product code is one to six letters or digits", "ChargeItemDefinition.code")
        if self.funding == "wmo" and not (
            self.category and len(self.category) == 2 and self.category.isdigit()
        ):
            fail(
                "A Wmo product has its ProductCategorie (two digits)",
                "ChargeItemDefinition.extension",
            )
        if self.end is not None and self.end < self.start:
            fail("A tariff ends after it starts", "ChargeItemDefinition.effectivePeriod")

    def applies(self, payer: str, day: dt.date) -> bool:
        return (
            (self.payer is None or self.payer == payer)
            and self.start <= day
            and (self.end is None or day <= self.end)
        )


def tariff_to_fhir(tariff: Tariff, canon: Canon = DEFAULT_CANON) -> dict[str, Any]:
    period: dict[str, str] = {"start": tariff.start.isoformat()}
    if tariff.end is not None:
        period["end"] = tariff.end.isoformat()
    unit = UNITS[tariff.unit]
    extensions: list[dict[str, Any]] = []
    if tariff.category:
        extensions.append(
            {"url": canon.extension("product-category"), "valueString": tariff.category}
        )
    if tariff.payer:
        extensions.append(
            {
                "url": canon.extension("tariff-payer"),
                "valueReference": {"reference": f"Organization/{tariff.payer}"},
            }
        )
    resource: dict[str, Any] = {
        "resourceType": "ChargeItemDefinition",
        "id": tariff.id,
        "text": narrative(
            f"Tarief {tariff.code}: {tariff.title or FUNDING[tariff.funding][0]}",
            [
                ("Prijs", f"EUR {tariff.cents / 100:.2f} per {unit[0].lower()}"),
                ("Geldig vanaf", period["start"]),
                ("Tot en met", period.get("end", "")),
            ],
        ),
    }
    if extensions:
        resource["extension"] = extensions
    resource.update(
        {
            "url": canon.url("ChargeItemDefinition", tariff.id),
            "title": tariff.title or f"{tariff.funding} {tariff.code}",
            "status": "active",
            "code": {"coding": [coding(product_system(canon, tariff.funding), tariff.code)]},
            "effectivePeriod": period,
            "propertyGroup": [
                {
                    "priceComponent": [
                        {
                            "type": _PRICE_TYPE,
                            "code": {
                                "coding": [
                                    coding(canon.code_system("tariff-unit"), tariff.unit, unit[0])
                                ]
                            },
                            "amount": {"value": euros(tariff.cents), "currency": _EUR},
                        }
                    ]
                }
            ],
        }
    )
    return resource


def tariff_from_fhir(resource: Any, canon: Canon = DEFAULT_CANON) -> Tariff:
    read = Reader(resource, "ChargeItemDefinition")
    codings = [c for c in (read.need("code").get("coding") or []) if isinstance(c, dict)]
    funding, code = None, None
    for item in codings:
        for name in ("wmo", "zvw", "ggz"):
            if item.get("system") == product_system(canon, name):
                funding, code = name, item.get("code")
    if funding is None or not isinstance(code, str):
        fail("code is a product code of one funding stream", "ChargeItemDefinition.code")
    groups = read.need("propertyGroup")
    components = [
        c
        for g in groups
        if isinstance(g, dict)
        for c in g.get("priceComponent", [])
        if isinstance(c, dict) and c.get("type") == _PRICE_TYPE
    ]
    if len(components) != 1:
        fail("A tariff has one base price", "ChargeItemDefinition.propertyGroup")
    component = components[0]
    amount = component.get("amount") or {}
    if amount.get("currency") != _EUR:
        fail("A tariff is in euros", "ChargeItemDefinition.propertyGroup.priceComponent.amount")
    unit = next(
        (
            c.get("code")
            for c in (component.get("code") or {}).get("coding", [])
            if isinstance(c, dict) and c.get("system") == canon.code_system("tariff-unit")
        ),
        None,
    )
    period = read.need("effectivePeriod")
    category, payer = None, None
    for _, extension in read.extensions(canon.extension("product-category")):
        category = extension.get("valueString")
    for _, extension in read.extensions(canon.extension("tariff-payer")):
        payer = reference_id(
            extension.get("valueReference"), "Organization", "ChargeItemDefinition.extension"
        )
    return Tariff(
        id=read.text("id") or "",
        funding=funding,
        code=code,
        unit=str(unit),
        cents=_cents(amount.get("value"), "ChargeItemDefinition.propertyGroup.priceComponent"),
        start=date_of(str(period.get("start", ""))[:10], "ChargeItemDefinition.effectivePeriod"),
        end=date_of(str(period["end"])[:10], "ChargeItemDefinition.effectivePeriod")
        if period.get("end")
        else None,
        payer=payer,
        category=category,
        title=read.text("title") or "",
    )


# -- a declared line (Claim) and its answer (ClaimResponse) ------------------------------


@dataclass(frozen=True, slots=True)
class DeclaredLine:
    """One prestatie as sent: the Claim in the client's dossier.

    ``key`` groups the lines that declare the same thing (client, allocation, product,
    period); ``reference`` is the line's reference number in the file (ReferentieNummer,
    0431); a credit names the Claim it reverses in ``credit_of`` and the reference of that
    line in ``previous``. Amounts are eurocents, never negative: a credit is a credit.
    """

    id: str
    format: str
    key: str
    patient: str
    payer: str
    provider: str
    allocation: str
    funding: str
    product: str
    unit: str
    begin: dt.date
    end: dt.date
    quantity: int
    unit_cents: int
    cents: int
    reference: str
    message: str
    created: dt.date
    encounters: tuple[str, ...] = ()
    credit_of: str | None = None
    previous: str | None = None
    state: str = "open"
    category: str | None = None  # the Wmo ProductCategorie

    @property
    def batch(self) -> str:
        """The tag of the lines of one format and month: ``wmo323-2026-11``."""
        return f"{self.format}-{self.begin.year:04d}-{self.begin.month:02d}"

    @property
    def credit(self) -> bool:
        return self.credit_of is not None


def _identifier(canon: Canon, name: str, value: str) -> dict[str, str]:
    return {"system": canon.url("NamingSystem", name), "value": value}


def line_to_fhir(line: DeclaredLine, canon: Canon = DEFAULT_CANON) -> dict[str, Any]:
    sign = -1 if line.credit else 1
    title, _, _ = FORMATS[line.format]
    resource: dict[str, Any] = {
        "resourceType": "Claim",
        "id": line.id,
        "meta": {
            "tag": [
                coding(canon.code_system("declaration-batch"), line.batch),
                coding(canon.url("NamingSystem", "declaration-message"), line.message),
            ]
        },
        "text": narrative(
            f"{'Creditering' if line.credit else 'Declaratie'} {line.product}, "
            f"{line.begin.isoformat()} tot en met {line.end.isoformat()}",
            [
                ("Formaat", title),
                ("Aantal", f"{line.quantity} ({UNITS[line.unit][0].lower()})"),
                ("Bedrag", f"EUR {sign * line.cents / 100:.2f}"),
                ("Referentie", line.reference),
                ("Status", STATES[line.state][0]),
            ],
        ),
        "extension": [
            {
                "url": canon.extension("declaration-format"),
                "valueCoding": coding(canon.code_system("declaration-format"), line.format),
            },
            {
                "url": canon.extension("declaration-state"),
                "valueCoding": coding(
                    canon.code_system("declaration-state"), line.state, STATES[line.state][0]
                ),
            },
            {
                "url": canon.extension("declaration-message"),
                "valueIdentifier": _identifier(canon, "declaration-message", line.message),
            },
            {"url": canon.extension("declaration-key"), "valueString": line.key},
        ],
        "identifier": [_identifier(canon, "declaration-line", line.reference)],
        "status": "cancelled" if line.state in ("credited", "rejected") else "active",
        "type": {"coding": [coding(_CLAIM_TYPE, "professional", "Professional")]},
        "use": "claim",
        "patient": {"reference": f"Patient/{line.patient}"},
        "billablePeriod": {"start": line.begin.isoformat(), "end": line.end.isoformat()},
        "created": line.created.isoformat(),
        "insurer": {"reference": f"Organization/{line.payer}"},
        "provider": {"reference": f"Organization/{line.provider}"},
        "priority": {"coding": [coding(_PRIORITY, "normal")]},
    }
    if line.credit_of:
        related: dict[str, Any] = {
            "claim": {"reference": f"Claim/{line.credit_of}"},
            "relationship": {"coding": [coding(_RELATED, "prior", "Prior Claim")]},
        }
        if line.previous:
            related["reference"] = _identifier(canon, "declaration-line", line.previous)
        resource["related"] = [related]
    resource["insurance"] = [
        {"sequence": 1, "focal": True, "coverage": {"reference": f"Coverage/{line.allocation}"}}
    ]
    item: dict[str, Any] = {
        "sequence": 1,
        **(
            {
                "category": {
                    "coding": [coding(canon.code_system("wmo-product-category"), line.category)]
                }
            }
            if line.category
            else {}
        ),
        "productOrService": {"coding": [coding(product_system(canon, line.funding), line.product)]},
        "servicedPeriod": {"start": line.begin.isoformat(), "end": line.end.isoformat()},
        "quantity": {
            "value": line.quantity,
            "unit": UNITS[line.unit][1].lower(),
            "system": canon.code_system("tariff-unit"),
            "code": line.unit,
        },
        "unitPrice": {"value": euros(line.unit_cents), "currency": _EUR},
        "net": {"value": euros(sign * line.cents), "currency": _EUR},
    }
    if line.encounters:
        item["encounter"] = [{"reference": f"Encounter/{e}"} for e in line.encounters]
    resource["item"] = [item]
    resource["total"] = {"value": euros(sign * line.cents), "currency": _EUR}
    return resource


def line_from_fhir(resource: Any, canon: Canon = DEFAULT_CANON) -> DeclaredLine:
    read = Reader(resource, "Claim")

    def extension(name: str, kind: str) -> Any:
        found = [e.get(kind) for _, e in read.extensions(canon.extension(name))]
        if len(found) != 1 or found[0] is None:
            fail(f"A declared line has one {name}", "Claim.extension")
        return found[0]

    items = read.need("item")
    if len(items) != 1 or not isinstance(items[0], dict):
        fail("A declared line has one item", "Claim.item")
    item = items[0]
    product = (item.get("productOrService") or {}).get("coding") or [{}]
    system = str(product[0].get("system", ""))
    funding = next((f for f in FUNDING if product_system(canon, f) == system), None)
    if funding is None:
        fail("The product is a code of one funding stream", "Claim.item[0].productOrService")
    related = (read.get("related") or [{}])[0]
    credit_of = (
        reference_id(related.get("claim"), "Claim", "Claim.related[0].claim")
        if related.get("claim")
        else None
    )
    identifiers = read.get("identifier") or [{}]
    served = item.get("servicedPeriod") or {}
    total = (read.get("total") or {}).get("value", 0)
    return DeclaredLine(
        id=read.text("id") or "",
        format=str(extension("declaration-format", "valueCoding").get("code")),
        key=str(extension("declaration-key", "valueString")),
        patient=reference_id(read.need("patient"), "Patient", "Claim.patient"),
        payer=reference_id(read.need("insurer"), "Organization", "Claim.insurer"),
        provider=reference_id(read.need("provider"), "Organization", "Claim.provider"),
        allocation=reference_id(
            read.need("insurance")[0].get("coverage"), "Coverage", "Claim.insurance[0].coverage"
        ),
        funding=funding,
        product=str(product[0].get("code", "")),
        unit=str((item.get("quantity") or {}).get("code", "")),
        begin=date_of(str(served.get("start", "")), "Claim.item[0].servicedPeriod.start"),
        end=date_of(str(served.get("end", "")), "Claim.item[0].servicedPeriod.end"),
        quantity=int((item.get("quantity") or {}).get("value", 0)),
        unit_cents=_cents((item.get("unitPrice") or {}).get("value", 0), "Claim.item[0].unitPrice"),
        cents=abs(_cents(total, "Claim.total")),
        reference=str(identifiers[0].get("value", "")),
        message=str(extension("declaration-message", "valueIdentifier").get("value")),
        created=date_of(str(read.need("created"))[:10], "Claim.created"),
        encounters=tuple(
            reference_id(e, "Encounter", "Claim.item[0].encounter")
            for e in item.get("encounter", [])
        ),
        credit_of=credit_of,
        previous=(related.get("reference") or {}).get("value"),
        state=str(extension("declaration-state", "valueCoding").get("code")),
        category=_first_code(item.get("category")),
    )


def _first_code(concept: Any) -> str | None:
    codings = (concept or {}).get("coding") or [{}] if isinstance(concept, dict) else [{}]
    code = codings[0].get("code") if isinstance(codings[0], dict) else None
    return str(code) if code else None


@dataclass(frozen=True, slots=True)
class Answer:
    """The payer's answer to one declared line: accepted, or rejected with its codes."""

    id: str
    line: DeclaredLine
    claim: str  # the Claim id answered
    accepted: bool
    message: str  # the answer message's identification
    created: dt.date
    cents_granted: int
    codes: tuple[tuple[str, str], ...] = ()  # (retourcode, its meaning)


def answer_to_fhir(answer: Answer, canon: Canon = DEFAULT_CANON) -> dict[str, Any]:
    line = answer.line
    sign = -1 if line.credit else 1
    resource: dict[str, Any] = {
        "resourceType": "ClaimResponse",
        "id": answer.id,
        "text": narrative(
            f"Antwoord op {line.reference}: {'toegekend' if answer.accepted else 'afgewezen'}",
            [
                ("Toegekend", f"EUR {sign * answer.cents_granted / 100:.2f}"),
                ("Retourcodes", ", ".join(f"{c} {t}" for c, t in answer.codes)),
            ],
        ),
        "identifier": [_identifier(canon, "declaration-answer", answer.message)],
        "status": "active",
        "type": {"coding": [coding(_CLAIM_TYPE, "professional", "Professional")]},
        "use": "claim",
        "patient": {"reference": f"Patient/{line.patient}"},
        "created": answer.created.isoformat(),
        "insurer": {"reference": f"Organization/{line.payer}"},
        "requestor": {"reference": f"Organization/{line.provider}"},
        "request": {"reference": f"Claim/{answer.claim}"},
        "outcome": "complete" if answer.accepted else "error",
        "disposition": "Toegekend" if answer.accepted else "Afgewezen",
        "item": [
            {
                "itemSequence": 1,
                "adjudication": [
                    {
                        "category": {
                            "coding": [coding(_ADJUDICATION, "submitted", "Submitted Amount")]
                        },
                        "amount": {"value": euros(sign * line.cents), "currency": _EUR},
                    },
                    {
                        "category": {
                            "coding": [coding(_ADJUDICATION, "benefit", "Benefit Amount")]
                        },
                        "amount": {"value": euros(sign * answer.cents_granted), "currency": _EUR},
                    },
                ],
            }
        ],
    }
    if answer.codes:
        resource["error"] = [
            {
                "itemSequence": 1,
                "code": {
                    "coding": [coding(canon.code_system(f"retourcode-{line.format}"), code, text)]
                },
            }
            for code, text in answer.codes
        ]
    return resource
