#!/usr/bin/env python3
"""Benchmark a Bulk Data export: time from kick-off to manifest, and the server's memory.

Generates (or reuses, with ``--keep``) the synthetic dossier of ``benchmarks/declarations.py``
(``--clients`` clients, ``--visits`` visits per funding stream), starts ``eigendossier serve
--open`` over it (one process, its delivery worker runs the export), kicks off
``$export?_type=Encounter``, polls the status until the manifest is there, downloads every
file, and reports the seconds, resources per second, and the server's peak resident memory
(``VmHWM``) before and after. Run it with two sizes to see that memory does not follow the
number of resources exported.

Usage: python benchmarks/export.py [--clients 10000] [--visits 50000] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import platform
import signal
import socket
import subprocess
import sys
import tempfile
import time

import httpx

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

from declarations import generate  # noqa: E402


def _port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _peak_mb(pid: int) -> int:
    for line in pathlib.Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) // 1024
    return 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=10_000)
    parser.add_argument("--visits", type=int, default=50_000, help="per funding stream")
    parser.add_argument("--keep", type=pathlib.Path)
    options = parser.parse_args()
    folder = options.keep or pathlib.Path(tempfile.mkdtemp(prefix="bench-export-"))
    folder.mkdir(parents=True, exist_ok=True)
    url = f"sqlite:///{folder / 'bench.db'}"
    if not (folder / "bench.db").exists():
        print(f"generating {options.clients} clients, 2 x {options.visits} visits ...")
        generate(url, options.clients, options.visits, 7, 5000)
        print()
    port = _port()
    base = f"http://127.0.0.1:{port}/fhir"
    command = [sys.executable, "-m", "gateway.cli", "serve", "--open", "--port", str(port)]
    server = subprocess.Popen(
        [*command, "--database-url", url, "--log-level", "warning"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        with httpx.Client(timeout=300) as http:
            while True:
                try:
                    if http.get(f"{base}/metadata").status_code == 200:
                        break
                except httpx.HTTPError:
                    time.sleep(0.2)
            before = _peak_mb(server.pid)
            started = time.perf_counter()
            kicked = http.get(
                f"{base}/$export",
                params={"_type": "Encounter"},
                headers={"Prefer": "respond-async"},
            )
            status = kicked.headers["Content-Location"]
            while (answer := http.get(status)).status_code == 202:
                time.sleep(0.2)
            manifest = answer.json()
            ready = time.perf_counter() - started
            total = 0
            for output in manifest["output"]:
                total += len(http.get(output["url"]).content.splitlines())
            done = time.perf_counter() - started
            after = _peak_mb(server.pid)
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
    result = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        "store": "SQLite, eigendossier serve --open (one process, its worker thread)",
        "resources": total,
        "files": len(manifest["output"]),
        "seconds_to_manifest": round(ready, 2),
        "seconds_with_download": round(done, 2),
        "resources_per_second": round(total / ready, 1),
        "server_peak_mb_before": before,
        "server_peak_mb_after": after,
    }
    print(json.dumps(result, indent=2))
    results = ROOT / "benchmarks" / "results"
    results.mkdir(exist_ok=True)
    name = f"export-{total}.json"
    (results / name).write_text(json.dumps(result, indent=2) + "\n")
    print(f"written to benchmarks/results/{name}")


if __name__ == "__main__":
    main()
