"""Reads on the event loop on PostgreSQL, their statements awaited on an asynchronous
connection while the read waits in a greenlet (ADR 0039, ADR 0054): what a read asks for,
what it may not, the connections, and the reads themselves over real HTTP with real
tokens, as a thread would answer them."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import httpx
import pytest
from sqlalchemy.dialects import postgresql

from gateway.interactions.model import Services
from gateway.store.ahead import (
    MOST_AHEAD,
    Ahead,
    AheadFailed,
    AsyncReads,
    NotOnLoop,
    Unconnected,
    numbered,
    run_ahead,
)
from gateway.store.repository import Budget
from tests.smart import account, bearer, login


def _postgresql(services: Services) -> None:
    if services.store.engine.dialect.name != "postgresql":
        pytest.skip("on SQLite a read on the loop runs its statements there (ADR 0022)")


class _Answers:
    """Stands for :class:`AsyncReads` outside a database: the rows of each statement from
    a table, a statement not in it refused as a driver would; what was asked, in order."""

    def __init__(self, rows: dict[str, list[Any]]) -> None:
        self._rows = rows
        self.asked: list[tuple[str, Any]] = []

    async def rows(self, sql: str, params: Any) -> list[Any]:
        self.asked.append((sql, params))
        await asyncio.sleep(0)  # the loop serves others meanwhile
        if sql not in self._rows:
            raise LookupError(f"no such statement: {sql}")
        return self._rows[sql]


def test_a_read_is_given_the_rows_it_asks_for_and_asks_at_most_so_many() -> None:
    """Each statement suspends the read until the loop has its rows, and the read goes on
    from there, once; the statement past :data:`MOST_AHEAD`, a value the loop's driver
    would adapt otherwise, and a read outside :func:`run_ahead` are :class:`NotOnLoop`."""
    answers = _Answers({f"SELECT {n}": [(n,)] for n in range(MOST_AHEAD + 1)})
    ahead = Ahead()
    steps: list[str] = []

    def read() -> list[Any]:
        steps.append("started")
        rows = [ahead.rows(f"SELECT {n}", {"n": n}) for n in range(MOST_AHEAD)]
        steps.append("answered")
        return rows

    got = asyncio.run(run_ahead(answers, read))
    assert got == [[(n,)] for n in range(MOST_AHEAD)]
    assert steps == ["started", "answered"]  # one run, through
    assert answers.asked == [(f"SELECT {n}", {"n": n}) for n in range(MOST_AHEAD)]
    assert ahead.asked == MOST_AHEAD

    def one_more() -> list[Any]:
        return ahead.rows(f"SELECT {MOST_AHEAD}", ())

    with pytest.raises(NotOnLoop):  # the read goes to a reader's thread
        asyncio.run(run_ahead(answers, one_more))
    assert len(answers.asked) == MOST_AHEAD  # and nothing more was asked

    for value in (["a", "b"], {"a": 1}):
        with pytest.raises(NotOnLoop):
            asyncio.run(run_ahead(answers, lambda v=value: Ahead().rows("SELECT 0", {"v": v})))
    with pytest.raises(NotOnLoop):  # not in a read's greenlet: nothing to suspend
        Ahead().rows("SELECT 0", ())


def test_reads_on_the_loop_wait_for_their_statements_side_by_side() -> None:
    """Two reads on one loop: the first waits for its statement while the second runs and
    finishes; each is given its own rows, in its own request's context."""
    import contextvars

    request: contextvars.ContextVar[str] = contextvars.ContextVar("request")
    order: list[str] = []

    class Slow(_Answers):
        async def rows(self, sql: str, params: Any) -> list[Any]:
            order.append(f"asked {sql}")
            if sql == "SELECT slow":
                await asyncio.sleep(0.05)
            return await super().rows(sql, params)

    answers = Slow({"SELECT slow": [("slow",)], "SELECT quick": [("quick",)]})

    def read(sql: str) -> tuple[str, Any]:
        rows = Ahead().rows(sql, ())
        order.append(f"answered {sql}")
        return request.get(), rows

    async def serve(name: str, sql: str) -> tuple[str, Any]:
        request.set(name)
        return await run_ahead(answers, lambda: read(sql))

    async def both() -> list[tuple[str, Any]]:
        return list(await asyncio.gather(serve("one", "SELECT slow"), serve("two", "SELECT quick")))

    assert asyncio.run(both()) == [("one", [("slow",)]), ("two", [("quick",)])]
    assert order == [
        "asked SELECT slow",
        "asked SELECT quick",
        "answered SELECT quick",
        "answered SELECT slow",
    ]


