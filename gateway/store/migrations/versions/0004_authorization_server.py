"""The authorization server's records: apps, accounts, codes, grants, tokens, keys

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "oauth_apps",
        sa.Column("client_id", sa.String(64), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("scopes", sa.Text(), nullable=False),
        sa.Column("redirect_uris", sa.Text(), nullable=False),
        sa.Column("jwks", sa.Text(), nullable=True),
        sa.Column("jwks_uri", sa.String(1024), nullable=True),
        sa.Column("secret_hash", sa.String(200), nullable=True),
        sa.Column("organization_identifier", sa.String(300), nullable=True),
        sa.Column("purpose", sa.String(32), nullable=True),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created", sa.BigInteger(), nullable=False),
    )
    op.create_table(
        "accounts",
        sa.Column("username", sa.String(200), primary_key=True),
        sa.Column("password_hash", sa.String(200), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("fhir_user", sa.String(200), nullable=True),
        sa.Column("organization", sa.String(200), nullable=True),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("locked_until", sa.BigInteger(), nullable=True),
    )
    op.create_table(
        "oauth_codes",
        sa.Column("digest", sa.String(64), primary_key=True),
        sa.Column("client_id", sa.String(64), nullable=False),
        sa.Column("username", sa.String(200), nullable=False),
        sa.Column("redirect_uri", sa.String(1024), nullable=False),
        sa.Column("scope", sa.Text(), nullable=False),
        sa.Column("patient", sa.String(64), nullable=True),
        sa.Column("challenge", sa.String(128), nullable=False),
        sa.Column("nonce", sa.String(256), nullable=True),
        sa.Column("expires", sa.BigInteger(), nullable=False),
        sa.Column("used", sa.Boolean(), nullable=False),
        sa.Column("authorization_id", sa.String(64), nullable=True),
    )
    op.create_table(
        "oauth_authorizations",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("client_id", sa.String(64), nullable=False),
        sa.Column("username", sa.String(200), nullable=False),
        sa.Column("scope", sa.Text(), nullable=False),
        sa.Column("patient", sa.String(64), nullable=True),
        sa.Column("created", sa.BigInteger(), nullable=False),
        sa.Column("revoked", sa.Boolean(), nullable=False),
    )
    op.create_index("ix_oauth_authorizations_user", "oauth_authorizations", ["username"])
    op.create_table(
        "oauth_refresh_tokens",
        sa.Column("digest", sa.String(64), primary_key=True),
        sa.Column("authorization_id", sa.String(64), nullable=False),
        sa.Column("expires", sa.BigInteger(), nullable=False),
        sa.Column("used", sa.Boolean(), nullable=False),
    )
    op.create_table(
        "oauth_assertions",
        sa.Column("client_id", sa.String(64), primary_key=True),
        sa.Column("jti", sa.String(256), primary_key=True),
        sa.Column("expires", sa.BigInteger(), nullable=False),
    )
    op.create_table(
        "oauth_revoked",
        sa.Column("jti", sa.String(64), primary_key=True),
        sa.Column("expires", sa.BigInteger(), nullable=False),
    )
    op.create_table(
        "signing_keys",
        sa.Column("kid", sa.String(64), primary_key=True),
        sa.Column("jwk", sa.Text(), nullable=False),
        sa.Column("created", sa.BigInteger(), nullable=False),
        sa.Column("retired", sa.Boolean(), nullable=False),
    )


def downgrade() -> None:
    for table in (
        "signing_keys",
        "oauth_revoked",
        "oauth_assertions",
        "oauth_refresh_tokens",
        "oauth_authorizations",
        "oauth_codes",
        "accounts",
        "oauth_apps",
    ):
        op.drop_table(table)
