#!/usr/bin/env python3
"""Benchmark a running Eigen Dossier gateway with real HTTP load (wrk), and the stack's limit.

What it does:
1. starts ``eigendossier serve --open`` on a fresh database (SQLite by default);
2. loads patients and Observations through transaction Bundles, timing the ingest;
3. at each store size in ``--steps``, runs wrk (2 threads, 8 connections by default, a
   random id or patient per request) against: read, search by token, by reference, by
   date, and create; and against a bare ASGI app over the same SQLite file (the limit)
   and the same queries behind Starlette and the thread pool (the framework's floor);
4. prints a table with req/s and p50/p95 latency, plus our read/search as a ratio of the
   limit, and writes it as JSON under benchmarks/results/.

Needs ``wrk`` (Debian: ``apt-get install wrk``). Absolute figures move about +/-20 %
between runs on shared machines: compare ratios, run several times, quote the median.

Usage: python benchmarks/run.py [--steps 10000,100000] [--per-patient 200] [--duration 10]
       [--workers 2 | --workers 1,2,4] [--database-url postgresql+psycopg://postgres@127.0.0.1/test]
       [--against-sqlite] [--consent] [--skip-create] [--repeat N] [--checkout DIR] [--json FILE]

Every run is on a fresh store: on SQLite a new file; on PostgreSQL a new database on the
server of ``--database-url`` (made through that URL's own database and dropped after the
run). ``--workers 1,2,4`` makes a run per number of gateway processes and ends with their
curve. ``--against-sqlite`` (with ``--database-url`` and ``--consent``) then makes one run
on SQLite at one process and sets each PostgreSQL run's consent-on figures beside it.
``--repeat N`` makes N whole runs of each and ends with the median of each ratio (each
ratio taken within its own run).
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import platform
import random
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

ROOT = pathlib.Path(__file__).resolve().parent.parent
#: the checkout whose gateway is measured (``--checkout``; this one by default)
CODE = ROOT
CODES = [
    f"zrm-{d}"
    for d in (
        "financien",
        "werk",
        "huisvesting",
        "huiselijke-relaties",
        "geestelijke-gezondheid",
        "lichamelijke-gezondheid",
        "middelengebruik",
        "adl",
        "sociaal-netwerk",
        "maatschappelijke-participatie",
    )
]
ZRM = "https://eigendossier.example.nl/fhir/CodeSystem/zrm-2017"

LUA = r"""
math.randomseed(os.time())
local count = %(count)d
local patients = %(patients)d
local codes = {%(codes)s}
local kind = "%(kind)s"
wrk.headers["Accept"] = "application/fhir+json"
wrk.headers["Content-Type"] = "application/fhir+json"
%(auth_line)s
request = function()
  local p = "Patient/p" .. math.random(0, patients - 1)
  if kind == "read" then
    return wrk.format("GET", "/fhir/Observation/o" .. math.random(0, count - 1))
  elseif kind == "token" then
    local code = codes[math.random(1, #codes)]
    return wrk.format("GET", "/fhir/Observation?subject=" .. p .. "&code=%(zrm)s|" .. code .. "&_count=50")
  elseif kind == "reference" then
    return wrk.format("GET", "/fhir/Observation?subject=" .. p .. "&_count=50")
  elseif kind == "date" then
    local month = string.format("%%02d", math.random(1, 12))
    return wrk.format("GET", "/fhir/Observation?subject=" .. p .. "&date=2025-" .. month .. "&_count=50")
  elseif kind == "create" then
    local body = '{"resourceType":"Observation","status":"final","code":{"coding":[{"system":"%(zrm)s","code":"zrm-werk"}]},"subject":{"reference":"' .. p .. '"},"effectiveDateTime":"2026-01-01","valueQuantity":{"value":3}}'
    return wrk.format("POST", "/fhir/Observation", nil, body)
  end
end
done = function(summary, latency, requests)
  io.write(string.format("RESULT p50=%%.3f p95=%%.3f errors=%%d\n",
    latency:percentile(50) / 1000, latency:percentile(95) / 1000,
    summary.errors.status + summary.errors.connect + summary.errors.read +
    summary.errors.write + summary.errors.timeout))
end
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(url: str, process: subprocess.Popen[bytes]) -> None:
    for _ in range(400):
        if process.poll() is not None:
            raise SystemExit(f"server exited with {process.returncode}")
        try:
            if httpx.get(url, timeout=2).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise SystemExit(f"server at {url} did not start")


def observation(index: int, per_patient: int) -> dict[str, Any]:
    rng = random.Random(index)
    return {
        "resourceType": "Observation",
        "id": f"o{index}",
        "status": "final",
        "category": [
            {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/observation-category",
                        "code": "survey",
                    }
                ]
            }
        ],
        "code": {"coding": [{"system": ZRM, "code": CODES[index % len(CODES)]}]},
        "subject": {"reference": f"Patient/p{index // per_patient}"},
        "effectiveDateTime": f"2025-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}T10:00:00Z",
        "valueQuantity": {
            "value": rng.randint(1, 5),
            "system": "http://unitsofmeasure.org",
            "code": "1",
        },
    }


