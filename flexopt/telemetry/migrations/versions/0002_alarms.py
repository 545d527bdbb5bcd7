"""Alarms of each round in their own table (before: only counted in rounds).

Rounds stored at revision 0001 keep no alarm rows; their alarms are in their record files.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "alarms",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("round_id", BigId, sa.ForeignKey("rounds.id", ondelete="CASCADE"), nullable=False),
        sa.Column("portfolio", sa.String(), nullable=False),
        sa.Column("asset_id", sa.String(), nullable=False),
        sa.Column("severity", sa.String(), nullable=False),
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("at_utc", sa.DateTime(timezone=True)),
    )
    op.create_index("ix_alarms_portfolio_at", "alarms", ["portfolio", "at_utc"])
    op.create_index("ix_alarms_round", "alarms", ["round_id"])


def downgrade() -> None:
    op.drop_table("alarms")
