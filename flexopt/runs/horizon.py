"""How far a run looks ahead: its horizon, from its kind, its start, ``--horizon-h`` and the prices known.

Rules (README, "Horizons"): a day-ahead run covers its local day (92, 96 or 100 quarter-hours) unless
``--horizon-h`` asks for more; an intraday run looks :data:`DEFAULT_INTRADAY_H` hours ahead from its first
interval, across midnight. Hours are elapsed time (24 h are 96 quarter-hours also over a DST night). Every horizon
reaches at least the end of the local day being scheduled, whose terminal conditions must be inside it. A price
series given as a forecast that ends sooner shortens the horizon to its last known interval (never below the day's
end), and the run record says so: a cron job keeps running when tomorrow's prices are not published yet.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from zoneinfo import ZoneInfo

import pandas as pd

from flexopt.config.loader import LoadedPortfolio
from flexopt.config.portfolio import SeriesRef
from flexopt.data.inputs import Horizon
from flexopt.data.timeseries import horizon_index, read_source

DEFAULT_INTRADAY_H = 24.0
MAX_HORIZON_H = 168.0  # the forecasters are built for leads up to a week


@dataclass(frozen=True)
class HorizonPlan:
    """The horizon of a run and how it came about, for the run record."""

    horizon: Horizon
    requested_h: float | None  # None: the local day (day-ahead default)
    requested_end: pd.Timestamp  # UTC, before any shortening
    day_end: pd.Timestamp  # UTC end of the local day being scheduled
    notes: tuple[str, ...] = ()  # why the horizon differs from the request

    def record(self) -> dict:
        """The ``horizon`` entry of run.json."""
        h = self.horizon
        return {"start_utc": h.index[0].isoformat(), "end_utc": h.ends[-1].isoformat(), "intervals": h.n,
                "resolution_min": round(h.dt_h * 60), "requested_h": self.requested_h,
                "requested_end_utc": self.requested_end.isoformat(), "day_end_utc": self.day_end.isoformat(),
                "shortened": self.requested_end > h.ends[-1], "notes": list(self.notes)}


def check_horizon_h(hours: float, resolution_min: int) -> None:
    """ValueError unless ``hours`` is positive, at most a week and a whole number of intervals."""
    if not 0 < hours <= MAX_HORIZON_H:
        raise ValueError(f"{hours:g} h: the horizon must be more than 0 and at most {MAX_HORIZON_H:g} h")
    if abs(hours * 60 / resolution_min - round(hours * 60 / resolution_min)) > 1e-9:
        raise ValueError(f"{hours:g} h is not a whole number of {resolution_min}-minute intervals")


def plan_horizon(loaded: LoadedPortfolio, kind: str, day: dt.date, start: dt.datetime | None,
                 horizon_h: float | None) -> HorizonPlan:
    """The horizon of a run of ``kind`` for the local ``day`` from ``start`` (None: local midnight)."""
    info = loaded.portfolio.portfolio
    zone, res = ZoneInfo(info.timezone), pd.Timedelta(minutes=info.resolution_min)
    day_index = horizon_index(day, day + dt.timedelta(days=1), zone, info.resolution_min)
    day_end = day_index[-1] + res
    first = day_index[0] if start is None else _utc(start, zone)
    if horizon_h is None and kind == "intraday":
        horizon_h = DEFAULT_INTRADAY_H
    if horizon_h is not None:
        check_horizon_h(horizon_h, info.resolution_min)
    requested = day_end if horizon_h is None else first + pd.Timedelta(hours=horizon_h)
    end, notes = requested, []
    if end < day_end:
        notes.append(f"extended from {_local(end, zone)} to the end of the local day {day} ({_local(day_end, zone)}): "
                     "the day's terminal conditions must lie inside the horizon")
        end = day_end
    known = prices_known_until(loaded)
    if known is not None and known[0] < end:
        until, name = known
        cut = max(first + ((until - first) // res) * res, day_end)
        if cut < end:
            notes.append(f"shortened from {_local(end, zone)} to {_local(cut, zone)}: the prices "
                         f"({name!r}) are known until {_local(until, zone)}")
            end = cut
    index = pd.date_range(first, end, freq=res, inclusive="left")
    return HorizonPlan(Horizon(index, info.timezone), horizon_h, requested, day_end, tuple(notes))


def prices_known_until(loaded: LoadedPortfolio) -> tuple[pd.Timestamp, str] | None:
    """(end of the last known interval, source name) of the price series given as forecasts that ends first;
    None when no tariff uses one (constants, or history that flexopt forecasts for any horizon)."""
    pf = loaded.portfolio
    tariffs = [pf.site_tariff(site) for site in pf.sites] or [pf.tariff]
    names = sorted({ref.source for t in tariffs for ref in (t.import_price_eur_per_kwh, t.export_price_eur_per_kwh)
                    if isinstance(ref, SeriesRef) and pf.data_sources[ref.source].kind == "forecast"})
    ends = []
    for name in names:
        series, _ = read_source(pf.data_sources[name], name)
        known = series.dropna()
        if len(known):
            step = pd.Series(known.index).diff().median() if len(known) > 1 else pd.Timedelta(hours=1)
            ends.append((known.index[-1] + step, name))
    return min(ends) if ends else None


def _utc(t: dt.datetime, zone: ZoneInfo) -> pd.Timestamp:
    """A start given with an offset, or as the portfolio's wall clock (a skipped time: when the clock jumps)."""
    ts = pd.Timestamp(t)
    return (ts if ts.tzinfo else ts.tz_localize(zone, nonexistent="shift_forward")).tz_convert("UTC")


def _local(t: pd.Timestamp, zone: ZoneInfo) -> str:
    return t.tz_convert(zone).isoformat(timespec="minutes")
