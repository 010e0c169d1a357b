"""``eigendossier conformance check FILE...``: what an integrator produced, judged offline.

- A FHIR resource or Bundle (JSON): valid R4 by HL7's JSON schema and fhir.resources, and
  every profile of ours it claims in ``meta.profile`` checked by that profile's rules (the
  StructureDefinitions of :mod:`mappings.care`, the shared vocabulary).
- An iWmo 3.2 WMO323 declaration (XML): the official XSDs (vendored in ``mappings.nl``) and
  the message rules a receiving municipality applies first: one calendar month, product
  periods inside it, the total the net sum of the lines, reference numbers once, BSNs that
  pass the eleven test.
- A Vektis AW319 file (fixed width): the record layout (``mappings.nl.aw319_layout``), the
  order of the records, running detail ids, each 04 repeating its client's 02, amount =
  tariff x number, and the closing 99 record's counts and net total.

These checks are the kit's own: they share the formats' definitions with the gateway,
never its writers' code.
"""

from __future__ import annotations

import datetime as dt
import json
from collections import Counter
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from lxml import etree

from conformance.kit.judge import problems
from mappings.care.base import Canon
from mappings.care.definitions import CareDefinitions
from mappings.core.errors import Invalid
from mappings.core.xml import parse_hardened
from mappings.nl.aw319_layout import LAYOUT, RECORD_LENGTH
from mappings.nl.identifiers import is_bsn

__all__ = ["Finding", "check_file"]

_WMO323 = "{http://www.istandaarden.nl/iwmo/3_2/wmo323/schema}"
_IWMO = "{http://www.istandaarden.nl/iwmo/3_2/basisschema/schema}"
_MAX_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Finding:
    where: str  # the element, record or line
    message: str


def check_file(
    path: Path, canonical_base: str = "https://eigendossier.nl/fhir"
) -> tuple[str, list[Finding]]:
    """(what the file is, what is wrong with it); an empty list: nothing."""
    try:
        data = path.read_bytes()
    except OSError as error:
        return "unreadable", [Finding(str(path), f"cannot be read ({error.strerror})")]
    if len(data) > _MAX_BYTES:
        return "too large", [Finding(str(path), "larger than 64 MiB")]
    head = data.lstrip()[:1]
    if head in (b"{", b"["):
        return "FHIR JSON", _fhir(data, canonical_base)
    if head == b"<":
        return "WMO323", _wmo323(data)
    if data[:2] == b"01":
        return "AW319", _aw319(data)
    return "unknown", [Finding(str(path), "neither FHIR JSON, WMO323 XML nor an AW319 file")]


# -- FHIR ---------------------------------------------------------------------------------


def _fhir(data: bytes, canonical_base: str) -> list[Finding]:
    try:
        resource = json.loads(data)
    except (ValueError, UnicodeDecodeError) as error:
        return [Finding("file", f"not JSON ({error})")]
    findings = [Finding("resource", p) for p in problems(resource)]
    if findings or not isinstance(resource, dict):
        return findings
    definitions = CareDefinitions(Canon(canonical_base))
    members: list[tuple[str, Any]] = [("resource", resource)]
    if resource.get("resourceType") == "Bundle":
        members = [
            (f"Bundle.entry[{i}].resource", e.get("resource"))
            for i, e in enumerate(resource.get("entry", []))
            if isinstance(e, dict) and isinstance(e.get("resource"), dict)
        ]
    for where, member in members:
        for profile in (member.get("meta") or {}).get("profile", []):
            if not definitions.knows(profile):
                if profile.startswith(canonical_base.rstrip("/") + "/"):
                    findings.append(Finding(where, f"claims an unknown profile of ours: {profile}"))
                continue
            for issue in definitions.check(member, profile):
                path = " ".join(issue.expression)
                findings.append(Finding(f"{where} {path}".strip(), issue.diagnostics))
    return findings


# -- WMO323 -------------------------------------------------------------------------------


def _schema() -> etree.XMLSchema:
    folder = resources.files("mappings.nl").joinpath("data", "iwmo")
    with resources.as_file(folder) as path:
        return etree.XMLSchema(etree.parse(str(path / "WMO323.xsd")))


def _text(element: etree._Element | None, path: str) -> str:
    found = element.find(path) if element is not None else None
    return (found.text or "").strip() if found is not None and found.text else ""


def _day(text: str) -> dt.date | None:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        return None


