"""Searches on the event loop under a budget of database work (ADR 0022).

On SQLite a search of one type is tried on the event loop with a budget of SQLite
instructions; a search that goes past it is interrupted, rolled back and served from the
start on a reader's thread. These tests hold the store's side (the interrupt, the rollback,
the connection left clean) and the edge's (the same answer either way, and exactly one
access-log entry for a search that was tried twice).
"""

from __future__ import annotations

import contextlib
import pathlib
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import OperationalError

from gateway.interactions.model import Services
from gateway.loading import load
from gateway.search.extract import Extractor
from gateway.search.registry import Registry
from gateway.store.ahead import Ahead, NotOnLoop
from gateway.store.engine import make_engine
from gateway.store.repository import Budget, OverBudget, Store
from gateway.store.schema import access_epoch, resources
from mappings.core.clock import SystemClock
from mappings.core.definitions import load_definitions
from tests.smart import account, bearer, login

#: every resource paired with every other: far more instructions than a small budget
_HEAVY = text("SELECT count(*) FROM resources a, resources b")
_MATCHES = 120


def _dossier(services: Services) -> None:
    observations = [
        {
            "resourceType": "Observation",
            "id": f"o{n}",
            "status": "final",
            "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
            "subject": {"reference": "Patient/anna"},
            "valueQuantity": {"value": 60 + n % 40, "unit": "/min"},
        }
        for n in range(_MATCHES)
    ]
    patient = {"resourceType": "Patient", "id": "anna", "name": [{"family": "Jansen"}]}
    load(services, [patient, *observations], "test: a dossier to search")


def _sqlite(services: Services) -> bool:
    return services.store.engine.dialect.name == "sqlite"


def _traced_kept(store: Store, *, snapshot: bool) -> tuple[Any, Any, list[str]]:
    """The loop's kept connection for reads with (or without) a snapshot, made by a first
    read; its driver connection; and the statements that driver runs from now on."""
    with store.read(snapshot=snapshot, budget=Budget(10**9)):
        pass
    kept = store._loop.connections[snapshot].connection
    driver = kept.connection.dbapi_connection
    ran: list[str] = []
    driver.set_trace_callback(ran.append)
    return kept, driver, ran


def test_a_read_past_its_budget_is_stopped_and_its_connection_left_clean(
    services: Services,
) -> None:
    _dossier(services)
    store = services.store
    stored = _MATCHES + 1
    if not _sqlite(services):  # a read on the loop has no connection there (ADR 0039)
        with pytest.raises(NotOnLoop), store.read(budget=Budget(1, Ahead())):
            pass  # a snapshot's statements: a thread's
        with (
            pytest.raises(NotOnLoop),
            store.read(snapshot=False, budget=Budget(1, Ahead())) as session,
        ):
            session.connection.execute(_HEAVY)  # through SQLAlchemy: a thread's
        with store.read() as session:  # on a thread, as ever
            assert session.connection.execute(_HEAVY).scalar() == stored**2
        return
    with pytest.raises(OverBudget), store.read(budget=Budget(10_000)) as session:
        session.connection.execute(_HEAVY).scalar()
    kept = store._loop.connections[True].connection  # the thread's for snapshot reads
    assert not kept.in_transaction()  # rolled back
    driver = kept.connection.dbapi_connection  # no budget left on it: runs to the end
    assert driver.execute(str(_HEAVY)).fetchone()[0] == stored**2
    with store.read() as session:  # and a read from the pool, as ever
        assert session.connection.execute(_HEAVY).scalar() == stored**2
    budget = Budget(10**9)
    with store.read(budget=budget) as session:
        assert session.connection.execute(_HEAVY).scalar() == stored**2
    assert 0 < budget.spent <= budget.instructions and not budget.exceeded