def put_entry(resource: dict[str, Any]) -> dict[str, Any]:
    return {
        "resource": resource,
        "request": {"method": "PUT", "url": f"{resource['resourceType']}/{resource['id']}"},
    }


def load(base: str, start: int, stop: int, per_patient: int, batch: int) -> float:
    """Load Observations [start, stop) in transaction Bundles; return resources per second.
    The Bundles are built and encoded first: the time is the gateway's, from the first
    request to the last answer, not the client's work on its JSON."""
    people = [  # the patients of this step's Observations
        put_entry({"resourceType": "Patient", "id": f"p{n}", "active": True})
        for n in range(start // per_patient, -(-stop // per_patient))
    ]
    bodies = [json.dumps({"resourceType": "Bundle", "type": "transaction", "entry": people})]
    for first in range(start, stop, batch):
        entries = [
            put_entry(observation(i, per_patient)) for i in range(first, min(stop, first + batch))
        ]
        bodies.append(
            json.dumps({"resourceType": "Bundle", "type": "transaction", "entry": entries})
        )
    encoded = [body.encode() for body in bodies]
    with httpx.Client(
        timeout=600, headers={"Content-Type": "application/fhir+json", "Prefer": "return=minimal"}
    ) as client:
        began = time.perf_counter()
        for body in encoded:
            client.post(base, content=body).raise_for_status()
        return (stop - start) / (time.perf_counter() - began)


def processor_seconds(root: int) -> dict[str, float]:
    """Processor seconds (user and system) spent so far by the process ``root`` and its
    descendants, by role: ``indexer`` for the access log's indexer process (``index-log``),
    ``gateway`` for the rest (the server and its workers). Read from Linux's /proc; empty
    where there is none."""
    proc = pathlib.Path("/proc")
    if not proc.is_dir():
        return {}
    parents: dict[int, int] = {}
    spent: dict[int, float] = {}
    tick = os.sysconf("SC_CLK_TCK")
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:  # gone meanwhile
            continue
        fields = stat[stat.rindex(")") + 2 :].split()  # after the command, which may hold spaces
        parents[int(entry.name)] = int(fields[1])
        spent[int(entry.name)] = (int(fields[11]) + int(fields[12])) / tick
    tree, frontier = {root}, [root]
    while frontier:
        parent = frontier.pop()
        children = [pid for pid, ppid in parents.items() if ppid == parent]
        tree.update(children)
        frontier.extend(children)
    out: dict[str, float] = {}
    for pid in tree:
        try:
            command = (proc / str(pid) / "cmdline").read_bytes().replace(b"\0", b" ")
        except OSError:
            continue
        role = "indexer" if b"index-log" in command else "gateway"
        out[role] = out.get(role, 0.0) + spent.get(pid, 0.0)
    return out


def wrk(
    url_root: str,
    kind: str,
    count: int,
    patients: int,
    args: argparse.Namespace,
    workdir: pathlib.Path,
    token: str = "",
    server: subprocess.Popen[bytes] | None = None,
) -> dict[str, Any]:
    """wrk's rate and latency for ``kind``; with ``server``, also the cores each of its
    processes used meanwhile (``cores``: processor seconds per second of the run)."""
    script = workdir / f"{kind}.lua"
    script.write_text(
        LUA
        % {
            "count": count,
            "patients": patients,
            "kind": kind,
            "zrm": ZRM,
            "codes": ",".join(f'"{c}"' for c in CODES),
            "auth_line": f'wrk.headers["Authorization"] = "Bearer {token}"' if token else "",
        }
    )
    before = processor_seconds(server.pid) if server is not None else {}
    output = subprocess.run(
        [
            "wrk",
            "-t",
            str(args.threads),
            "-c",
            str(args.connections),
            "-d",
            f"{args.duration}s",
            "-s",
            str(script),
            url_root,
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))  # type: ignore[union-attr]
    found = re.search(r"RESULT p50=([\d.]+) p95=([\d.]+) errors=(\d+)", output)
    assert found is not None, output
    result: dict[str, Any] = {
        "rps": rate,
        "p50_ms": float(found.group(1)),
        "p95_ms": float(found.group(2)),
        "errors": int(found.group(3)),
    }
    if server is not None:
        after = processor_seconds(server.pid)
        result["cores"] = {
            role: round((spent - before.get(role, 0.0)) / args.duration, 2)
            for role, spent in sorted(after.items())
        }
    return result


AGB = "http://fhir.nl/fhir/NamingSystem/agb"


def grant_every_patient(base: str, patients: int) -> None:
    """A GP practice, and a Consent of every client granting it their Observations."""
    role = {
        "coding": [
            {"system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType", "code": "IRCP"}
        ]
    }
    entries = [
        put_entry(
            {
                "resourceType": "Organization",
                "id": "gp",
                "identifier": [{"system": AGB, "value": "01234567"}],
            }
        )
    ]
    for n in range(patients):
        entries.append(
            put_entry(
                {
                    "resourceType": "Consent",
                    "id": f"grant-p{n}",
                    "status": "active",
                    "scope": {
                        "coding": [
                            {
                                "system": "http://terminology.hl7.org/CodeSystem/consentscope",
                                "code": "patient-privacy",
                            }
                        ]
                    },
                    "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}],
                    "patient": {"reference": f"Patient/p{n}"},
                    "policyRule": {
                        "coding": [
                            {
                                "system": "http://terminology.hl7.org/CodeSystem/v3-ActCode",
                                "code": "OPTIN",
                            }
                        ]
                    },
                    "provision": {
                        "type": "permit",
                        "actor": [{"role": role, "reference": {"reference": "Organization/gp"}}],
                        "class": [
                            {"system": "http://hl7.org/fhir/resource-types", "code": t}
                            for t in ("Patient", "Observation")
                        ],
                    },
                }
            )
        )
    httpx.post(
        base, json={"resourceType": "Bundle", "type": "transaction", "entry": entries}, timeout=600
    ).raise_for_status()


def register_backend(
    env: dict[str, str], database_url: str, workdir: pathlib.Path
) -> tuple[str, Any]:
    """Register a GP backend app with a fresh key; (client_id, private key)."""
    from conformance import smart  # noqa: PLC0415

    key = smart.new_key("RS384")
    jwks = workdir / "gp-jwks.json"
    jwks.write_text(json.dumps({"keys": [key.as_dict(private=False)]}))
    output = subprocess.run(
        [
            sys.executable,
            "-m",
            "gateway.cli",
            "apps",
            "register",
            "--name",
            "GP bench",
            "--kind",
            "backend",
            "--scope",
            "system/*.rs",
            "--jwks",
            str(jwks),
            "--organization",
            f"{AGB}|01234567",
            "--database-url",
            database_url,
        ],
        cwd=CODE,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return output.strip().splitlines()[-1], key


def fresh_token(client_id: str, key: Any, base: str) -> str:
    """A backend token through the project's SMART client."""
    from conformance import smart  # noqa: PLC0415

    response = smart.backend_token(base, client_id, key, "system/*.rs")
    response.raise_for_status()
    return str(response.json()["access_token"])


def start(command: list[str], env: dict[str, str], url: str) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(
        command,
        cwd=CODE,  # ``python -m`` imports from the working directory first: the measured code
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    wait_for(url, process)
    return process


def stop(process: subprocess.Popen[bytes]) -> None:
    os.killpg(process.pid, signal.SIGINT)
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", default="10000,100000", help="store sizes to measure at")
    parser.add_argument(
        "--per-patient",
        type=int,
        default=200,
        help="Observations per patient: a search's match set stays this size",
    )
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument(
        "--workers",
        default="2",
        help="gateway processes; a list (1,2,4) makes a run of each and ends with their curve",
    )
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument(
        "--database-url",
        default="",
        help="PostgreSQL: a database on the server to measure on; each run makes its own there",
    )
    parser.add_argument(
        "--against-sqlite",
        action="store_true",
        help="with --database-url and --consent: then one SQLite run at one process, and each "
        "PostgreSQL run's consent-on figures beside it",
    )
    parser.add_argument("--skip-create", action="store_true")
    parser.add_argument(
        "--consent",
        action="store_true",
        help="then again with tokens, consent and the access log on (a GP granted by all)",
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="whole runs of each, each on a fresh store, then the median of each ratio",
    )
    parser.add_argument(
        "--checkout",
        default="",
        help="the checkout whose gateway to measure (default: this one); benchmarks/turns.py "
        "measures an earlier commit this way",
    )
    parser.add_argument("--json", default="", help="also write every run's figures to this file")
    args = parser.parse_args()
    global CODE  # noqa: PLW0603 (one setting for the whole run, read where processes start)
    CODE = pathlib.Path(args.checkout).resolve() if args.checkout else ROOT
    counts = worker_counts(args.workers)
    if args.repeat < 1:
        raise SystemExit("--repeat is a positive number")
    if args.database_url and not args.database_url.startswith("postgresql"):
        raise SystemExit("--database-url is for PostgreSQL: on SQLite each run makes a new file")
    if args.against_sqlite and not (args.database_url and args.consent):
        raise SystemExit(
            "--against-sqlite compares PostgreSQL's consent-on figures: it needs "
            "--database-url and --consent"
        )
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is needed: apt-get install wrk")
    runs = []
    for workers in counts:
        same = []
        for _ in range(args.repeat):
            same.append(measured(args, args.database_url, workers))
        if len(same) > 1:
            medians(same)
        runs += same
    if len(counts) > 1:
        curve(runs)
    if args.against_sqlite:
        sqlite = measured(args, "", 1)
        against(runs, sqlite)
        runs.append(sqlite)
    if args.json:
        pathlib.Path(args.json).write_text(json.dumps(runs, indent=2))


def worker_counts(text: str) -> list[int]:
    """``--workers``: one number of gateway processes, or a list of them (``1,2,4``)."""
    try:
        counts = [int(part) for part in text.split(",")]
    except ValueError:
        raise SystemExit("--workers is a number of processes, or a list of them: 1,2,4") from None
    if not counts or min(counts) < 1:
        raise SystemExit("--workers is a number of processes, or a list of them: 1,2,4")
    return counts


def measured(args: argparse.Namespace, database_url: str, workers: int) -> dict[str, Any]:
    """One whole run with ``workers`` gateway processes on a fresh store (on PostgreSQL a
    database of its own on ``database_url``'s server), reported and kept under
    benchmarks/results/."""
    name = f"eigendossier_bench_{uuid.uuid4().hex[:12]}"
    with fresh_database(database_url, name) as url:
        results = measure(argparse.Namespace(**{**vars(args), "workers": workers}), url)
    report(results)
    out = ROOT / "benchmarks" / "results"
    out.mkdir(exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    (out / f"run-{stamp}-{workers}.json").write_text(json.dumps(results, indent=2))
    return results


@contextmanager
def fresh_database(url: str, name: str) -> Iterator[str]:
    """A new PostgreSQL database ``name`` on ``url``'s server (through ``url``'s own
    database), dropped afterwards; its URL. An SQLite URL (or none) is given back as it
    is: :func:`measure` makes a fresh file for every run."""
    if not url.startswith("postgresql"):
        yield url
        return
    server = create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with server.connect() as connection:
            connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
        yield make_url(url).set(database=name).render_as_string(hide_password=False)
    finally:
        with server.connect() as connection:
            connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        server.dispose()


def measure(args: argparse.Namespace, database_url: str = "") -> dict[str, Any]:
    """One whole run on ``database_url`` (empty: a new SQLite file): the figures
    :func:`report` prints."""
    workdir = pathlib.Path(tempfile.mkdtemp(prefix="eigendossier-bench-"))
    db_file = workdir / "bench.db"
    database_url = database_url or f"sqlite:///{db_file}"
    port = free_port()
    base = f"http://127.0.0.1:{port}/fhir"
    env = {**os.environ, "PYTHONPATH": str(CODE)}
    if database_url.startswith("postgresql"):
        subprocess.run(
            [sys.executable, "-m", "gateway.cli", "db", "upgrade", "--database-url", database_url],
            cwd=CODE,
            env=env,
            check=True,
            capture_output=True,
        )
    server = start(
        [
            sys.executable,
            "-m",
            "gateway.cli",
            "serve",
            "--open",
            "--port",
            str(port),
            "--database-url",
            database_url,
            "--workers",
            str(args.workers),
            "--log-level",
            "warning",
        ],
        env,
        f"{base}/metadata",
    )
    results: dict[str, Any] = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        "database": database_url.split(":")[0],
        "workers": args.workers,
        "wrk": f"-t{args.threads} -c{args.connections} -d{args.duration}s",
        "steps": [],
    }
    loaded = 0
    try:
        for size in [int(s) for s in args.steps.split(",")]:
            rate = load(base, loaded, size, args.per_patient, args.batch)
            patients = size // args.per_patient
            loaded = size
            step: dict[str, Any] = {"observations": size, "ingest_resources_per_s": round(rate)}
            root = f"http://127.0.0.1:{port}"
            for kind in ("read", "token", "reference", "date"):
                step[kind] = wrk(root, kind, size, patients, args, workdir, server=server)
            if database_url.startswith("sqlite"):
                for module, prefix in BARE_APPS:
                    step.update(measure_bare(module, prefix, db_file, size, patients, args, env))
            results["steps"].append(step)
            print(json.dumps(step), flush=True)
        if not args.skip_create:
            results["create"] = wrk(
                f"http://127.0.0.1:{port}", "create", loaded, patients, args, workdir
            )
        if args.consent:
            grant_every_patient(base, loaded // args.per_patient)
    finally:
        stop(server)
    if args.consent:
        results["consent"] = measure_with_consent(
            base, port, database_url, env, loaded, args, workdir
        )
        if database_url.startswith("sqlite"):  # the ceiling again, beside these figures
            module, prefix = BARE_APPS[0]
            patients = loaded // args.per_patient
            ceiling = measure_bare(module, prefix, db_file, loaded, patients, args, env)
            results["consent"].update(ceiling)
            print(json.dumps({"consent": ceiling}), flush=True)
    shutil.rmtree(workdir, ignore_errors=True)
    return results


#: (ASGI app, prefix of its figures): the stack's ceiling, and the framework's own floor
BARE_APPS = (("benchmarks.bare_asgi:app", "limit"), ("benchmarks.bare_starlette:app", "framework"))


def measure_bare(
    module: str,
    prefix: str,
    db_file: pathlib.Path,
    size: int,
    patients: int,
    args: argparse.Namespace,
    env: dict[str, str],
) -> dict[str, Any]:
    """Read and search against one of the bare apps over the same SQLite file."""
    port = free_port()
    bare = start(
        [
            sys.executable,
            "-m",
            "uvicorn",
            module,
            "--port",
            str(port),
            "--workers",
            str(args.workers),
            "--log-level",
            "warning",
        ],
        {**env, "BARE_DB": str(db_file)},
        f"http://127.0.0.1:{port}/fhir/Observation/o0",
    )
    try:
        root = f"http://127.0.0.1:{port}"
        workdir = db_file.parent
        return {
            f"{prefix}_read": wrk(root, "read", size, patients, args, workdir),
            f"{prefix}_reference": wrk(root, "reference", size, patients, args, workdir),
        }
    finally:
        stop(bare)


def measure_with_consent(
    base: str,
    port: int,
    database_url: str,
    env: dict[str, str],
    loaded: int,
    args: argparse.Namespace,
    workdir: pathlib.Path,
) -> dict[str, Any]:
    """The same reads and searches by a GP backend app that every client granted."""
    client_id, key = register_backend(env, database_url, workdir)
    server = start(
        [
            sys.executable,
            "-m",
            "gateway.cli",
            "serve",
            "--port",
            str(port),
            "--database-url",
            database_url,
            "--workers",
            str(args.workers),
            "--log-level",
            "warning",
        ],
        env,
        f"{base}/metadata",
    )
    patients = loaded // args.per_patient
    out: dict[str, Any] = {"observations": loaded, "grants": patients}
    try:
        for kind in ("read", "token", "reference", "date"):
            token = fresh_token(client_id, key, base)  # five-minute tokens
            out[kind] = wrk(
                f"http://127.0.0.1:{port}", kind, loaded, patients, args, workdir, token, server
            )
            out[kind]["log_waiting"] = log_waiting(database_url)
    finally:
        stop(server)
    print(json.dumps({"consent": out}), flush=True)
    return out


def log_waiting(database_url: str) -> int:
    """Access-log entries committed but not yet indexed as AuditEvents, right after a run:
    about a second's worth while the indexer keeps up; more, and growing with ``--duration``,
    when it falls behind (ADR 0026). On SQLite those of reads wait in the log's own file
    beside the database (ADR 0027)."""
    from gateway.store.repository import LOG_FILE_SUFFIX  # noqa: PLC0415

    urls = [database_url]
    if database_url.startswith("sqlite:///"):
        urls.append(database_url + LOG_FILE_SUFFIX)
    waiting = 0
    for url in urls:
        engine = create_engine(url)
        try:
            with engine.connect() as connection:
                count = connection.execute(text("SELECT count(*) FROM access_log"))
                waiting += int(count.scalar_one())
        finally:
            engine.dispose()
    return waiting


SCENARIOS = (  # (wrk kind, label, the bare-ASGI limit it is compared with)
    ("read", "GET Observation/{id}", "limit_read"),
    ("reference", "search subject=, _count=50", "limit_reference"),
    ("token", "search subject= & code=", None),
    ("date", "search subject= & date=", None),
)


def processor_per_request(row: dict[str, Any]) -> dict[str, float]:
    """Microseconds of processor time each process spent per request of a wrk run (its
    ``cores`` over its rate): steadier than the rate on a shared machine."""
    rate = row["rps"]
    return {k: v / rate * 1e6 for k, v in row.get("cores", {}).items()} if rate else {}


def report(results: dict[str, Any]) -> None:
    print(
        f"\n{results['machine']}; {results['database']}; {results['workers']} workers; "
        f"wrk {results['wrk']}"
    )
    print("| store | scenario | req/s | p50 ms | p95 ms | vs. limit |")
    print("| --- | --- | --- | --- | --- | --- |")
    for step in results["steps"]:
        size = f"{step['observations']:,} obs"
        for kind, label, limit in SCENARIOS:
            row = step[kind]
            ratio = f"{row['rps'] / step[limit]['rps']:.0%}" if limit and limit in step else ""
            print(
                f"| {size} | {label} | {row['rps']:.0f} | {row['p50_ms']:.2f} | "
                f"{row['p95_ms']:.2f} | {ratio} |"
            )
        for limit, label in (
            ("limit_read", "limit: bare ASGI read"),
            ("limit_reference", "limit: bare ASGI search"),
            ("framework_read", "floor: Starlette + thread hop, read"),
            ("framework_reference", "floor: Starlette + thread hop, search"),
        ):
            if limit in step:
                row = step[limit]
                print(
                    f"| {size} | {label} | {row['rps']:.0f} | {row['p50_ms']:.2f} | "
                    f"{row['p95_ms']:.2f} | |"
                )
        print(
            f"| {size} | transaction ingest | {step['ingest_resources_per_s']} resources/s | | | |"
        )
    if "consent" in results:
        step = results["consent"]
        for kind, label, _ in SCENARIOS:
            row = step[kind]
            waiting = f"{row['log_waiting']:,} log entries waiting" if "log_waiting" in row else ""
            if row.get("cores"):
                waiting += "; cores: " + ", ".join(f"{k} {v:.2f}" for k, v in row["cores"].items())
                waiting += "; µs of processor a request: " + ", ".join(
                    f"{k} {v:.0f}" for k, v in processor_per_request(row).items()
                )
            print(
                f"| {step['observations']:,} obs, consent on ({step['grants']} grants) | "
                f"{label} | {row['rps']:.0f} | {row['p50_ms']:.2f} | {row['p95_ms']:.2f} | "
                f"{waiting} |"
            )
    if "create" in results:
        row = results["create"]
        print(
            f"| | POST Observation | {row['rps']:.0f} | {row['p50_ms']:.2f} | {row['p95_ms']:.2f} | |"
        )
    ratios(results)


def paths(
    results: dict[str, Any],
) -> list[tuple[str, dict[str, Any], dict[str, Any] | None, dict[str, Any] | None]]:
    """The paths of the issue's table: (label, our figures, the bare app's figures they are
    compared with or None, the framework's floor or None). Open mode is compared with the
    bare app measured right after it; consent on with the bare app measured right after the
    consent-on runs (when there is one: the machine's speed moves within a run too). On
    PostgreSQL there is no bare app (it reads the SQLite file)."""
    last = results["steps"][-1]
    rows: list[tuple[str, dict[str, Any], dict[str, Any] | None, dict[str, Any] | None]] = []
    for label, kind in (
        ("read, open mode", "read"),
        ("search subject= _count=50, open mode", "reference"),
    ):
        rows.append((label, last[kind], last.get(f"limit_{kind}"), last.get(f"framework_{kind}")))
    if "consent" in results:  # the floor has no consent: it is compared with open mode only
        step = results["consent"]
        for label, kind in (
            ("read, GP backend token, consent + access log on", "read"),
            ("search, same", "reference"),
        ):
            limit = step.get(f"limit_{kind}", last.get(f"limit_{kind}"))
            rows.append((label, step[kind], limit, None))
    return rows


def ratios(results: dict[str, Any]) -> None:
    """The issue's table: our read and search against the bare ASGI app of the same run,
    open and with consent on (the largest store measured)."""
    last = results["steps"][-1]
    if "limit_read" not in last:
        return
    rows = paths(results)
    print(f"\n{last['observations']:,} Observations; {results['workers']} gateway process(es)")
    print(
        "| path | Eigen Dossier req/s (p50 / p95 ms) | bare ASGI ceiling req/s | ratio "
        "| Starlette + thread hop req/s | ratio |"
    )
    print("| --- | --- | --- | --- | --- | --- |")
    for label, ours, limit, floor in rows:
        framework = f"{floor['rps']:,.0f} | {floor['rps'] / limit['rps']:.3f}x" if floor else " | "
        print(
            f"| {label} | {ours['rps']:,.0f} ({ours['p50_ms']:.1f} / {ours['p95_ms']:.1f}) | "
            f"{limit['rps']:,.0f} | {ours['rps'] / limit['rps']:.3f}x | {framework} |"
        )
    print(f"| transaction ingest | {last['ingest_resources_per_s']:,} resources/s | | | | |")


def medians(runs: list[dict[str, Any]]) -> None:
    """The median over ``runs`` of each path's rate and of its ratio to the bare app of its
    own run (each ratio is taken within its run first: the machine's speed moves between
    runs, the ratio much less)."""
    if "limit_read" not in runs[0]["steps"][-1]:
        return
    print(f"\nMedian of {len(runs)} runs")
    print("| path | Eigen Dossier req/s | ratio to the bare app (each run) | median ratio |")
    print("| --- | --- | --- | --- |")
    for index, (label, _, _, _) in enumerate(paths(runs[0])):
        rates, shares = [], []
        for results in runs:
            _, ours, limit, _ = paths(results)[index]
            rates.append(ours["rps"])
            shares.append(ours["rps"] / limit["rps"])
        each = ", ".join(f"{share:.3f}x" for share in shares)
        print(
            f"| {label} | {statistics.median(rates):,.0f} | {each} | "
            f"{statistics.median(shares):.3f}x |"
        )
    ingest = statistics.median(r["steps"][-1]["ingest_resources_per_s"] for r in runs)
    print(f"| transaction ingest | {ingest:,.0f} resources/s | | |")
    if all("consent" in r for r in runs):
        print("\nProcessor time a consent-on request, µs (each run): it moves less than rates")
        print("| path | gateway | access log's indexer |")
        print("| --- | --- | --- |")
        for kind, label in (("read", "read"), ("reference", "search subject= _count=50")):
            spent = [processor_per_request(r["consent"][kind]) for r in runs]
            each = [", ".join(f"{s.get(k, 0):.0f}" for s in spent) for k in ("gateway", "indexer")]
            print(f"| {label} | {each[0]} | {each[1]} |")


def _by_workers(runs: list[dict[str, Any]]) -> dict[int, list[dict[str, Any]]]:
    grouped: dict[int, list[dict[str, Any]]] = {}
    for results in runs:
        grouped.setdefault(results["workers"], []).append(results)
    return grouped


def _median_rate(runs: list[dict[str, Any]], pick: Any) -> float:
    return statistics.median(pick(results)["rps"] for results in runs)


def curve(runs: list[dict[str, Any]]) -> None:
    """The figures by number of gateway processes (the median of each count's runs): the
    open read and, with ``--consent``, the consent-on read and search and the processor
    time per consent-on read."""
    print(f"\nBy gateway processes; {runs[0]['database']}; wrk {runs[0]['wrk']}")
    print(
        "| processes | open read req/s | consent-on read req/s | consent-on search req/s "
        "| gateway, indexer µs a consent-on read |"
    )
    print("| --- | --- | --- | --- | --- |")
    for workers, same in sorted(_by_workers(runs).items()):
        cells = [f"{_median_rate(same, lambda r: r['steps'][-1]['read']):,.0f}"]
        if all("consent" in r for r in same):
            cells.append(f"{_median_rate(same, lambda r: r['consent']['read']):,.0f}")
            cells.append(f"{_median_rate(same, lambda r: r['consent']['reference']):,.0f}")
            spent = [processor_per_request(r["consent"]["read"]) for r in same]
            gateway = statistics.median(s.get("gateway", 0.0) for s in spent)
            indexer = statistics.median(s.get("indexer", 0.0) for s in spent)
            cells.append(f"{gateway:,.0f}, {indexer:,.0f}")
        else:
            cells += ["", "", ""]
        print(f"| {workers} | " + " | ".join(cells) + " |")


def against(runs: list[dict[str, Any]], sqlite: dict[str, Any]) -> None:
    """Each PostgreSQL run's consent-on read and search (the median of each count of
    processes) beside SQLite's at one process, as how many times SQLite's rate is theirs."""
    read = sqlite["consent"]["read"]["rps"]
    search = sqlite["consent"]["reference"]["rps"]
    print(
        f"\nConsent on, {runs[0]['database']} against SQLite at one process; wrk {runs[0]['wrk']}"
    )
    print(
        "| store | processes | read req/s | SQLite's rate over this | search req/s "
        "| SQLite's rate over this |"
    )
    print("| --- | --- | --- | --- | --- | --- |")
    for workers, same in sorted(_by_workers(runs).items()):
        ours_read = _median_rate(same, lambda r: r["consent"]["read"])
        ours_search = _median_rate(same, lambda r: r["consent"]["reference"])
        print(
            f"| {runs[0]['database']} | {workers} | {ours_read:,.0f} | {read / ours_read:.2f}x "
            f"| {ours_search:,.0f} | {search / ours_search:.2f}x |"
        )
    print(f"| sqlite | 1 | {read:,.0f} | 1.00x | {search:,.0f} | 1.00x |")


if __name__ == "__main__":
    main()
