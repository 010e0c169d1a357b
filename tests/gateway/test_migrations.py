"""The migrations build exactly the schema the code describes, on both databases, and the
newest goes back and forth."""

from __future__ import annotations

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine, inspect

from gateway.interactions.model import Services
from gateway.store.engine import make_engine
from gateway.store.migrate import alembic_config, is_current, upgrade
from gateway.store.schema import metadata


def test_migrated_schema_matches_the_tables_in_code(services: Services) -> None:
    engine = services.store.engine
    assert is_current(engine)
    with engine.connect() as connection:
        assert compare_metadata(MigrationContext.configure(connection), metadata) == []


def _at(engine: Engine, revision: str, *statements: str) -> None:
    """Migrate ``engine``'s database to ``revision`` and run ``statements`` there (the rows
    a migration after it must carry over)."""
    command.upgrade(alembic_config(engine), revision)
    with engine.begin() as connection:
        for statement in statements:
            connection.exec_driver_sql(statement)


def _compartment_index(engine: Engine) -> tuple[list[str], str | None]:
    """The columns of ix_compartment_pk, and its planner statistics (SQLite; else None)."""
    columns = next(
        index["column_names"]
        for index in inspect(engine).get_indexes("patient_compartment")
        if index["name"] == "ix_compartment_pk"
    )
    if engine.dialect.name != "sqlite":
        return [str(c) for c in columns], None
    with engine.connect() as connection:
        stat = connection.exec_driver_sql(
            "SELECT stat FROM sqlite_stat1 WHERE idx = 'ix_compartment_pk'"
        ).scalar_one()
    return [str(c) for c in columns], str(stat)


def test_the_compartment_index_covers_its_patients_and_goes_back(own_database: str) -> None:
    """Migration 0012 (ADR 0036): the index by resource holds the patient too, with the
    planner statistics of its two columns on SQLite; a downgrade restores the index of 0001."""
    engine = make_engine(own_database)
    try:
        upgrade(engine)
        sqlite = engine.dialect.name == "sqlite"
        assert _compartment_index(engine) == (
            ["res_pk", "patient_id"],
            "1000000 1 1" if sqlite else None,
        )
        command.downgrade(alembic_config(engine), "0011")
        assert _compartment_index(engine) == (["res_pk"], "1000000 1" if sqlite else None)
        upgrade(engine)
        assert is_current(engine)
        assert _compartment_index(engine)[0] == ["res_pk", "patient_id"]
    finally:
        engine.dispose()


def test_a_consent_filter_probes_the_compartment_through_its_covering_index(
    services: Services,
) -> None:
    """The plan of a filter's compartment test reads the index alone (SQLite)."""
    engine = services.store.engine
    if engine.dialect.name != "sqlite":
        pytest.skip("PostgreSQL plans by its own statistics")
    probe = (
        "EXPLAIN QUERY PLAN SELECT 1 FROM resources WHERE EXISTS (SELECT 1 FROM"
        " patient_compartment AS c WHERE c.res_pk = resources.pk AND c.patient_id <> 'p1')"
    )
    with engine.connect() as connection:
        plan = " ".join(str(row[-1]) for row in connection.exec_driver_sql(probe))
    assert "USING COVERING INDEX ix_compartment_pk" in plan


