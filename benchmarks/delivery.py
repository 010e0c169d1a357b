#!/usr/bin/env python3
"""Benchmark notifications: commit-to-delivery latency, and outbox throughput.

1. starts ``eigendossier serve --open`` (with its delivery worker) on a fresh SQLite file,
   and a receiver (a GP system's endpoint) in this process;
2. loads ``--clients`` clients, each with a CarePlan, and ``--subscriptions`` Subscriptions
   (``CarePlan?subject=Patient/<one client>``, id-only payload) over HTTP, and waits until
   every handshake made them active;
3. latency: changes one client's CarePlan at a time (``--changes`` times) and measures from
   the moment the PUT answered (committed) to the moment its notification arrived;
4. throughput: changes ``--burst`` CarePlans at once (transactions of 100) and measures
   until every notification arrived: deliveries per second;
5. prints p50/p95 and deliveries/s, and writes them as JSON under benchmarks/results/.

Usage: python benchmarks/delivery.py [--clients 1000] [--subscriptions 1000] [--changes 100]
       [--burst 1000]
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import platform
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

ROOT = pathlib.Path(__file__).resolve().parent.parent


def _port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Receiver:
    def __init__(self) -> None:
        self.arrived: dict[str, float] = {}
        self.lock = threading.Lock()
        self.port = _port()

    async def hook(self, request: Request) -> Response:
        await request.body()
        key = request.headers.get("idempotency-key", "")
        with self.lock:
            self.arrived.setdefault(key, time.perf_counter())
        return Response(status_code=200)

    def start(self) -> None:
        app = Starlette(routes=[Route("/hook", self.hook, methods=["POST"])])
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning")
        self.server = uvicorn.Server(config)
        threading.Thread(target=self.server.run, daemon=True).start()
        while not self.server.started:
            time.sleep(0.05)

    def count(self, prefix: str) -> int:
        with self.lock:
            return sum(1 for k in self.arrived if k.startswith(prefix))


def _plan(n: int, title: str) -> dict[str, Any]:
    return {
        "resourceType": "CarePlan",
        "id": f"plan-{n}",
        "status": "active",
        "intent": "plan",
        "title": title,
        "subject": {"reference": f"Patient/p{n}"},
    }


def _transaction(resources: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "resource": r,
                "request": {"method": "PUT", "url": f"{r['resourceType']}/{r['id']}"},
            }
            for r in resources
        ],
    }


def _wait(condition: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(0.01)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--subscriptions", type=int, default=1000)
    parser.add_argument("--changes", type=int, default=100)
    parser.add_argument("--burst", type=int, default=1000)
    options = parser.parse_args()
    folder = pathlib.Path(tempfile.mkdtemp(prefix="bench-delivery-"))
    port = _port()
    base = f"http://127.0.0.1:{port}/fhir"
    receiver = Receiver()
    receiver.start()
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gateway.cli",
            "serve",
            "--open",
            "--port",
            str(port),
            "--database-url",
            f"sqlite:///{folder / 'bench.db'}",
            "--log-level",
            "warning",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        with httpx.Client(base_url=base + "/", timeout=120) as http:
            _wait(lambda: _up(http), 60, "the gateway")
            resources: list[dict[str, Any]] = []
            for n in range(options.clients):
                resources += [{"resourceType": "Patient", "id": f"p{n}"}, _plan(n, "start")]
            for start in range(0, len(resources), 500):
                http.post("", json=_transaction(resources[start : start + 500])).raise_for_status()
            payload = "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/backport-payload-content"
            for n in range(options.subscriptions):
                subscription = {
                    "resourceType": "Subscription",
                    "status": "requested",
                    "reason": "benchmark",
                    "criteria": f"CarePlan?subject=Patient/p{n % options.clients}",
                    "channel": {
                        "type": "rest-hook",
                        "endpoint": f"http://127.0.0.1:{receiver.port}/hook",
                        "payload": "application/fhir+json",
                        "_payload": {"extension": [{"url": payload, "valueCode": "id-only"}]},
                    },
                }
                http.post("Subscription", json=subscription).raise_for_status()
            _wait(
                lambda: receiver.count("handshake:") >= options.subscriptions,
                600,
                "the handshakes",
            )
            time.sleep(1.5)  # the active status written back by the worker
            latencies = []
            rng = random.Random(7)
            for i in range(options.changes):
                n = rng.randrange(min(options.clients, options.subscriptions))
                answer = http.put(f"CarePlan/plan-{n}", json=_plan(n, f"change {i}"))
                answer.raise_for_status()
                committed = time.perf_counter()
                version = answer.headers["etag"].split('"')[1]
                key = f"CarePlan/plan-{n}/_history/{version}"
                _wait(lambda k=key: any(x.endswith(k) for x in list(receiver.arrived)), 60, key)
                arrived = next(t for x, t in list(receiver.arrived.items()) if x.endswith(key))
                latencies.append((arrived - committed) * 1000)
            before = receiver.count("notify:")
            distinct = min(options.clients, options.subscriptions, 100)
            burst = [_plan(n % distinct, f"burst {n}") for n in range(options.burst)]
            started = time.perf_counter()
            for start in range(0, len(burst), distinct):  # no plan twice in one transaction
                http.post("", json=_transaction(burst[start : start + distinct])).raise_for_status()
            _wait(lambda: receiver.count("notify:") >= before + options.burst, 900, "the burst")
            took = time.perf_counter() - started
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
        receiver.server.should_exit = True
    latencies.sort()
    result = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        "store": "SQLite, eigendossier serve --open (one process, its worker thread)",
        "clients": options.clients,
        "subscriptions": options.subscriptions,
        "latency_ms": {
            "p50": round(statistics.median(latencies), 1),
            "p95": round(latencies[int(len(latencies) * 0.95) - 1], 1),
            "changes": len(latencies),
        },
        "burst": {
            "changes": options.burst,
            "seconds": round(took, 2),
            "deliveries_per_second": round(options.burst / took, 1),
        },
    }
    print(json.dumps(result, indent=2))
    results = ROOT / "benchmarks" / "results"
    results.mkdir(exist_ok=True)
    name = f"delivery-{options.subscriptions}s.json"
    (results / name).write_text(json.dumps(result, indent=2) + "\n")
    print(f"written to benchmarks/results/{name}")


def _up(http: httpx.Client) -> bool:
    try:
        return http.get("metadata").status_code == 200
    except httpx.HTTPError:
        return False


if __name__ == "__main__":
    main()
