"""A month of declarable care for the demo: every ``eigendossier declare`` has real work.

The month before ``today``: three Wmo clients in two municipalities (Amsterdam 0363 and
Zaanstad 0479; Anna Jansen of the demo dossier is one), three wijkverpleging clients with
two insurers, and one GGZ client; each with an allocation (Coverage), tariffs per product
(ChargeItemDefinition) and a mix of home visits and phone contacts. The provider that
declares is Buurtteam Oost (AGB 87654321). The district nursing visits are coded in the
Omaha System: the problems each visit addressed, an intervention per problem, and
Knowledge/Behavior/Status ratings at the first and the last visit of the month.

Everything is fictional: the insurers' names and UZOVI numbers, the product codes and the
tariffs illustrate the formats and are not contract values; the BSNs are test numbers that
pass the eleven test.
"""

from __future__ import annotations

import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

from mappings.care.base import DEFAULT_CANON, Canon
from mappings.care.declarations import Allocation, Tariff, allocation_to_fhir, tariff_to_fhir
from mappings.care.omaha import Intervention, OmahaRating, intervention_to_fhir, omaha_to_fhir
from mappings.care.people import CareOrganization, Client, client_to_fhir, organization_to_fhir
from mappings.care.visits import Visit, visit_to_fhir

__all__ = ["demo_month", "previous_month"]

_AMSTERDAM = ZoneInfo("Europe/Amsterdam")
_NURSE = "Practitioner/sanne"
_TEAM = "buurtteam-oost"

# (id, family, given, BSN, birth date, gender)
_CLIENTS = (
    ("karim", "El Amrani", ("Karim",), "999911004", dt.date(1961, 3, 2), "male"),
    ("fatima", "Bakker", ("Fatima",), "999911016", dt.date(1979, 11, 23), "female"),
    ("henk", "de Boer", ("Henk",), "999911028", dt.date(1938, 7, 9), "male"),
    ("joke", "Visser", ("Joke", "Maria"), "999911041", dt.date(1944, 1, 30), "female"),
    ("piet", "Smit", ("Piet",), "999911053", dt.date(1950, 6, 14), "male"),
    ("mila", "Jansen", ("Mila",), "999911065", dt.date(1998, 9, 4), "female"),
)
_PAYERS = (
    CareOrganization("gemeente-amsterdam", "Gemeente Amsterdam", municipality="0363"),
    CareOrganization("gemeente-zaanstad", "Gemeente Zaanstad", municipality="0479"),
    CareOrganization("zorgverzekeraar-noord", "Zorgverzekeraar Noord (fictief)", uzovi="9101"),
    CareOrganization("zorgverzekeraar-zuid", "Zorgverzekeraar Zuid (fictief)", uzovi="9102"),
)
# (client, funding, payer, number, product)
_ALLOCATIONS = (
    ("anna", "wmo", "gemeente-amsterdam", "20260001", "07A08"),
    ("karim", "wmo", "gemeente-amsterdam", "20260002", "02A01"),
    ("fatima", "wmo", "gemeente-zaanstad", "50310007", "02A01"),
    ("henk", "zvw", "zorgverzekeraar-noord", "NRD100234", "1032"),
    ("joke", "zvw", "zorgverzekeraar-noord", "NRD100871", "1033"),
    ("piet", "zvw", "zorgverzekeraar-zuid", "ZD7781120", "1032"),
    ("mila", "ggz", "zorgverzekeraar-zuid", "ZD7781334", "CO0412"),
)
# (id, funding, code, unit, cents, category, payer, title)
_TARIFFS = (
    ("wmo-07A08", "wmo", "07A08", "hour", 6240, "07", None, "Ondersteuning thuis"),
    ("wmo-02A01", "wmo", "02A01", "hour", 6890, "02", None, "Begeleiding individueel"),
    (
        "wmo-02A01-zaanstad",
        "wmo",
        "02A01",
        "hour",
        7125,
        "02",
        "gemeente-zaanstad",
        "Begeleiding (Zaanstad)",
    ),
    ("zvw-1032", "zvw", "1032", "hour", 8150, None, None, "Verpleging"),
    ("zvw-1033", "zvw", "1033", "hour", 6975, None, None, "Persoonlijke verzorging"),
    ("ggz-CO0412", "ggz", "CO0412", "contact", 16950, None, None, "Consult GGZ (illustratief)"),
)
# per client: (day of the month, hour, minutes, mode)
_VISITS = {
    "anna": (
        (3, 10, 55, "home"),
        (10, 10, 45, "home"),
        (17, 14, 15, "phone"),
        (24, 10, 50, "home"),
    ),
    "karim": ((4, 9, 90, "home"), (11, 9, 75, "home"), (18, 9, 80, "home"), (26, 16, 20, "phone")),
    "fatima": ((2, 13, 60, "home"), (16, 13, 45, "home"), (23, 11, 10, "phone")),
    "henk": tuple((day, 8, 35, "home") for day in range(1, 29, 2)),
    "joke": tuple((day, 9, 50, "home") for day in range(2, 29, 3)),
    "piet": (
        (5, 10, 40, "home"),
        (12, 10, 40, "home"),
        (19, 10, 15, "phone"),
        (26, 10, 40, "home"),
    ),
    "mila": ((8, 15, 45, "practice"), (22, 15, 45, "home"), (29, 15, 30, "video")),
}

