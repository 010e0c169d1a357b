"""``eigendossier index-log``: the access log's indexer, in a process of its own.

``serve`` runs it as a child process on SQLite (ADR 0028), and in a thread of every gateway
process on PostgreSQL; ``serve --log-indexer none`` leaves it to this command, run apart.
"""

from __future__ import annotations

import logging
import os
import select
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO, Annotated

import typer

from gateway.cli.common import DatabaseUrl, opened
from gateway.settings import DEFAULT_DATABASE_URL, Settings

__all__ = ["MODES", "IndexerProcess", "index_log", "indexer_mode", "indexing"]

log = logging.getLogger("eigendossier")

#: how long a child of ``serve`` waits for the schema ``serve`` is upgrading (seconds)
_SCHEMA_WAIT = 120.0

#: the indexer's longest rest after a round that took all that waited (seconds): in a
#: process of its own its rounds take nothing from the gateway's, and a short rest keeps what
#: waits well below the backlog at which the requests' commits wait for it (ADR 0028); under
#: a faster log it rests less, by the rate it finds (ADR 0050)
INTERVAL = 0.25

#: the line a child of ``serve`` writes once it indexes
READY = "indexing"
#: the indexer process's cycle-collector thresholds (``settle_heap``): a collection of the
#: youngest objects after 50,000 new ones, not 700 (ADR 0052)
INDEXER_COLLECTOR = (50_000, 20, 100)
#: how long ``serve`` waits for its child's first line before it serves all the same
_READY_WAIT = 60.0

#: ``--log-indexer``: where the access log is indexed
MODES = ("auto", "thread", "process", "none")


def indexer_mode(mode: str) -> str:
    """``thread``, ``process`` or ``none``; ``auto``: a process of its own, beside the
    gateway's: on SQLite the indexing is the database's work and the interpreter's (ADR
    0028); on PostgreSQL the server does the database's part, and the interpreter's part
    (working the entries out, the driver's side of the writes) took a third of a gateway
    process's interpreter lock from the requests (ADR 0034). ``thread`` indexes in every
    gateway process, sharing the entries (``SKIP LOCKED``)."""
    return "process" if mode == "auto" else mode


@contextmanager
def indexing(mode: str, settings: Settings, log_level: str) -> Iterator[IndexerProcess | None]:
    """The indexer process of ``serve`` while it serves (``mode`` ``process``); None for
    ``thread`` (each app runs its own) and ``none`` (run apart)."""
    if mode != "process":
        yield None
        return
    indexer = IndexerProcess(settings.database_url, settings.public_base_url, log_level)
    indexer.start()
    try:
        yield indexer
    finally:  # after the gateway: what it logged as it stopped is indexed too
        indexer.stop()


