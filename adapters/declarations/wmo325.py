"""The municipality's answer to a WMO323: the iWmo 3.2 WMO325 (declaratie-antwoord).

No official WMO325 XSD was found in a public source; the structure here follows the public
summary of the iWmo 3.2 WMO325.xsd (Header with DeclaratieIdentificatie and RetourCodes;
DeclaratieAntwoord with the totals; per Client and Prestatie its RetourCodes) and the
processing rules IV087/IV088/TR342 (docs/declarations.md says what is verified):

- a message rule failed (header retourcode 0001): the whole declaration is rejected;
- fully approved: the DeclaratieAntwoord carries 8001 and no clients are returned;
- otherwise only rejected Prestaties come back, each with its retourcodes; a client-level
  code rejects every Prestatie of that client (they carry 0233).

:func:`read_wmo325` reads an answer (hardened parser: no DTD, no entities, no network) into
:class:`Wmo325`; :func:`wmo325_xml` writes one (what a municipality sends, used by the
tests and by anyone simulating a municipality).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from lxml import etree

from adapters.declarations.wmo323 import Declaratie, Prestatie, total
from mappings.core.errors import Invalid
from mappings.core.xml import parse_hardened

__all__ = [
    "ACCEPTED",
    "BERICHT_CODE",
    "NO_REMARK",
    "AnswerError",
    "Wmo325",
    "read_wmo325",
    "wmo325_xml",
]

BERICHT_CODE = "485"
NO_REMARK = "0200"
ACCEPTED = "8001"
_REJECTED_MESSAGE = "0001"
_NOT_ASSESSED = "0233"
_WMO = "http://www.istandaarden.nl/iwmo/3_2/wmo325/schema"
_IWMO = "http://www.istandaarden.nl/iwmo/3_2/basisschema/schema"
_MAX_BYTES = 50 * 1024 * 1024


class AnswerError(ValueError):
    """The file is not a WMO325 we can read."""


@dataclass(frozen=True, slots=True)
class Wmo325:
    """An answer: who sent it, which WMO323 it answers, and the verdict per line."""

    afzender: str  # the municipality
    ontvanger: str  # our AGB
    identificatie: str
    dagtekening: dt.date
    declaratie: str  # the BerichtIdentificatie of the WMO323 answered
    header_codes: tuple[str, ...]
    rejected: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # reference -> codes
    whole_rejected: bool = False


def _local(element: etree._Element) -> str:
    return etree.QName(element).localname


def _child(parent: etree._Element, name: str) -> etree._Element:
    for element in parent:
        if isinstance(element.tag, str) and _local(element) == name:
            return element
    raise AnswerError(f"{_local(parent)} has no {name}")


def _children(parent: etree._Element, name: str) -> list[etree._Element]:
    return [e for e in parent if isinstance(e.tag, str) and _local(e) == name]


def _text(parent: etree._Element, *path: str) -> str:
    element = parent
    for name in path:
        element = _child(element, name)
    return (element.text or "").strip()


def _codes(parent: etree._Element) -> tuple[str, ...]:
    holders = _children(parent, "RetourCodes")
    return tuple((c.text or "").strip() for h in holders for c in _children(h, "RetourCode"))


def read_wmo325(data: bytes) -> Wmo325:
    """The answer in ``data``; :class:`AnswerError` names what is wrong with it."""
    if len(data) > _MAX_BYTES:
        raise AnswerError("The file is larger than 50 MB")
    try:
        root = parse_hardened(data)  # no DOCTYPE, no entities, no network, bounded depth
    except Invalid as error:
        raise AnswerError(f"Not a WMO325 answer: {error.diagnostics}") from None
    if root.tag != f"{{{_WMO}}}Bericht":
        raise AnswerError("Not an iWmo 3.2 WMO325 message (root element or namespace)")
    header = _child(root, "Header")
    if _text(header, "BerichtCode") != BERICHT_CODE:
        raise AnswerError(f"BerichtCode is not {BERICHT_CODE}")
    try:
        dagtekening = dt.date.fromisoformat(_text(header, "BerichtIdentificatie", "Dagtekening"))
    except ValueError:
        raise AnswerError("BerichtIdentificatie/Dagtekening is not a date") from None
    header_codes = _codes(header)
    rejected: dict[str, tuple[str, ...]] = {}
    answer = _children(root, "DeclaratieAntwoord")
    if answer:
        for client in _children(answer[0], "Clienten")[:1]:
            for element in _children(client, "Client"):
                client_codes = tuple(c for c in _codes(element) if c != NO_REMARK)
                for line in _children(_child(element, "Prestaties"), "Prestatie"):
                    reference = _text(line, "ProductReferentie", "ReferentieNummer")
                    codes = tuple(c for c in _codes(line) if c != NO_REMARK) + client_codes
                    rejected[reference] = codes or (_NOT_ASSESSED,)
    return Wmo325(
        afzender=_text(header, "Afzender"),
        ontvanger=_text(header, "Ontvanger"),
        identificatie=_text(header, "BerichtIdentificatie", "Identificatie"),
        dagtekening=dagtekening,
        declaratie=_text(header, "DeclaratieIdentificatie", "Identificatie"),
        header_codes=header_codes,
        rejected=rejected,
        whole_rejected=_REJECTED_MESSAGE in header_codes,
    )


# -- writing (a municipality's side) -----------------------------------------------------


def _sub(
    parent: etree._Element, namespace: str, name: str, text: str | None = None
) -> etree._Element:
    element = etree.SubElement(parent, f"{{{namespace}}}{name}")
    if text is not None:
        element.text = text
    return element


def _retour(parent: etree._Element, codes: Sequence[str]) -> None:
    holder = _sub(parent, _WMO, "RetourCodes")
    for code in codes:
        _sub(holder, _WMO, "RetourCode", code)


def _amount(parent: etree._Element, name: str, cents: int, debet: bool) -> None:
    amount = _sub(parent, _WMO, name)
    _sub(amount, _IWMO, "TotaalBedrag", str(cents))
    _sub(amount, _IWMO, "DebetCredit", "D" if debet else "C")


def wmo325_xml(
    declaratie: Declaratie,
    identificatie: str,
    dagtekening: dt.date,
    rejected: Mapping[str, Sequence[str]] | None = None,
    *,
    message_rejected: bool = False,
) -> bytes:
    """The answer a municipality sends to ``declaratie``: ``rejected`` maps the reference
    numbers it rejects to their retourcodes; ``message_rejected``: a message rule failed."""
    rejected = rejected or {}
    root = etree.Element(f"{{{_WMO}}}Bericht", nsmap={"wmo325": _WMO, "iwmo": _IWMO})
    header = _sub(root, _WMO, "Header")
    for name, value in (
        ("BerichtCode", BERICHT_CODE),
        ("BerichtVersie", "3"),
        ("BerichtSubversie", "2"),
    ):
        _sub(header, _WMO, name, value)
    _sub(header, _WMO, "Afzender", declaratie.gemeente)
    _sub(header, _WMO, "Ontvanger", declaratie.afzender)
    ident = _sub(header, _WMO, "BerichtIdentificatie")
    _sub(ident, _IWMO, "Identificatie", identificatie)
    _sub(ident, _IWMO, "Dagtekening", dagtekening.isoformat())
    for name in ("XsdVersie",):
        versions = _sub(header, _WMO, name)
        _sub(versions, _IWMO, "BasisschemaXsdVersie", "1.0.0")
        _sub(versions, _IWMO, "BerichtXsdVersie", "1.0.0")
    answered = _sub(header, _WMO, "DeclaratieIdentificatie")
    _sub(answered, _IWMO, "Identificatie", declaratie.identificatie)
    _sub(answered, _IWMO, "Dagtekening", declaratie.dagtekening.isoformat())
    versions = _sub(header, _WMO, "XsdVersieDeclaratie")
    _sub(versions, _IWMO, "BasisschemaXsdVersie", "1.0.0")
    _sub(versions, _IWMO, "BerichtXsdVersie", "1.0.0")
    _retour(header, [_REJECTED_MESSAGE if message_rejected else NO_REMARK])
    if message_rejected:
        return bytes(
            etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)
        )
    body = _sub(root, _WMO, "DeclaratieAntwoord")
    _sub(body, _WMO, "DeclaratieNummer", declaratie.nummer)
    cents, debet = total(declaratie)
    _amount(body, "TotaalIngediendBedrag", cents, debet)
    granted = sum(
        (p.bedrag if p.debet else -p.bedrag)
        for _, p in declaratie.prestaties()
        if p.referentie not in rejected
    )
    _amount(body, "TotaalToegekendBedrag", abs(granted), granted >= 0)
    returned = [
        c for c in declaratie.clients if any(p.referentie in rejected for p in c.prestaties)
    ]
    if returned:
        clients = _sub(body, _WMO, "Clienten")
        for client in returned:
            element = _sub(clients, _WMO, "Client")
            _sub(element, _WMO, "Bsn", client.bsn)
            lines = _sub(element, _WMO, "Prestaties")
            for p in client.prestaties:
                if p.referentie in rejected:
                    _returned_line(lines, p, rejected[p.referentie])
            _retour(element, [NO_REMARK])
    _retour(body, [ACCEPTED] if not rejected else [NO_REMARK])
    return bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True))


def _returned_line(parent: etree._Element, p: Prestatie, codes: Sequence[str]) -> None:
    line = _sub(parent, _WMO, "Prestatie")
    reference = _sub(line, _WMO, "ProductReferentie")
    _sub(reference, _IWMO, "ReferentieNummer", p.referentie)
    if p.vorig_referentie:
        _sub(reference, _IWMO, "VorigReferentieNummer", p.vorig_referentie)
    _sub(line, _WMO, "ToewijzingNummer", str(p.toewijzing))
    _sub(line, _WMO, "ProductCategorie", p.categorie)
    _sub(line, _WMO, "ProductCode", p.code)
    period = _sub(line, _WMO, "ProductPeriode")
    _sub(period, _IWMO, "Begindatum", p.begin.isoformat())
    _sub(period, _IWMO, "Einddatum", p.eind.isoformat())
    _sub(line, _WMO, "GeleverdVolume", str(p.volume))
    _sub(line, _WMO, "Eenheid", p.eenheid)
    if p.tarief is not None:
        _sub(line, _WMO, "ProductTarief", str(p.tarief))
    amount = _sub(line, _WMO, "IngediendBedrag")
    _sub(amount, _IWMO, "Bedrag", str(p.bedrag))
    _sub(amount, _IWMO, "DebetCredit", "D" if p.debet else "C")
    _retour(line, list(codes))
