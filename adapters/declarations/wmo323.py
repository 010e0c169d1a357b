"""The iWmo 3.2 declaratie (WMO323): a message to one municipality for one month.

The message model (:class:`Declaratie` with its clients and their prestaties), the XML it
is written as (:func:`wmo323_xml`, namespaces and element order as the XSD fixes them),
and the checks the municipality will make before it reads a line: the vendored XSD
(:func:`xsd_faults`) and the message rules of the iWmo validation XSLT (controleniveau 2,
:func:`rule_faults`; a failure there rejects the whole message with retourcode 0001).

Amounts are integers in eurocents, never negative: the sign is the debet/credit indicator.
A credit (a correction of a line declared before) names the original in
``vorig_referentie`` and is credit; everything else is debet.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from functools import cache
from importlib import resources
from typing import BinaryIO

from lxml import etree

from mappings.nl.identifiers import is_bsn

__all__ = [
    "BERICHT_CODE",
    "Client",
    "Declaratie",
    "Fault",
    "Prestatie",
    "rule_faults",
    "faults_of",
    "read_wmo323",
    "total",
    "write_wmo323",
    "wmo323_xml",
    "xsd_faults",
]

BERICHT_CODE = "484"
_WMO = "http://www.istandaarden.nl/iwmo/3_2/wmo323/schema"
_IWMO = "http://www.istandaarden.nl/iwmo/3_2/basisschema/schema"
_NSMAP = {"wmo323": _WMO, "iwmo": _IWMO}
XSD_VERSION = "1.0.0"
_FIRST_DAY = dt.date(2021, 1, 1)  # CS100
_EURO = "83"  # Eenheid: euro's (the volume is an amount in cents, no tariff)


@dataclass(frozen=True, slots=True)
class Prestatie:
    """One line: a product for one allocation over (part of) one month."""

    referentie: str
    toewijzing: int
    categorie: str
    code: str
    begin: dt.date
    eind: dt.date
    volume: int
    eenheid: str
    bedrag: int  # eurocents
    tarief: int | None = None  # eurocents per unit; absent with eenheid 83
    vorig_referentie: str | None = None  # a credit of that earlier line

    @property
    def debet(self) -> bool:
        return self.vorig_referentie is None


@dataclass(frozen=True, slots=True)
class Client:
    bsn: str
    prestaties: tuple[Prestatie, ...]


@dataclass(frozen=True, slots=True)
class Declaratie:
    """One WMO323 message: from a provider (AGB) to a municipality (CBS code), one month."""

    afzender: str  # the provider's AGB code
    gemeente: str  # the municipality's CBS code, four digits
    identificatie: str  # the message's identification, unique per sender
    dagtekening: dt.date
    nummer: str  # DeclaratieNummer
    begin: dt.date  # the month declared
    eind: dt.date
    clients: tuple[Client, ...] = field(default_factory=tuple)

    def prestaties(self) -> Iterator[tuple[Client, Prestatie]]:
        for client in self.clients:
            for prestatie in client.prestaties:
                yield client, prestatie


@dataclass(frozen=True, slots=True)
class Fault:
    """A rule the message breaks: its code, where, and what."""

    rule: str
    where: str
    text: str


def total(declaratie: Declaratie) -> tuple[int, bool]:
    """(TotaalBedrag, debet) as TR358 computes it: the debits less the credits."""
    balance = sum(p.bedrag if p.debet else -p.bedrag for _, p in declaratie.prestaties())
    return abs(balance), balance >= 0


# -- writing ------------------------------------------------------------------------------


def _sub(
    parent: etree._Element, namespace: str, name: str, text: str | None = None
) -> etree._Element:
    element = etree.SubElement(parent, f"{{{namespace}}}{name}")
    if text is not None:
        element.text = text
    return element


def _period(parent: etree._Element, name: str, begin: dt.date, eind: dt.date) -> None:
    period = _sub(parent, _WMO, name)
    _sub(period, _IWMO, "Begindatum", begin.isoformat())
    _sub(period, _IWMO, "Einddatum", eind.isoformat())


def _amount(parent: etree._Element, name: str, kind: str, cents: int, debet: bool) -> None:
    amount = _sub(parent, _WMO, name)
    _sub(amount, _IWMO, kind, str(cents))
    _sub(amount, _IWMO, "DebetCredit", "D" if debet else "C")


def _header(root: etree._Element, declaratie: Declaratie) -> None:
    header = _sub(root, _WMO, "Header")
    _sub(header, _WMO, "BerichtCode", BERICHT_CODE)
    _sub(header, _WMO, "BerichtVersie", "3")
    _sub(header, _WMO, "BerichtSubversie", "2")
    _sub(header, _WMO, "Afzender", declaratie.afzender)
    _sub(header, _WMO, "Ontvanger", declaratie.gemeente)
    identification = _sub(header, _WMO, "BerichtIdentificatie")
    _sub(identification, _IWMO, "Identificatie", declaratie.identificatie)
    _sub(identification, _IWMO, "Dagtekening", declaratie.dagtekening.isoformat())
    versions = _sub(header, _WMO, "XsdVersie")
    _sub(versions, _IWMO, "BasisschemaXsdVersie", XSD_VERSION)
    _sub(versions, _IWMO, "BerichtXsdVersie", XSD_VERSION)


def _declaratie_head(body: etree._Element, declaratie: Declaratie, cents: int, debet: bool) -> None:
    _sub(body, _WMO, "DeclaratieNummer", declaratie.nummer)
    _period(body, "DeclaratiePeriode", declaratie.begin, declaratie.eind)
    _sub(body, _WMO, "DeclaratieDagtekening", declaratie.dagtekening.isoformat())
    _amount(body, "TotaalIngediendBedrag", "TotaalBedrag", cents, debet)


def _client(parent: etree._Element | None, client: Client) -> etree._Element:
    tag = f"{{{_WMO}}}Client"
    element = (
        etree.SubElement(parent, tag) if parent is not None else etree.Element(tag, nsmap=_NSMAP)
    )
    _sub(element, _WMO, "Bsn", client.bsn)
    lines = _sub(element, _WMO, "Prestaties")
    for prestatie in client.prestaties:
        _prestatie(lines, prestatie)
    return element


def wmo323_xml(declaratie: Declaratie) -> bytes:
    """The message as XML (UTF-8), in the order the XSD fixes."""
    root = etree.Element(f"{{{_WMO}}}Bericht", nsmap=_NSMAP)
    _header(root, declaratie)
    body = _sub(root, _WMO, "Declaratie")
    _declaratie_head(body, declaratie, *total(declaratie))
    clients = _sub(body, _WMO, "Clienten")
    for client in declaratie.clients:
        _client(clients, client)
    return bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True))


def write_wmo323(declaratie: Declaratie, out: BinaryIO) -> None:
    """Write the message to ``out`` a client at a time (memory does not grow with it)."""
    with etree.xmlfile(out, encoding="UTF-8") as xml:
        xml.write_declaration()
        with xml.element(f"{{{_WMO}}}Bericht", nsmap=_NSMAP):
            head = etree.Element(f"{{{_WMO}}}Root", nsmap=_NSMAP)
            _header(head, declaratie)
            xml.write(head[0], pretty_print=True)
            with xml.element(f"{{{_WMO}}}Declaratie"):
                body = etree.Element(f"{{{_WMO}}}Root", nsmap=_NSMAP)
                _declaratie_head(body, declaratie, *total(declaratie))
                for element in body:
                    xml.write(element, pretty_print=True)
                with xml.element(f"{{{_WMO}}}Clienten"):
                    for client in declaratie.clients:
                        xml.write(_client(None, client), pretty_print=True)


def faults_of(declaratie: Declaratie, chunk: int = 1000) -> list[Fault]:
    """Every fault of the message: the message rules over the whole of it, and the XSD for
    every client, ``chunk`` clients at a time under the message's own header."""
    faults = rule_faults(declaratie)
    clients = declaratie.clients
    for start in range(0, max(len(clients), 1), chunk):
        part = replace(declaratie, clients=clients[start : start + chunk])
        faults += xsd_faults(wmo323_xml(part))
    return faults


