"""Declaring a month, reading the answer, and where each payer stands.

:func:`declare` reads the month (:func:`~adapters.declarations.month.collect`), decides what
is new or changed against the Claims already in the dossier
(:func:`~adapters.declarations.month.plan`), builds one message per payer, validates each
(the vendored XSD and the message rules, the AW319 layout, the public GDS801 rules), and
only when every message is clean writes the files and records the Claims with their
access-log entries (purpose of use HPAYMT) in one transaction. A fault anywhere: no file,
no Claim, the store as it was, and every fault named by the client's internal id, the visit
and the rule (never a BSN).

References are derived from what a line declares and how many lines its group had before,
so a run that failed after writing its files and before recording gives the same files
when it runs again.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import gc
import hashlib
import io
import os
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, BinaryIO
from zoneinfo import ZoneInfo

from adapters.declarations.aw319 import (
    Aw319Bericht,
    Aw319Prestatie,
    Verzekerde,
    aw319_faults,
    aw319_records,
)
from adapters.declarations.gds801 import (
    Gds801Bericht,
    Gds801Prestatie,
    Gds801Verzekerde,
    gds801_faults,
    write_gds801,
)
from adapters.declarations.month import (
    Client,
    Collected,
    DeclarationError,
    Month,
    Party,
    Plan,
    clients_of,
    collect,
    declared,
    plan,
)
from adapters.declarations.wmo323 import Client as WmoClient
from adapters.declarations.wmo323 import Declaratie, Fault, Prestatie, faults_of, write_wmo323
from adapters.declarations.wmo325 import AnswerError, Wmo325, read_wmo325
from mappings.care.base import DEFAULT_CANON, Canon
from mappings.care.declarations import (
    FORMATS,
    UNITS,
    Answer,
    DeclaredLine,
    answer_to_fhir,
    line_from_fhir,
    line_to_fhir,
)
from mappings.core.plugins import Disclosure, Dossier
from mappings.nl.identifiers import AGB, MUNICIPALITY, UZOVI

__all__ = [
    "AnswerRead",
    "Declared",
    "Message",
    "PayerStatus",
    "declare",
    "read_answer",
    "status",
]

PURPOSE = "HPAYMT"  # v3-ActReason: healthcare payment
_LOCAL = ZoneInfo("Europe/Amsterdam")
_SUFFIX = {"wmo323": ".xml", "aw319": ".txt", "gds801": ".xml"}
_GENDER = {"male": 1, "female": 2}


@dataclass(slots=True)
class Message:
    """One file: to one payer."""

    payer: Party
    identification: str
    lines: list[DeclaredLine]
    write: Callable[[BinaryIO], None]
    name: str
    path: Path | None = None
    data: bytes | None = None

    @property
    def net_cents(self) -> int:
        return sum(-line.cents if line.credit else line.cents for line in self.lines)


@dataclass(slots=True)
class Declared:
    """What a run did (or, dry, would do)."""

    format: str
    month: Month
    visits: int
    plan: Plan
    messages: list[Message] = field(default_factory=list)
    dry_run: bool = False
    #: seconds spent reading and summing the month, building and checking the messages,
    #: writing the files, and recording the Claims and the access log
    timings: dict[str, float] = field(default_factory=dict)


def _today(dossier: Dossier) -> dt.date:
    return dossier.now().astimezone(_LOCAL).date()


def _identification(
    format_code: str, payer: Party, month: Month, lines: Sequence[DeclaredLine]
) -> str:
    """Twelve letters and digits, the same for the same lines (a rerun writes the same file)."""
    seed = "|".join([format_code, payer.id, month.text, *sorted(line.reference for line in lines)])
    return hashlib.sha256(seed.encode()).hexdigest()[:12].upper()


def declare(
    dossier: Dossier,
    format_code: str,
    period: str,
    *,
    payer: str | None = None,
    out_dir: Path | None = None,
    dry_run: bool = False,
    progress: Callable[[int], None] | None = None,
    canon: Canon = DEFAULT_CANON,
) -> Declared:
    """Declare ``period`` (YYYY-MM) in ``format_code``; see the module docstring.

    With ``out_dir`` the files are written there (the path of each on its message);
    without, their bytes are kept on the messages. Raises :class:`DeclarationError`.
    """
    month = Month.parse(period)
    started = time.perf_counter()
    with _no_cyclic_collection():
        return _declare(
            dossier, format_code, month, payer, out_dir, dry_run, progress, canon, started
        )


@contextlib.contextmanager
def _no_cyclic_collection() -> Iterator[None]:
    """A month is hundreds of thousands of small dicts that form no cycles: the cyclic
    garbage collector would scan the growing heap again and again (half the time of a run,
    measured), while reference counting frees everything anyway."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _declare(
    dossier: Dossier,
    format_code: str,
    month: Month,
    payer: str | None,
    out_dir: Path | None,
    dry_run: bool,
    progress: Callable[[int], None] | None,
    canon: Canon,
    started: float,
) -> Declared:
    collected = collect(
        dossier, format_code, month, payer_code=payer, canon=canon, progress=progress
    )
    before = declared(dossier, format_code, month, canon)
    today = _today(dossier)
    decided = plan(collected, before, today, waits_for_answer=format_code == "wmo323")
    result = Declared(format_code, month, collected.visits, decided, dry_run=dry_run)
    result.timings["read"] = time.perf_counter() - started
    lines = decided.lines
    missing = {line.patient for line in lines} - set(collected.clients)
    if missing:
        faults: list[Fault] = []
        collected.clients.update(clients_of(dossier, missing, faults))
        if faults:
            raise DeclarationError(faults)
    by_payer: dict[str, list[DeclaredLine]] = defaultdict(list)
    for line in lines:
        by_payer[line.payer].append(line)
    faults = []
    for payer_id in sorted(by_payer):
        party = collected.payers.get(payer_id)
        if party is None:
            faults.append(Fault("payer", f"Organization/{payer_id}", "Not a payer with a code"))
            continue
        message = _message(collected, party, by_payer[payer_id], today, faults)
        if message is not None:
            result.messages.append(message)
    if faults:
        raise DeclarationError(faults)
    result.timings["check"] = time.perf_counter() - started - result.timings["read"]
    if dry_run:
        mark = time.perf_counter()
        dossier.disclose(_disclosures(result, "R", "dry run of a declaration: nothing sent"))
        result.timings["record"] = time.perf_counter() - mark
        return result
    _write_and_record(dossier, result, decided, out_dir, canon)
    return result


