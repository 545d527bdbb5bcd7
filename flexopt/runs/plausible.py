"""What telemetry may plausibly say about an uncontrolled load or a PV array, and how far a correction may go.

A site meter reading 50 MW on a 500 kW connection, an inverter giving 40 times its forecast, a meter whose reading
less the other assets leaves the load strongly negative: that is a fault of the telemetry, not an error of the
forecast, and it must not move the schedule. So an intraday correction (``correction.py``) leaves out every measured
interval outside what the asset can physically do, holds the corrected load within the same range and the PV
measured/forecast ratio within :data:`PV_RATIO_RANGE`. Each bound that applies is recorded in run.json
(``forecast_correction``: the asset, the measured value, the bound, why) and warned about, naming the asset.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

LOAD_MARGIN = 1.25  # a connection carries a quarter over its rating for a while (its fuses stop more); beyond: a fault
LOAD_SCALE = 3.0  # without a connection rating: a load three times its largest forecast is a meter fault
NOISE_SHARE = 0.05  # of the upper bound: how far below zero meter noise and readings a moment apart may go
PV_MARGIN = 1.1  # an inverter gives at most a tenth over its array's peak (cold, clear, bright edge-of-cloud light)
# measured over forecast output in daylight: an hour that beats its forecast by more than 30 % says more about a
# dull-day forecast at dawn or a meter than about the rest of the day; 0 is an array that tripped or is under snow
PV_RATIO_RANGE = (0.0, 1.3)


@dataclass(frozen=True)
class Plausible:
    """The power an asset can physically have, load convention, kW for all its devices, and where the numbers
    come from (said in run.json and the warning)."""

    low_kw: float
    high_kw: float
    basis: str

    def holds(self, kw: float) -> bool:
        return math.isfinite(kw) and self.low_kw <= kw <= self.high_kw


def load_range(site, asset, forecasts_kw: list[float]) -> Plausible:
    """A load at most what its site's connection (``LOAD_MARGIN`` over its import rating) and every other asset of
    the site (its rated power) can feed it; without a rating, ``LOAD_SCALE`` times its largest forecast (past or
    coming). At least a little below zero (``NOISE_SHARE``), lower only where its own forecast is."""
    lowest = min([0.0, *forecasts_kw])
    rating = site.connection.import_limit_kw
    if rating is not None:
        others = math.fsum(a.rated_power_kw * a.count for a in site.assets if a.id != asset.id)
        high = LOAD_MARGIN * (rating + others)
        basis = (f"site {site.id}: {LOAD_MARGIN:g} x (connection {rating:g} kW + {others:g} kW the other assets "
                 "can supply)")
    else:
        largest = max([0.0, *forecasts_kw])
        if largest <= 0.0:
            return Plausible(lowest, math.inf, f"site {site.id} has no connection.import_limit_kw and the load no "
                                               "positive forecast: not bounded above")
        high = LOAD_SCALE * largest
        basis = (f"{LOAD_SCALE:g} x its largest forecast {largest:g} kW (site {site.id} has no "
                 "connection.import_limit_kw; give it for a physical bound)")
    return Plausible(lowest - NOISE_SHARE * high, high, basis)


def pv_range(asset) -> Plausible:
    """An array's output at most ``PV_MARGIN`` over its peak, and no more than noise drawn from the grid."""
    peak = asset.peak_kw * asset.count
    return Plausible(-PV_MARGIN * peak, NOISE_SHARE * peak,
                     f"{PV_MARGIN:g} x its peak {peak:g} kW output, {NOISE_SHARE * peak:g} kW drawn")


def bound(applies_to: str, measured: float, limit: float, unit: str, why: str, intervals: int | None = None) -> dict:
    """One bound that applied, as run.json records it."""
    out = {"applies_to": applies_to, "measured": round(measured, 6), "bound": round(limit, 6), "unit": unit,
           "why": why}
    return out if intervals is None else out | {"intervals": intervals}
