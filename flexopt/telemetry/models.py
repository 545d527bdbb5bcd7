"""The telemetry schema as typed SQLAlchemy models: a round per dispatch record file, a reading per asset and per
device of each round, the round's alarms.

Times are stored in UTC (PostgreSQL ``timestamptz``; SQLite has no time zones, so naive UTC) and always come back
tz-aware UTC. Strings have no length limit (``VARCHAR`` on PostgreSQL): a long portfolio name or a hand-edited
record never makes a round fail to store. The migrations in ``migrations/versions`` create exactly this; the tests
compare the two.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

# 64-bit ids on PostgreSQL; SQLite's INTEGER PRIMARY KEY is already 64-bit and only it autoincrements
BigId = BigInteger().with_variant(Integer(), "sqlite")


class UTCDateTime(TypeDecorator[dt.datetime]):
    """A tz-aware time, stored as UTC, returned tz-aware in UTC. A naive time is refused: it would be guessed."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive time {value.isoformat()}: telemetry times must carry their time zone")
        value = value.astimezone(dt.UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


class Base(DeclarativeBase):
    pass


class RoundRow(Base):
    """One dispatch round: one record file of ``<store>/<portfolio>/<day>/dispatch/``, stored once."""

    __tablename__ = "rounds"
    __table_args__ = (
        UniqueConstraint("portfolio", "day", "record_file", name="uq_rounds_record"),
        Index("ix_rounds_portfolio_at", "portfolio", "at_utc"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    portfolio: Mapped[str] = mapped_column(String())
    day: Mapped[dt.date] = mapped_column(Date)  # the local day of the dispatch folder
    record_file: Mapped[str] = mapped_column(String())
    at_utc: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    interval_start_utc: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    interval_end_utc: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    started_utc: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    finished_utc: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    settle_s: Mapped[float | None] = mapped_column(Float)
    schedule_run: Mapped[str | None] = mapped_column(Text)
    schedule_version: Mapped[str | None] = mapped_column(String())
    schedule_kind: Mapped[str | None] = mapped_column(String())
    assets: Mapped[int] = mapped_column(Integer)
    sent: Mapped[int] = mapped_column(Integer)
    confirmed: Mapped[int] = mapped_column(Integer)
    failed: Mapped[int] = mapped_column(Integer)
    clamped: Mapped[int] = mapped_column(Integer)
    skipped: Mapped[int] = mapped_column(Integer)
    alarms_critical: Mapped[int] = mapped_column(Integer)
    alarms_warning: Mapped[int] = mapped_column(Integer)
    flexopt_version: Mapped[str | None] = mapped_column(String())
    stored_by: Mapped[str] = mapped_column(String())  # dispatch | import
    stored_utc: Mapped[dt.datetime] = mapped_column(UTCDateTime)


class ReadingRow(Base):
    """What one asset (``device`` NULL: the group's aggregate, or the asset's single device) or one device of a
    group reported in a round, with what the schedule asked of the asset."""

    __tablename__ = "readings"
    __table_args__ = (
        Index("ix_readings_latest", "portfolio", "asset_id", "device", "at_utc"),
        Index("ix_readings_round", "round_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    round_id: Mapped[int] = mapped_column(BigId, ForeignKey("rounds.id", ondelete="CASCADE"))
    portfolio: Mapped[str] = mapped_column(String())  # repeated from the round for the index
    asset_id: Mapped[str] = mapped_column(String())
    device: Mapped[str | None] = mapped_column(String())
    site_id: Mapped[str | None] = mapped_column(String())
    asset_type: Mapped[str | None] = mapped_column(String())
    at_utc: Mapped[dt.datetime] = mapped_column(UTCDateTime)  # the reading's own time
    connected: Mapped[bool] = mapped_column(Boolean)
    available: Mapped[bool | None] = mapped_column(Boolean)
    quality: Mapped[str] = mapped_column(String())
    voltage_v: Mapped[float | None] = mapped_column(Float)
    active_power_kw: Mapped[float | None] = mapped_column(Float)
    reactive_power_kvar: Mapped[float | None] = mapped_column(Float)
    soc_pct: Mapped[float | None] = mapped_column(Float)
    temp_c: Mapped[float | None] = mapped_column(Float)
    ev_plugged: Mapped[bool | None] = mapped_column(Boolean)
    ev_charging: Mapped[bool | None] = mapped_column(Boolean)
    ev_energy_kwh: Mapped[float | None] = mapped_column(Float)
    reported_setpoint: Mapped[float | None] = mapped_column(Float)  # what the device says it runs at
    sent_setpoint: Mapped[float | None] = mapped_column(Float)  # what dispatch sent it, after clamping
    setpoint_unit: Mapped[str | None] = mapped_column(String())
    command_status: Mapped[str | None] = mapped_column(String())
    scheduled_power_kw: Mapped[float | None] = mapped_column(Float)  # asset rows only
    deviation_kw: Mapped[float | None] = mapped_column(Float)  # asset rows only
    notes: Mapped[str | None] = mapped_column(Text)
    extra: Mapped[dict[str, float] | None] = mapped_column(JSON)


class AlarmRow(Base):
    """One alarm of a round (revision 0002)."""

    __tablename__ = "alarms"
    __table_args__ = (Index("ix_alarms_portfolio_at", "portfolio", "at_utc"), Index("ix_alarms_round", "round_id"))

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    round_id: Mapped[int] = mapped_column(BigId, ForeignKey("rounds.id", ondelete="CASCADE"))
    portfolio: Mapped[str] = mapped_column(String())
    asset_id: Mapped[str] = mapped_column(String())
    severity: Mapped[str] = mapped_column(String())
    kind: Mapped[str] = mapped_column(String())
    reason: Mapped[str] = mapped_column(Text)
    at_utc: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