def _message(
    collected: Collected,
    payer: Party,
    lines: list[DeclaredLine],
    today: dt.date,
    faults: list[Fault],
) -> Message | None:
    ident = _identification(collected.format, payer, collected.month, lines)
    lines = [replace(line, message=ident) for line in lines]
    provider = collected.provider
    name = (
        f"{collected.format.upper()}_{provider.agb}_{payer.code}_"
        f"{collected.month.year:04d}{collected.month.month:02d}_{ident}{_SUFFIX[collected.format]}"
    )
    builder = {"wmo323": _wmo323, "aw319": _aw319, "gds801": _gds801}[collected.format]
    write = builder(collected, payer, lines, ident, today, faults)
    if write is None:
        return None
    return Message(payer, ident, lines, write, name)


def _by_patient(lines: list[DeclaredLine]) -> dict[str, list[DeclaredLine]]:
    grouped: dict[str, list[DeclaredLine]] = defaultdict(list)
    for line in lines:
        grouped[line.patient].append(line)
    return dict(sorted(grouped.items()))


def _where(line: DeclaredLine) -> str:
    visit = f", Encounter/{line.encounters[0]}" if line.encounters else ""
    return f"Patient/{line.patient}{visit}, Claim/{line.id}"


def _located(found: list[Fault], lines: list[DeclaredLine], faults: list[Fault]) -> None:
    """Name the client and visit of each fault a file check found (by reference)."""
    for fault in found:
        line = next((x for x in lines if x.reference in fault.where), None)
        where = _where(line) if line else fault.where
        faults.append(Fault(fault.rule, where, fault.text))


def _wmo323(
    collected: Collected,
    payer: Party,
    lines: list[DeclaredLine],
    ident: str,
    today: dt.date,
    faults: list[Fault],
) -> Callable[[BinaryIO], None] | None:
    clients = []
    count = len(faults)
    for patient, mine in _by_patient(lines).items():
        prestaties = []
        for line in mine:
            allocation = collected.allocations.get(line.allocation)
            if allocation is None or not allocation.number:
                faults.append(Fault("allocation", _where(line), "The line's allocation is gone"))
                continue
            prestaties.append(
                Prestatie(
                    referentie=line.reference,
                    toewijzing=int(allocation.number),
                    categorie=line.category or "",
                    code=line.product,
                    begin=line.begin,
                    eind=line.end,
                    volume=line.quantity,
                    eenheid=UNITS[line.unit][2],
                    bedrag=line.cents,
                    tarief=line.unit_cents,
                    vorig_referentie=line.previous,
                )
            )
        clients.append(WmoClient(collected.clients[patient].bsn, tuple(prestaties)))
    if len(faults) > count:
        return None
    declaratie = Declaratie(
        afzender=collected.provider.agb or "",
        gemeente=payer.municipality or "",
        identificatie=ident,
        dagtekening=today,
        nummer=ident,
        begin=collected.month.begin,
        eind=collected.month.end,
        clients=tuple(clients),
    )
    found = faults_of(declaratie)
    _located(found, lines, faults)
    return None if found else (lambda out: write_wmo323(declaratie, out))


