"""Read OCPP sampled values (1.6 and 2.0.1 shapes, snake_case as the ocpp library hands them over)."""

from __future__ import annotations

from typing import Any

_MEASURANDS = {
    "Power.Active.Import": "power_w",
    "Power.Reactive.Import": "reactive_var",
    "Energy.Active.Import.Register": "energy_wh",
    "Voltage": "voltage_v",
    "Current.Import": "current_a",
    "SoC": "soc_pct",
}
_FACTORS = {"kW": 1000.0, "kWh": 1000.0, "kvar": 1000.0, "kvarh": 1000.0}
_AVERAGED = {"voltage_v", "soc_pct"}


def _unit_and_multiplier(sv: dict[str, Any]) -> tuple[str | None, float]:
    uom = sv.get("unit_of_measure")  # 2.0.1
    if isinstance(uom, dict):
        return uom.get("unit"), 10.0 ** int(uom.get("multiplier", 0))
    return sv.get("unit"), 1.0  # 1.6


def parse_meter_values(meter_value: list[dict[str, Any]]) -> dict[str, float]:
    """The latest reading per quantity in base units (W, var, Wh, V, A, %). Phase values are summed
    for power and current and averaged for voltage when no total is given."""
    out: dict[str, float] = {}
    for mv in meter_value:
        totals: dict[str, float] = {}
        phases: dict[str, list[float]] = {}
        for sv in mv.get("sampled_value", []):
            name = _MEASURANDS.get(sv.get("measurand", "Energy.Active.Import.Register"))
            if name is None:
                continue
            unit, mult = _unit_and_multiplier(sv)
            try:
                value = float(sv["value"]) * mult * _FACTORS.get(unit or "", 1.0)
            except (KeyError, TypeError, ValueError):
                continue
            if sv.get("phase") and str(sv["phase"]).upper() != "N":
                phases.setdefault(name, []).append(value)
            else:
                totals[name] = value
        for name, values in phases.items():
            if name not in totals:
                totals[name] = sum(values) / len(values) if name in _AVERAGED else sum(values)
        out.update(totals)
    return out
