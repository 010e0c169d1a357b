"""The access log's indexer in a process of its own, and the bound on what may wait for it
(ADR 0028): ``eigendossier index-log``, the child ``serve`` runs on SQLite, and a commit of
the log of reads that waits for the indexer once the backlog is full."""

from __future__ import annotations

import datetime as dt
import logging
import os
import pathlib
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import IO, Any

import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from consent.audit import Access, audit_event
from gateway.app import build_services
from gateway.cli import app
from gateway.cli.auditlog import IndexerProcess, indexer_mode
from gateway.interactions.auditlog import LogIndexer
from gateway.interactions.authorize import commit_events, commit_events_now
from gateway.interactions.model import Services
from gateway.settings import Settings
from gateway.store import repository
from gateway.store.schema import access_log, resources
from tests.conftest import _free_port


@pytest.fixture()
def own(own_database: str) -> Iterator[Services]:
    """Services on a database of the test's own, with no server (and no indexer) on it."""
    services = build_services(Settings(database_url=own_database), migrate=True)
    yield services
    services.store.dispose()


def _events(count: int) -> list[dict[str, Any]]:
    at = dt.datetime.now(dt.UTC)
    access = Access("read", "0", at, patient="p1", objects=["Observation/o1"])
    return [audit_event(None, access, "http://example.org/fhir") for _ in range(count)]


def _waiting(services: Services) -> int:
    store = services.store
    engines = {store.engine, store.log_engine}
    total = 0
    for engine in engines:
        with engine.connect() as connection:
            total += int(connection.execute(select(func.count()).select_from(access_log)).one()[0])
    return total


def _indexed(services: Services) -> list[str]:
    query = select(resources.c.res_id).where(resources.c.res_type == "AuditEvent")
    with services.store.engine.connect() as connection:
        return [row[0] for row in connection.execute(query)]


