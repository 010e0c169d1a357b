"""Every statement that reads reference rows finds them by an index key, not by a range
(ADR 0030).

Reference rows have one index by value (type, parameter, target id, target type, key) and
one by resource key. There is no longer a second index by target, so a statement that
looks rows up by their target must name the type and parameter it wants: then SQLite finds
them by ``target_id``. A statement that names neither would read every reference row of
the store, and would still answer right: only its plan shows it. So these tests run real
searches, chains, ``_has``, includes, a household's change and ``Session.referring``
against a store of their own, record every statement SQLite runs (with its values), and
ask SQLite for each one's plan. A search of a type alone is planned here too: its page
comes from the type's live rows in key order (ADR 0052).
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import event

from gateway.app import build_services
from gateway.http.app import build_http_app
from gateway.settings import Settings
from gateway.store.engine import make_engine
from tests.conftest import _free_port, running

pytestmark = pytest.mark.usefixtures("sqlite_only")

#: a plan line that reads reference rows by a key: a target id, or a resource key
_BY_KEY = re.compile(r"^SEARCH .*USING .*INDEX .*\b(?:target_id|res_pk)=\?")


@pytest.fixture()
def sqlite_only(request: pytest.FixtureRequest) -> None:
    if request.config.getoption("--database") != "sqlite":
        pytest.skip("query plans are SQLite's (EXPLAIN QUERY PLAN)")


@pytest.fixture()
def traced(own_database: str) -> Iterator[dict[str, Any]]:
    """A gateway of its own, in open mode, whose every SQL statement is recorded."""
    statements: list[str] = []
    engine = make_engine(own_database)

    @event.listens_for(engine, "connect")
    def _trace(driver: sqlite3.Connection, _record: object) -> None:
        driver.set_trace_callback(statements.append)

    port = _free_port()
    settings = Settings(database_url=own_database, port=port, open_mode=True)
    services = build_services(settings, engine=engine, migrate=True)
    app = build_http_app(services, settings, None)
    try:
        with running(app, port), httpx.Client(base_url=settings.public_base_url) as client:
            yield {
                "client": client,
                "statements": statements,
                "services": services,
                "file": own_database.removeprefix("sqlite:///"),
            }
    finally:
        services.store.dispose()


def _dossier(client: httpx.Client) -> None:
    resources: list[dict[str, Any]] = [
        {"resourceType": "Patient", "id": "anna", "name": [{"family": "de Vries"}]},
        {"resourceType": "Patient", "id": "piet", "name": [{"family": "Jansen"}]},
        {
            "resourceType": "Group",
            "id": "huishouden",
            "type": "person",
            "actual": True,
            "member": [{"entity": {"reference": "Patient/anna"}}],
        },
        {
            "resourceType": "Goal",
            "id": "rondkomen",
            "lifecycleStatus": "active",
            "description": {"text": "Rondkomen"},
            "subject": {"reference": "Group/huishouden"},
        },
        {"resourceType": "Organization", "id": "gp", "name": "Huisartsenpraktijk"},
    ]
    for n in range(3):
        resources.append(
            {
                "resourceType": "Observation",
                "id": f"zrm-{n}",
                "status": "final",
                "code": {"coding": [{"system": "http://example.org/zrm", "code": "werk"}]},
                "subject": {"reference": "Patient/anna"},
                "performer": [{"reference": "Organization/gp"}],
            }
        )
    for resource in resources:
        response = client.put(f"{resource['resourceType']}/{resource['id']}", json=resource)
        assert response.status_code == 201, response.text


def _plans(file: str, statements: list[str]) -> dict[str, list[str]]:
    """Each statement that reads ``search_reference``, with the lines of its plan."""
    plans = {}
    with sqlite3.connect(file) as connection:
        for statement in statements:
            if "search_reference" not in statement or not statement.lstrip().upper().startswith(
                ("SELECT", "WITH")
            ):
                continue
            rows = connection.execute(f"EXPLAIN QUERY PLAN {statement}").fetchall()
            plans[statement] = [row[3] for row in rows]
    return plans


def _ranges(plans: dict[str, list[str]]) -> list[tuple[str, str]]:
    """(statement, plan line) for each read of reference rows by anything but a key."""
    return [
        (statement, line)
        for statement, lines in plans.items()
        for line in lines
        if "search_reference" in line and not _BY_KEY.search(line)
    ]


def test_the_index_by_target_is_gone(traced: dict[str, Any]) -> None:
    with sqlite3.connect(traced["file"]) as connection:
        names = {
            row[0]
            for row in connection.execute(
                "SELECT name FROM sqlite_master WHERE tbl_name = 'search_reference'"
            )
        }
        stats = {
            row[0]
            for row in connection.execute(
                "SELECT idx FROM sqlite_stat1 WHERE tbl = 'search_reference'"
            )
        }
    assert "ix_search_reference_target" not in names
    assert {"ix_search_reference_value", "ix_search_reference_pk"} <= names
    assert "ix_search_reference_target" not in stats  # its planner statistics went with it


@pytest.mark.parametrize(
    ("path", "params", "expected"),
    [
        ("Observation", {"subject": "Patient/anna"}, 3),
        ("Observation", {"subject:Patient": "anna"}, 3),
        ("Observation", {"subject.name": "de Vries"}, 3),
        ("Observation", {"performer:Organization.name": "Huisartsenpraktijk"}, 3),
        ("Patient", {"_has:Observation:subject:code": "werk"}, 1),
        ("Patient", {"_id": "anna", "_revinclude": "Observation:subject"}, 4),
        ("Observation", {"_id": "zrm-0", "_include": "Observation:subject"}, 2),
        ("Organization", {"_revinclude": "Observation:performer"}, 4),
        ("Goal", {"subject": "Group/huishouden"}, 1),
    ],
)
def test_a_search_reads_reference_rows_by_a_key(
    traced: dict[str, Any], path: str, params: dict[str, str], expected: int
) -> None:
    client, statements = traced["client"], traced["statements"]
    _dossier(client)
    statements.clear()
    response = client.get(path, params=params)
    assert response.status_code == 200, response.text
    assert len(response.json()["entry"]) == expected
    plans = _plans(traced["file"], statements)
    assert plans, "the search read no reference rows"
    assert _ranges(plans) == []


def test_a_households_change_and_a_lookup_of_referrers_read_by_a_key(
    traced: dict[str, Any],
) -> None:
    client, statements = traced["client"], traced["statements"]
    _dossier(client)
    statements.clear()
    household = {
        "resourceType": "Group",
        "id": "huishouden",
        "type": "person",
        "actual": True,
        "member": [{"entity": {"reference": f"Patient/{p}"}} for p in ("anna", "piet")],
    }
    assert client.put("Group/huishouden", json=household).status_code == 200
    goals = client.get("Goal", params={"_id": "rondkomen"}).json()["entry"]
    assert goals[0]["resource"]["subject"] == {"reference": "Group/huishouden"}
    store = traced["services"].store
    with store.read() as session:
        found = session.referring("Observation", "performer", ["Organization/gp"])
    assert sorted(current.res_id for current in found) == ["zrm-0", "zrm-1", "zrm-2"]
    plans = _plans(traced["file"], statements)
    assert any("Group" in statement for statement in plans)  # the household's rows
    assert any("performer" in statement for statement in plans)  # Session.referring
    assert _ranges(plans) == []


@pytest.mark.parametrize(
    "params",
    [{"_count": "2"}, {"_count": "2", "_offset": "1", "_total": "none"}],
)
def test_a_search_by_type_alone_pages_in_key_order(
    traced: dict[str, Any], params: dict[str, str]
) -> None:
    """A search that reads ``resources`` by its type (no filter reads an index) finds its
    page in the live rows of the type in key order, and stops there: no sort of all the
    type's rows (ADR 0052)."""
    client, statements = traced["client"], traced["statements"]
    _dossier(client)
    statements.clear()
    response = client.get("Observation", params=params)
    assert response.status_code == 200, response.text
    assert response.json()["entry"]
    pages = [s for s in statements if "ORDER BY resources.pk" in s and "LIMIT" in s]
    assert pages, statements
    with sqlite3.connect(traced["file"]) as connection:
        for statement in pages:
            plan = [row[3] for row in connection.execute(f"EXPLAIN QUERY PLAN {statement}")]
            assert any("ix_resources_type_live" in line for line in plan), plan
            assert not any("TEMP B-TREE" in line for line in plan), plan
