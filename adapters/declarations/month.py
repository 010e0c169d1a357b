"""One month of one funding stream, read from the dossier and summed into declared lines.

:func:`collect` streams the month's finished visits (in chunks, never the whole month at
once), checks each against what a declaration needs (a funding stream, a product with a
tariff, an allocation that covers the day, a client with a valid BSN) and sums them per
client, allocation, product and product period: one line per such group, which is what
iWmo asks (the "som over declaratieperiode" method, IV089) and what we send in AW319 as well.
GGZ (GDS801) declares each contact on its own line (list 071: Aantal is 1).

:func:`plan` sets those lines against what was declared before (the Claims in the dossier)
and decides, per group: nothing to do, a new debit, or a correction (a credit of the line
that stands and, if the group still has visits, a new debit); a correction of a line the
payer has not answered yet is held until the answer comes (iWmo IV085/IV091: only an
accepted line may be credited).

Memory grows with the number of lines (clients), not with the number of visits.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any
from zoneinfo import ZoneInfo

from adapters.declarations.wmo323 import Fault
from mappings.care.base import DEFAULT_CANON, Canon, MappingError
from mappings.care.declarations import (
    DECLARANT,
    FORMATS,
    Allocation,
    DeclaredLine,
    Tariff,
    allocation_from_fhir,
    line_from_fhir,
    tariff_from_fhir,
)
from mappings.core.plugins import Dossier
from mappings.nl.identifiers import AGB, BSN, MUNICIPALITY, UZOVI, bsn_error

__all__ = [
    "Client",
    "Collected",
    "DeclarationError",
    "Month",
    "Party",
    "Plan",
    "batch_tag",
    "clients_of",
    "collect",
    "declared",
    "plan",
]

_LOCAL = ZoneInfo("Europe/Amsterdam")
_PATIENTS_PER_SEARCH = 100


class DeclarationError(Exception):
    """The month cannot be declared as it is: every fault found, none of them written."""

    def __init__(self, faults: list[Fault]) -> None:
        super().__init__("; ".join(f"{f.where}: {f.rule}: {f.text}" for f in faults[:5]))
        self.faults = faults


@dataclass(frozen=True, slots=True)
class Month:
    """A calendar month: ``2026-11``."""

    year: int
    month: int

    @classmethod
    def parse(cls, text: str) -> Month:
        try:
            year, month = (int(part) for part in text.split("-"))
            dt.date(year, month, 1)
        except (ValueError, TypeError):
            raise DeclarationError(
                [Fault("period", "period", f"{text[:20]!r} is not a month: YYYY-MM")]
            ) from None
        if len(text) != 7:
            raise DeclarationError([Fault("period", "period", "A month is written YYYY-MM")])
        return cls(year, month)

    @property
    def begin(self) -> dt.date:
        return dt.date(self.year, self.month, 1)

    @property
    def end(self) -> dt.date:
        following = dt.date(self.year + self.month // 12, self.month % 12 + 1, 1)
        return following - dt.timedelta(days=1)

    @property
    def text(self) -> str:
        return f"{self.year:04d}-{self.month:02d}"

    def contains(self, day: dt.date) -> bool:
        return (day.year, day.month) == (self.year, self.month)


@dataclass(frozen=True, slots=True)
class Party:
    """An organisation in a declaration: the provider (AGB) or a payer (UZOVI, CBS code)."""

    id: str
    name: str
    agb: str | None = None
    uzovi: str | None = None
    municipality: str | None = None

    @property
    def code(self) -> str | None:
        """The code a payer is addressed by."""
        return self.municipality or self.uzovi


@dataclass(frozen=True, slots=True)
class Client:
    """What a file needs of a client (never logged: only ``id`` is)."""

    id: str
    bsn: str
    birth_date: dt.date | None
    gender: str | None
    family: str
    prefix: str
    initials: str


@dataclass(slots=True)
class _Group:
    key: str
    patient: str
    allocation: Allocation
    tariff: Tariff
    begin: dt.date
    end: dt.date
    minutes: int = 0
    contacts: int = 0
    encounters: list[str] = field(default_factory=list)

    def quantity(self) -> int:
        unit = self.tariff.unit
        if unit == "minute":
            return self.minutes
        if unit == "hour":  # IV079: sum the minutes, round half up, at least one hour
            return max(1, (self.minutes + 30) // 60)
        return self.contacts


@dataclass(slots=True)
class Collected:
    """The month as read: the provider, the payers, the lines wanted, the clients."""

    format: str
    month: Month
    provider: Party
    payers: dict[str, Party]
    allocations: dict[str, Allocation]
    tariffs: dict[str, Tariff]
    wanted: dict[str, _Group]
    clients: dict[str, Client]
    visits: int = 0
    bounds: tuple[dt.date, dt.date] = field(init=False)  # the month's first and last day

    def __post_init__(self) -> None:
        self.bounds = (self.month.begin, self.month.end)


def _parties(dossier: Dossier, canon: Canon) -> tuple[Party | None, dict[str, Party]]:
    provider: Party | None = None
    payers: dict[str, Party] = {}
    role = f"{canon.code_system('declaration-party')}|{DECLARANT}"
    for chunk in dossier.search("Organization", [("type", role)]):
        for resource in chunk:
            party = _party(resource)
            if provider is not None:
                raise DeclarationError(
                    [Fault("provider", "Organization", "More than one declaring provider")]
                )
            provider = party
    for system in (UZOVI, MUNICIPALITY):
        for chunk in dossier.search("Organization", [("identifier", f"{system}|")]):
            for resource in chunk:
                party = _party(resource)
                payers[party.id] = party
    return provider, payers


def _party(resource: dict[str, Any]) -> Party:
    codes = {
        i.get("system"): i.get("value")
        for i in resource.get("identifier", [])
        if isinstance(i, dict)
    }
    return Party(
        id=str(resource.get("id")),
        name=str(resource.get("name", "")),
        agb=codes.get(AGB),
        uzovi=codes.get(UZOVI),
        municipality=codes.get(MUNICIPALITY),
    )


def _municipality_of(party: Party) -> str | None:
    return party.municipality


def _uzovi_of(party: Party) -> str | None:
    return party.uzovi


def _all(dossier: Dossier, resource_type: str, query: list[tuple[str, str]]) -> Iterator[Any]:
    for chunk in dossier.search(resource_type, query):
        yield from chunk


def collect(
    dossier: Dossier,
    format_code: str,
    month: Month,
    *,
    payer_code: str | None = None,
    canon: Canon = DEFAULT_CANON,
    progress: Callable[[int], None] | None = None,
) -> Collected:
    """The month's lines for ``format_code``; raises :class:`DeclarationError` with every
    fault found (nothing is declared from a month with a fault in it)."""
    if format_code not in FORMATS:
        raise DeclarationError(
            [Fault("format", "format", f"The format is one of {', '.join(FORMATS)}")]
        )
    _, funding, payer_kind = FORMATS[format_code]
    today = dossier.now().astimezone(_LOCAL).date()
    if month.end >= today:
        raise DeclarationError(
            [Fault("TR137", "period", f"{month.text} has not ended: a month is declared after it")]
        )
    provider, payers = _parties(dossier, canon)
    faults: list[Fault] = []
    if provider is None or not provider.agb:
        raise DeclarationError(
            [
                Fault(
                    "provider",
                    "Organization",
                    "No declaring provider: an Organization with type declaration-party|"
                    "declarant and an AGB code",
                )
            ]
        )
    kind_of = _municipality_of if payer_kind == "municipality" else _uzovi_of
    payers = {k: p for k, p in payers.items() if kind_of(p)}
    if payer_code is not None:
        chosen = {k: p for k, p in payers.items() if kind_of(p) == payer_code}
        if not chosen:
            raise DeclarationError(
                [Fault("payer", "payer", f"No {payer_kind} with code {payer_code[:12]!r}")]
            )
    tariffs = _tariffs(dossier, funding, canon, faults)
    allocations = _allocations(dossier, funding, canon, faults)
    by_patient: dict[str, list[Allocation]] = defaultdict(list)
    for allocation in allocations.values():
        by_patient[allocation.patient].append(allocation)
    collected = Collected(format_code, month, provider, payers, allocations, tariffs, {}, {})
    window = [
        ("date", f"ge{(month.begin - dt.timedelta(days=1)).isoformat()}"),
        ("date", f"le{(month.end + dt.timedelta(days=1)).isoformat()}"),
        ("status", "finished"),
    ]
    stream = f"{canon.code_system('funding-stream')}|{funding}"
    seen = 0
    # the stream's own visits through the index; then every visit the index has no stream
    # for (none recorded: a fault; or stored before the index knew the parameter)
    for narrowed in (("funding-stream", stream), ("funding-stream:missing", "true")):
        for chunk in dossier.search("Encounter", [*window, narrowed]):
            for resource in chunk:
                _visit(collected, resource, funding, by_patient, payer_code, kind_of, faults, canon)
            seen += len(chunk)
            if progress is not None:
                progress(len(chunk))
    collected.visits = seen
    collected.clients = clients_of(dossier, {g.patient for g in collected.wanted.values()}, faults)
    if faults:
        raise DeclarationError(faults)
    return collected


def _tariffs(
    dossier: Dossier, funding: str, canon: Canon, faults: list[Fault]
) -> dict[str, Tariff]:
    found = {}
    system = canon.code_system(f"product-{funding}")
    for resource in _all(dossier, "ChargeItemDefinition", [("status", "active")]):
        codings = (resource.get("code") or {}).get("coding", [])
        if not any(isinstance(c, dict) and c.get("system") == system for c in codings):
            continue
        try:
            tariff = tariff_from_fhir(resource, canon)
        except MappingError as error:
            faults.append(Fault("tariff", f"ChargeItemDefinition/{resource.get('id')}", str(error)))
            continue
        found[tariff.id] = tariff
    return found


def _allocations(
    dossier: Dossier, funding: str, canon: Canon, faults: list[Fault]
) -> dict[str, Allocation]:
    found = {}
    kind = f"{canon.code_system('funding-stream')}|{funding}"
    for resource in _all(dossier, "Coverage", [("type", kind), ("status", "active")]):
        try:
            allocation = allocation_from_fhir(resource, canon)
        except MappingError as error:
            faults.append(Fault("allocation", f"Coverage/{resource.get('id')}", str(error)))
            continue
        found[allocation.id] = allocation
    return found


def _visit(
    collected: Collected,
    resource: dict[str, Any],
    funding: str,
    by_patient: dict[str, list[Allocation]],
    payer_code: str | None,
    kind_of: Callable[[Party], str | None],
    faults: list[Fault],
    canon: Canon,
) -> None:
    where = f"Encounter/{resource.get('id')}"
    try:
        visit = _declarable(resource, canon)
    except (KeyError, TypeError, ValueError, AttributeError):
        faults.append(
            Fault("visit", where, "Not a visit we can declare: no subject, period or length")
        )
        return
    if visit.funding is not None and visit.funding != funding:
        return  # another stream's: read no further
    where = f"Patient/{visit.patient}, {where}"
    day = visit.start.astimezone(_LOCAL).date()
    first, last = collected.bounds
    if not first <= day <= last:
        return
    if visit.funding is None:
        faults.append(Fault("funding", where, "The visit has no funding stream"))
        return
    if visit.funding != funding:
        return
    if not visit.product_code:
        faults.append(Fault("product", where, "The visit has no product code"))
        return
    allocation = _allocation_of(visit.patient, visit.allocation_number, day, by_patient, funding)
    if allocation is None:
        text = (
            "No Wmo allocation with the visit's allocation number for this client"
            if funding == "wmo"
            else f"No {funding} allocation (Coverage) of this client covers the day"
        )
        if funding == "wmo" and not visit.allocation_number:
            text = "A Wmo visit needs its allocation number (ToewijzingNummer)"
        faults.append(Fault("allocation", where, text))
        return
    if not allocation.covers(day):
        faults.append(Fault("allocation", where, "The day lies outside the allocation's period"))
        return
    payer = collected.payers.get(allocation.payer)
    if payer is None:
        faults.append(
            Fault(
                "payer",
                f"Coverage/{allocation.id}",
                "The allocation's payer has no UZOVI number or CBS municipality code",
            )
        )
        return
    if payer_code is not None and kind_of(payer) != payer_code:
        return
    tariff = _tariff_of(collected.tariffs, visit.product_code, allocation.payer, day)
    if tariff is None:
        faults.append(
            Fault(
                "product",
                where,
                f"Unknown product {visit.product_code[:8]!r}: no tariff for it on that day",
            )
        )
        return
    _add(collected, visit.id, visit.patient, allocation, tariff, day, visit.minutes)


@dataclass(frozen=True, slots=True)
class _Declarable:
    """What a declaration reads of a visit (written through the visit profile, so read
    directly here: one pass over its extensions, no second validation)."""

    id: str
    patient: str
    start: dt.datetime
    minutes: int
    funding: str | None
    product_code: str | None
    allocation_number: str | None


@functools.cache
def _extension_urls(canon: Canon) -> tuple[str, str, str]:
    return (
        canon.extension("funding-stream"),
        canon.extension("product-code"),
        canon.extension("allocation-number"),
    )


def _declarable(resource: dict[str, Any], canon: Canon) -> _Declarable:
    extensions = {e.get("url"): e for e in resource.get("extension", ()) if isinstance(e, dict)}
    funding_url, product_url, allocation_url = _extension_urls(canon)
    funding = extensions.get(funding_url)
    product = extensions.get(product_url)
    allocation = extensions.get(allocation_url)
    subject = resource["subject"]["reference"]
    if not subject.startswith("Patient/"):
        raise ValueError(subject)
    start = dt.datetime.fromisoformat(resource["period"]["start"].replace("Z", "+00:00"))
    if start.tzinfo is None:
        raise ValueError("no time zone")
    minutes = resource["length"]["value"]
    if not isinstance(minutes, int) or isinstance(minutes, bool):
        raise TypeError("minutes")
    return _Declarable(
        id=str(resource["id"]),
        patient=subject.removeprefix("Patient/"),
        start=start,
        minutes=minutes,
        funding=funding["valueCoding"]["code"] if funding else None,
        product_code=product.get("valueString") if product else None,
        allocation_number=allocation.get("valueString") if allocation else None,
    )


def _allocation_of(
    patient: str,
    number: str | None,
    day: dt.date,
    by_patient: dict[str, list[Allocation]],
    funding: str,
) -> Allocation | None:
    mine = by_patient.get(patient, [])
    if funding == "wmo":
        return next((a for a in mine if number and a.number == number), None)
    covering = [a for a in mine if a.covers(day)]
    return covering[0] if covering else (mine[0] if mine else None)


def _tariff_of(tariffs: dict[str, Tariff], code: str, payer: str, day: dt.date) -> Tariff | None:
    fitting = [t for t in tariffs.values() if t.code == code and t.applies(payer, day)]
    fitting.sort(key=lambda t: (t.payer is None, t.id))  # the payer's own tariff first
    return fitting[0] if fitting else None


def _add(
    collected: Collected,
    visit: str,
    patient: str,
    allocation: Allocation,
    tariff: Tariff,
    day: dt.date,
    minutes: int,
) -> None:
    month_begin, month_end = collected.bounds
    if collected.format == "gds801":  # list 071: one contact, one prestatie, one day
        begin = end = day
        key = f"{collected.format}|{patient}|{allocation.id}|{tariff.code}|{day}|{visit}"
    else:  # the month, clipped to the allocation and the tariff
        begin = max(month_begin, allocation.start, tariff.start)
        end = min([month_end, *(d for d in (allocation.end, tariff.end) if d is not None)])
        key = f"{collected.format}|{patient}|{allocation.id}|{tariff.code}|{begin}"
    group = collected.wanted.get(key)
    if group is None:
        group = _Group(key, patient, allocation, tariff, begin, end)
        collected.wanted[key] = group
    group.minutes += minutes
    group.contacts += 1
    group.encounters.append(visit)


def clients_of(dossier: Dossier, ids: Iterable[str], faults: list[Fault]) -> dict[str, Client]:
    wanted = sorted(ids)
    found: dict[str, Client] = {}
    refused: set[str] = set()
    for start in range(0, len(wanted), _PATIENTS_PER_SEARCH):
        batch = ",".join(wanted[start : start + _PATIENTS_PER_SEARCH])
        for resource in _all(dossier, "Patient", [("_id", batch)]):
            client = _client(resource)
            problem = bsn_error(client.bsn) if client.bsn else "The client has no BSN"
            if problem:
                faults.append(Fault("CS002", f"Patient/{client.id}", problem))
                refused.add(client.id)
                continue
            found[client.id] = client
    for missing in sorted(set(wanted) - set(found) - refused):
        faults.append(Fault("client", f"Patient/{missing}", "The client is not in the dossier"))
    return found


def _client(resource: dict[str, Any]) -> Client:
    bsn = next(
        (
            str(i.get("value", ""))
            for i in resource.get("identifier", [])
            if isinstance(i, dict) and i.get("system") == BSN
        ),
        "",
    )
    names = [n for n in resource.get("name", []) if isinstance(n, dict)]
    name = next((n for n in names if n.get("use") == "official"), names[0] if names else {})
    family = str(name.get("family", ""))
    given = [str(g) for g in name.get("given", [])]
    prefix = ""
    for extension in (name.get("_family") or {}).get("extension", []):
        if str(extension.get("url", "")).endswith("humanname-own-prefix"):
            prefix = str(extension.get("valueString", ""))
    birth = resource.get("birthDate")
    return Client(
        id=str(resource.get("id")),
        bsn=bsn,
        birth_date=dt.date.fromisoformat(birth)
        if isinstance(birth, str) and len(birth) == 10
        else None,
        gender=resource.get("gender"),
        family=family,
        prefix=prefix,
        initials="".join(f"{g[0]}." for g in given if g)[:6],
    )


# -- against what was declared before --------------------------------------------------


@dataclass(slots=True)
class Plan:
    """What one run sends: new debits, credits of lines that stand, and what it holds."""

    debits: list[DeclaredLine] = field(default_factory=list)
    credits: list[DeclaredLine] = field(default_factory=list)
    credited: list[DeclaredLine] = field(default_factory=list)  # the originals, now credited
    held: list[Fault] = field(default_factory=list)
    unchanged: int = 0

    @property
    def lines(self) -> list[DeclaredLine]:
        return [*self.credits, *self.debits]


def batch_tag(format_code: str, month: Month) -> str:
    return f"{format_code}-{month.text}"


def declared(
    dossier: Dossier, format_code: str, month: Month, canon: Canon = DEFAULT_CANON
) -> list[DeclaredLine]:
    """Every line declared before in this format for this month (its Claims)."""
    tag = f"{canon.code_system('declaration-batch')}|{batch_tag(format_code, month)}"
    return [line_from_fhir(r, canon) for r in _all(dossier, "Claim", [("_tag", tag)])]


def _reference(month: Month, key: str, serial: int) -> str:
    """A line's reference: unique per provider for years (the month and a digest of the
    group and how many lines it had before), 20 characters."""
    digest = hashlib.sha256(f"{key}#{serial}".encode()).hexdigest()[:14].upper()
    return f"{month.year:04d}{month.month:02d}{digest}"


def _same(line: DeclaredLine, group: _Group, quantity: int, cents: int) -> bool:
    return (
        line.quantity == quantity
        and line.cents == cents
        and line.unit_cents == group.tariff.cents
        and line.unit == group.tariff.unit
        and line.allocation == group.allocation.id
        and (line.begin, line.end) == (group.begin, group.end)
        and sorted(line.encounters) == sorted(group.encounters)
    )


def plan(
    collected: Collected, before: list[DeclaredLine], today: dt.date, *, waits_for_answer: bool
) -> Plan:
    """Set the wanted lines against ``before``; ``waits_for_answer``: a line may only be
    credited once the payer accepted it (iWmo)."""
    result = Plan()
    by_key: dict[str, list[DeclaredLine]] = defaultdict(list)
    for line in before:
        by_key[line.key].append(line)
    credited = {line.credit_of for line in before if line.credit_of}
    for key in sorted(set(by_key) | set(collected.wanted)):
        history = by_key.get(key, [])
        standing = next(
            (
                line
                for line in history
                if not line.credit
                and line.id not in credited
                and line.state in ("open", "accepted")
            ),
            None,
        )
        group = collected.wanted.get(key)
        quantity = group.quantity() if group else 0
        cents = quantity * group.tariff.cents if group else 0
        if standing is not None and group is not None and _same(standing, group, quantity, cents):
            result.unchanged += 1
            continue
        if standing is None and group is None:
            continue
        if standing is not None:
            if waits_for_answer and standing.state != "accepted":
                result.held.append(
                    Fault(
                        "IV085",
                        f"Patient/{standing.patient}, Claim/{standing.id}",
                        "Changed after it was declared; the correction waits for the payer's "
                        "answer to the line",
                    )
                )
                continue
            reference = _reference(collected.month, key, len(history))
            result.credits.append(
                replace(
                    standing,
                    id=f"decl-{reference.lower()}",
                    reference=reference,
                    credit_of=standing.id,
                    previous=standing.reference,
                    created=today,
                    state="open",
                    message="",
                )
            )
            result.credited.append(replace(standing, state="credited"))
        if group is not None:
            serial = len(history) + (1 if standing is not None else 0)
            reference = _reference(collected.month, key, serial)
            allocation = group.allocation
            result.debits.append(
                DeclaredLine(
                    id=f"decl-{reference.lower()}",
                    format=collected.format,
                    key=key,
                    patient=group.patient,
                    payer=allocation.payer,
                    provider=collected.provider.id,
                    allocation=allocation.id,
                    funding=allocation.funding,
                    product=group.tariff.code,
                    unit=group.tariff.unit,
                    begin=group.begin,
                    end=group.end,
                    quantity=quantity,
                    unit_cents=group.tariff.cents,
                    cents=cents,
                    reference=reference,
                    message="",
                    created=today,
                    encounters=tuple(sorted(group.encounters)),
                    category=group.tariff.category,
                )
            )
    return result
