"""kill -9 during transactions: after a restart nothing is partial, and nothing that was
acknowledged is lost. A real gateway process on a database of its own, killed for real,
on SQLite and on PostgreSQL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

import httpx
import pytest

from tests.conftest import _free_port

SIZE = 200  # resources per transaction


def _start(url: str, port: int) -> subprocess.Popen[bytes]:
    subprocess.run(
        [sys.executable, "-m", "gateway.cli", "db", "upgrade", "--database-url", url],
        check=True,
        capture_output=True,
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "gateway.cli", "serve", "--open", "--port", str(port),
         "--database-url", url, "--log-level", "error"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/fhir/metadata", timeout=1).status_code == 200:
                return process
        except httpx.HTTPError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError("the gateway did not start")


def _count(client: httpx.Client, base: str, batch: str, part: range) -> int:
    """How many of ``batch``'s resources in ``part`` are there (_id takes 100 values)."""
    ids = ",".join(f"{batch}-{i}" for i in part)
    answer = client.get(f"{base}/Patient", params={"_id": ids, "_summary": "count"})
    return int(answer.json()["total"])


def _transaction(batch: str) -> dict[str, object]:
    return {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "resource": {"resourceType": "Patient", "id": f"{batch}-{i}", "active": True},
                "request": {"method": "PUT", "url": f"Patient/{batch}-{i}"},
            }
            for i in range(SIZE)
        ],
    }


@pytest.mark.slow
def test_kill_9_during_transactions_leaves_nothing_partial(own_database: str) -> None:
    port = _free_port()
    base = f"http://127.0.0.1:{port}/fhir"
    sent: list[str] = []
    acknowledged: list[str] = []
    for round_ in range(3):
        process = _start(own_database, port)
        stop = threading.Event()

        def writer(worker: int, round_: int = round_, stop: threading.Event = stop) -> None:
            count = 0
            while not stop.is_set():
                batch = f"r{round_}w{worker}b{count}"
                count += 1
                sent.append(batch)
                try:
                    answer = httpx.post(base, json=_transaction(batch), timeout=30)
                except httpx.HTTPError:
                    return
                if answer.status_code == 200:
                    acknowledged.append(batch)

        threads = [threading.Thread(target=writer, args=(w,)) for w in range(2)]
        for thread in threads:
            thread.start()
        time.sleep(0.8 + 0.4 * round_)
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
        stop.set()
        for thread in threads:
            thread.join(timeout=30)
    process = _start(own_database, port)  # after the last kill: recovery on start
    try:
        with httpx.Client(timeout=30) as client:
            for batch in sent:
                found = sum(
                    _count(client, base, batch, part) for part in (range(100), range(100, SIZE))
                )
                rest = 0
                assert found + rest in (0, SIZE), f"{batch}: {found + rest} of {SIZE} kept"
                if batch in acknowledged:
                    assert found + rest == SIZE, f"{batch} was acknowledged but is lost"
        assert acknowledged, "no transaction finished before the kills: nothing was tested"
    finally:
        process.kill()
        process.wait()
