"""The kinds of index rows: search_kind, one row per resource of a type whose repeating
values are indexed once per kind (ADR 0041), and one per kind, which says its rows are
stored

An access-log entry shares most of its indexed values with most other entries: its type,
subtype, action and outcome, the types and roles of its agents and entities, its client and
Consent. Those rows are stored once per kind of entry, under the kind's key (below zero),
and the entry has a row here naming its kind. Entries indexed before keep their own rows,
which searches still read. SQLite gets the new indexes' planner statistics, as migration
0002 gave the others.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

_PK = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

#: a million rows (0002's scale): of one type half, a kind's members a thousand, then one;
#: by resource one, then its one kind
_STATS = {"ix_search_kind_value": "1000000 500000 1000 1", "ix_search_kind_pk": "1000000 1 1"}


def upgrade() -> None:
    op.create_table(
        "search_kind",
        sa.Column("res_pk", _PK, nullable=False),
        sa.Column("res_type", sa.String(64), nullable=False),
        sa.Column("kind", _PK, nullable=False),
    )
    op.create_index("ix_search_kind_value", "search_kind", ["res_type", "kind", "res_pk"])
    op.create_index("ix_search_kind_pk", "search_kind", ["res_pk", "kind"])
    bind = op.get_bind()
    if bind.dialect.name != "sqlite":
        return
    bind.exec_driver_sql("ANALYZE sqlite_schema")  # creates sqlite_stat1 if it is missing
    table = sa.table("sqlite_stat1", sa.column("tbl"), sa.column("idx"), sa.column("stat"))
    op.execute(table.delete().where(table.c.idx.in_(sorted(_STATS))))
    op.bulk_insert(
        table, [{"tbl": "search_kind", "idx": idx, "stat": stat} for idx, stat in _STATS.items()]
    )


def downgrade() -> None:
    """Back to one row per value: a resource of a kind gets its kind's rows as its own."""
    kinded = "SELECT res_pk, kind FROM search_kind WHERE res_pk > 0"
    for name, columns in _KIND_TABLES.items():
        names = ", ".join(columns)
        picked = ", ".join(f"rows.{c}" for c in columns)
        op.execute(
            f"INSERT INTO {name} (res_pk, res_type, param, {names}) "  # noqa: S608 (names are ours)
            f"SELECT members.res_pk, rows.res_type, rows.param, {picked} "
            f"FROM ({kinded}) AS members JOIN {name} AS rows ON rows.res_pk = members.kind"
        )
        op.execute(f"DELETE FROM {name} WHERE res_pk < 0")  # noqa: S608
    op.drop_index("ix_search_kind_pk", table_name="search_kind")
    op.drop_index("ix_search_kind_value", table_name="search_kind")
    op.drop_table("search_kind")
    if op.get_bind().dialect.name == "sqlite":
        table = sa.table("sqlite_stat1", sa.column("idx"))
        op.execute(table.delete().where(table.c.idx.in_(sorted(_STATS))))


#: the tables a kind's rows lie in, and their value columns
_KIND_TABLES = {"search_token": ("system", "code", "text"), "search_uri": ("value",)}
