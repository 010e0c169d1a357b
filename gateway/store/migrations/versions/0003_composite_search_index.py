"""Composite search parameters: the search_composite index table

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_KEY = sa.String(length=255).with_variant(sa.String(length=255, collation="C"), "postgresql")
_PK = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "search_composite",
        sa.Column("res_pk", _PK, nullable=False),
        sa.Column("res_type", sa.String(length=64), nullable=False),
        sa.Column("param", sa.String(length=100), nullable=False),
        sa.Column("system", _KEY, nullable=True),
        sa.Column("code", _KEY, nullable=True),
        sa.Column("v_system", _KEY, nullable=True),
        sa.Column("v_code", _KEY, nullable=True),
        sa.Column("v_value", sa.Float(), nullable=True),
        sa.Column("v_low", sa.BigInteger(), nullable=True),
        sa.Column("v_high", sa.BigInteger(), nullable=True),
    )
    op.create_index(
        "ix_search_composite_value",
        "search_composite",
        ["res_type", "param", "code", "system", "v_code", "res_pk"],
        unique=False,
    )
    op.create_index(
        "ix_search_composite_pk", "search_composite", ["res_pk", "res_type", "param"], unique=False
    )
    if op.get_bind().dialect.name == "sqlite":
        stat = sa.table("sqlite_stat1", sa.column("tbl"), sa.column("idx"), sa.column("stat"))
        op.bulk_insert(
            stat,
            [
                {
                    "tbl": "search_composite",
                    "idx": "ix_search_composite_value",
                    "stat": "1000000 40000 2000 20 20 5 1",
                },
                {
                    "tbl": "search_composite",
                    "idx": "ix_search_composite_pk",
                    "stat": "1000000 10 10 2",
                },
            ],
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute("DELETE FROM sqlite_stat1 WHERE tbl = 'search_composite'")
    op.drop_index("ix_search_composite_pk", table_name="search_composite")
    op.drop_index("ix_search_composite_value", table_name="search_composite")
    op.drop_table("search_composite")
