"""Accounts linked to an external OpenID Connect provider

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("accounts", sa.Column("external_subject", sa.String(64), nullable=True))
    op.create_index("ix_accounts_external_subject", "accounts", ["external_subject"], unique=True)


def downgrade() -> None:
    op.drop_index("ix_accounts_external_subject", table_name="accounts")
    op.drop_column("accounts", "external_subject")