def index_log(
    database_url: DatabaseUrl = DEFAULT_DATABASE_URL,
    until_input_ends: Annotated[
        bool,
        typer.Option(
            "--until-input-ends",
            help="Also stop when standard input ends (as when the process that started it is gone)",
        ),
    ] = False,
) -> None:
    """Index the access log's entries as AuditEvents until stopped (SIGINT, SIGTERM), then
    index what is left. ``serve`` runs one itself unless ``--log-indexer none``."""
    from gateway.app import SchemaBehind, build_services  # noqa: PLC0415
    from gateway.http.memory import settle_heap  # noqa: PLC0415
    from gateway.interactions.auditlog import LogIndexer  # noqa: PLC0415
    from gateway.store.engine import make_engine  # noqa: PLC0415

    logging.basicConfig(
        level=(Settings.env("log_level") or "info").upper(),
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    stop = threading.Event()
    for number in (signal.SIGINT, signal.SIGTERM):
        signal.signal(number, lambda *_: stop.set())
    if until_input_ends:
        threading.Thread(target=_set_at_end, args=(sys.stdin.buffer, stop), daemon=True).start()
    settings = Settings(database_url=database_url, base_url=Settings.env("base_url") or "")
    with opened(database_url):
        engine = make_engine(database_url)
        try:
            # started by serve as it upgrades the schema: it waits for that, never migrates
            patience = time.monotonic() + (_SCHEMA_WAIT if until_input_ends else 0.0)
            while True:
                try:
                    services = build_services(settings, engine=engine, migrate=False)
                    break
                except SchemaBehind:
                    if time.monotonic() > patience or stop.wait(0.2):
                        raise
            # the definitions and plans stay: no full collection walks them; a batch's
            # entries are freed by their counts, so the collector runs seldom (ADR 0052)
            settle_heap(thresholds=INDEXER_COLLECTOR)
            if until_input_ends:  # to serve, which waits for this before it serves
                sys.stdout.write(f"{READY}\n")
                sys.stdout.flush()
            LogIndexer(services.store, interval=INTERVAL).run(stop)
        finally:
            engine.dispose()


def _set_at_end(stream: IO[bytes], stop: threading.Event) -> None:
    """Set ``stop`` when ``stream`` ends: its writer closed it, or exited (even by kill -9)."""
    while stream.read(4096):
        pass
    stop.set()


class IndexerProcess:
    """``index-log`` as a child of ``serve`` (ADR 0028): started before the gateway serves,
    started again when it exits on its own, stopped after the gateway (it then indexes what
    is left). It holds the write end of the child's standard input: when ``serve`` exits in
    any way, even by kill -9, the child sees its input end and stops. It runs in a session
    of its own, so a Ctrl-C meant for ``serve`` stops it only through ``serve``."""

    def __init__(self, database_url: str, base_url: str, log_level: str) -> None:
        self._env = {
            **os.environ,
            "EIGENDOSSIER_DATABASE_URL": database_url,  # not on its command line: a password
            "EIGENDOSSIER_BASE_URL": base_url,
            "EIGENDOSSIER_LOG_LEVEL": log_level,
        }
        self._lock = threading.Lock()  # a start again and the stop: one or the other
        self._process: subprocess.Popen[bytes] | None = None
        self._stopping = threading.Event()
        self._watch: threading.Thread | None = None
        #: how long after the child exited on its own it is started again (seconds)
        self.restart_after = 1.0

    def start(self) -> None:
        self._process = self._spawn()
        self._watch = threading.Thread(target=self._watching, daemon=True)
        self._watch.start()

    def _spawn(self) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [sys.executable, "-m", "gateway.cli", "index-log", "--until-input-ends"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=self._env,
            start_new_session=True,
        )

    def wait_ready(self, timeout: float = _READY_WAIT) -> bool:
        """Wait until the child indexes (it loads what ``serve`` loads, about as long):
        requests served before it does would fill the backlog and wait for it (ADR 0028).
        False when it did not say so in ``timeout`` seconds (``serve`` serves all the same)."""
        process = self._process
        if process is None or process.stdout is None:
            return False
        ready, _, _ = select.select([process.stdout], [], [], timeout)
        line = process.stdout.readline() if ready else b""
        if line.strip() != READY.encode():
            log.warning("the access log's indexer is not ready; serving without waiting")
            return False
        return True

    def _watching(self) -> None:
        while not self._stopping.is_set():
            process = self._process
            assert process is not None
            code = process.wait()
            if self._stopping.wait(self.restart_after):
                return
            _close_pipes(process)
            log.warning("the access log's indexer exited (%s); starting it again", code)
            with self._lock:
                if self._stopping.is_set():
                    return
                self._process = self._spawn()

    def stop(self, timeout: float = 30.0) -> None:
        """Stop the child once it indexed what waits (at most ``timeout`` seconds)."""
        with self._lock:
            self._stopping.set()
            process = self._process
        if process is None:
            return
        if process.stdin is not None:
            process.stdin.close()
        deadline = time.monotonic() + timeout
        try:
            process.wait(max(deadline - time.monotonic(), 0.1))
        except subprocess.TimeoutExpired:
            log.warning("the access log's indexer did not stop in %s s; killed", timeout)
            process.kill()
            process.wait()
        _close_pipes(process)
        if self._watch is not None:
            self._watch.join(5)


def _close_pipes(process: subprocess.Popen[bytes]) -> None:
    """The pipes of an ended child, closed (its input may be closed already)."""
    for stream in (process.stdin, process.stdout):
        if stream is not None:
            stream.close()
