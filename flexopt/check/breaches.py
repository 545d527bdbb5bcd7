"""What a breach is, and the one table saying which violation kind of ``kpis.json`` may report each breach kind.

A breach is one interval (or, for run-wide figures such as the cost, the whole run) where the schedule does not
obey the physics or a limit. Only breaches of soft limits can be *reported* by the run; a breach of physics
(power beyond a rating, a state that does not follow from the power) is never acceptable.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from flexopt.check import tolerances

# breach kind -> (violation kind in kpis.json that reports it, or None: it must never happen; what it means).
# New violation kinds of the model are added here, and only here.
KINDS: dict[str, tuple[str | None, str]] = {
    # the run folder itself
    "horizon": (None, "the run's intervals are not the horizon of its local day (and what run.json asked for)"),
    "missing_row": (None, "an asset or site has no row for an interval"),
    "duplicate_row": (None, "an asset or site has more than one row for an interval"),
    "unknown_row": (None, "a row for an asset, site or interval the portfolio and horizon do not have"),
    "row_identity": (None, "a row's site_id or asset_type differs from the portfolio"),
    "start_state": (None, "an intraday run does not start from the states of the run it continues"),
    # devices
    "power_limit": (None, "power outside the device's rating"),
    "min_power": (None, "running below the device's minimum power"),
    "soc_dynamics": (None, "SoC does not follow the net power (simultaneous charge and discharge, or broken "
                           "dynamics)"),
    "soc_bounds": (None, "SoC outside its band"),
    "terminal_soc": ("terminal_soc", "SoC below the terminal target at the end of a day (or, where the horizon "
                                     "ends during a day, no longer able to reach it by midnight)"),
    "pv_output": (None, "PV power differs from the available output (or curtails what cannot be curtailed)"),
    "load_power": (None, "uncontrolled load differs from its series"),
    "forecast_correction": (None, "corrections.parquet's forecast differs from the portfolio's series, or its "
                                  "corrected PV output leaves 0..peak"),
    "ev_unplugged": (None, "charger power while no vehicle is plugged in"),
    "ev_state": (None, "delivered energy does not follow the charger power (with the charger's efficiencies)"),
    "ev_battery_full": (None, "vehicle battery above its capacity"),
    "ev_battery_empty": (None, "vehicle battery below its minimum SoC"),
    "ev_energy": ("ev_energy", "vehicle short of its energy at departure (or no longer able to get it)"),
    "thermal_mode": (None, "temperature follows neither heating nor cooling with the whole power (heats and "
                           "cools at once, or broken dynamics)"),
    "comfort_low": ("comfort_low", "indoor temperature below the comfort band"),
    "comfort_high": ("comfort_high", "indoor temperature above the comfort band"),
    "element_steps": (None, "water-heater power is not a whole number of elements"),
    "tank_state": (None, "mean tank temperature in the state column differs from the simulated tanks"),
    "tank_temp_low": ("tank_temp_low", "a tank below its minimum temperature"),
    "tank_temp_high": ("tank_temp_high", "a tank above its cut-out temperature"),
    "hot_water_unmet": ("hot_water_unmet", "a draw takes more heat than the tank holds above cold water"),
    # grid
    "site_balance": (None, "site net power differs from the sum of its assets"),
    "congestion_balance": (None, "congestion point net power differs from the sum of its sites"),
    "limit_column": (None, "a limit written in sites.parquet differs from the portfolio (and DSO windows)"),
    "site_import_limit": ("site_import_limit", "site import above its connection limit"),
    "site_export_limit": ("site_export_limit", "site export above its connection limit"),
    "congestion_import_limit": ("congestion_import_limit", "congestion point import above its limit"),
    "congestion_export_limit": ("congestion_export_limit", "congestion point export above its limit"),
    "price": (None, "effective price in sites.parquet differs from the tariff"),
    "cost": (None, "kpis cost_eur differs from the cost of the site flows at the tariff"),
}

# which field of a violation names the subject a breach kind is about
_SITE_KINDS = {"site_import_limit", "site_export_limit", "site_balance", "price"}
_POINT_KINDS = {"congestion_import_limit", "congestion_export_limit", "congestion_balance"}


@dataclass(frozen=True)
class Breach:
    """One interval ``t`` (None: the whole run) where ``kind`` is breached by ``amount`` (in ``unit``)."""

    kind: str
    t: int | None
    amount: float
    unit: str
    value: float | None = None  # what the schedule has (or the physics gives)
    limit: float | None = None  # what it must not pass (or equal)
    site_id: str | None = None
    asset_id: str | None = None
    congestion_point: str | None = None
    note: str = ""  # constant over a run of intervals (the grouping key); the values are in value/limit
    reported: bool = False

    @property
    def subject(self) -> str:
        return self.asset_id or self.congestion_point or self.site_id or "run"

    @property
    def reported_by(self) -> str | None:
        return KINDS[self.kind][0]

    @property
    def subject_field(self) -> str:
        if self.kind in _POINT_KINDS:
            return "congestion_point"
        if self.kind in _SITE_KINDS or self.asset_id is None:
            return "site_id"
        return "asset_id"


def over(kind: str, amount: np.ndarray, unit: str, *, value=None, limit=None, tol: float | None = None,
         **where) -> list[Breach]:
    """A breach for every interval where ``amount`` (how far beyond the limit) exceeds the tolerance.

    ``value`` and ``limit`` are arrays or numbers (shown in the report); ``where`` names the subject and note."""
    if kind not in KINDS:
        raise KeyError(f"unknown breach kind {kind!r}; add it to KINDS")
    amount = np.asarray(amount, dtype=float)
    tol = tolerances.for_unit(unit) if tol is None else tol
    hits = np.flatnonzero(~(amount <= tol))  # NaN counts as a breach: nothing to compare means not shown right
    value_at = _picker(value, amount.size)
    limit_at = _picker(limit, amount.size)
    return [Breach(kind, int(t), float(amount[t]), unit, value_at(t), limit_at(t), **where) for t in hits]


def _picker(x, n: int):
    if x is None:
        return lambda _t: None
    arr = np.broadcast_to(np.asarray(x, dtype=float), (n,))
    return lambda t: float(arr[t])