def _aw319(
    collected: Collected,
    payer: Party,
    lines: list[DeclaredLine],
    ident: str,
    today: dt.date,
    faults: list[Fault],
) -> Callable[[BinaryIO], None] | None:
    insured = []
    count = len(faults)
    agb = collected.provider.agb or ""
    for patient, mine in _by_patient(lines).items():
        client = collected.clients[patient]
        allocation = collected.allocations.get(mine[0].allocation)
        where = _where(mine[0])
        if client.gender not in _GENDER:
            faults.append(Fault("0208", where, "AW319 knows man (1) and woman (2) only"))
        if client.birth_date is None:
            faults.append(Fault("0207", where, "The client's date of birth is required"))
        too_many = [line for line in mine if line.quantity > 9999]
        for line in too_many:
            faults.append(Fault("0418", _where(line), "At most 9999 units a record"))
        if len(faults) > count:
            continue
        insured.append(
            _verzekerde(client, payer, allocation.number if allocation else None, mine, agb)
        )
    if len(faults) > count:
        return None
    bericht = Aw319Bericht(
        uzovi=payer.uzovi or "",
        instelling=agb,
        begin=collected.month.begin,
        eind=collected.month.end,
        factuurnummer=ident,
        dagtekening=today,
        verzekerden=tuple(insured),
    )
    found = aw319_faults(aw319_records(bericht))
    _located(found, lines, faults)
    if found:
        return None

    def write(out: BinaryIO) -> None:
        for record in aw319_records(bericht):
            out.write(record.encode("latin-1", errors="replace") + b"\r\n")

    return write


def _verzekerde(
    client: Client, payer: Party, number: str | None, lines: list[DeclaredLine], agb: str
) -> Verzekerde:
    assert client.birth_date is not None
    return Verzekerde(
        bsn=client.bsn,
        uzovi=payer.uzovi or "",
        geboortedatum=client.birth_date,
        geslacht=_GENDER[str(client.gender)],
        naam=client.family[:25],
        voorletters=client.initials[:6],
        voorvoegsel=client.prefix[:10],
        verzekerdennummer=(number or "")[:15],
        prestaties=tuple(
            Aw319Prestatie(
                begin=line.begin,
                eind=line.end,
                prestatiecode=line.product,
                aantal=line.quantity,
                tijdseenheid=int(UNITS[line.unit][3]),
                uitvoerder=agb,
                tarief=line.unit_cents,
                referentie=line.reference,
                vorige_referentie=line.previous,
            )
            for line in lines
        ),
    )


def _gds801(
    collected: Collected,
    payer: Party,
    lines: list[DeclaredLine],
    ident: str,
    today: dt.date,
    faults: list[Fault],
) -> Callable[[BinaryIO], None] | None:
    insured = []
    count = len(faults)
    for patient, mine in _by_patient(lines).items():
        client = collected.clients[patient]
        prestaties = []
        for line in mine:
            allocation = collected.allocations.get(line.allocation)
            if line.quantity != 1:
                faults.append(Fault("8049", _where(line), "A GGZ prestatie is one contact"))
                continue
            if allocation is None:
                faults.append(Fault("9439", _where(line), "The line's trajectory is gone"))
                continue
            prestaties.append(
                Gds801Prestatie(
                    referentie=line.reference,
                    prestatiecode=line.product,
                    begin=line.begin,
                    tarief=line.cents,
                    zorgtraject_start=allocation.start,
                    vorige_referentie=line.previous,
                )
            )
        insured.append(
            Gds801Verzekerde(client.bsn, payer.uzovi or "", client.birth_date, tuple(prestaties))
        )
    if len(faults) > count:
        return None
    bericht = Gds801Bericht(
        verzender=collected.provider.agb or "",
        ontvanger=payer.uzovi or "",
        verzenddatum=today,
        factuurnummer=ident,
        begin=collected.month.begin,
        eind=collected.month.end,
        verzekerden=tuple(insured),
    )
    found = gds801_faults(bericht, today)
    _located(found, lines, faults)
    return None if found else (lambda out: write_gds801(bericht, out))