def test_a_refused_statement_or_a_cancelled_request_unwinds_the_read() -> None:
    """A statement the driver refused resumes the read with :class:`AheadFailed`, which
    names the error's type, not its message; a request cancelled while its statement is
    awaited unwinds the read (its sessions close) and is cancelled."""
    closed: list[str] = []

    def read(sql: str) -> list[Any]:
        try:
            return Ahead().rows(sql, ())
        finally:
            closed.append(sql)

    with pytest.raises(AheadFailed) as failed:
        asyncio.run(run_ahead(_Answers({}), lambda: read("SELECT secret")))
    assert failed.value.failure == "LookupError"
    assert "secret" not in str(failed.value)
    assert closed == ["SELECT secret"]

    class Never(_Answers):
        async def rows(self, sql: str, params: Any) -> list[Any]:
            await asyncio.sleep(3600)
            return []

    async def cancelled() -> None:
        task = asyncio.ensure_future(run_ahead(Never({}), lambda: read("SELECT waiting")))
        await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(cancelled())
    assert closed == ["SELECT secret", "SELECT waiting"]


def test_the_greenlets_of_reads_are_kept_and_hold_nothing_of_the_last() -> None:
    """A read's greenlet serves the next read too (making one costs more than a read's own
    work); what a read returned or raised is not kept with it, and a read that raised
    leaves its greenlet fit for the next."""
    import gc
    import weakref

    import greenlet

    answers = _Answers({"SELECT 1": [(1,)]})
    seen: list[Any] = []

    class Answer:
        pass

    def read() -> Answer:
        seen.append(greenlet.getcurrent())
        Ahead().rows("SELECT 1", ())
        return Answer()

    class Gone(Exception):
        pass

    def failing() -> None:
        seen.append(greenlet.getcurrent())
        raise Gone

    async def reads() -> tuple[weakref.ref[Answer], weakref.ref[Gone]]:
        answer = weakref.ref(await run_ahead(answers, read))
        try:
            await run_ahead(answers, failing)
        except Gone as error:
            gone = weakref.ref(error)
        else:
            raise AssertionError("what the read raised is raised")
        await run_ahead(answers, read)
        return answer, gone

    answer, gone = asyncio.run(reads())
    gc.collect()
    assert answer() is None and gone() is None  # the greenlet, kept, holds none of it
    assert len({id(g) for g in seen}) == 1  # one greenlet, three reads
    assert seen[0] is not greenlet.getcurrent()


def test_the_dialects_placeholders_are_numbered_as_postgresqls_own() -> None:
    """The statements are compiled for psycopg; asyncpg takes ``$1``: a name has one number
    wherever it stands, positional values keep their order, and a per cent sign written
    twice for psycopg is one again."""
    assert numbered("SELECT a FROM t WHERE b = %(x)s AND c = %(y)s OR d = %(x)s::INTEGER") == (
        "SELECT a FROM t WHERE b = $1 AND c = $2 OR d = $1::INTEGER",
        ("x", "y"),
    )
    assert numbered("INSERT INTO t VALUES (%s, %s), (%s, %s)") == (
        "INSERT INTO t VALUES ($1, $2), ($3, $4)",
        None,
    )
    assert numbered("SELECT 7 %% 3, '100%%'") == ("SELECT 7 % 3, '100%'", None)
    with pytest.raises(ValueError, match="named and positional"):
        numbered("SELECT %(a)s, %s")


def test_statements_of_every_shape_answer_on_the_loop_as_the_driver_of_the_pool_does(
    services: Services,
) -> None:
    """The lookups every consent-on request runs, compiled by the dialect for psycopg, give
    the same rows through the loop's asyncpg connections as through the pool's psycopg."""
    _postgresql(services)
    from gateway.store.session_base import driver_rows, lookup_sql

    store = services.store

    def put(session: Any) -> None:
        for n in range(3):
            session.put(
                {
                    "resourceType": "Observation",
                    "id": f"shape-o{n}",
                    "status": "final",
                    "code": {"text": "zrm"},
                    "subject": {"reference": "Patient/shape-p"},
                },
                method="PUT",
            )

    store.write(put)
    with store.engine.connect() as connection:
        pks = [row[0] for row in connection.exec_driver_sql("SELECT pk FROM resources")]
        statements = [
            lookup_sql(name, values, connection.dialect)
            for name, values in (
                ("epoch", []),
                ("by_keys_owned", pks),
                ("patients_of", pks),
                ("kind_stored", [pks[0]]),
            )
        ]
        expected = [driver_rows(connection, sql, params) for sql, params in statements]
    reads = AsyncReads(store.engine)

    async def on_loop() -> list[list[Any]]:
        try:
            return [await reads.rows(sql, params) for sql, params in statements]
        finally:
            reads.close()

    answered = asyncio.run(on_loop())
    assert answered == [[tuple(row) for row in rows] for rows in expected]
    assert any(row[3] for row in answered[1])  # the bytes of the resources, as bytes