# per client: (problem, intervention category, what was done, K/B/S at the first visit,
# K/B/S at the last visit, target Status)
_OMAHA = {
    "henk": (
        ("24", "treatments-procedures", "Wond onderbeen verzorgd", (3, 3, 2), (4, 4, 3), 4),
        ("42", "surveillance", "Medicatie-inname gecontroleerd", (3, 2, 3), (3, 3, 3), 4),
    ),
    "joke": (
        ("38", "treatments-procedures", "Hulp bij wassen en aankleden", (4, 3, 2), (4, 3, 3), 3),
        (
            "25",
            "teaching-guidance-counseling",
            "Oefeningen voor de transfer",
            (2, 2, 2),
            (3, 3, 2),
            3,
        ),
    ),
    "piet": (
        ("27", "surveillance", "Oedeem en bloeddruk gemeten", (2, 2, 3), (3, 3, 3), 4),
        (
            "42",
            "case-management",
            "Medicatierol afgestemd met de apotheek",
            (2, 3, 3),
            (3, 3, 4),
            4,
        ),
    ),
}


def previous_month(today: dt.date) -> dt.date:
    """The first day of the month before ``today``'s."""
    return (today.replace(day=1) - dt.timedelta(days=1)).replace(day=1)


def demo_month(today: dt.date, canon: Canon = DEFAULT_CANON) -> list[dict[str, Any]]:
    """The payers, clients, allocations, tariffs and visits of the month before ``today``."""
    first = previous_month(today)
    year_start = dt.date(first.year, 1, 1) if first.month > 1 else dt.date(first.year - 1, 1, 1)
    resources = [organization_to_fhir(p, canon) for p in _PAYERS]
    resources += [
        client_to_fhir(Client(key, family, given, bsn=bsn, birth_date=born, gender=gender), canon)
        for key, family, given, bsn, born, gender in _CLIENTS
    ]
    resources += [
        tariff_to_fhir(
            Tariff(key, funding, code, unit, cents, year_start, None, payer, category, title),
            canon,
        )
        for key, funding, code, unit, cents, category, payer, title in _TARIFFS
    ]
    products = {}
    for client, funding, payer, number, product in _ALLOCATIONS:
        start = min(year_start, today - dt.timedelta(days=200))
        allocation = Allocation(f"{client}-{funding}", client, funding, payer, start, None, number)
        resources.append(allocation_to_fhir(allocation, canon))
        products[client] = (funding, product, number)
    for client, visits in _VISITS.items():
        funding, product, number = products[client]
        days = [day for day, _, _, _ in visits if day <= _last_day(first)]
        for day, hour, minutes, mode in visits:
            if day > _last_day(first):
                continue
            begin = dt.datetime(first.year, first.month, day, hour, tzinfo=_AMSTERDAM)
            visit_id = f"{client}-{first:%Y%m}-{day:02d}"
            omaha = _OMAHA.get(client, ()) if mode == "home" else ()
            resources += _omaha_of_visit(client, visit_id, begin.date(), omaha, days, canon)
            resources.append(
                visit_to_fhir(
                    Visit(
                        id=visit_id,
                        patient=client,
                        mode=mode,
                        status="finished",
                        start=begin,
                        end=begin + dt.timedelta(minutes=minutes),
                        minutes=minutes,
                        participants=(_NURSE,),
                        team=_TEAM,
                        funding=funding,
                        product_code=product,
                        allocation_number=number if funding == "wmo" else None,
                        problems=tuple(problem for problem, *_ in omaha),
                    ),
                    canon,
                )
            )
    return resources


def _omaha_of_visit(
    client: str,
    visit: str,
    day: dt.date,
    omaha: tuple[tuple[str, str, str, tuple[int, int, int], tuple[int, int, int], int], ...],
    days: list[int],
    canon: Canon,
) -> list[dict[str, Any]]:
    """An intervention per problem; ratings at the first and the last visit of the month."""
    found = []
    for problem, category, done, first, last, target in omaha:
        found.append(
            intervention_to_fhir(
                Intervention(
                    f"{visit}-{problem}", client, visit, problem, category, day, done, _NURSE
                ),
                canon,
            )
        )
        if day.day in (days[0], days[-1]):
            knowledge, behavior, status = first if day.day == days[0] else last
            rating = OmahaRating(
                f"{visit}-{problem}-kgs",
                client,
                _NURSE,
                problem,
                day,
                {"knowledge": knowledge, "behavior": behavior, "status": status},
                {"status": target},
                encounter=visit,
            )
            found.append(omaha_to_fhir(rating, canon))
    return found


def _last_day(first: dt.date) -> int:
    following = dt.date(first.year + first.month // 12, first.month % 12 + 1, 1)
    return (following - dt.timedelta(days=1)).day
