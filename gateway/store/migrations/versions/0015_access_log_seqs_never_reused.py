"""The access log's seqs are never given twice (SQLite's AUTOINCREMENT)

A rowid table gives a new row the largest rowid plus one: once the indexer has moved every
waiting entry out, the next entry took the seq of one moved before. An indexer still
finishing that earlier batch deletes by seq (and the moment of the commit: ADR 0027's
amendment), so only a wall clock set back to that very microsecond could have made it
delete the new entry. With AUTOINCREMENT SQLite remembers the largest seq ever given
(``sqlite_sequence``) and never gives one again. The table is rebuilt with its rows;
PostgreSQL's sequence never gave a seq twice, and its table stays as it is. The log's own
file beside the database is rebuilt the same way when a gateway first opens it
(``gateway.store.repository.access_log_engine``).

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-06
"""

from __future__ import annotations

from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    _rebuild(autoincrement=True)


def downgrade() -> None:
    _rebuild(autoincrement=False)


def _rebuild(*, autoincrement: bool) -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    with op.batch_alter_table(
        "access_log", recreate="always", table_kwargs={"sqlite_autoincrement": autoincrement}
    ):
        pass