def test_a_session_on_the_loop_has_a_dialect_and_nothing_else() -> None:
    unconnected: Any = Unconnected(postgresql.dialect())
    assert unconnected.dialect.name == "postgresql"
    with pytest.raises(NotOnLoop):
        unconnected.execute("SELECT 1")
    with pytest.raises(NotOnLoop):
        unconnected.begin()


def test_a_read_asks_its_statement_and_answers_from_its_rows(services: Services) -> None:
    """The read by id of the thread's path, in a session without a connection: its
    statement is awaited on the loop's connection, and the read answers what the thread's
    read answers. A read of one snapshot is not for the loop."""
    _postgresql(services)
    store = services.store

    def put(session: Any) -> None:
        session.put({"resourceType": "Patient", "id": "anna"}, method="PUT")

    store.write(put)
    with store.read(snapshot=False) as session:
        expected = session.current("Patient", "anna")
    reads = AsyncReads(store.engine)

    def read() -> Any:
        with store.read(snapshot=False, budget=Budget(1, Ahead())) as session:
            return session.current("Patient", "anna")

    async def run() -> Any:
        try:
            return await run_ahead(reads, read)
        finally:
            reads.close()

    assert asyncio.run(run()) == expected
    with pytest.raises(NotOnLoop), store.read(snapshot=True, budget=Budget(1, Ahead())):
        pass


def test_the_loops_connections_are_kept_bounded_and_never_reused_after_a_failure(
    services: Services,
) -> None:
    _postgresql(services)
    import asyncpg

    reads = AsyncReads(services.store.engine, size=2)
    pid = "SELECT pg_backend_pid()"

    async def first_loop() -> tuple[set[int], int, int, set[int]]:
        kept = {(await reads.rows(pid, ()))[0][0] for _ in range(3)}
        with pytest.raises(asyncpg.UndefinedTableError):
            await reads.rows("SELECT * FROM no_such_table", ())
        after = (await reads.rows(pid, ()))[0][0]
        together = await asyncio.gather(
            *(reads.rows("SELECT pg_backend_pid(), pg_sleep(0.05)", ()) for _ in range(5))
        )
        return kept, after, len(together), {rows[0][0] for rows in together}

    kept, after, answered, at_once = asyncio.run(first_loop())
    assert len(kept) == 1  # one connection, taken again and again
    assert after not in kept  # the one that failed was closed
    assert answered == 5 and len(at_once) <= 2  # at most two at once

    async def second_loop() -> int:
        try:
            return int((await reads.rows(pid, ()))[0][0])
        finally:
            reads.close()

    assert asyncio.run(second_loop()) not in kept | {after} | at_once  # its own connections


def test_the_loops_connections_close_when_their_loop_ends_without_a_close(
    services: Services,
) -> None:
    """A loop that ends without the app's shutdown (a server run without its lifespan)
    closes its connections itself: the server sees its backend go, and no socket is left
    open (the suite fails on an unclosed one)."""
    _postgresql(services)
    reads = AsyncReads(services.store.engine)

    async def used() -> int:
        return int((await reads.rows("SELECT pg_backend_pid()", ()))[0][0])

    backend = asyncio.run(used())  # and no close
    with services.store.engine.connect() as connection:
        alive = "SELECT count(*) FROM pg_stat_activity WHERE pid = %(pid)s"
        for _ in range(100):
            if connection.exec_driver_sql(alive, {"pid": backend}).scalar() == 0:
                break
            time.sleep(0.05)
        else:
            raise AssertionError("the loop's connection outlived its loop")