def test_compartment_rows_take_their_resources_type_and_go_back(own_database: str) -> None:
    """Migration 0013 (ADR 0038): the rows already there get their resource's type, the index
    by patient names the type, SQLite keeps both indexes' planner statistics; a downgrade
    restores 0012's table and index."""
    engine = make_engine(own_database)
    try:
        _at(
            engine,
            "0012",
            "INSERT INTO resources (pk, res_type, res_id, version_id, last_updated, deleted,"
            " content) VALUES (1, 'Patient', 'anna', 1, 0, false, NULL),"
            " (2, 'Goal', 'g', 1, 0, false, NULL), (3, 'AuditEvent', 'e', 1, 0, false, NULL)",
            "INSERT INTO patient_compartment (res_pk, patient_id)"
            " VALUES (1, 'anna'), (2, 'anna'), (3, 'anna')",
        )
        upgrade(engine)
        with engine.connect() as connection:
            rows = connection.exec_driver_sql(
                "SELECT res_pk, res_type FROM patient_compartment ORDER BY res_pk"
            ).all()
        assert [tuple(r) for r in rows] == [(1, "Patient"), (2, "Goal"), (3, "AuditEvent")]
        by_patient = next(
            index["column_names"]
            for index in inspect(engine).get_indexes("patient_compartment")
            if index["name"] == "ix_compartment_patient"
        )
        assert by_patient == ["patient_id", "res_type", "res_pk"]
        if engine.dialect.name == "sqlite":
            with engine.connect() as connection:
                stats = dict(
                    connection.exec_driver_sql(
                        "SELECT idx, stat FROM sqlite_stat1 WHERE tbl = 'patient_compartment'"
                    ).all()
                )
            assert stats == {
                "ix_compartment_patient": "1000000 200 20 1",
                "ix_compartment_pk": "1000000 1 1",
            }
        command.downgrade(alembic_config(engine), "0012")
        columns = [c["name"] for c in inspect(engine).get_columns("patient_compartment")]
        assert columns == ["res_pk", "patient_id"]
        with engine.connect() as connection:
            assert (
                connection.exec_driver_sql("SELECT count(*) FROM patient_compartment").scalar_one()
                == 3
            )
        upgrade(engine)
        assert is_current(engine)
    finally:
        engine.dispose()


def _token_rows(engine: Engine) -> list[tuple[object, ...]]:
    with engine.connect() as connection:
        found = connection.exec_driver_sql(
            "SELECT res_pk, param, code FROM search_token ORDER BY res_pk, param"
        )
        return [tuple(row) for row in found]


def test_index_rows_per_kind_and_back_to_one_row_per_value(own_database: str) -> None:
    """Migration 0014 (ADR 0041): the kinds' table, with its planner statistics on SQLite;
    a downgrade gives each member its kind's rows as its own and drops the kinds' rows, and
    an entry indexed before keeps its own."""
    engine = make_engine(own_database)
    try:
        upgrade(engine)
        with engine.begin() as connection:
            connection.exec_driver_sql(
                "INSERT INTO search_token (res_pk, res_type, param, system, code, text) VALUES"
                " (-7, 'AuditEvent', 'subtype', 's', 'read', NULL),"
                " (3, 'AuditEvent', 'subtype', 's', 'vread', NULL)"
            )
            connection.exec_driver_sql(
                "INSERT INTO search_uri (res_pk, res_type, param, value)"
                " VALUES (-7, 'AuditEvent', 'policy', 'Consent/c1')"
            )
            connection.exec_driver_sql(
                "INSERT INTO search_kind (res_pk, res_type, kind) VALUES"
                " (-7, 'AuditEvent', -7), (1, 'AuditEvent', -7), (2, 'AuditEvent', -7)"
            )
        if engine.dialect.name == "sqlite":
            with engine.connect() as connection:
                stats = connection.exec_driver_sql(
                    "SELECT idx, stat FROM sqlite_stat1 WHERE tbl = 'search_kind' ORDER BY idx"
                ).all()
            assert [tuple(s) for s in stats] == [
                ("ix_search_kind_pk", "1000000 1 1"),
                ("ix_search_kind_value", "1000000 500000 1000 1"),
            ]
        command.downgrade(alembic_config(engine), "0013")
        assert "search_kind" not in inspect(engine).get_table_names()
        assert _token_rows(engine) == [
            (1, "subtype", "read"),
            (2, "subtype", "read"),
            (3, "subtype", "vread"),
        ]
        with engine.connect() as connection:
            uris = connection.exec_driver_sql("SELECT res_pk, value FROM search_uri").all()
        assert sorted(tuple(u) for u in uris) == [(1, "Consent/c1"), (2, "Consent/c1")]
        upgrade(engine)
        assert is_current(engine)
        assert "search_kind" in inspect(engine).get_table_names()
        assert len(_token_rows(engine)) == 3
    finally:
        engine.dispose()


def _log_table(engine: Engine) -> tuple[str, list[tuple[object, ...]]]:
    with engine.connect() as connection:
        made = connection.exec_driver_sql(
            "SELECT sql FROM sqlite_master WHERE name = 'access_log'"
        ).scalar_one()
        rows = connection.exec_driver_sql("SELECT seq, recorded FROM access_log ORDER BY seq")
        return made, [tuple(row) for row in rows]


