"""The Vektis AW319 v1.4 declaration (wijkverpleging, Zvw, Code EI-bericht 428): fixed width.

Records of 310 positions, CR LF after each: 01 (the sender and the period), per insured
client a 02 followed by their 04 prestatie records, and 99 with the counts and the net total.
N fields are digits, right-aligned and zero-padded; AN fields left-aligned and space-padded;
amounts are eurocents with a separate debet/credit indicator. The layout is data
(:mod:`mappings.nl.aw319_layout`); :func:`aw319_text` writes a message and
:func:`aw319_faults` reads any file back against the layout and the cross-record rules
(running detail ids, 04 repeating its 02, the 99 counts and total, amounts that multiply).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field

from adapters.declarations.wmo323 import Fault
from mappings.nl.aw319_layout import LAYOUT, RECORD_LENGTH

__all__ = [
    "CODE_WIJKVERPLEGING",
    "Aw319Bericht",
    "Aw319Prestatie",
    "Verzekerde",
    "aw319_faults",
    "aw319_records",
    "aw319_text",
    "decode",
    "encode",
]

CODE_WIJKVERPLEGING = "428"
_CODELIJST_WV = "065"  # COD367: prestatiecodelijst wijkverpleging
_CRLF = "\r\n"


@dataclass(frozen=True, slots=True)
class Aw319Prestatie:
    """One 04 record: a prestatie over a period, in units of ``tijdseenheid`` (COD218)."""

    begin: dt.date
    eind: dt.date
    prestatiecode: str
    aantal: int
    tijdseenheid: int
    uitvoerder: str  # AGB code of the organisation that delivered
    tarief: int  # eurocents per unit
    referentie: str
    vorige_referentie: str | None = None  # a credit of that earlier record

    @property
    def bedrag(self) -> int:
        return self.tarief * self.aantal

    @property
    def debet(self) -> bool:
        return self.vorige_referentie is None


@dataclass(frozen=True, slots=True)
class Verzekerde:
    """One 02 record: the insured client, with their prestaties."""

    bsn: str
    uzovi: str
    geboortedatum: dt.date
    geslacht: int  # 1 man, 2 vrouw
    naam: str
    voorletters: str
    prestaties: tuple[Aw319Prestatie, ...]
    voorvoegsel: str = ""
    verzekerdennummer: str = ""
    patientnummer: str = ""
    postcode: str = ""
    huisnummer: int = 0


@dataclass(frozen=True, slots=True)
class Aw319Bericht:
    """One file: from one institution (AGB) to one insurer (UZOVI), for one period."""

    uzovi: str
    instelling: str  # AGB instellingscode
    begin: dt.date
    eind: dt.date
    factuurnummer: str
    dagtekening: dt.date
    verzekerden: tuple[Verzekerde, ...] = field(default_factory=tuple)
    soort: str = "P"  # P productie, T test


def _date(day: dt.date) -> str:
    return day.strftime("%Y%m%d")


def encode(record: str, values: Mapping[str, str | int]) -> str:
    """One record of ``record``'s layout; fields not given are zeros (N) or spaces (AN)."""
    out = []
    for item in LAYOUT[record]:
        if item.code.endswith("01") and item.start == 1:
            value: str | int = record
        else:
            value = values.get(item.code, 0 if item.kind == "N" else "")
        text = str(value)
        if item.kind == "N":
            if not (text.isascii() and text.isdigit()):
                raise ValueError(f"{item.code} ({item.name}) takes digits, not {text[:20]!r}")
            text = text.rjust(item.length, "0")
        else:
            text = text.ljust(item.length)
        if len(text) > item.length:
            raise ValueError(f"{item.code} ({item.name}) holds at most {item.length} positions")
        out.append(text)
    line = "".join(out)
    assert len(line) == RECORD_LENGTH
    return line


def decode(line: str) -> tuple[str, dict[str, str]]:
    """(record type, field code -> raw text) of one record."""
    record = line[:2]
    fields = LAYOUT.get(record)
    if fields is None:
        raise ValueError(f"Unknown record type {record!r}")
    return record, {f.code: line[f.start - 1 : f.end] for f in fields}