def _prestatie(parent: etree._Element, prestatie: Prestatie) -> None:
    line = _sub(parent, _WMO, "Prestatie")
    reference = _sub(line, _WMO, "ProductReferentie")
    _sub(reference, _IWMO, "ReferentieNummer", prestatie.referentie)
    if prestatie.vorig_referentie is not None:
        _sub(reference, _IWMO, "VorigReferentieNummer", prestatie.vorig_referentie)
    _sub(line, _WMO, "ToewijzingNummer", str(prestatie.toewijzing))
    _sub(line, _WMO, "ProductCategorie", prestatie.categorie)
    _sub(line, _WMO, "ProductCode", prestatie.code)
    _period(line, "ProductPeriode", prestatie.begin, prestatie.eind)
    _sub(line, _WMO, "GeleverdVolume", str(prestatie.volume))
    _sub(line, _WMO, "Eenheid", prestatie.eenheid)
    if prestatie.tarief is not None:
        _sub(line, _WMO, "ProductTarief", str(prestatie.tarief))
    _amount(line, "IngediendBedrag", "Bedrag", prestatie.bedrag, prestatie.debet)


# -- checking -----------------------------------------------------------------------------


@cache
def _schema() -> etree.XMLSchema:
    folder = resources.files("mappings.nl").joinpath("data", "iwmo")
    with resources.as_file(folder) as path:
        return etree.XMLSchema(etree.parse(str(path / "WMO323.xsd")))


