"""The stack's limit: a bare ASGI app over the same SQLite file, no auth, no validation.

Serves ``GET /fhir/Observation/{id}`` and ``GET /fhir/Observation?subject=Patient/x&_count=50``
straight from Eigen Dossier's tables, so that benchmarks/run.py can report our figures as a
ratio of what uvicorn + SQLite can do at all on this machine (see the README, "Performance").
Run: ``BARE_DB=/path/to.db uvicorn benchmarks.bare_asgi:app``.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from typing import Any
from urllib.parse import parse_qs

_local = threading.local()


def _db() -> sqlite3.Connection:
    connection = getattr(_local, "connection", None)
    if connection is None:
        connection = sqlite3.connect(os.environ["BARE_DB"], check_same_thread=False)
        _local.connection = connection
    return connection


def read_observation(res_id: str) -> bytes | None:
    """The stored bytes of one Observation."""
    row = (
        _db()
        .execute(
            "SELECT content FROM resources WHERE res_type='Observation' AND res_id=?", (res_id,)
        )
        .fetchone()
    )
    return bytes(row[0]) if row else None


def search_observations(subject: str) -> bytes:
    """A searchset of the first 50 Observations of a patient, from the reference index."""
    rows = (
        _db()
        .execute(
            "SELECT r.content FROM resources r WHERE r.res_type='Observation' AND r.pk IN "
            "(SELECT res_pk FROM search_reference WHERE res_type='Observation' AND "
            "param='subject' AND target_type='Patient' AND target_id=?) ORDER BY r.pk LIMIT 50",
            (subject,),
        )
        .fetchall()
    )
    return (
        b'{"resourceType":"Bundle","type":"searchset","entry":['
        + b",".join(b'{"resource":' + r[0] + b"}" for r in rows)
        + b"]}"
    )


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    path = scope["path"]
    status, body = 404, b"{}"
    if path.startswith("/fhir/Observation/"):
        found = read_observation(path.rsplit("/", 1)[1])
        if found is not None:
            status, body = 200, found
    elif path == "/fhir/Observation":
        query = parse_qs(scope["query_string"].decode())
        status, body = 200, search_observations(query.get("subject", [""])[0].split("/")[-1])
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/fhir+json")],
        }
    )
    await send({"type": "http.response.body", "body": body})
