"""SQLite planner statistics: fixed, representative sqlite_stat1 rows

Without statistics SQLite's planner prefers a covering index with a range over an equality
on the resource key, and turns a per-resource probe of the date index into a scan of it
(seconds at 100,000 resources). These rows describe a dossier store of a million
resources: what each index column narrows a lookup to. They are what ANALYZE would measure
on such a store; a later ANALYZE (or PRAGMA optimize) replaces them with measured ones.
SQLite only; PostgreSQL keeps its own statistics (autovacuum analyze).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

_ROWS = 1_000_000
# index -> (table, rows that each successive column narrows a lookup to)
_STATS = {
    "ix_resources_type_updated": ("resources", [40_000, 1]),
    "sqlite_autoindex_resources_1": ("resources", [40_000, 1]),  # the unique (type, id)
    "ix_compartment_patient": ("patient_compartment", [200, 1]),
    "ix_compartment_pk": ("patient_compartment", [1]),
    "ix_search_reference_target": ("search_reference", [50_000, 20, 5, 3]),
}
_VALUE_INDEX = {  # table -> number of value columns in ix_<table>_value
    "search_token": 2,
    "search_string": 1,
    "search_date": 2,
    "search_reference": 2,
    "search_quantity": 1,
    "search_number": 1,
    "search_uri": 1,
}


def _rows() -> list[dict[str, str]]:
    rows = []
    for index, (table, narrowing) in _STATS.items():
        rows.append({"tbl": table, "idx": index, "stat": " ".join(map(str, [_ROWS, *narrowing]))})
    for table, values in _VALUE_INDEX.items():
        value_columns = [20] + [5] * (values - 1)
        narrowing = [40_000, 2_000, *value_columns, 1]
        rows.append(
            {
                "tbl": table,
                "idx": f"ix_{table}_value",
                "stat": " ".join(map(str, [_ROWS, *narrowing])),
            }
        )
        rows.append(
            {"tbl": table, "idx": f"ix_{table}_pk", "stat": " ".join(map(str, [_ROWS, 10, 10, 2]))}
        )
    return rows


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "sqlite":
        return
    bind.exec_driver_sql("ANALYZE sqlite_schema")  # creates sqlite_stat1 if it is missing
    stat = sa.table("sqlite_stat1", sa.column("tbl"), sa.column("idx"), sa.column("stat"))
    for row in _rows():
        op.execute(stat.delete().where(stat.c.tbl == row["tbl"], stat.c.idx == row["idx"]))
    op.bulk_insert(stat, _rows())


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "sqlite":
        return
    stat = sa.table("sqlite_stat1", sa.column("idx"))
    op.execute(stat.delete().where(stat.c.idx.in_([r["idx"] for r in _rows()])))