def _until(condition: Callable[[], bool], seconds: float = 60.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


def _drained(stream: IO[bytes] | None) -> str:
    """What a finished child wrote to ``stream``, which is closed after."""
    if stream is None:
        return ""
    with stream:
        return stream.read().decode(errors="replace")


def test_a_commit_waits_for_the_indexer_once_the_backlog_is_full(
    own: Services, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past ``log_backlog`` waiting entries the loop commits nothing (it tries again later,
    ADR 0047), and a thread's commit waits until the indexer brought the backlog back under
    the bound; with
    no indexer it commits all the same after ``LOG_BACKLOG_WAIT``, and says so. On
    PostgreSQL too (ADR 0034), where nothing is committed on the loop."""
    store = own.store
    postgresql = store.engine.dialect.name == "postgresql"
    store.log_backlog = 3
    commit_events(own, _events(5))  # no indexer: the backlog is now full
    assert commit_events_now(own, _events(1)) is False  # the loop never waits for it
    assert _waiting(own) == 5
    monkeypatch.setattr(repository, "LOG_BACKLOG_WAIT", 0.3)
    with caplog.at_level(logging.WARNING, logger="eigendossier.store"):
        commit_events(own, _events(1))  # waits, gives up, commits: never lost
    assert [r.getMessage() for r in caplog.records] == [
        "the access log's indexer is behind: an entry was committed after 0.3 s"
    ]
    assert _waiting(own) == 6
    caplog.clear()
    monkeypatch.setattr(repository, "LOG_BACKLOG_WAIT", 60.0)
    stop = threading.Event()
    indexer = threading.Thread(target=LogIndexer(store, interval=0.05, batch=2).run, args=(stop,))
    indexer.start()
    try:
        with caplog.at_level(logging.WARNING, logger="eigendossier.store"):
            commit_events(own, _events(1))  # committed once the indexer caught up
    finally:
        stop.set()
        indexer.join(60)
    assert caplog.records == []  # it did not give up: the backlog went under the bound
    assert _waiting(own) == 0 and len(set(_indexed(own))) == 7
    assert store.access_log_waiting() is False
    assert commit_events_now(own, _events(1)) is not postgresql  # SQLite's loop commits again


def _sqlite_only(services: Services) -> None:
    if services.store.engine.dialect.name != "sqlite":
        pytest.skip("entries are committed on the event loop on SQLite only (ADR 0026)")


def test_past_the_backlog_the_loop_reads_it_again_before_it_refuses(own: Services) -> None:
    """The loop's view of the backlog is the last commit's; past the bound it reads the
    backlog again, and commits once the indexer has brought it back under (ADR 0047)."""
    _sqlite_only(own)
    own.store.log_backlog = 3
    commit_events(own, _events(5))  # no indexer: the backlog is now full
    assert commit_events_now(own, _events(1)) is False
    assert _waiting(own) == 5
    assert own.store.index_access_log(100) == (5, False)  # caught up, and no commit since
    assert commit_events_now(own, _events(1)) is True
    assert _waiting(own) == 1


def test_past_the_backlog_the_loop_commits_all_the_same_after_the_wait_and_says_so(
    own: Services, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An indexer that does not catch up holds the loop's commits back no longer than a
    thread's (``LOG_BACKLOG_WAIT`` from the first refusal): then the entries are committed
    all the same, and the log says so; never lost, no request failed for it."""
    _sqlite_only(own)
    own.store.log_backlog = 3
    monkeypatch.setattr(repository, "LOG_BACKLOG_WAIT", 0.2)
    commit_events(own, _events(5))
    assert commit_events_now(own, _events(1)) is False  # the wait starts
    assert commit_events_now(own, _events(1)) is False
    time.sleep(0.25)
    with caplog.at_level(logging.WARNING, logger="eigendossier.store"):
        assert commit_events_now(own, _events(1)) is True
    assert [r.getMessage() for r in caplog.records] == [
        "the access log's indexer is behind: an entry was committed after 0.2 s"
    ]
    assert _waiting(own) == 6
    assert commit_events_now(own, _events(1)) is False  # a new wait: the next is held back


def test_a_database_whose_log_is_its_own_never_holds_the_loop_back_for_a_backlog(
    tmp_path: pathlib.Path,
) -> None:
    """A URI-named SQLite database keeps its log in its own tables, where its writes index
    it (no log file, no indexer process): a backlog there holds no commit back, on a thread
    as on the loop."""
    services = build_services(
        Settings(database_url=f"sqlite:///file:{tmp_path / 'uri.db'}?uri=true"), migrate=True
    )
    try:
        assert services.store.log_engine is services.store.engine
        services.store.log_backlog = 3
        commit_events(services, _events(5))
        started = time.monotonic()
        assert commit_events_now(services, _events(1)) is True
        assert time.monotonic() - started < 0.5  # no wait for LOG_BACKLOG_WAIT
        assert _waiting(services) == 6
    finally:
        services.store.dispose()


def test_index_log_indexes_until_its_input_ends_then_what_is_left(
    own: Services, own_database: str
) -> None:
    commit_events(own, _events(10))
    child = subprocess.Popen(
        [sys.executable, "-m", "gateway.cli", "index-log", "--until-input-ends"],
        stdin=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "EIGENDOSSIER_DATABASE_URL": own_database},
    )
    try:
        assert _until(lambda: _waiting(own) == 0)
        commit_events(own, _events(5))
        assert child.stdin is not None
        child.stdin.close()  # as when serve is gone
        assert child.wait(60) == 0
    finally:
        child.kill()
        child.wait()
        errors = _drained(child.stderr)
    assert _waiting(own) == 0, errors
    ids = _indexed(own)
    assert len(ids) == len(set(ids)) == 15


def test_index_log_stops_at_sigterm(tmp_path: pathlib.Path) -> None:
    database = f"sqlite:///{tmp_path}/served.db"
    services = build_services(Settings(database_url=database), migrate=True)
    try:
        commit_events(services, _events(3))
        child = subprocess.Popen(
            [sys.executable, "-m", "gateway.cli", "index-log", "--database-url", database],
            stderr=subprocess.DEVNULL,
        )
        assert _until(lambda: _waiting(services) == 0)
        child.send_signal(signal.SIGTERM)
        assert child.wait(60) == 0
    finally:
        services.store.dispose()


def _children(pid: int) -> list[int]:
    """The processes whose parent is ``pid`` (Linux: /proc)."""
    found = []
    for entry in pathlib.Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            fields = stat.rsplit(")", 1)[1].split()
            if int(fields[1]) == pid:
                found.append(int(entry.name))
    return found


def _alive(pid: int) -> bool:
    try:
        state = pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_serve_on_sqlite_indexes_in_a_child_it_starts_again_and_stops(
    tmp_path: pathlib.Path,
) -> None:
    """``serve`` on SQLite (``--log-indexer auto``) indexes the log in a child process of
    its own: entries committed while it serves are indexed without any read of the log; a
    child killed is started again; the child ends with ``serve``."""
    database = f"sqlite:///{tmp_path}/served.db"
    services = build_services(Settings(database_url=database), migrate=True)
    port = _free_port()
    serve = subprocess.Popen(
        [sys.executable, "-m", "gateway.cli", "serve", "--open", "--port", str(port),
         "--database-url", database, "--log-level", "warning"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        assert _until(lambda: len(_children(serve.pid)) == 1)
        (first,) = _children(serve.pid)
        commit_events(services, _events(10))
        assert _until(lambda: _waiting(services) == 0)
        os.kill(first, signal.SIGKILL)
        assert _until(lambda: _children(serve.pid) not in ([], [first]))
        (second,) = _children(serve.pid)
        commit_events(services, _events(5))
        assert _until(lambda: _waiting(services) == 0)
        serve.send_signal(signal.SIGINT)
        serve.wait(60)
        assert _until(lambda: not _alive(second), 30)
    finally:
        serve.kill()
        serve.wait()
        errors = _drained(serve.stderr)
        services.store.dispose()
    assert "the access log's indexer exited" in errors
    ids = _indexed(services)
    assert len(ids) == len(set(ids)) == 15


def test_where_the_log_is_indexed() -> None:
    assert indexer_mode("auto") == "process"  # on every database (ADR 0034)
    for mode in ("thread", "process", "none"):
        assert indexer_mode(mode) == mode
    refused = CliRunner().invoke(app, ["serve", "--open", "--log-indexer", "sometimes"])
    assert refused.exit_code == 2 and "--log-indexer is one of" in refused.output


def test_serve_waits_for_its_indexer_to_index_before_it_serves(tmp_path: pathlib.Path) -> None:
    """``IndexerProcess.wait_ready``: True once the child says it indexes; False (and
    ``serve`` serves all the same) when it cannot, as on a database it cannot open."""
    database = f"sqlite:///{tmp_path}/served.db"
    build_services(Settings(database_url=database), migrate=True).store.dispose()
    ready = IndexerProcess(database, "http://127.0.0.1/fhir", "warning")
    ready.start()
    try:
        assert ready.wait_ready() is True
    finally:
        ready.stop()
    broken = IndexerProcess(f"sqlite:///{tmp_path}/no/such/dir.db", "", "warning")
    broken.start()
    try:
        assert broken.wait_ready() is False
    finally:
        broken.stop()