def test_a_statement_that_stops_waiting_for_a_connection_leaves_it_to_the_next(
    services: Services,
) -> None:
    """One connection, three statements: the second, waiting for it, is cancelled (its
    request gone); the third, waiting behind it, gets the connection when the first gives
    it back, and nothing waits for ever."""
    _postgresql(services)
    reads = AsyncReads(services.store.engine, size=1)
    pid = "SELECT pg_backend_pid()"

    async def three() -> tuple[list[Any], list[Any]]:
        try:
            first = asyncio.ensure_future(reads.rows("SELECT pg_sleep(0.1)", ()))
            await asyncio.sleep(0.02)  # the first holds the one connection
            second = asyncio.ensure_future(reads.rows(pid, ()))
            third = asyncio.ensure_future(reads.rows(pid, ()))
            await asyncio.sleep(0.02)
            second.cancel()
            await asyncio.wait_for(first, timeout=5)
            return await asyncio.wait_for(third, timeout=5), await reads.rows(pid, ())
        finally:
            reads.close()

    third, after = asyncio.run(three())
    assert third == after  # the one connection, taken in turn


def _anna(secure: dict[str, Any], client: httpx.Client) -> tuple[AsyncReads, dict[str, str]]:
    """The secured server's connections of the loop, and the headers of Anna's own token
    (PostgreSQL; the test is skipped on SQLite)."""
    services: Services = secure["services"]
    _postgresql(services)
    reads = services.store.loop_reads
    assert reads is not None
    assert client.put("Patient/anna", json={"resourceType": "Patient", "id": "anna"}).is_success
    account(secure["security"], "anna", "patient", "Patient/anna")
    return reads, bearer(login(secure["base"], secure["security"], "anna")["access_token"])


