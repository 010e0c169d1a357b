"""A compartment row carries its resource's type: patient_compartment.res_type, and
ix_compartment_patient on (patient_id, res_type, res_pk)

Every access-log entry lies in its patient's compartment, so a patient's compartment grows
with each access to their dossier. A statement that finds a patient's resources of one type
through the compartment (PostgreSQL plans a consent filter's test that way) read all of the
patient's entries, the access log's included. With the type in the row and the index, it
reads the entries of that type alone (ADR 0038). The rows are filled from ``resources``;
SQLite gets the new index's planner statistics, as migration 0002 gave the old one.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

_TYPE_OF_ROW = (
    "UPDATE patient_compartment SET res_type = "
    "(SELECT resources.res_type FROM resources WHERE resources.pk = patient_compartment.res_pk)"
)


def upgrade() -> None:
    with op.batch_alter_table("patient_compartment") as batch:
        batch.add_column(sa.Column("res_type", sa.String(64), nullable=True))
    op.execute(_TYPE_OF_ROW)
    with op.batch_alter_table("patient_compartment") as batch:
        batch.alter_column("res_type", existing_type=sa.String(64), nullable=False)
    op.drop_index("ix_compartment_patient", table_name="patient_compartment")
    op.create_index(
        "ix_compartment_patient", "patient_compartment", ["patient_id", "res_type", "res_pk"]
    )
    # a million rows (0002's scale): a patient's 200, of one type 20, then one
    _statistics("1000000 200 20 1")


def downgrade() -> None:
    op.drop_index("ix_compartment_patient", table_name="patient_compartment")
    with op.batch_alter_table("patient_compartment") as batch:
        batch.drop_column("res_type")
    op.create_index("ix_compartment_patient", "patient_compartment", ["patient_id", "res_pk"])
    _statistics("1000000 200 1")


def _statistics(by_patient: str) -> None:
    """The planner statistics of the table's two indexes (SQLite): the one by patient's
    given, the one by resource's as migration 0012 gave them (a table SQLite rebuilt, to
    change a column, lost its rows)."""
    bind = op.get_bind()
    if bind.dialect.name != "sqlite":
        return
    bind.exec_driver_sql("ANALYZE sqlite_schema")  # creates sqlite_stat1 if it is missing
    table = sa.table("sqlite_stat1", sa.column("tbl"), sa.column("idx"), sa.column("stat"))
    stats = {"ix_compartment_patient": by_patient, "ix_compartment_pk": "1000000 1 1"}
    op.execute(table.delete().where(table.c.idx.in_(sorted(stats))))
    rows = [{"tbl": "patient_compartment", "idx": idx, "stat": stat} for idx, stat in stats.items()]
    op.bulk_insert(table, rows)