def _disclosures(result: Declared, action: str, description: str) -> list[Disclosure]:
    found: dict[tuple[str, str], list[str]] = defaultdict(list)
    for message in result.messages:
        for line in message.lines:
            found[(line.patient, line.payer)].append(f"Claim/{line.id}")
    return [
        Disclosure(
            patient=patient,
            purpose=PURPOSE,
            action=action,
            objects=tuple(objects) if action != "R" else (),
            recipient=f"Organization/{payer}",
            description=description,
        )
        for (patient, payer), objects in sorted(found.items())
    ]


def _write_and_record(
    dossier: Dossier, result: Declared, decided: Plan, out_dir: Path | None, canon: Canon
) -> None:
    temporary: list[tuple[Path, Path]] = []
    mark = time.perf_counter()
    try:
        for message in result.messages:
            if out_dir is None:
                buffer = io.BytesIO()
                message.write(buffer)
                message.data = buffer.getvalue()
                continue
            out_dir.mkdir(parents=True, exist_ok=True)
            handle, name = tempfile.mkstemp(prefix=".declaring-", dir=out_dir)
            with os.fdopen(handle, "wb") as out:
                message.write(out)
            os.chmod(name, 0o666 & ~_umask())
            temporary.append((Path(name), out_dir / message.name))
        result.timings["files"] = time.perf_counter() - mark
        mark = time.perf_counter()
        claims = [line_to_fhir(line, canon) for m in result.messages for line in m.lines]
        credited = [line_to_fhir(line, canon) for line in decided.credited]
        if claims or credited:
            dossier.record(
                credited, _disclosures(result, "C", f"declared ({result.format})"), new=claims
            )
        result.timings["record"] = time.perf_counter() - mark
    except BaseException:
        for made, _ in temporary:
            made.unlink(missing_ok=True)
        raise
    for made, final in temporary:
        made.replace(final)
    for message, (_, final) in zip(
        [m for m in result.messages if out_dir is not None], temporary, strict=True
    ):
        message.path = final


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


# -- answers --------------------------------------------------------------------------


@dataclass(slots=True)
class AnswerRead:
    format: str
    message: str  # the message answered
    accepted: int
    rejected: int
    codes: dict[str, int]  # retourcode -> how many lines


def read_answer(dossier: Dossier, data: bytes, canon: Canon = DEFAULT_CANON) -> AnswerRead:
    """Record the answer in ``data`` (a WMO325) as a ClaimResponse per line it answers, and
    each line's state (accepted, rejected). Raises :class:`DeclarationError` naming what is
    wrong: not a readable answer, for another provider, for a message never sent, read
    before."""
    head = data.lstrip()[:400]
    if head.startswith(b"01") and b"<" not in head[:2]:
        raise DeclarationError(
            [
                Fault(
                    "AW320",
                    "file",
                    "This looks like a Vektis retour (AW320); its layout is not public, so it "
                    "is not read here (see docs/declarations.md)",
                )
            ]
        )
    try:
        answer = read_wmo325(data)
    except AnswerError as error:
        raise DeclarationError([Fault("WMO325", "file", str(error))]) from None
    tag = f"{canon.url('NamingSystem', 'declaration-message')}|{answer.declaratie}"
    lines = [
        line_from_fhir(r, canon)
        for chunk in dossier.search("Claim", [("_tag", tag)])
        for r in chunk
    ]
    lines = [line for line in lines if line.format == "wmo323"]
    if not lines:
        raise DeclarationError(
            [Fault("TR366", "DeclaratieIdentificatie", "The answer is for a message never sent")]
        )
    provider = next(
        (
            p
            for chunk in dossier.search("Organization", [("_id", lines[0].provider)])
            for p in chunk
        ),
        None,
    )
    payer = next(
        (p for chunk in dossier.search("Organization", [("_id", lines[0].payer)]) for p in chunk),
        None,
    )
    faults = _answer_faults(answer, lines, provider, payer)
    if faults:
        raise DeclarationError(faults)
    today = _today(dossier)
    records = []
    counted: dict[str, int] = defaultdict(int)
    accepted = rejected = 0
    disclosed: dict[str, list[str]] = defaultdict(list)
    for line in lines:
        codes = answer.rejected.get(line.reference)
        if answer.whole_rejected:
            codes = answer.header_codes
        ok = codes is None
        accepted += ok
        rejected += not ok
        for code in codes or ():
            counted[code] += 1
        claim = replace(line, state="accepted" if ok else "rejected")
        response = Answer(
            id=f"resp-{line.id}",
            line=claim,
            claim=line.id,
            accepted=ok,
            message=answer.identificatie,
            created=today,
            cents_granted=line.cents if ok else 0,
            codes=tuple((c, _MEANING.get(c, "")) for c in codes or ()),
        )
        records += [line_to_fhir(claim, canon), answer_to_fhir(response, canon)]
        disclosed[line.patient] += [f"Claim/{line.id}", f"ClaimResponse/{response.id}"]
    disclosures = [
        Disclosure(
            patient,
            PURPOSE,
            "U",
            tuple(objects),
            f"Organization/{lines[0].payer}",
            "answer of the payer recorded",
        )
        for patient, objects in sorted(disclosed.items())
    ]
    dossier.record(records, disclosures)
    return AnswerRead("wmo323", answer.declaratie, accepted, rejected, dict(counted))


