"""Shared fixtures: a real database (SQLite file or PostgreSQL) and a real HTTP server.

The backend is chosen with ``--database sqlite|postgresql`` (or EIGENDOSSIER_TEST_DATABASE).
On PostgreSQL the session creates a database of its own on 127.0.0.1:5432 (user postgres)
and drops it at the end; when the server is unreachable those tests are skipped with the
reason. Between tests every table is emptied, so each test starts from an empty dossier.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import pathlib
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import uvicorn
from lxml import etree
from sqlalchemy import text

from gateway.app import build_services
from gateway.http.app import build_http_app
from gateway.http.protocol import GuardedHttpProtocol
from gateway.interactions.model import Services
from gateway.settings import Settings
from gateway.store.engine import make_engine
from gateway.store.repository import Store
from gateway.store.schema import access_epoch, access_log, metadata, signing_keys

EXAMPLES = pathlib.Path(__file__).parent / "data" / "r4-examples"
PG_ADMIN = os.environ.get(
    "EIGENDOSSIER_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--database",
        default=os.environ.get("EIGENDOSSIER_TEST_DATABASE", "sqlite"),
        choices=["sqlite", "postgresql"],
        help="the store backend to test against",
    )
    parser.addoption(
        "--fuzz-long",
        action="store_true",
        default=False,
        help="run the fuzz suite with many more examples (minutes, not seconds)",
    )


class _Refused(logging.Handler):
    """The statements the database refused on the event loop (PostgreSQL, ADR 0039), as
    the endpoint logs them."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.seen: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if message.startswith("a statement run ahead failed"):
            self.seen.append(message)


@pytest.fixture(autouse=True)
def _no_statement_refused_on_the_loop(request: pytest.FixtureRequest) -> Iterator[None]:
    """A statement the database refuses on the event loop sends its read to a reader's
    thread, which answers it all the same: the test would pass, and the loop's statement
    would stay broken unseen. So a test fails that had one refused, unless it is marked
    ``loop_refusal``; and a test so marked fails when none was seen, so that this check
    cannot go blind when the endpoint's message changes."""
    refused = _Refused()
    logger = logging.getLogger("eigendossier.http")
    logger.addHandler(refused)
    try:
        yield
    finally:
        logger.removeHandler(refused)
    meant = request.node.get_closest_marker("loop_refusal") is not None
    if refused.seen and not meant:
        pytest.fail(f"the database refused a statement on the event loop: {refused.seen[0]}")
    passed = request.node.stash.get(_CALL_PASSED, False)  # not skipped (SQLite), not failed
    if meant and passed and not refused.seen:  # the endpoint's message changed: blind check
        pytest.fail("a test meant to have a statement refused on the loop, and none was seen")


#: whether a test's call passed (its report, kept for its fixtures' teardown)
_CALL_PASSED = pytest.StashKey[bool]()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    if report.when == "call":
        item.stash[_CALL_PASSED] = report.passed
    return report