def test_a_read_of_one_statement_on_the_loop_opens_no_transaction_and_leaves_none(
    services: Services,
) -> None:
    """ADR 0032: a read without a snapshot runs no BEGIN and no SQLAlchemy transaction; a
    statement that goes through SQLAlchemy all the same is committed after the session,
    or rolled back after a failure, so the kept connection is clean for the next read."""
    if not _sqlite(services):
        pytest.skip("budgets apply on SQLite, where reads run on the event loop")
    _dossier(services)
    store = services.store
    kept, driver, ran = _traced_kept(store, snapshot=False)
    try:
        with store.read(snapshot=False, budget=Budget(10**9)) as session:
            assert session.current("Patient", "anna") is not None  # on the driver's cursor
            assert not kept.in_transaction()  # no transaction object around it
            count = select(func.count()).select_from(resources)
            assert session.connection.execute(count).scalar() == _MATCHES + 1
            assert kept.in_transaction()  # SQLAlchemy began one for that statement itself
        assert not kept.in_transaction() and not driver.in_transaction  # and it was ended
        assert not any(statement.upper().startswith("BEGIN") for statement in ran)
        with pytest.raises(RuntimeError), store.read(snapshot=False, budget=Budget(10**9)) as s:
            s.connection.execute(count).scalar()
            raise RuntimeError("a failure within the session")
        assert not kept.in_transaction()  # rolled back
        with pytest.raises(OverBudget), store.read(snapshot=False, budget=Budget(5_000)) as s:
            s.connection.execute(_HEAVY).scalar()
        assert not kept.in_transaction()
        ran.clear()
        with store.read(snapshot=True, budget=Budget(10**9)) as session:  # with a snapshot
            assert session.current("Patient", "anna") is not None
        snapshot = store._loop.connections[True].driver
        assert snapshot is not driver
    finally:
        driver.set_trace_callback(None)
    with store.read(snapshot=False, budget=Budget(10**9)) as session:  # clean, as ever
        assert session.current("Observation", "o1") is not None


def test_a_snapshot_on_the_loop_begins_once_on_the_driver_and_sees_one_moment(
    services: Services,
) -> None:
    """ADR 0040: a read with a snapshot on the loop issues one BEGIN on the driver and no
    SQLAlchemy transaction. It sees one moment while another connection writes, also in a
    statement that goes through SQLAlchemy (which begins no second transaction); it leaves
    its kept connection clean after a commit, a failure and a stop."""
    if not _sqlite(services):
        pytest.skip("budgets apply on SQLite, where reads run on the event loop")
    _dossier(services)
    store = services.store
    writer = make_engine(str(store.engine.url))
    count = select(func.count()).select_from(resources)
    kept, driver, ran = _traced_kept(store, snapshot=True)
    try:
        with store.read(snapshot=True, budget=Budget(10**9)) as session:
            assert driver.in_transaction and not kept.in_transaction()
            assert session.current("Patient", "anna") is not None
            with writer.begin() as other:
                other.execute(text("UPDATE resources SET last_updated = last_updated + 1"))
                other.execute(
                    text(
                        "INSERT INTO resources (res_type, res_id, version_id, last_updated, "
                        "deleted, content) VALUES ('Basic', 'later', 1, 0, false, x'7b7d')"
                    )
                )
            assert session.connection.execute(count).scalar() == _MATCHES + 1  # as it began
        assert [s.upper() for s in ran if s.upper().startswith(("BEGIN", "COMMIT"))] == [
            "BEGIN",
            "COMMIT",
        ]
        assert not kept.in_transaction() and not driver.in_transaction
        with store.read(snapshot=True, budget=Budget(10**9)) as session:  # the write, now
            assert session.connection.execute(count).scalar() == _MATCHES + 2
        with pytest.raises(RuntimeError), store.read(snapshot=True, budget=Budget(10**9)) as s:
            s.connection.execute(count).scalar()
            raise RuntimeError("a failure within the session")
        assert not kept.in_transaction() and not driver.in_transaction  # rolled back
        with pytest.raises(OverBudget), store.read(snapshot=True, budget=Budget(5_000)) as s:
            s.connection.execute(_HEAVY).scalar()
        assert not kept.in_transaction() and not driver.in_transaction
    finally:
        driver.set_trace_callback(None)
        writer.dispose()