def test_the_access_log_never_gives_a_seq_twice_and_goes_back(own_database: str) -> None:
    """Migration 0015: on SQLite the access log is rebuilt with AUTOINCREMENT, its waiting
    entries kept with their seqs, and back (PostgreSQL's sequence never gave one twice)."""
    engine = make_engine(own_database)
    if engine.dialect.name != "sqlite":
        engine.dispose()
        pytest.skip("PostgreSQL's access log is left as it is")
    try:
        _at(
            engine,
            "0014",
            "INSERT INTO access_log (seq, recorded, content)"
            " VALUES (4, 40, x'7b7d'), (7, 70, x'7b7d')",
        )
        upgrade(engine)
        made, rows = _log_table(engine)
        assert "AUTOINCREMENT" in made and rows == [(4, 40), (7, 70)]
        command.downgrade(alembic_config(engine), "0014")
        made, rows = _log_table(engine)
        assert "AUTOINCREMENT" not in made and rows == [(4, 40), (7, 70)]
        upgrade(engine)
        assert is_current(engine)
    finally:
        engine.dispose()


def test_records_named_as_sets_go_back_to_each_entrys_own(own_database: str) -> None:
    """Migration 0016 (ADR 0043) changes no table; its downgrade gives each entry of a set
    the set's rows as its own and drops the set, leaving kinds of tokens as they were."""
    engine = make_engine(own_database)
    try:
        _at(
            engine,
            "0016",
            "INSERT INTO search_reference (res_pk, res_type, param, target_type, target_id)"
            " VALUES (-9, 'AuditEvent', 'entity', 'Observation', 'o1'),"
            " (-9, 'AuditEvent', 'entity', 'Observation', 'o2'),"
            " (3, 'AuditEvent', 'entity', 'Observation', 'o3')",
            "INSERT INTO search_token (res_pk, res_type, param, system, code, text)"
            " VALUES (-7, 'AuditEvent', 'subtype', 's', 'read', NULL)",
            "INSERT INTO search_kind (res_pk, res_type, kind) VALUES (-9, 'AuditEvent', -9),"
            " (-7, 'AuditEvent', -7), (1, 'AuditEvent', -9), (1, 'AuditEvent', -7),"
            " (2, 'AuditEvent', -9)",
        )
        command.downgrade(alembic_config(engine), "0015")
        with engine.connect() as connection:
            named = connection.exec_driver_sql(
                "SELECT res_pk, target_id FROM search_reference ORDER BY res_pk, target_id"
            ).all()
            kinds = connection.exec_driver_sql(
                "SELECT res_pk, kind FROM search_kind ORDER BY res_pk, kind"
            ).all()
        assert [tuple(row) for row in named] == [
            (1, "o1"),
            (1, "o2"),
            (2, "o1"),
            (2, "o2"),
            (3, "o3"),
        ]
        assert [tuple(row) for row in kinds] == [(-7, -7), (1, -7)]
        upgrade(engine)
        assert is_current(engine)
    finally:
        engine.dispose()


def _live_index(engine: Engine) -> tuple[list[str] | None, str | None]:
    """The columns of ix_resources_type_live (None: no such index), and its planner
    statistics (SQLite; else None)."""
    columns = next(
        (
            index["column_names"]
            for index in inspect(engine).get_indexes("resources")
            if index["name"] == "ix_resources_type_live"
        ),
        None,
    )
    if engine.dialect.name != "sqlite":
        return columns, None
    with engine.connect() as connection:
        stat = connection.exec_driver_sql(
            "SELECT stat FROM sqlite_stat1 WHERE idx = 'ix_resources_type_live'"
        ).scalar_one_or_none()
    return columns, stat


def test_a_types_live_resources_are_indexed_in_key_order_and_go_back(own_database: str) -> None:
    """Migration 0017 (ADR 0052): the live resources of a type by key, with the planner
    statistics of migration 0002's scale on SQLite; a downgrade drops both."""
    engine = make_engine(own_database)
    try:
        upgrade(engine)
        sqlite = engine.dialect.name == "sqlite"
        expected = "1000000 40000 40000 1" if sqlite else None
        assert _live_index(engine) == (["res_type", "deleted", "pk"], expected)
        command.downgrade(alembic_config(engine), "0016")
        assert _live_index(engine) == (None, None)
        upgrade(engine)
        assert is_current(engine)
        assert _live_index(engine) == (["res_type", "deleted", "pk"], expected)
    finally:
        engine.dispose()
