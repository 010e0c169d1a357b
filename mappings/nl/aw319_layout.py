"""The Vektis AW319 v1.4 record layout, as data (BER edition 7, 2016): one table per record.

Each field: its element number, the name the BER gives it, N (digits, right-aligned,
zero-padded) or AN (left-aligned, space-padded), its length and its first position (1-based).
A record is 310 positions; a test holds every table to that (contiguous, no gaps).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["LAYOUT", "RECORD_LENGTH", "Field"]

RECORD_LENGTH = 310


@dataclass(frozen=True, slots=True)
class Field:
    code: str
    name: str
    kind: str  # "N" or "AN"
    length: int
    start: int  # first position, 1-based

    @property
    def end(self) -> int:
        return self.start + self.length - 1


def _fields(*rows: tuple[str, str, str, int, int]) -> tuple[Field, ...]:
    return tuple(Field(*row) for row in rows)


LAYOUT: dict[str, tuple[Field, ...]] = {
    "01": _fields(
        ("0101", "Kenmerk record", "N", 2, 1),
        ("0102", "Code EI-bericht", "N", 3, 3),
        ("0103", "Versie", "N", 2, 6),
        ("0104", "Subversie", "N", 2, 8),
        ("0105", "Soort bericht", "AN", 1, 10),
        ("0106", "Code softwareleverancier", "N", 6, 11),
        ("0107", "Versie software", "AN", 10, 17),
        ("0108", "UZOVI-nummer", "N", 4, 27),
        ("0109", "Code servicebureau", "N", 8, 31),
        ("0110", "Zorgverlenerscode", "N", 8, 39),
        ("0111", "Praktijkcode", "N", 8, 47),
        ("0112", "Instellingscode", "N", 8, 55),
        ("0113", "Identificatiecode betaling aan", "N", 2, 63),
        ("0114", "Begindatum declaratieperiode", "N", 8, 65),
        ("0115", "Einddatum declaratieperiode", "N", 8, 73),
        ("0116", "Factuurnummer declarant", "AN", 12, 81),
        ("0117", "Dagtekening factuur", "N", 8, 93),
        ("0118", "BTW-identificatienummer", "AN", 14, 101),
        ("0119", "Valutacode", "AN", 3, 115),
        ("0180", "Reserve", "AN", 193, 118),
    ),
    "02": _fields(
        ("0201", "Kenmerk record", "N", 2, 1),
        ("0202", "Identificatie detailrecord", "N", 12, 3),
        ("0203", "Burgerservicenummer", "N", 9, 15),
        ("0204", "UZOVI-nummer", "N", 4, 24),
        ("0205", "Verzekerdennummer", "AN", 15, 28),
        ("0206", "Patientnummer", "AN", 11, 43),
        ("0207", "Geboortedatum", "N", 8, 54),
        ("0208", "Code geslacht", "N", 1, 62),
        ("0209", "Naamcode/naamgebruik 01", "N", 1, 63),
        ("0210", "Naam 01", "AN", 25, 64),
        ("0211", "Voorvoegsel 01", "AN", 10, 89),
        ("0212", "Naamcode/naamgebruik 02", "N", 1, 99),
        ("0213", "Naam 02", "AN", 25, 100),
        ("0214", "Voorvoegsel 02", "AN", 10, 125),
        ("0215", "Voorletters", "AN", 6, 135),
        ("0216", "Naamcode/naamgebruik 03", "N", 1, 141),
        ("0217", "Postcode", "AN", 6, 142),
        ("0218", "Postcode buitenland", "AN", 9, 148),
        ("0219", "Huisnummer", "N", 5, 157),
        ("0220", "Huisnummertoevoeging", "AN", 6, 162),
        ("0221", "Code land", "AN", 2, 168),
        ("0222", "Debiteurnummer", "AN", 11, 170),
        ("0223", "Indicatie client overleden", "N", 1, 181),
        ("0224", "Code indicatieorgaan", "N", 4, 182),
        ("0225", "Clientnummer indicatieorgaan", "AN", 20, 186),
        ("0280", "Reserve", "AN", 105, 206),
    ),
    "04": _fields(
        ("0401", "Kenmerk record", "N", 2, 1),
        ("0402", "Identificatie detailrecord", "N", 12, 3),
        ("0403", "Burgerservicenummer", "N", 9, 15),
        ("0404", "UZOVI-nummer", "N", 4, 24),
        ("0405", "Verzekerdennummer", "AN", 15, 28),
        ("0406", "Machtigingsnummer", "AN", 15, 43),
        ("0407", "Doorsturen toegestaan", "N", 1, 58),
        ("0408", "Code indicatieorgaan", "N", 4, 59),
        ("0409", "Clientnummer indicatieorgaan", "AN", 20, 63),
        ("0410", "Indicatie-aanvraagnummer", "N", 9, 83),
        ("0411", "Indicatiebesluitnummer", "N", 9, 92),
        ("0412", "Functiecode", "N", 2, 101),
        ("0413", "ZZP-code", "N", 3, 103),
        ("0414", "Begindatum prestatie", "N", 8, 106),
        ("0415", "Einddatum prestatie", "N", 8, 114),
        ("0416", "Aanduiding prestatiecodelijst", "N", 3, 122),
        ("0417", "Prestatiecode", "AN", 5, 125),
        ("0418", "Aantal uitgevoerde prestaties", "N", 4, 130),
        ("0419", "Tijdseenheid zorgperiode", "N", 2, 134),
        ("0420", "Zorgverlenerscode behandelaar/uitvoerder", "N", 8, 136),
        ("0421", "Specialisme behandelaar/uitvoerder", "N", 4, 144),
        ("0422", "Zorgverlenerscode voorschrijver/verwijzer", "N", 8, 148),
        ("0423", "Specialisme voorschrijver/verwijzer", "N", 4, 156),
        ("0424", "Verrekenpercentage", "N", 5, 160),
        ("0425", "Tarief prestatie (incl. BTW)", "N", 8, 165),
        ("0426", "Berekend bedrag (incl. BTW)", "N", 8, 173),
        ("0427", "Indicatie debet/credit (01)", "AN", 1, 181),
        ("0428", "BTW-percentage declaratiebedrag", "N", 4, 182),
        ("0429", "Declaratiebedrag (incl. BTW)", "N", 8, 186),
        ("0430", "Indicatie debet/credit (02)", "AN", 1, 194),
        ("0431", "Referentienummer dit prestatierecord", "AN", 20, 195),
        ("0432", "Referentienummer voorgaande gerelateerde prestatierecord", "AN", 20, 215),
        ("0480", "Reserve", "AN", 76, 235),
    ),
    "98": _fields(
        ("9801", "Kenmerk record", "N", 2, 1),
        ("9802", "Identificatie detailrecord", "N", 12, 3),
        ("9803", "Regelnummer vrije tekst", "N", 4, 15),
        ("9804", "Vrije tekst", "AN", 140, 19),
        ("9880", "Reserve", "AN", 152, 159),
    ),
    "99": _fields(
        ("9901", "Kenmerk record", "N", 2, 1),
        ("9902", "Aantal verzekerdenrecords", "N", 6, 3),
        ("9903", "Aantal debiteurrecords", "N", 6, 9),
        ("9904", "Aantal prestatierecords", "N", 6, 15),
        ("9905", "Aantal commentaarrecords", "N", 6, 21),
        ("9906", "Totaal aantal detailrecords", "N", 7, 27),
        ("9907", "Totaal declaratiebedrag", "N", 11, 34),
        ("9908", "Indicatie debet/credit", "AN", 1, 45),
        ("9980", "Reserve", "AN", 265, 46),
    ),
}
