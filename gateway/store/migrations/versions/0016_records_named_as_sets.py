"""The records an access-log entry names, as a set shared by the entries naming the same
ones (ADR 0043)

No table changes: a set is a kind (``search_kind``, migration 0014) whose rows are
reference rows, under the set's key below zero. From this revision on, an entry of a search
that names many records may have its ``entity`` rows in a set. A downgrade gives each entry
its set's rows as its own and drops the sets (0014's downgrade knows kinds of tokens and
URIs only).

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-06
"""

from __future__ import annotations

from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None

_SETS = "SELECT DISTINCT res_pk FROM search_reference WHERE res_pk < 0"


def upgrade() -> None:
    """Nothing to change: the next entries indexed may name sets."""


def downgrade() -> None:
    """Back to each entry's own rows: an entry of a set gets the set's rows."""
    op.execute(
        "INSERT INTO search_reference (res_pk, res_type, param, target_type, target_id, url) "
        "SELECT members.res_pk, rows.res_type, rows.param, rows.target_type, rows.target_id,"
        " rows.url FROM (SELECT res_pk, kind FROM search_kind WHERE res_pk > 0) AS members"
        " JOIN search_reference AS rows ON rows.res_pk = members.kind"
    )
    op.execute(f"DELETE FROM search_kind WHERE kind IN ({_SETS})")  # noqa: S608 (ours)
    op.execute("DELETE FROM search_reference WHERE res_pk < 0")
