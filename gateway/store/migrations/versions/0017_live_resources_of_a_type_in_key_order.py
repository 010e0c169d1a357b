"""The live resources of a type in the order of their keys: ix_resources_type_live
(res_type, deleted, pk)

A search of a type with no filter that reads an index table (``GET Observation``, and
each later page of it) reads ``resources`` by type, and its page is in the order of the
keys. ``ix_resources_type_updated`` has a type's rows in the order of their time, so
every such page read all the rows of the type and sorted them: 6-8 ms for a page of
20,000 Observations, and, under a consent filter, that filter's probe for each of the
20,000 first (ADR 0052). In this index the live rows of a type lie in the order of their
keys, so a page reads its rows and stops. SQLite gets the index's planner statistics at
migration 0002's scale: a type narrows to 40,000 rows, ``deleted`` hardly further, a key
to one.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None

_INDEX = "ix_resources_type_live"


def upgrade() -> None:
    op.create_index(_INDEX, "resources", ["res_type", "deleted", "pk"])
    bind = op.get_bind()
    if bind.dialect.name != "sqlite":
        return
    bind.exec_driver_sql("ANALYZE sqlite_schema")  # creates sqlite_stat1 if it is missing
    table = sa.table("sqlite_stat1", sa.column("tbl"), sa.column("idx"), sa.column("stat"))
    op.execute(table.delete().where(table.c.idx == _INDEX))
    op.bulk_insert(table, [{"tbl": "resources", "idx": _INDEX, "stat": "1000000 40000 40000 1"}])


def downgrade() -> None:
    op.drop_index(_INDEX, table_name="resources")  # SQLite drops its statistics with it