def test_a_stopped_statement_whose_error_was_swallowed_still_answers_nothing(
    services: Services,
) -> None:
    """Whatever code between the statement and the session made of the interrupt, the
    session does not end as if the read had been whole."""
    if not _sqlite(services):
        pytest.skip("budgets apply on SQLite, where reads run on the event loop")
    _dossier(services)
    with pytest.raises(OverBudget), services.store.read(budget=Budget(5_000)) as session:
        with contextlib.suppress(OperationalError):  # as careless code might
            session.connection.execute(_HEAVY).scalar()
        count = select(func.count()).select_from(resources)
        assert session.connection.execute(count).scalar() == _MATCHES + 1


def _readers_calls(endpoint: Any, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The path of every request the endpoint hands to a reader's thread from now on."""
    handed: list[str] = []
    call = endpoint._call_reading

    async def recording(address: Any, fhir_request: Any, *args: Any) -> Any:
        handed.append(fhir_request.path)
        return await call(address, fhir_request, *args)

    monkeypatch.setattr(endpoint, "_call_reading", recording)
    return handed


def _ids(bundle: dict[str, Any]) -> list[str]:
    return [e["resource"]["id"] for e in bundle["entry"]]


def test_a_search_past_its_budget_answers_the_same_from_a_readers_thread(
    _server_state: dict[str, Any],
    services: Services,
    client: httpx.Client,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _dossier(services)
    endpoint = _server_state["endpoint"]
    handed = _readers_calls(endpoint, monkeypatch)
    query = {"subject": "Patient/anna", "_count": "50", "_sort": "-_lastUpdated"}
    whole = client.get("Observation", params=query)
    assert whole.status_code == 200
    assert handed == []  # on the loop (on PostgreSQL as one statement, ADR 0044)
    monkeypatch.setattr(endpoint, "loop_budget", 1_000)
    stopped = client.get("Observation", params=query)
    assert stopped.status_code == 200
    # tried on the loop first; SQLite's budget bounds no statement of PostgreSQL's
    assert handed == (["Observation"] if _sqlite(services) else [])
    first, second = whole.json(), stopped.json()
    assert second["total"] == first["total"] == _MATCHES
    assert _ids(second) == _ids(first) and len(_ids(first)) == 50
    assert [link["relation"] for link in second["link"]] == ["self", "next"]


def _audit_events(services: Services) -> int:
    services.store.catch_up_access_log()
    with services.store.read() as session:
        count = select(func.count()).where(
            resources.c.res_type == "AuditEvent", resources.c.deleted.is_(False)
        )
        return int(session.connection.execute(count).scalar_one())


def test_a_search_tried_twice_is_logged_once(
    secure: dict[str, Any], services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Under consent the attempt on the loop that went past its budget recorded nothing
    that leaves: the search has one access-log entry, from the run that answered."""
    _dossier(services)
    base, endpoint = secure["base"], secure["endpoint"]
    account(secure["security"], "anna", "patient", "Patient/anna")
    headers = bearer(login(base, secure["security"], "anna")["access_token"])
    assert httpx.get(f"{base}/Patient/anna", headers=headers).status_code == 200  # kept
    handed = _readers_calls(endpoint, monkeypatch)
    monkeypatch.setattr(endpoint, "loop_budget", 1_000)

    def search() -> httpx.Response:
        return httpx.get(f"{base}/Observation", params={"subject": "Patient/anna"}, headers=headers)

    before = _audit_events(services)
    found = search()
    assert found.status_code == 200 and found.json()["total"] == _MATCHES
    assert _audit_events(services) == before + 1
    # on SQLite after the loop gave it up; on PostgreSQL the loop answers it in one
    # statement, which no budget of SQLite's bounds (ADR 0044)
    once = ["Observation"] if _sqlite(services) else []
    assert handed == once
    monkeypatch.setattr(endpoint, "loop_budget", 10**9)
    assert search().json()["total"] == _MATCHES
    assert _audit_events(services) == before + 2
    assert handed == once


def test_the_loops_epoch_read_sees_each_change_at_once(services: Services) -> None:
    """The epoch read on the loop's kept connection holds no transaction open between
    requests: a change of consent committed elsewhere shows at the next read."""
    store = services.store
    first = store.access_epoch(on_loop=True)
    assert first is not None and first == store.access_epoch()
    with store.engine.begin() as connection:
        connection.execute(access_epoch.update().values(n=access_epoch.c.n + 1))
    assert store.access_epoch(on_loop=True) == store.access_epoch() == first + 1


def test_a_kept_connection_the_database_refused_is_not_kept(tmp_path: pathlib.Path) -> None:
    """A kept connection on which the driver raised is closed and replaced: the next
    read on the loop starts on a new one."""
    engine = make_engine(f"sqlite:///{tmp_path / 'later.db'}")
    store = Store(engine, Extractor(Registry(load_definitions()), ""), SystemClock())
    try:
        with pytest.raises(OperationalError):  # no counter yet
            store.access_epoch(on_loop=True)
        refused = store._loop.connections.get(False)
        assert refused is None
        with engine.begin() as connection:
            connection.execute(text("CREATE TABLE access_epoch (id INTEGER, n INTEGER)"))
            connection.execute(text("INSERT INTO access_epoch VALUES (1, 7)"))
        assert store.access_epoch(on_loop=True) == 7
        kept = store._loop.connections[False]
        assert store.access_epoch(on_loop=True) == 7 and store._loop.connections[False] is kept
    finally:
        store.dispose()
    assert kept.connection.closed


def test_a_loop_read_the_database_refused_gives_its_connection_up_and_others_keep_it(
    services: Services,
) -> None:
    """The loop's read session: a session that ends, fails in Python or goes past its
    budget leaves its kept connection clean, out of any transaction and without a budget,
    and it is kept; one on which the driver raised is given up, and the next read takes a
    new connection."""
    if not _sqlite(services):
        pytest.skip("budgets apply on SQLite, where reads run on the event loop")
    _dossier(services)
    store = services.store
    for snapshot in (False, True):
        with store.read(snapshot=snapshot, budget=Budget(10**9)) as session:
            assert session.current("Patient", "anna") is not None
        reader = store._loop.connections[snapshot]
        kept, driver = reader.connection, reader.driver
        with pytest.raises(ValueError), store.read(snapshot=snapshot, budget=Budget(10**9)):
            raise ValueError("a failure within the session")
        with pytest.raises(OverBudget), store.read(snapshot=snapshot, budget=Budget(5_000)) as s:
            s.connection.execute(_HEAVY).scalar()
        assert store._loop.connections[snapshot] is reader and not kept.in_transaction()
        assert reader.budget is None  # the handler stays, with no budget to count against
        with kept.begin():  # no budget left behind: a long statement runs to its end
            assert kept.execute(_HEAVY).scalar() == (_MATCHES + 1) ** 2
        with (
            pytest.raises(OperationalError),
            store.read(snapshot=snapshot, budget=Budget(10**9)) as s,
        ):
            s.connection.execute(text("SELECT * FROM no_such_table")).all()
        assert kept.closed and store._loop.connections.get(snapshot) is None
        with store.read(snapshot=snapshot, budget=Budget(10**9)) as session:
            assert session.current("Observation", "o1") is not None
        assert store._loop.connections[snapshot] is not reader
        # the connection given up went back to the pool without its handler: whoever
        # takes it next reads to the end, even were the old reader's budget spent
        reader.budget = Budget(0)
        assert driver.execute(str(_HEAVY)).fetchone()[0] == (_MATCHES + 1) ** 2
