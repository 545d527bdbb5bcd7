"""Rounds and readings: the first telemetry schema.

Revision ID: 0001
Revises:
Create Date: 2026-11-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Time = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "rounds",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("portfolio", sa.String(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("record_file", sa.String(), nullable=False),
        sa.Column("at_utc", Time, nullable=False),
        sa.Column("interval_start_utc", Time),
        sa.Column("interval_end_utc", Time),
        sa.Column("started_utc", Time),
        sa.Column("finished_utc", Time),
        sa.Column("settle_s", sa.Float()),
        sa.Column("schedule_run", sa.Text()),
        sa.Column("schedule_version", sa.String()),
        sa.Column("schedule_kind", sa.String()),
        *(sa.Column(name, sa.Integer(), nullable=False) for name in (
            "assets", "sent", "confirmed", "failed", "clamped", "skipped", "alarms_critical", "alarms_warning")),
        sa.Column("flexopt_version", sa.String()),
        sa.Column("stored_by", sa.String(), nullable=False),
        sa.Column("stored_utc", Time, nullable=False),
        sa.UniqueConstraint("portfolio", "day", "record_file", name="uq_rounds_record"),
    )
    op.create_index("ix_rounds_portfolio_at", "rounds", ["portfolio", "at_utc"])
    op.create_table(
        "readings",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("round_id", BigId, sa.ForeignKey("rounds.id", ondelete="CASCADE"), nullable=False),
        sa.Column("portfolio", sa.String(), nullable=False),
        sa.Column("asset_id", sa.String(), nullable=False),
        sa.Column("device", sa.String()),
        sa.Column("site_id", sa.String()),
        sa.Column("asset_type", sa.String()),
        sa.Column("at_utc", Time, nullable=False),
        sa.Column("connected", sa.Boolean(), nullable=False),
        sa.Column("available", sa.Boolean()),
        sa.Column("quality", sa.String(), nullable=False),
        *(sa.Column(name, sa.Float()) for name in (
            "voltage_v", "active_power_kw", "reactive_power_kvar", "soc_pct", "temp_c")),
        sa.Column("ev_plugged", sa.Boolean()),
        sa.Column("ev_charging", sa.Boolean()),
        sa.Column("ev_energy_kwh", sa.Float()),
        sa.Column("reported_setpoint", sa.Float()),
        sa.Column("sent_setpoint", sa.Float()),
        sa.Column("setpoint_unit", sa.String()),
        sa.Column("command_status", sa.String()),
        sa.Column("scheduled_power_kw", sa.Float()),
        sa.Column("deviation_kw", sa.Float()),
        sa.Column("notes", sa.Text()),
        sa.Column("extra", sa.JSON()),
    )
    op.create_index("ix_readings_latest", "readings", ["portfolio", "asset_id", "device", "at_utc"])
    op.create_index("ix_readings_round", "readings", ["round_id"])


def downgrade() -> None:
    op.drop_table("readings")
    op.drop_table("rounds")