def example(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((EXAMPLES / f"{name}.json").read_text())
    return data


def canonical(value: Any) -> Any:
    """A resource with its narrative as canonical XML (JSON and XML serialise it differently)."""
    if isinstance(value, dict):
        return {
            k: (
                etree.tostring(etree.fromstring(v.encode()), method="c14n")
                if k == "div"
                else canonical(v)
            )
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [canonical(v) for v in value]
    return value


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def running(app: Any, port: int) -> Iterator[None]:
    """``app`` served by uvicorn on 127.0.0.1:``port`` in a thread, for the block's duration."""
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host="127.0.0.1",
            port=port,
            log_level="warning",
            lifespan="off",
            http=GuardedHttpProtocol,
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("test server did not start")
        time.sleep(0.02)
    try:
        yield
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.fixture(scope="session")
def database_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    backend = request.config.getoption("--database")
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path_factory.mktemp('db') / 'test.db'}"
        return
    admin = make_engine(PG_ADMIN)
    try:
        with admin.connect():
            pass
    except Exception as error:
        pytest.skip(f"PostgreSQL not reachable at {PG_ADMIN}: {type(error).__name__}")
    finally:
        admin.dispose()
    with _postgres_database("eigendossier_test") as url:
        yield url


@pytest.fixture()
def own_database(request: pytest.FixtureRequest, tmp_path: pathlib.Path) -> Iterator[str]:
    """A database of this test's own (no running server of the session on it), on the
    backend of this run; created empty and dropped afterwards."""
    if request.config.getoption("--database") == "sqlite":
        yield f"sqlite:///{tmp_path}/own.db"
        return
    with _postgres_database("eigendossier_own") as url:
        yield url


@contextlib.contextmanager
def _postgres_database(prefix: str) -> Iterator[str]:
    """A new, empty PostgreSQL database on the test server, dropped afterwards."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    admin = make_engine(PG_ADMIN).execution_options(isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield PG_ADMIN.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(scope="session")
def _server_state(database_url: str) -> Iterator[dict[str, Any]]:
    port = _free_port()
    settings = Settings(
        database_url=database_url, port=port, open_mode=True, max_body_bytes=4 * 1024 * 1024
    )
    services = build_services(settings, migrate=True)
    app = build_http_app(services, settings, None)
    with running(app, port):
        yield {
            "services": services,
            "base": settings.public_base_url,
            "endpoint": app.state.endpoint,
        }
    services.store.dispose()


def _empty(store: Store) -> None:
    """Every table emptied (and the access log's own file, ADR 0027; the kinds of index rows
    the store knows stored with them, ADR 0041), but the access epoch raised as any change
    of consent raises it:
    the secured server's cache of grants must not outlive the data it was derived from.
    The signing keys stay, as a running server's keys outlive any data: the portal seals its
    cookies with keys derived from them and reads those again only once a minute, so keys
    replaced under a running server would end a session that began a moment before."""
    kept = (access_epoch, signing_keys)
    tables = [t for t in metadata.sorted_tables if t not in kept]
    engine = store.engine
    if store.log_engine is not engine:
        with store.log_engine.begin() as connection:
            connection.execute(access_log.delete())
    with engine.begin() as connection:
        if engine.dialect.name == "postgresql":
            names = ", ".join(t.name for t in tables)
            connection.execute(text(f"TRUNCATE {names} RESTART IDENTITY"))
        else:
            for table in tables:
                connection.execute(table.delete())
        connection.execute(access_epoch.update().values(n=access_epoch.c.n + 1))
    store.known_kinds = set()  # their rows are gone too (ADR 0041: never in production)


@pytest.fixture()
def services(_server_state: dict[str, Any]) -> Services:
    """The running server's services, over an emptied database."""
    found: Services = _server_state["services"]
    _empty(found.store)
    return found


@pytest.fixture()
def base(_server_state: dict[str, Any], services: Services) -> str:
    """The FHIR base URL of the running server (database emptied)."""
    return str(_server_state["base"])


@pytest.fixture()
def client(base: str) -> Iterator[httpx.Client]:
    """A real HTTP client against the running server."""
    with httpx.Client(
        base_url=base + "/", headers={"Accept": "application/fhir+json"}, timeout=30
    ) as http:
        yield http


@pytest.fixture(scope="session")
def _secure_state(_server_state: dict[str, Any], database_url: str) -> Iterator[dict[str, Any]]:
    """A second server over the same database, with tokens, consent and audit on."""
    from gateway.security import build_security

    port = _free_port()
    settings = Settings(database_url=database_url, port=port, max_body_bytes=4 * 1024 * 1024)
    services = build_services(settings, migrate=False)
    security = build_security(services)
    services = dataclasses.replace(services, oauth_base=security.server.oauth_base)
    app = build_http_app(services, settings, security)
    with running(app, port):
        yield {
            "services": services,
            "security": security,
            "base": settings.public_base_url,
            "refusals": app.state.endpoint.refusals,
            "endpoint": app.state.endpoint,
        }
    services.store.dispose()


@pytest.fixture()
def secure(_secure_state: dict[str, Any], services: Services) -> dict[str, Any]:
    """The secured server (database emptied): services, security, base, and its tally of
    refusals without a valid token (emptied: each test starts a window of its own)."""
    _secure_state["refusals"].flush()
    _empty(services.store)
    _secure_state["services"].store.known_kinds = set()  # a store of its own, as _empty's
    return _secure_state


def refused_by_script(command: list[str], cwd: pathlib.Path) -> str:
    """What a benchmark script (``command``, run in the empty folder ``cwd``) said when it
    refused to start: it failed, and wrote nothing there."""
    done = subprocess.run(
        [sys.executable, *command], capture_output=True, text=True, check=False, cwd=cwd
    )
    assert done.returncode != 0
    assert not list(cwd.iterdir())
    return done.stderr


def run_cli(
    *args: str, database: str, cwd: pathlib.Path, input: str | None = None, **env: str
) -> subprocess.CompletedProcess[str]:
    """``eigendossier ARGS`` as an operator runs it, on ``database``, extra environment
    variables in ``env``."""
    environment = {**os.environ, "EIGENDOSSIER_DATABASE_URL": database, **env}
    return subprocess.run(
        [sys.executable, "-m", "gateway.cli", *args],
        capture_output=True,
        text=True,
        env=environment,
        cwd=cwd,
        timeout=120,
        check=False,
        input=input,
    )