#: the meaning of the retourcodes an answer to a WMO323 carries most (iWmo COD954)
_MEANING = {
    "0001": "Bericht is afgekeurd om technische redenen",
    "0200": "Geen opmerking",
    "0233": "Klasse niet beoordeeld",
    "8001": "Declaratie is volledig toegewezen",
    "8017": "Creditering verwijst niet naar een eerder goedgekeurde debet-prestatie",
    "8021": "ReferentieNummer is niet uniek",
    "8187": "BSN komt niet overeen met de toewijzing",
    "9307": "ProductPeriode begint voor de toewijzing",
    "9308": "ProductPeriode eindigt na de toewijzing",
    "9321": "Volume is groter dan de toegewezen omvang",
    "9338": "Prestatie is niet te koppelen aan een toegewezen product",
    "9346": "IngediendBedrag is niet volume maal tarief",
    "0611": "ProductTarief is niet het contracttarief",
}


def _codes(resource: dict[str, Any] | None, system: str) -> set[str]:
    return {
        str(i.get("value"))
        for i in (resource or {}).get("identifier", [])
        if isinstance(i, dict) and i.get("system") == system
    }


def _answer_faults(
    answer: Wmo325,
    lines: list[DeclaredLine],
    provider: dict[str, Any] | None,
    payer: dict[str, Any] | None,
) -> list[Fault]:
    faults = []
    if answer.ontvanger not in _codes(provider, AGB):
        faults.append(Fault("Ontvanger", "Header", "The answer is addressed to another provider"))
    if answer.afzender not in _codes(payer, MUNICIPALITY):
        faults.append(Fault("Afzender", "Header", "The answer comes from another municipality"))
    if all(line.state != "open" for line in lines):
        faults.append(Fault("answer", "Header", "This message was answered before"))
    unknown = set(answer.rejected) - {line.reference for line in lines}
    if unknown:
        faults.append(
            Fault("TR367", "Prestatie", f"{len(unknown)} line(s) not in the message answered")
        )
    return faults


# -- status ---------------------------------------------------------------------------


@dataclass(slots=True)
class PayerStatus:
    format: str
    payer: str  # Organization id
    code: str = ""  # its CBS municipality code or UZOVI number
    name: str = ""
    lines: int = 0  # debits declared
    accepted: int = 0
    rejected: int = 0
    open: int = 0
    credited: int = 0
    cents_declared: int = 0  # net
    cents_accepted: int = 0


def status(dossier: Dossier, period: str, canon: Canon = DEFAULT_CANON) -> list[PayerStatus]:
    """Per format and payer: what was declared for ``period``, and where it stands."""
    month = Month.parse(period)
    rows: dict[tuple[str, str], PayerStatus] = {}
    for format_code in FORMATS:
        for line in declared(dossier, format_code, month, canon):
            row = rows.setdefault((format_code, line.payer), PayerStatus(format_code, line.payer))
            sign = -1 if line.credit else 1
            row.cents_declared += sign * line.cents
            if line.credit:
                if line.state == "accepted":
                    row.cents_accepted -= line.cents
                continue
            row.lines += 1
            if line.state == "accepted":
                row.accepted += 1
                row.cents_accepted += line.cents
            elif line.state == "rejected":
                row.rejected += 1
            elif line.state == "credited":
                row.credited += 1
            else:
                row.open += 1
    payers = sorted({row.payer for row in rows.values()})
    for chunk in dossier.search("Organization", [("_id", ",".join(payers))]) if payers else ():
        for organization in chunk:
            codes = _codes(organization, MUNICIPALITY) | _codes(organization, UZOVI)
            for row in rows.values():
                if row.payer == organization.get("id"):
                    row.code = min(codes, default="")
                    row.name = str(organization.get("name", ""))
    return [rows[k] for k in sorted(rows)]
