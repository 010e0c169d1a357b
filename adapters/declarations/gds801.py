"""Vektis GDS801 (Generieke Declaratie Standaard, message code 573) for GGZ: UNVERIFIED.

No public XSD of GDS801 exists. The element names here are those the public Vecozo
validation (``gds801_573val``) refers to; their order, their cardinality and their simple
types are our reconstruction, and the element that carries the prestatie code is not named
in any public source (we write ``Prestatiecode``). Every file says so in a comment at its
top, and :data:`VERIFIED` is False: this writer sits behind the same interface as the others
so that a writer built on the official schema can replace it.

What is checked is what the public Vecozo rules say (:func:`gds801_faults`): the total
(0150), Aantal 1 and no Einddatum for list 071 (8049, 9465), tariff, computed and declared
amount all zero or all positive (9278), dates against the sending date (8986, 8989, 9265,
9267, 8175), the period from 2022 (0020), UZOVI = receiver (9269), SEPA characters in the
invoice number (9797), no debit and its credit in one message (8062). Amounts are decimal
euros with two decimals (not cents, unlike iWmo and AW319).
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from typing import BinaryIO

from lxml import etree

from adapters.declarations.wmo323 import Fault
from mappings.nl.identifiers import is_bsn

__all__ = [
    "BERICHT_CODE",
    "CODELIJST_GGZ",
    "UNVERIFIED",
    "VERIFIED",
    "Gds801Bericht",
    "Gds801Prestatie",
    "Gds801Verzekerde",
    "gds801_faults",
    "gds801_xml",
    "write_gds801",
]

BERICHT_CODE = "573"
CODELIJST_GGZ = "071"  # the GGZ/FZ zorgprestatiemodel: the only list a 573 may carry
VERIFIED = False
UNVERIFIED = (
    " GDS801 as reconstructed by Eigen Dossier from the public Vecozo rules: UNVERIFIED "
    "against Vecozo (no public XSD; element order and types are ours) "
)
_NS = "http://ei.vektis.nl/declaratiebericht573"
_FIRST_DAY = dt.date(2022, 1, 1)  # 0020
_SEPA = re.compile(r"^[A-Za-z0-9/\-?:().,' +]*$")  # 9797


@dataclass(frozen=True, slots=True)
class Gds801Prestatie:
    """One contact: a debit, or a credit of an earlier one (``vorige_referentie``)."""

    referentie: str
    prestatiecode: str
    begin: dt.date
    tarief: int  # eurocents incl. VAT
    zorgtraject_start: dt.date
    vorige_referentie: str | None = None

    @property
    def debet(self) -> bool:
        return self.vorige_referentie is None


@dataclass(frozen=True, slots=True)
class Gds801Verzekerde:
    bsn: str
    uzovi: str
    geboortedatum: dt.date | None
    prestaties: tuple[Gds801Prestatie, ...]


@dataclass(frozen=True, slots=True)
class Gds801Bericht:
    """One message: from a provider (AGB) to an insurer (UZOVI), one period."""

    verzender: str  # AGB
    ontvanger: str  # UZOVI
    verzenddatum: dt.date
    factuurnummer: str
    begin: dt.date
    eind: dt.date
    verzekerden: tuple[Gds801Verzekerde, ...] = field(default_factory=tuple)
    soort: str = "P"


def _euros(cents: int) -> str:
    return f"{cents // 100}.{cents % 100:02d}"


def _total(bericht: Gds801Bericht) -> tuple[int, str]:
    balance = sum(
        p.tarief if p.debet else -p.tarief for v in bericht.verzekerden for p in v.prestaties
    )
    return abs(balance), "D" if balance >= 0 else "C"


def _sub(parent: etree._Element, name: str, text: str | None = None) -> etree._Element:
    element = etree.SubElement(parent, f"{{{_NS}}}{name}")
    if text is not None:
        element.text = text
    return element


def _head(root: etree._Element, bericht: Gds801Bericht) -> None:
    header = _sub(root, "Header")
    for name, value in (
        ("Berichtcode", BERICHT_CODE),
        ("Berichtversie", "1"),
        ("Berichtsubversie", "0"),
        ("Berichtsoort", bericht.soort),
        ("Verzender", bericht.verzender),
        ("VerzenderRol", "1"),
        ("Ontvanger", bericht.ontvanger),
        ("OntvangerRol", "3"),
        ("Verzenddatum", bericht.verzenddatum.isoformat()),
    ):
        _sub(header, name, value)
    context = _sub(root, "DeclaratieContext")
    declarant = _sub(context, "Declarant")
    _sub(declarant, "Zorgaanbiedercode", bericht.verzender)
    _sub(declarant, "ZorgaanbiederSoort", "AGB")
    for name, value in (
        ("BetalingAanServicebureau", "N"),
        ("Factuurnummer", bericht.factuurnummer),
        ("Factuurdatum", bericht.verzenddatum.isoformat()),
        ("Valutacode", "EUR"),
        ("BegindatumDeclaratieperiode", bericht.begin.isoformat()),
        ("EinddatumDeclaratieperiode", bericht.eind.isoformat()),
    ):
        _sub(context, name, value)
    overview = _sub(root, "Overzicht")
    total = _sub(overview, "TotaalDeclaratiebedragInclBtw")
    cents, sign = _total(bericht)
    _sub(total, "Bedrag", _euros(cents))
    _sub(total, "DebetCreditCode", sign)


def _verzekerde(parent: etree._Element | None, client: Gds801Verzekerde) -> etree._Element:
    tag = f"{{{_NS}}}Verzekerde"
    element = etree.SubElement(parent, tag) if parent is not None else etree.Element(tag)
    _sub(element, "BSN", client.bsn)
    _sub(element, "UzoviNummer", client.uzovi)
    if client.geboortedatum is not None:
        _sub(element, "Geboortedatum", client.geboortedatum.isoformat())
    for line in client.prestaties:
        holder = _sub(element, "Prestatie")
        kind = _sub(holder, "DebetPrestatie" if line.debet else "CreditPrestatie")
        _sub(kind, "Referentienummer", line.referentie)
        if not line.debet:
            _sub(kind, "GerelateerdReferentienummer", line.vorige_referentie)
        _sub(kind, "PrestatieCodelijstCode", CODELIJST_GGZ)
        _sub(kind, "Prestatiecode", line.prestatiecode)
        _sub(kind, "Begindatum", line.begin.isoformat())
        if line.debet:
            _sub(kind, "Aantal", "1")
            for name in ("TariefInclBtw", "BerekendBedragInclBtw", "DeclaratieBedragInclBtw"):
                _sub(kind, name, _euros(line.tarief))
            _sub(kind, "DoorsturenToegestaan", "J")
            extra = _sub(kind, "AanvullendePrestatiegegevens")
            trajectory = _sub(extra, "Zorgtraject")
            _sub(trajectory, "ZorgtrajectStartdatum", line.zorgtraject_start.isoformat())
        else:
            _sub(kind, "ToegekendBedragInclBtwFinancieel", _euros(line.tarief))
    return element


def gds801_xml(bericht: Gds801Bericht) -> bytes:
    root = etree.Element(f"{{{_NS}}}Bericht", nsmap={"gds801": _NS})
    _head(root, bericht)
    for client in bericht.verzekerden:
        _verzekerde(root, client)
    body = etree.tostring(root, encoding="UTF-8", pretty_print=True)
    return b'<?xml version="1.0" encoding="UTF-8"?>\n<!--' + UNVERIFIED.encode() + b"-->\n" + body


def write_gds801(bericht: Gds801Bericht, out: BinaryIO) -> None:
    """Write the message to ``out`` a client at a time."""
    out.write(b'<?xml version="1.0" encoding="UTF-8"?>\n<!--' + UNVERIFIED.encode() + b"-->\n")
    with (
        etree.xmlfile(out, encoding="UTF-8") as xml,
        xml.element(f"{{{_NS}}}Bericht", nsmap={"gds801": _NS}),
    ):
        head = etree.Element(f"{{{_NS}}}Root", nsmap={"gds801": _NS})
        _head(head, bericht)
        for element in head:
            xml.write(element, pretty_print=True)
        for client in bericht.verzekerden:
            xml.write(_verzekerde(None, client), pretty_print=True)


def gds801_faults(bericht: Gds801Bericht, today: dt.date) -> list[Fault]:
    """The public Vecozo rules the message breaks (empty: none found)."""
    faults: list[Fault] = []
    sent = bericht.verzenddatum
    checks = [
        ("8986", "Header", sent > today, "The sending date is not in the future"),
        ("9267", "DeclaratieContext", bericht.eind > sent, "The period ends by the sending date"),
        ("8175", "DeclaratieContext", bericht.begin > bericht.eind, "The period begins first"),
        ("0020", "DeclaratieContext", bericht.begin < _FIRST_DAY, "No period before 2022"),
        (
            "9797",
            "Factuurnummer",
            not _SEPA.match(bericht.factuurnummer) or not bericht.factuurnummer,
            "The invoice number holds SEPA characters only",
        ),
    ]
    faults += [Fault(rule, where, text) for rule, where, broken, text in checks if broken]
    references = {p.referentie for v in bericht.verzekerden for p in v.prestaties}
    for client in bericht.verzekerden:
        if not is_bsn(client.bsn):
            faults.append(Fault("8101", "Verzekerde", "A BSN fails the eleven test"))
        if client.geboortedatum is None:
            faults.append(Fault("8151", "Verzekerde", "The date of birth is required"))
        if client.uzovi != bericht.ontvanger:
            faults.append(Fault("9269", "Verzekerde", "UzoviNummer is the receiver's"))
        for line in client.prestaties:
            where = f"Prestatie {line.referentie}"
            if line.begin > sent:
                faults.append(Fault("8989", where, "The day is not after the sending date"))
            if line.tarief < 0:
                faults.append(Fault("9278", where, "Amounts are all zero or all positive"))
            if line.vorige_referentie in references:
                faults.append(Fault("8062", where, "No debit and its credit in one message"))
    return faults
