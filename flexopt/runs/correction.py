"""Intraday forecast correction: the rest of the horizon's uncontrolled load and PV moved by what was measured.

The forecast of a day is made from history before the day; within the day, telemetry tells how far reality has
drifted from it. For each measured load and PV array the last ``lookback_min`` of dispatch rounds are compared with
what the schedule in force expected then (``scheduled_power_kw``, recorded with each reading), and the difference is
carried into the new horizon, fading with ``decay_h`` (errors persist for hours, not for days):

- **load** (an uncontrolled ``load`` with an endpoint): the mean error in kW is added, times ``exp(-t / decay_h)``;
  with ``meter: site`` the load measured is the site meter minus every other asset of the site in the same interval;
  a corrected load never goes below zero where its forecast did not;
- **pv** (an array with an endpoint and a forecast series): measured over forecast output, over the intervals it was
  not curtailed and produced at least 2 % of its peak, scales the forecast, fading back to 1; never above the peak.

Telemetry no asset could produce (a meter fault) moves nothing: measured intervals outside what the asset can do are
left out, the corrected load stays within it and the PV ratio within a plausible range (``plausible.py``); each
bound that applies is in run.json and a warning naming the asset.

Nothing is corrected without enough measured intervals (``min_intervals``); run.json says why per asset. Corrections
are in load convention and added to the forecast power by the formulations (``Inputs.correction_kw``); the run writes
them as ``corrections.parquet`` so that ``flexopt check`` holds the schedule against the same corrected series.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from flexopt.config.loader import LoadedPortfolio
from flexopt.config.portfolio import PV, Load
from flexopt.data.inputs import Inputs
from flexopt.runs.measured import iso
from flexopt.runs.plausible import PV_RATIO_RANGE, Plausible, bound, load_range, pv_range
from flexopt.telemetry.db import TelemetryDB
from flexopt.telemetry.reader import IntervalPower, power_series

PV_DAYLIGHT_SHARE = 0.02  # of the array's peak: below this the ratio of measured to forecast output means nothing
NOT_CURTAILED_SHARE = 0.99  # an export cap this close to the peak curtails nothing


@dataclass(frozen=True)
class CorrectionSettings:
    lookback_min: float = 60.0  # measured intervals compared with the forecast before the start
    decay_h: float = 3.0  # the error carried into the horizon falls to 1/e after this long
    min_intervals: int = 2  # fewer measured intervals correct nothing

    def record(self) -> dict:
        return {"lookback_min": self.lookback_min, "decay_h": self.decay_h, "min_intervals": self.min_intervals}


@dataclass
class Corrections:
    """What the correction changed: kW per corrected asset on the horizon, run.json's record, the file's rows, and
    a warning per asset held by a plausibility bound."""

    kw: dict[str, np.ndarray] = field(default_factory=dict)
    record: dict = field(default_factory=dict)
    frame: pd.DataFrame = field(default_factory=pd.DataFrame)
    warnings: list[str] = field(default_factory=list)

    @property
    def moved_kwh(self) -> float:
        return float(sum(entry.get("moved_kwh", 0.0) for entry in self.record.get("assets", {}).values()))


def fade(inputs: Inputs, decay_h: float) -> np.ndarray:
    """The share of the measured error carried into each interval: 1 at the start, 1/e after ``decay_h``."""
    hours = (inputs.horizon.index - inputs.horizon.index[0]).total_seconds().to_numpy() / 3600.0
    return np.exp(-hours / decay_h)


def correct_forecasts(loaded: LoadedPortfolio, inputs: Inputs, db: TelemetryDB | None,
                      settings: CorrectionSettings | None = None, *, no_telemetry: str = "no telemetry database"
                      ) -> Corrections:
    """The corrections of every measured load and PV array of the portfolio (not yet applied to ``inputs``)."""
    from flexopt.models.pv import generation_kw

    settings = settings or CorrectionSettings()
    out = Corrections(record={"settings": settings.record(), "assets": {}})
    start = inputs.horizon.index[0].to_pydatetime()
    window = (start - dt.timedelta(minutes=settings.lookback_min), start)
    out.record["window_utc"] = [iso(window[0]), iso(window[1])]
    weight = fade(inputs, settings.decay_h)
    resolution = loaded.portfolio.portfolio.resolution_min
    name = loaded.portfolio.portfolio.name
    rows = []
    for site in loaded.portfolio.sites:
        for asset in site.assets:
            if asset.endpoint is None or not isinstance(asset, Load | PV):
                continue
            if isinstance(asset, PV) and asset.generation_kw is None:
                continue
            if db is None:
                out.record["assets"][asset.id] = {"kind": _kind(asset), "corrected": False, "reason": no_telemetry}
                continue
            series = measured(db, name, site, asset, window, resolution)
            if isinstance(asset, Load):
                forecast = inputs.values(asset.power_kw) * asset.count
                past = [p.scheduled_kw for p in series if p.scheduled_kw is not None]
                limits = load_range(site, asset, [*forecast.tolist(), *past])
                series, left_out = _plausible_only(series, limits)
                delta, entry = _load_delta(series, forecast, weight, settings, limits, _count(left_out))
            else:
                gen = generation_kw(asset, inputs)  # before any correction: none is applied yet
                forecast = -gen
                series, left_out = _plausible_only(series, pv_range(asset))
                delta, entry = _pv_delta(series, gen, asset, weight, settings, _count(left_out))
            bounds = left_out + entry.pop("bounds", [])
            entry = {"kind": _kind(asset), "meter": getattr(asset, "meter", "own"), **entry}
            if bounds:
                entry["bounds"] = bounds
                out.warnings += [f"{asset.id} ({_kind(asset)}): {b['why']}" for b in bounds]
            if delta is not None:
                moved = float(np.abs(delta).sum() * inputs.horizon.dt_h)
                entry.update(corrected=True, moved_kwh=round(moved, 6),
                             max_change_kw=round(float(np.abs(delta).max()), 6),
                             first_interval_change_kw=round(float(delta[0]), 6))
                out.kw[asset.id] = delta
                rows.append(pd.DataFrame({
                    "asset_id": asset.id, "site_id": site.id, "kind": _kind(asset),
                    "interval_start": inputs.horizon.index, "interval_end": inputs.horizon.ends,
                    "forecast_power_kw": forecast, "correction_kw": delta, "corrected_power_kw": forecast + delta}))
            out.record["assets"][asset.id] = entry
    out.frame = pd.concat(rows, ignore_index=True) if rows else pd.DataFrame()
    out.record["moved_kwh"] = round(out.moved_kwh, 6)
    out.record["bounded"] = sorted(a for a, e in out.record["assets"].items() if e.get("bounds"))
    return out


def _count(bounds: list[dict]) -> int:
    return sum(b.get("intervals", 0) for b in bounds)


def _kind(asset) -> str:
    return "pv" if isinstance(asset, PV) else "load"


def measured(db: TelemetryDB, portfolio: str, site, asset, window: tuple[dt.datetime, dt.datetime],
             resolution_min: int) -> list[IntervalPower]:
    """The asset's measured power per interval of the window. A site meter's load is the meter minus every other
    asset of the site, in the intervals where all of them were measured."""
    own = power_series(db, portfolio, asset.id, *window, resolution_min=resolution_min)
    if not isinstance(asset, Load) or asset.meter != "site":
        return own
    others = [{p.interval_start: p.measured_kw for p in power_series(db, portfolio, other.id, *window,
                                                                      resolution_min=resolution_min)}
              for other in site.assets if other.id != asset.id]
    out = []
    for p in own:
        if all(p.interval_start in other for other in others):
            rest = math.fsum(other[p.interval_start] for other in others)
            out.append(IntervalPower(p.interval_start, p.interval_end, p.measured_kw - rest, p.scheduled_kw,
                                     p.readings, p.sent_setpoint))
    return out


def _plausible_only(series: list[IntervalPower], limits: Plausible) -> tuple[list[IntervalPower], list[dict]]:
    """The measured intervals the asset could physically have produced, and the bound that left the others out."""
    kept = [p for p in series if limits.holds(p.measured_kw)]
    out = [p.measured_kw for p in series if not limits.holds(p.measured_kw)]
    if not out:
        return kept, []
    worst = max(out, key=lambda kw: math.inf if not math.isfinite(kw) else max(kw - limits.high_kw,
                                                                                 limits.low_kw - kw))
    above = not (worst < limits.low_kw)  # NaN and inf count as above
    limit = limits.high_kw if above else limits.low_kw
    why = (f"measured {worst:g} kW in {len(out)} of {len(series)} interval(s), {'above' if above else 'below'} the "
           f"{limit:g} kW it can physically draw ({limits.basis}): a meter fault, those intervals are left out")
    return kept, [bound("measured", worst, limit, "kW", why, intervals=len(out))]


def _load_delta(series: list[IntervalPower], forecast: np.ndarray, weight: np.ndarray,
                settings: CorrectionSettings, limits: Plausible, implausible: int) -> tuple[np.ndarray | None, dict]:
    pairs = [(p.measured_kw, p.scheduled_kw) for p in series if p.scheduled_kw is not None]
    entry: dict = {"method": "mean error, fading", "intervals_measured": len(pairs)}
    if len(pairs) < settings.min_intervals:
        why = _too_few(len(series), len(pairs), settings, implausible=implausible)
        return None, entry | {"corrected": False, "reason": why}
    error = math.fsum(m - s for m, s in pairs) / len(pairs)
    wanted = forecast + error * weight
    # a load does not start feeding in, nor draw more than its site can give it (nor is its forecast moved there)
    low, high = np.where(forecast >= 0, 0.0, -np.inf), np.maximum(limits.high_kw, forecast)
    corrected = np.clip(wanted, low, high)
    bounds = []
    if (n := int((wanted < low).sum())) > 0:
        bounds.append(bound("correction", float(wanted.min()), 0.0, "kW",
                            f"the correction ({error:g} kW, fading) would take the load down to {wanted.min():g} kW "
                            f"in {n} interval(s); held at 0 kW (a load does not feed in)", intervals=n))
    if (n := int((wanted > high).sum())) > 0:
        bounds.append(bound("correction", float(wanted.max()), limits.high_kw, "kW",
                            f"the correction ({error:g} kW, fading) would take the load up to {wanted.max():g} kW "
                            f"in {n} interval(s); held at {limits.high_kw:g} kW ({limits.basis})", intervals=n))
    return corrected - forecast, entry | {
        "error_kw": round(error, 6), "measured_kw": round(math.fsum(m for m, _ in pairs) / len(pairs), 6),
        "forecast_kw": round(math.fsum(s for _, s in pairs) / len(pairs), 6), "bounds": bounds}


def _pv_delta(series: list[IntervalPower], gen: np.ndarray, asset: PV, weight: np.ndarray,
              settings: CorrectionSettings, implausible: int) -> tuple[np.ndarray | None, dict]:
    peak = asset.peak_kw * asset.count
    usable = [p for p in series if p.scheduled_kw is not None and -p.scheduled_kw >= PV_DAYLIGHT_SHARE * peak
              and (p.sent_setpoint is None or p.sent_setpoint >= NOT_CURTAILED_SHARE * asset.peak_kw)]
    entry: dict = {"method": "measured over forecast output, fading", "intervals_measured": len(usable)}
    if len(usable) < settings.min_intervals:
        why = _too_few(len(series), len(usable), settings, "in daylight and not curtailed", implausible)
        return None, entry | {"corrected": False, "reason": why}
    produced = math.fsum(-p.measured_kw for p in usable)
    expected = math.fsum(-p.scheduled_kw for p in usable)  # type: ignore[operator]
    found = produced / expected
    ratio = min(max(found, PV_RATIO_RANGE[0]), PV_RATIO_RANGE[1])
    bounds = []
    if ratio != found:
        bounds.append(bound("ratio", found, ratio, "measured/forecast",
                            f"measured {-produced / len(usable):g} kW against a forecast of "
                            f"{-expected / len(usable):g} kW, a ratio of {found:g}; held at {ratio:g} (plausible "
                            f"{PV_RATIO_RANGE[0]:g} to {PV_RATIO_RANGE[1]:g})"))
    corrected = np.clip(gen * (1.0 + (ratio - 1.0) * weight), 0.0, max(peak, float(gen.max(initial=0.0))))
    return -(corrected - gen), entry | {"ratio": round(ratio, 6), "measured_kw": round(-produced / len(usable), 6),
                                        "forecast_kw": round(-expected / len(usable), 6), "bounds": bounds}


def _too_few(found: int, usable: int, settings: CorrectionSettings, qualifier: str = "with a forecast",
             implausible: int = 0) -> str:
    left_out = f", {implausible} more left out as implausible (bounds)" if implausible else ""
    return (f"{usable} measured interval(s) {qualifier} in the {settings.lookback_min:g} min before the start "
            f"({found} measured in all{left_out}); at least {settings.min_intervals} are needed")
