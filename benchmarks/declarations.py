#!/usr/bin/env python3
"""Benchmark the declaration writers on a synthetic month: how long, how much memory.

1. ``generate``: a fresh SQLite dossier with a seeded synthetic month: ``--clients`` clients
   (each with a Wmo allocation in one of two municipalities and a Zvw insurance with one of
   two insurers), tariffs, and ``--visits`` Wmo visits plus as many Zvw visits, written
   through the store in transactions of ``--batch`` resources (validated and indexed as any
   write);
2. for each writer (WMO323, AW319), runs ``eigendossier declare FORMAT --period ...`` in a
   process of its own: ``--dry-run`` (read, sum, build and validate, the access log of the
   read; no file) ``--repeat`` times, the median kept, and the real run once (files written,
   a Claim per line and the access log recorded), timing the wall clock (process start
   included) and reading the process's peak resident memory; the command's own phase
   timings (read, check, files, record) are kept too;
3. prints a table and writes it as JSON under benchmarks/results/.

Memory must not grow with the number of visits: run it with ``--visits 50000`` and
``--visits 200000`` over the same ``--clients`` and compare the peaks.

Usage: python benchmarks/declarations.py [--clients 10000] [--visits 100000] [--seed 7]
       [--keep DIR]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import pathlib
import platform
import random
import resource
import subprocess
import sys
import tempfile
import time
from typing import Any
from zoneinfo import ZoneInfo

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gateway.app import build_services  # noqa: E402
from gateway.loading import load  # noqa: E402
from gateway.settings import Settings  # noqa: E402
from mappings.care.declarations import (  # noqa: E402
    DECLARANT,
    Allocation,
    Tariff,
    allocation_to_fhir,
    tariff_to_fhir,
)
from mappings.care.people import (  # noqa: E402
    CareOrganization,
    Client,
    client_to_fhir,
    organization_to_fhir,
)
from mappings.care.visits import Visit, visit_to_fhir  # noqa: E402

_LOCAL = ZoneInfo("Europe/Amsterdam")
MONTH = dt.date(2026, 10, 1)
PERIOD = "2026-10"


def _bsn(number: int) -> str:
    """The ``number``-th nine-digit string that passes the eleven test (from 100000000)."""
    weights = (9, 8, 7, 6, 5, 4, 3, 2, -1)
    candidate = 100_000_000 + number * 11
    while True:
        digits = f"{candidate:09d}"
        total = sum(int(d) * w for d, w in zip(digits, weights, strict=True))
        if total % 11 == 0 and total != 0:
            return digits
        candidate += 1


def _fixed() -> list[dict[str, Any]]:
    provider = organization_to_fhir(CareOrganization("provider", "Zorg Bench", agb="12345678"))
    provider["type"] = [
        {
            "coding": [
                {
                    "system": "https://eigendossier.nl/fhir/CodeSystem/declaration-party",
                    "code": DECLARANT,
                }
            ]
        }
    ]
    payers = [
        CareOrganization("g1", "Gemeente Een", municipality="0363"),
        CareOrganization("g2", "Gemeente Twee", municipality="0479"),
        CareOrganization("v1", "Verzekeraar Een", uzovi="9101"),
        CareOrganization("v2", "Verzekeraar Twee", uzovi="9102"),
    ]
    start = dt.date(2026, 1, 1)
    tariffs = [
        Tariff("wmo-02A01", "wmo", "02A01", "hour", 6890, start, None, None, "02"),
        Tariff("wmo-02A02", "wmo", "02A02", "minute", 115, start, None, None, "02"),
        Tariff("zvw-1032", "zvw", "1032", "hour", 8150, start),
        Tariff("zvw-1033", "zvw", "1033", "hour", 6975, start),
    ]
    return [
        provider,
        *(organization_to_fhir(p) for p in payers),
        *(tariff_to_fhir(t) for t in tariffs),
    ]


def _client(n: int) -> list[dict[str, Any]]:
    key = f"c{n:06d}"
    return [
        client_to_fhir(
            Client(
                key,
                f"Achternaam{n}",
                ("Voornaam",),
                bsn=_bsn(n),
                birth_date=dt.date(1940 + n % 60, 1 + n % 12, 1 + n % 28),
                gender=("male", "female")[n % 2],
            )
        ),
        allocation_to_fhir(
            Allocation(
                f"{key}-wmo",
                key,
                "wmo",
                ("g1", "g2")[n % 2],
                dt.date(2026, 1, 1),
                None,
                str(10_000_000 + n),
            )
        ),
        allocation_to_fhir(
            Allocation(
                f"{key}-zvw",
                key,
                "zvw",
                ("v1", "v2")[n % 2],
                dt.date(2026, 1, 1),
                None,
                f"V{n:09d}",
            )
        ),
    ]


def _visit(rng: random.Random, n: int, clients: int, funding: str) -> dict[str, Any]:
    client = rng.randrange(clients)
    day = rng.randint(1, 31)
    begin = dt.datetime(MONTH.year, MONTH.month, day, rng.randint(7, 20), tzinfo=_LOCAL)
    minutes = rng.randint(5, 120)
    products = {"wmo": ("02A01", "02A02"), "zvw": ("1032", "1033")}[funding]
    return visit_to_fhir(
        Visit(
            id=f"v-{funding}-{n:07d}",
            patient=f"c{client:06d}",
            mode=rng.choice(("home", "home", "home", "phone")),
            status="finished",
            start=begin,
            end=begin + dt.timedelta(minutes=minutes),
            minutes=minutes,
            participants=("Practitioner/p1",),
            funding=funding,
            product_code=products[client % 2],
            allocation_number=str(10_000_000 + client) if funding == "wmo" else None,
        )
    )


def generate(url: str, clients: int, visits: int, seed: int, batch: int) -> float:
    services = build_services(Settings(database_url=url), migrate=True)
    started = time.perf_counter()
    pending: list[dict[str, Any]] = _fixed()
    rng = random.Random(seed)
    written = 0

    def flush() -> None:
        nonlocal pending, written
        if pending:
            load(services, pending, "benchmark: a synthetic month")
            written += len(pending)
            pending = []
            print(f"\r  {written} resources", end="", flush=True)

    for n in range(clients):
        pending += _client(n)
        if len(pending) >= batch:
            flush()
    for funding in ("wmo", "zvw"):
        for n in range(visits):
            pending.append(_visit(rng, n, clients, funding))
            if len(pending) >= batch:
                flush()
    flush()
    print()
    services.store.dispose()
    return time.perf_counter() - started


def run_writer(url: str, format_code: str, out: pathlib.Path, dry: bool) -> dict[str, Any]:
    """One ``eigendossier declare`` in a process of its own: seconds and peak memory."""
    code = (
        "import resource, sys, time\n"
        "from gateway.cli import main\n"
        "sys.argv = ['eigendossier'] + sys.argv[1:]\n"
        "started = time.perf_counter()\n"
        "try:\n"
        "    main()\n"
        "except SystemExit as e:\n"
        "    code = e.code or 0\n"
        "else:\n"
        "    code = 0\n"
        "peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "print(f'BENCH {time.perf_counter() - started:.3f} {peak} {code}', file=sys.stderr)\n"
    )
    args = ["declare", format_code, "--period", PERIOD, "--out", str(out), "--database-url", url]
    if dry:
        args.append("--dry-run")
    done = subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, check=False
    )
    line = next(x for x in done.stderr.splitlines() if x.startswith("BENCH "))
    seconds, peak_kb, status = line.split()[1:]
    if status != "0":
        raise SystemExit(f"{format_code} failed:\n{done.stderr[-2000:]}")
    files = sorted(out.glob(f"{format_code.upper()}_*"))
    summary = next((x for x in done.stderr.splitlines() if " visits; " in x), "")
    return {
        "format": format_code,
        "mode": "dry run" if dry else "files + Claims",
        "seconds": float(seconds),
        "peak_mb": round(int(peak_kb) / 1024),
        "files": len(files),
        "bytes": sum(f.stat().st_size for f in files),
        "summary": summary,
        "phases": summary[summary.rfind("(") :] if summary.endswith(")") else "",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=10_000)
    parser.add_argument("--visits", type=int, default=100_000, help="per funding stream")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--batch", type=int, default=5000)
    parser.add_argument("--keep", type=pathlib.Path, help="keep the database and files here")
    parser.add_argument("--repeat", type=int, default=3, help="dry runs per writer (median)")
    options = parser.parse_args()
    folder = options.keep or pathlib.Path(tempfile.mkdtemp(prefix="bench-declarations-"))
    folder.mkdir(parents=True, exist_ok=True)
    url = f"sqlite:///{folder / 'bench.db'}"
    if not (folder / "bench.db").exists():
        print(f"generating {options.clients} clients, 2 x {options.visits} visits ...")
        took = generate(url, options.clients, options.visits, options.seed, options.batch)
        print(f"  generated in {took:.0f} s")
    with (folder / "bench.db").open("rb") as warm:  # the file in the page cache, as in use
        while warm.read(1 << 24):
            pass
    rows = []
    for format_code in ("wmo323", "aw319"):
        for dry in (True, False):
            out = folder / ("dry" if dry else "files")
            tries = [run_writer(url, format_code, out, True) for _ in range(options.repeat)]
            row = (
                sorted(tries, key=lambda r: r["seconds"])[len(tries) // 2]
                if dry
                else (
                    run_writer(url, format_code, out, False)  # records: runs once
                )
            )
            rows.append(row)
            print(
                f"{row['format']:7} {row['mode']:15} {row['seconds']:7.2f} s  "
                f"peak {row['peak_mb']:5} MB  {row['files']} file(s) {row['bytes']:>10} bytes  "
                f"{row['phases']}"
            )
    result = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        "clients": options.clients,
        "visits_per_format": options.visits,
        "runs": rows,
        "peak_of_the_benchmark_process_mb": round(
            resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        ),
    }
    results = ROOT / "benchmarks" / "results"
    results.mkdir(exist_ok=True)
    name = f"declarations-{options.clients}c-{options.visits}v.json"
    (results / name).write_text(json.dumps(result, indent=2) + "\n")
    print(f"written to benchmarks/results/{name}")


if __name__ == "__main__":
    main()
