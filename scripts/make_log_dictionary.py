#!/usr/bin/env python3
"""Write the next version of the access log's compression dictionary (ADR 0053).

The log holds each entry's JSON compressed with Zstandard against a dictionary of the
entries' own vocabulary (``gateway/store/logged.py``). An entry written with version N can
only be read with version N, so a version is never changed once released: this script
writes a new one, and refuses to overwrite a file that exists.

The dictionary is made of sample entries, built by the gateway's own AuditEvent builder for
the callers of a deployment (a GP system's backend app, a practitioner, a client and their
network, a refused caller), with the interactions they make. Zstandard finds a match more
cheaply the nearer it lies to the data, so the most frequent entry (a backend app's read)
comes last.

Usage: python scripts/make_log_dictionary.py VERSION
"""

from __future__ import annotations

import datetime as dt
import pathlib
import sys

import orjson

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from consent.audit import Access, audit_event  # noqa: E402
from consent.context import AccessContext, Kind  # noqa: E402
from consent.scopes import parse_scopes  # noqa: E402

BASE = "https://eigendossier.example.nl/fhir"
AGB = "http://fhir.nl/fhir/NamingSystem/agb"
AT = dt.datetime(2026, 1, 1, 12, 0, 0, 123000, tzinfo=dt.UTC)


def _context(kind: str, **fields: object) -> AccessContext:
    scopes, _ = parse_scopes("patient/*.rs")
    return AccessContext(
        kind=kind,
        client_id="0f1e2d3c4b5a69788796a5b4c3d2e1f0",
        scopes=scopes,
        subject="0f1e2d3c4b5a69788796a5b4c3d2e1f0",
        token_id="t",
        network_address="192.168.10.20",
        **fields,  # type: ignore[arg-type]
    )


def samples() -> list[dict[str, object]]:
    """Entries of the kinds a deployment writes, the most frequent last."""
    backend = _context(Kind.SYSTEM, organization_identifier=f"{AGB}|01234567", purpose="TREAT")
    practitioner = _context(
        Kind.PRACTITIONER,
        user="Practitioner/wijkverpleegkundige-1",
        organization="Organization/wijkteam-noord",
        purpose="TREAT",
    )
    client = _context(Kind.PATIENT, user="Patient/client-1", patient="client-1")
    network = _context(Kind.RELATED_PERSON, user="RelatedPerson/dochter-1", patient="client-1")
    records = [f"Observation/zrm-{n}" for n in range(4)] + ["CarePlan/krachtplan-1", "Goal/doel-1"]
    events = [
        audit_event(
            None,
            Access("read", "4", AT, description="refused: no valid token (expired)"),
            BASE,
        ),
        audit_event(
            practitioner,
            Access("create", "0", AT, "client-1", ["Encounter/bezoek-1"], consents=["Consent/c-1"]),
            BASE,
        ),
        audit_event(network, Access("read", "0", AT, "client-1", ["CarePlan/krachtplan-1"]), BASE),
        audit_event(
            client,
            Access("search-type", "0", AT, "client-1", records, query="patient=client-1"),
            BASE,
        ),
        audit_event(
            practitioner,
            Access(
                "search-type",
                "0",
                AT,
                "client-1",
                records,
                query="subject=Patient/client-1&_count=50",
                consents=["Consent/c-1"],
            ),
            BASE,
        ),
        audit_event(
            backend,
            Access(
                "read",
                "0",
                AT,
                "client-1",
                ["Observation/zrm-1"],
                consents=["Consent/toestemming-huisarts-1"],
            ),
            BASE,
        ),
    ]
    for n, event in enumerate(events):
        event["id"] = f"019b7a3c-55e0-7c4d-9a1b-{n:012x}"
    return events


def main() -> None:
    if len(sys.argv) != 2 or not sys.argv[1].isdigit():
        sys.exit(__doc__)
    target = ROOT / "gateway" / "store" / "data" / f"log-dictionary-{int(sys.argv[1])}.txt"
    if target.exists():
        sys.exit(f"{target.name} exists: a released version is never changed")
    target.write_bytes(b"".join(orjson.dumps(event) + b"\n" for event in samples()))
    print(f"wrote {target.relative_to(ROOT)} ({target.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
