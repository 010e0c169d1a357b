"""One index of reference rows: ix_search_reference_target dropped

Every statement that looks a reference row up by its target also names the type and the
parameter of the rows it wants, so ix_search_reference_value (type, parameter, target id,
target type, key) answers it. The index by target first answered none of them any better,
and cost every write a page per reference row; an access-log entry naming fifty records,
fifty pages (ADR 0030). Dropping the index drops its planner statistics with it (SQLite).

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-04
"""

from __future__ import annotations

from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index("ix_search_reference_target", table_name="search_reference")


def downgrade() -> None:
    op.create_index(
        "ix_search_reference_target",
        "search_reference",
        ["target_type", "target_id", "param", "res_type"],
        unique=False,
    )