def test_a_consent_on_read_on_the_loop_answers_as_a_thread_does(
    secure: dict[str, Any], client: httpx.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A patient reads her own record: the first read verifies the token in a thread, the
    next run on the loop with their statement run ahead, and answer the same; a record
    that is not there takes a second statement ahead, and says 404 as ever."""
    reads, headers = _anna(secure, client)
    asked: list[str] = []
    original = reads.rows

    async def counted(sql: str, params: Any) -> list[Any]:
        asked.append(sql.split(maxsplit=1)[0])
        return await original(sql, params)

    monkeypatch.setattr(reads, "rows", counted)
    read = f"{secure['base']}/Patient/anna"
    answers = [httpx.get(read, headers=headers) for _ in range(3)]
    assert [a.status_code for a in answers] == [200, 200, 200]
    assert answers[1].content == answers[2].content == answers[0].content
    reads_ahead = asked.count("SELECT")
    assert reads_ahead >= 2  # the second and the third read, one statement each
    missing = httpx.get(f"{secure['base']}/Patient/nobody", headers=headers)
    assert missing.status_code == 404
    assert asked.count("SELECT") == reads_ahead + 2  # the read, then the epoch alone


@pytest.mark.loop_refusal
def test_a_statement_ahead_that_fails_sends_the_read_to_a_thread(
    secure: dict[str, Any],
    client: httpx.Client,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    reads, headers = _anna(secure, client)
    import asyncpg

    read = f"{secure['base']}/Patient/anna"
    assert httpx.get(read, headers=headers).status_code == 200  # the token's verdict kept

    async def refused(sql: str, params: Any) -> list[Any]:
        raise asyncpg.ConnectionDoesNotExistError("the server closed the connection")

    monkeypatch.setattr(reads, "rows", refused)
    with caplog.at_level(logging.WARNING, logger="eigendossier.http"):
        assert httpx.get(read, headers=headers).status_code == 200
    assert "a statement run ahead failed: ConnectionDoesNotExistError" in caplog.text
    assert "closed the connection" not in caplog.text


def test_a_consent_on_search_on_the_loop_is_one_statement_and_answers_as_a_thread_does(
    secure: dict[str, Any], client: httpx.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A patient searches her own Observations (ADR 0044): the first search verifies the
    token in a thread; the next run on the loop, each with one statement run ahead (its
    page, total and epoch), and answer the same page; so does a sorted one. A search with
    includes needs more than one statement: it is answered on a thread, and asks nothing
    ahead."""
    reads, headers = _anna(secure, client)
    for n in range(7):
        observation = {
            "resourceType": "Observation",
            "id": f"loop-o{n}",
            "status": "final",
            "code": {"text": "zrm"},
            "subject": {"reference": "Patient/anna"},
        }
        assert client.put(f"Observation/loop-o{n}", json=observation).is_success
    asked: list[str] = []
    original = reads.rows

    async def counted(sql: str, params: Any) -> list[Any]:
        asked.append("page" if sql.startswith("WITH matches") else sql.split(maxsplit=1)[0])
        return await original(sql, params)

    monkeypatch.setattr(reads, "rows", counted)
    search = f"{secure['base']}/Observation"
    params = {"subject": "Patient/anna", "_count": "3", "_offset": "3"}
    answers = [httpx.get(search, params=params, headers=headers) for _ in range(3)]
    assert [a.status_code for a in answers] == [200, 200, 200]
    found = [
        (a.json()["total"], [e["fullUrl"] for e in a.json()["entry"]], a.json()["link"])
        for a in answers
    ]
    assert found[0][0] == 7 and len(found[0][1]) == 3
    assert found[1] == found[2] == found[0]
    pages = asked.count("page")
    assert pages >= 2  # the second and the third search, one statement each
    assert set(asked) <= {"page", "WITH"}  # the pages, and the log's entries (ADR 0039)
    by_id = httpx.get(search, params={**params, "_sort": "-_id"}, headers=headers)
    assert by_id.status_code == 200 and by_id.json()["total"] == 7
    assert [e["resource"]["id"] for e in by_id.json()["entry"]] == ["loop-o3", "loop-o2", "loop-o1"]
    assert asked.count("page") == pages + 1
    with_patient = {**params, "_include": "Observation:subject"}
    included = httpx.get(search, params=with_patient, headers=headers)
    assert included.status_code == 200 and included.json()["total"] == 7
    assert asked.count("page") == pages + 1  # a thread ran it


def test_reads_waiting_on_the_loop_at_once_each_answer_their_own_caller(
    secure: dict[str, Any], client: httpx.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two clients read at once, each her own record and the other's, while every
    statement is held long enough for the reads to wait side by side (ADR 0054): each read
    answers what it answers alone, under its own caller's consent, never another's."""
    reads, anna = _anna(secure, client)
    assert client.put("Patient/bob", json={"resourceType": "Patient", "id": "bob"}).is_success
    account(secure["security"], "bob", "patient", "Patient/bob")
    bob = bearer(login(secure["base"], secure["security"], "bob")["access_token"])
    asks = [(anna, "anna"), (bob, "bob"), (anna, "bob"), (bob, "anna")]

    def alone(headers: dict[str, str], record: str) -> tuple[int, bytes]:
        answer = httpx.get(f"{secure['base']}/Patient/{record}", headers=headers)
        return answer.status_code, answer.content

    expected = [alone(headers, record) for headers, record in asks]  # the tokens kept, too
    assert [status for status, _ in expected] == [200, 200, 404, 404]
    waiting, most = 0, 0
    original = reads.rows

    async def held(sql: str, params: Any) -> list[Any]:
        nonlocal waiting, most
        waiting += 1
        most = max(most, waiting)
        try:
            await asyncio.sleep(0.02)
            return await original(sql, params)
        finally:
            waiting -= 1

    monkeypatch.setattr(reads, "rows", held)

    async def together() -> list[tuple[int, bytes]]:
        async with httpx.AsyncClient(base_url=secure["base"]) as at_once:
            answers = await asyncio.gather(
                *(
                    at_once.get(f"/Patient/{record}", headers=headers)
                    for _ in range(6)
                    for headers, record in asks
                )
            )
        return [(answer.status_code, answer.content) for answer in answers]

    answered = asyncio.run(together())
    assert answered == expected * 6
    assert most > 1  # reads did wait on the loop side by side


def test_the_loop_writes_one_batch_of_the_log_at_a_time_and_loses_no_entry(
    secure: dict[str, Any], client: httpx.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two dozen reads at once, every statement held a moment: the loop writes the access
    log one batch at a time, what arrives meanwhile joins the next batch, and every read
    has its entry committed before it answers (ADR 0055)."""
    reads, anna = _anna(secure, client)
    assert httpx.get(f"{secure['base']}/Patient/anna", headers=anna).status_code == 200
    in_flight, most, batches = 0, 0, []
    original = reads.rows

    async def held(sql: str, params: Any) -> list[Any]:
        nonlocal in_flight, most
        a_log = "INSERT INTO access_log" in sql
        if a_log:
            in_flight += 1
            most = max(most, in_flight)
        try:
            await asyncio.sleep(0.02)
            rows = await original(sql, params)
        finally:
            in_flight -= a_log
        if a_log:
            batches.append(len(params) // 2)  # (recorded, content) an entry
        return rows

    monkeypatch.setattr(reads, "rows", held)

    async def together() -> list[int]:
        async with httpx.AsyncClient(base_url=secure["base"]) as at_once:
            answers = await asyncio.gather(
                *(at_once.get("/Patient/anna", headers=anna) for _ in range(24))
            )
        return [answer.status_code for answer in answers]

    assert asyncio.run(together()) == [200] * 24
    assert most == 1
    assert sum(batches) == 24  # each read's own entry, committed before it answered
    assert len(batches) < 24  # entries that waited went together