def xsd_faults(xml: bytes) -> list[Fault]:
    """Where ``xml`` departs from the vendored WMO323 XSD (controleniveau 1)."""
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
    try:
        document = etree.fromstring(xml, parser)
    except etree.XMLSyntaxError as error:
        return [Fault("XSD", f"line {error.lineno}", "not well-formed XML")]
    schema = _schema()
    if schema.validate(document):
        return []
    errors = list(schema.error_log)  # type: ignore[call-overload]
    return [Fault("XSD", f"line {e.line}", e.message) for e in errors]


def _next_month(day: dt.date) -> dt.date:
    return dt.date(day.year + day.month // 12, day.month % 12 + 1, 1)


def rule_faults(declaratie: Declaratie) -> list[Fault]:
    """Every message rule of the iWmo validation (controleniveau 2) the message breaks."""
    faults = _message_faults(declaratie)
    for client in declaratie.clients:
        if not is_bsn(client.bsn):
            faults.append(Fault("CS002", "Client", "A BSN fails the eleven test"))
        for prestatie in client.prestaties:
            faults += _line_faults(declaratie, prestatie)
    return faults + _key_faults(declaratie)


def _message_faults(d: Declaratie) -> list[Fault]:
    faults = []
    if not (d.begin.day == 1 and d.eind + dt.timedelta(days=1) == _next_month(d.begin)):
        faults.append(Fault("CS340", "DeclaratiePeriode", "The period is one calendar month"))
    if d.begin < _FIRST_DAY:
        faults.append(Fault("CS100", "DeclaratiePeriode", "No period before 2021-01-01"))
    if not d.nummer.isascii() or not d.nummer.isalnum() or len(d.nummer) > 12:
        faults.append(Fault("CS319", "DeclaratieNummer", "Letters and digits only, at most 12"))
    if d.begin > d.dagtekening or d.eind > d.dagtekening:
        faults.append(Fault("TR137", "DeclaratiePeriode", "A month is declared after it ended"))
    cents, debet = total(d)
    if cents == 0 and not debet:
        faults.append(Fault("CS325", "TotaalIngediendBedrag", "An amount of 0 is debet"))
    return faults


def _line_faults(d: Declaratie, p: Prestatie) -> list[Fault]:
    where = f"Prestatie {p.referentie}"
    checks = [
        ("TR316", p.vorig_referentie == p.referentie, "A line does not credit itself"),
        ("CS100", p.begin < _FIRST_DAY, "No product period before 2021-01-01"),
        (
            "CS337",
            (p.begin.year, p.begin.month) != (p.eind.year, p.eind.month) or p.eind < p.begin,
            "A product period lies within one month",
        ),
        ("TR319", p.begin > d.eind or p.eind > d.eind, "A product period ends by the month's end"),
        ("CS325", p.bedrag == 0 and not p.debet, "An amount of 0 is debet"),
        (
            "CD087",
            (p.eenheid == _EURO) == (p.tarief is not None),
            "A tariff is given unless the unit is euro's (83)",
        ),
        ("CS339", p.eenheid == _EURO and p.volume != p.bedrag, "With unit 83 volume is the amount"),
    ]
    return [Fault(rule, where, text) for rule, broken, text in checks if broken]


def _key_faults(d: Declaratie) -> list[Fault]:
    """TR101 (keys appear once), TR315 and TR316 (crediting), TR416 (one debit per key)."""
    faults = [
        Fault("TR101", "Client", "A client appears once in a message")
        for _, count in Counter(c.bsn for c in d.clients).items()
        if count > 1
    ]
    lines = [p for _, p in d.prestaties()]
    references = Counter(p.referentie for p in lines)
    previous = Counter(p.vorig_referentie for p in lines if p.vorig_referentie is not None)
    debits = Counter((p.begin, p.eind, p.categorie, p.code, p.toewijzing) for p in lines if p.debet)
    faults += [
        Fault("TR101", f"Prestatie {r}", "A reference number appears once")
        for r, count in references.items()
        if count > 1
    ]
    faults += [
        Fault("TR316", f"Prestatie {r}", "No line is credited in its own message")
        for r in references
        if r in previous
    ]
    faults += [
        Fault("TR315", f"Prestatie {r}", "A line is credited once")
        for r, count in previous.items()
        if count > 1
    ]
    faults += [
        Fault("TR416", f"Toewijzing {key[4]}", "One debit line per period, product, allocation")
        for key, count in debits.items()
        if count > 1
    ]
    return faults


# -- reading ------------------------------------------------------------------------------


def read_wmo323(xml: bytes) -> Declaratie:
    """A WMO323 message back into the model (what a municipality reads); the file must
    pass the XSD first (:class:`ValueError` names the first fault)."""
    faults = xsd_faults(xml)
    if faults:
        raise ValueError(f"{faults[0].where}: {faults[0].text}")
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
    root = etree.fromstring(xml, parser)
    ns = {"w": _WMO, "i": _IWMO}

    def text(element: etree._Element, path: str) -> str:
        return str(element.findtext(path, namespaces=ns) or "")

    def day(element: etree._Element, path: str) -> dt.date:
        return dt.date.fromisoformat(text(element, path))

    body = root.find("w:Declaratie", ns)
    assert body is not None
    clients = []
    for client in body.iterfind("w:Clienten/w:Client", ns):
        lines = []
        for line in client.iterfind("w:Prestaties/w:Prestatie", ns):
            tarief = text(line, "w:ProductTarief")
            lines.append(
                Prestatie(
                    referentie=text(line, "w:ProductReferentie/i:ReferentieNummer"),
                    toewijzing=int(text(line, "w:ToewijzingNummer")),
                    categorie=text(line, "w:ProductCategorie"),
                    code=text(line, "w:ProductCode"),
                    begin=day(line, "w:ProductPeriode/i:Begindatum"),
                    eind=day(line, "w:ProductPeriode/i:Einddatum"),
                    volume=int(text(line, "w:GeleverdVolume")),
                    eenheid=text(line, "w:Eenheid"),
                    bedrag=int(text(line, "w:IngediendBedrag/i:Bedrag")),
                    tarief=int(tarief) if tarief else None,
                    vorig_referentie=text(line, "w:ProductReferentie/i:VorigReferentieNummer")
                    or None,
                )
            )
        clients.append(Client(text(client, "w:Bsn"), tuple(lines)))
    return Declaratie(
        afzender=text(root, "w:Header/w:Afzender"),
        gemeente=text(root, "w:Header/w:Ontvanger"),
        identificatie=text(root, "w:Header/w:BerichtIdentificatie/i:Identificatie"),
        dagtekening=day(root, "w:Header/w:BerichtIdentificatie/i:Dagtekening"),
        nummer=text(body, "w:DeclaratieNummer"),
        begin=day(body, "w:DeclaratiePeriode/i:Begindatum"),
        eind=day(body, "w:DeclaratiePeriode/i:Einddatum"),
        clients=tuple(clients),
    )
