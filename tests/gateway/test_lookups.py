"""The compiled lookups of every request: their parameters as each driver takes them, and
the snapshot a search's read opens on SQLite."""

from __future__ import annotations

import pathlib

import pytest
from sqlalchemy import text
from sqlalchemy.dialects import postgresql, sqlite

from gateway.store import session_base
from gateway.store.engine import SNAPSHOT, make_engine
from gateway.store.session_base import lookup_sql

NAMES = ("epoch", "patients_of", "by_keys", "by_keys_owned")


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("size", [1, 2, 50, 100])  # their callers never look up nothing
def test_a_lookups_parameters_are_its_values_in_the_order_its_sql_binds_them(
    name: str, size: int
) -> None:
    """The values alone, in turn, are a positional statement's parameters (SQLite) only
    where the statement binds nothing else; each agrees with the parameters bound by name."""
    values = [f"x{n}" for n in range(size)] if name != "epoch" else []  # the epoch takes none
    for dialect in (sqlite.dialect(paramstyle="qmark"), postgresql.dialect()):
        sql, params = lookup_sql(name, values, dialect)
        _, order, fixed, _ = session_base._driver_select(name, len(values), dialect)
        bound = {**fixed, **{f"v{n}": value for n, value in enumerate(values)}}
        expected = tuple(bound[k] for k in order) if order else bound
        assert params == expected, (name, size, dialect.name)
        if order:
            assert sql.count("?") == len(params)
    assert lookup_sql("epoch", [], sqlite.dialect(paramstyle="qmark"))[1] == (1,)


def test_a_snapshot_read_begins_on_the_driver_and_sees_one_moment(tmp_path: pathlib.Path) -> None:
    """SQLite: a read with a snapshot issues its BEGIN on the driver (ADR 0035) and sees
    one moment of the database while another connection writes; one without opens none."""
    url = f"sqlite:///{tmp_path / 'moment.db'}"
    engine = make_engine(url)
    writer = make_engine(url)
    try:
        with engine.begin() as connection:
            connection.execute(text("CREATE TABLE t (n INTEGER)"))
            connection.execute(text("INSERT INTO t VALUES (1)"))
        with engine.connect() as raw:
            connection = raw.execution_options(**{SNAPSHOT: True})
            with connection.begin():
                driver = connection.connection.dbapi_connection
                assert driver is not None and driver.in_transaction
                assert connection.execute(text("SELECT count(*) FROM t")).scalar() == 1
                with writer.begin() as other:
                    other.execute(text("INSERT INTO t VALUES (2)"))
                assert connection.execute(text("SELECT count(*) FROM t")).scalar() == 1
            assert not driver.in_transaction
            assert connection.execute(text("SELECT count(*) FROM t")).scalar() == 2
        with engine.connect() as raw:
            connection = raw.execution_options(**{SNAPSHOT: False})
            with connection.begin():
                assert not connection.connection.dbapi_connection.in_transaction
    finally:
        engine.dispose()
        writer.dispose()
