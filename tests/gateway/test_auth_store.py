"""The authorization server's store under concurrent writers (SQLite).

Every write of the store starts with ``BEGIN IMMEDIATE``: a transaction that reads and then
writes (taking an authorization code, using a refresh token) holds the write lock before
it reads, so a writer that commits in between (the access log's group commit or indexer)
cannot make SQLite refuse its upgrade with "database is locked".
"""

from __future__ import annotations

import contextlib
import datetime as dt
import pathlib
import sqlite3
from typing import Any

from sqlalchemy import event

from consent.registry import Code
from gateway.store.auth import SqlAuthStore
from gateway.store.engine import make_engine
from gateway.store.migrate import upgrade


def test_a_code_is_taken_while_another_writer_commits(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "auth.db"
    engine = make_engine(f"sqlite:///{path}")
    upgrade(engine)
    store = SqlAuthStore(engine)
    expires = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=1)
    store.save_code(
        Code("d1", "app", "anna", "http://127.0.0.1:9/cb", "openid", None, "c", None, expires)
    )
    other = sqlite3.connect(path, timeout=0.2, isolation_level=None)
    committed: list[bool] = []

    @event.listens_for(engine, "before_cursor_execute")
    def meanwhile(*args: Any) -> None:
        statement = str(args[2])
        if statement.startswith("UPDATE oauth_codes"):  # after the code was read
            with contextlib.suppress(sqlite3.OperationalError):  # waits for our lock
                other.execute("UPDATE access_epoch SET n = n + 1")
                committed.append(True)

    try:
        code, _ = store.take_code("d1")
        assert code is not None and code.username == "anna"
        assert committed == []  # the other writer waited for this transaction's lock
        assert store.take_code("d1")[0] is None  # a code is taken once
    finally:
        event.remove(engine, "before_cursor_execute", meanwhile)
        other.close()
        engine.dispose()