def aw319_records(bericht: Aw319Bericht) -> Iterator[str]:
    """The records of the file, one at a time (without their CR LF)."""
    yield encode(
        "01",
        {
            "0102": CODE_WIJKVERPLEGING,
            "0103": "01",
            "0104": "04",
            "0105": bericht.soort,
            "0108": bericht.uzovi,
            "0112": bericht.instelling,
            "0113": "04",  # payment to the institution (0112)
            "0114": _date(bericht.begin),
            "0115": _date(bericht.eind),
            "0116": bericht.factuurnummer,
            "0117": _date(bericht.dagtekening),
            "0119": "EUR",
        },
    )
    detail = 0
    clients = prestaties = 0
    balance = 0
    for client in bericht.verzekerden:
        detail += 1
        clients += 1
        yield encode(
            "02",
            {
                "0202": detail,
                "0203": client.bsn,
                "0204": client.uzovi,
                "0205": client.verzekerdennummer,
                "0206": client.patientnummer,
                "0207": _date(client.geboortedatum),
                "0208": client.geslacht,
                "0209": 1,
                "0210": client.naam,
                "0211": client.voorvoegsel,
                "0215": client.voorletters,
                "0217": client.postcode,
                "0219": client.huisnummer,
                "0223": 2,
            },
        )
        for line in client.prestaties:
            detail += 1
            prestaties += 1
            sign = "D" if line.debet else "C"
            balance += line.bedrag if line.debet else -line.bedrag
            yield encode(
                "04",
                {
                    "0402": detail,
                    "0403": client.bsn,
                    "0404": client.uzovi,
                    "0405": client.verzekerdennummer,
                    "0407": 1,
                    "0414": _date(line.begin),
                    "0415": _date(line.eind),
                    "0416": _CODELIJST_WV,
                    "0417": line.prestatiecode,
                    "0418": line.aantal,
                    "0419": line.tijdseenheid,
                    "0420": line.uitvoerder,
                    "0425": line.tarief,
                    "0426": line.bedrag,
                    "0427": sign,
                    "0429": line.bedrag,
                    "0430": sign,
                    "0431": line.referentie,
                    "0432": line.vorige_referentie or "",
                },
            )
    yield encode(
        "99",
        {
            "9902": clients,
            "9904": prestaties,
            "9906": detail,
            "9907": abs(balance),
            "9908": "D" if balance >= 0 else "C",
        },
    )


def aw319_text(bericht: Aw319Bericht) -> str:
    """The file, CR LF after every record (write it as ISO-8859-1)."""
    return "".join(record + _CRLF for record in aw319_records(bericht))


def aw319_faults(text: str | Iterable[str]) -> list[Fault]:
    """Where a file departs from the layout and the cross-record rules (empty: none).

    ``text``: the whole file, or its records one at a time (without CR LF)."""
    if isinstance(text, str):
        lines: Iterable[str] = text.split(_CRLF)
        if text.endswith(_CRLF):
            lines = list(lines)[:-1]
    else:
        lines = text
    faults: list[Fault] = []
    parsed: list[tuple[str, dict[str, str]]] = []
    for number, line in enumerate(lines, 1):
        if len(line) != RECORD_LENGTH:
            faults.append(Fault("LENGTH", f"line {number}", f"{len(line)} positions, not 310"))
            continue
        try:
            record, values = decode(line)
        except ValueError as error:
            faults.append(Fault("RECORD", f"line {number}", str(error)))
            continue
        for item in LAYOUT[record]:
            raw = values[item.code]
            if item.kind == "N" and not (raw.isascii() and raw.isdigit()):
                faults.append(Fault(item.code, f"line {number}", f"{item.name}: digits only"))
        parsed.append((record, values))
    if faults:
        return faults
    return _structure_faults(parsed)


def _structure_faults(parsed: list[tuple[str, dict[str, str]]]) -> list[Fault]:
    faults: list[Fault] = []
    kinds = [record for record, _ in parsed]
    if not kinds or kinds[0] != "01" or kinds[-1] != "99" or kinds.count("01") != 1:
        return [Fault("ORDER", "file", "One 01 record first, one 99 record last")]
    expected = 0
    parent: dict[str, str] | None = None
    balance = 0
    for number, (record, values) in enumerate(parsed[1:-1], 2):
        where = f"line {number}"
        if record in ("02", "04"):
            expected += 1
            if int(values[f"{record}02"]) != expected:
                faults.append(Fault(f"{record}02", where, "Detail ids run 1, 2, 3, ..."))
        if record == "02":
            parent = values
        elif record == "04":
            faults += _prestatie_faults(values, parent, where)
            amount = int(values["0429"])
            balance += amount if values["0430"] == "D" else -amount
    closing = parsed[-1][1]
    counts = {"9902": kinds.count("02"), "9904": kinds.count("04"), "9905": kinds.count("98")}
    counts["9906"] = counts["9902"] + counts["9904"] + counts["9905"]
    for code, count in counts.items():
        if int(closing[code]) != count:
            faults.append(Fault(code, "99", f"says {int(closing[code])}, the file holds {count}"))
    sign = "D" if balance >= 0 else "C"
    if int(closing["9907"]) != abs(balance) or closing["9908"] != sign:
        faults.append(Fault("9907", "99", "The total is not the net sum of the 04 records"))
    return faults


def _prestatie_faults(
    values: dict[str, str], parent: dict[str, str] | None, where: str
) -> list[Fault]:
    if parent is None:
        return [Fault("ORDER", where, "A 04 record follows its client's 02 record")]
    faults = [
        Fault(code, where, "Repeats its client's 02 record")
        for code, of_parent in (("0403", "0203"), ("0404", "0204"), ("0405", "0205"))
        if values[code] != parent[of_parent]
    ]
    if int(values["0426"]) != int(values["0425"]) * int(values["0418"]):
        faults.append(Fault("0426", where, "The amount is the tariff times the number"))
    if values["0427"] not in "DC" or values["0430"] not in "DC" or " " in values["0430"]:
        faults.append(Fault("0430", where, "Debet or credit: D or C"))
    if values["0430"] == "C" and not values["0432"].strip():
        faults.append(Fault("0432", where, "A credit names the record it credits"))
    if not values["0431"].strip():
        faults.append(Fault("0431", where, "Every prestatie record has a reference"))
    return faults