def _wmo323(data: bytes) -> list[Finding]:
    try:  # the project's hardened parser: no entities, no DTD (an entity would crash the XSD)
        document = parse_hardened(data)
    except Invalid as error:
        return [Finding("file", error.diagnostics)]
    if document.tag != f"{_WMO323}Bericht":
        return [Finding("root", f"not a WMO323 Bericht: {document.tag}")]
    schema = _schema()
    if not schema.validate(document):
        return [Finding(f"line {e.line}", e.message) for e in list(schema.error_log)[:50]]  # type: ignore[call-overload]
    findings: list[Finding] = []
    declaration = document.find(f"{_WMO323}Declaratie")
    begin = _day(_text(declaration, f"{_WMO323}DeclaratiePeriode/{_IWMO}Begindatum"))
    end = _day(_text(declaration, f"{_WMO323}DeclaratiePeriode/{_IWMO}Einddatum"))
    if begin is None or end is None:
        return [Finding("DeclaratiePeriode", "no dates")]
    following = dt.date(begin.year + begin.month // 12, begin.month % 12 + 1, 1)
    if begin.day != 1 or end != following - dt.timedelta(days=1):
        findings.append(Finding("DeclaratiePeriode", "the period is one calendar month"))
    net = 0
    references: Counter[str] = Counter()
    for client in document.iter(f"{_WMO323}Client"):
        bsn = _text(client, f"{_WMO323}Bsn")
        if not is_bsn(bsn):
            findings.append(Finding("Client/Bsn", "a BSN fails the eleven test"))
        for line in client.iter(f"{_WMO323}Prestatie"):
            reference = _text(line, f"{_WMO323}ProductReferentie/{_IWMO}ReferentieNummer")
            references[reference] += 1
            where = f"Prestatie {reference}"
            start = _day(_text(line, f"{_WMO323}ProductPeriode/{_IWMO}Begindatum"))
            stop = _day(_text(line, f"{_WMO323}ProductPeriode/{_IWMO}Einddatum"))
            if start is None or stop is None or start < begin or stop > end or stop < start:
                findings.append(Finding(where, "the product period lies within the month"))
            amount = int(_text(line, f"{_WMO323}IngediendBedrag/{_IWMO}Bedrag") or 0)
            debit = _text(line, f"{_WMO323}IngediendBedrag/{_IWMO}DebetCredit") == "D"
            net += amount if debit else -amount
    findings += [
        Finding(f"Prestatie {r}", "a reference number appears once")
        for r, n in references.items()
        if n > 1
    ]
    total = int(_text(declaration, f"{_WMO323}TotaalIngediendBedrag/{_IWMO}TotaalBedrag") or 0)
    sign = _text(declaration, f"{_WMO323}TotaalIngediendBedrag/{_IWMO}DebetCredit")
    if total != abs(net) or sign != ("D" if net >= 0 else "C"):
        findings.append(
            Finding("TotaalIngediendBedrag", f"{total} {sign} is not the net sum of the lines")
        )
    return findings


# -- AW319 --------------------------------------------------------------------------------


def _fields(line: str) -> tuple[str, dict[str, str]] | None:
    layout = LAYOUT.get(line[:2])
    if layout is None:
        return None
    return line[:2], {f.code: line[f.start - 1 : f.end] for f in layout}


def _aw319(data: bytes) -> list[Finding]:
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError:
        return [Finding("file", "not ASCII")]
    lines = text.split("\r\n")
    if lines and lines[-1] == "":
        lines.pop()
    records, findings = _records(lines)
    if findings:
        return findings
    kinds = [k for k, _ in records]
    if not kinds or kinds[0] != "01" or kinds[-1] != "99" or kinds.count("01") != 1:
        return [Finding("file", "one 01 record first and one 99 record last")]
    findings, net = _details(records[1:-1])
    return findings + _closing(records[-1][1], kinds, net)


def _records(lines: list[str]) -> tuple[list[tuple[str, dict[str, str]]], list[Finding]]:
    """Each line as a record of the layout, or what keeps it from being one."""
    findings: list[Finding] = []
    records: list[tuple[str, dict[str, str]]] = []
    for number, line in enumerate(lines, 1):
        where = f"line {number}"
        if len(line) != RECORD_LENGTH:
            findings.append(
                Finding(where, f"{len(line)} positions, not {RECORD_LENGTH} (CR LF ends a record)")
            )
            continue
        parsed = _fields(line)
        if parsed is None:
            findings.append(Finding(where, f"record type {line[:2]!r} is not an AW319 record"))
            continue
        kind, values = parsed
        findings += [
            Finding(f"{where} {field.code}", f"{field.name}: digits only")
            for field in LAYOUT[kind]
            if field.kind == "N" and not values[field.code].isdigit()
        ]
        records.append(parsed)
    return records, findings


def _details(records: list[tuple[str, dict[str, str]]]) -> tuple[list[Finding], int]:
    """The detail records between 01 and 99: running ids, 04 after its client's 02, amount =
    tariff x number; and the net total (debit positive)."""
    findings: list[Finding] = []
    expected, client, net = 0, None, 0
    for number, (kind, values) in enumerate(records, 2):
        where = f"line {number}"
        if kind in ("02", "04"):
            expected += 1
            if int(values[f"{kind}02"]) != expected:
                findings.append(Finding(f"{where} {kind}02", "detail record ids run 1, 2, 3, ..."))
        if kind == "02":
            client = values
        elif kind == "04":
            if client is None or values["0403"] != client["0203"]:
                findings.append(Finding(f"{where} 0403", "a 04 record follows its client's 02"))
            if int(values["0426"]) != int(values["0425"]) * int(values["0418"]):
                findings.append(Finding(f"{where} 0426", "the amount is tariff x number"))
            amount = int(values["0429"])
            net += amount if values["0430"] == "D" else -amount
    return findings, net


def _closing(closing: dict[str, str], kinds: list[str], net: int) -> list[Finding]:
    """The 99 record's counts and net total against the records of the file."""
    findings: list[Finding] = []
    counts = {"9902": kinds.count("02"), "9904": kinds.count("04"), "9905": kinds.count("98")}
    counts["9906"] = sum(counts.values())
    for code, count in counts.items():
        if int(closing[code]) != count:
            findings.append(
                Finding(f"99 {code}", f"says {int(closing[code])}, the file holds {count}")
            )
    if int(closing["9907"]) != abs(net) or closing["9908"] != ("D" if net >= 0 else "C"):
        findings.append(Finding("99 9907", "the total is not the net sum of the 04 records"))
    return findings
