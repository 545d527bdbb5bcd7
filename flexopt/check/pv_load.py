"""PV and uncontrolled load: their power is given by their series; only curtailable PV may feed in less."""

from __future__ import annotations

import numpy as np

from flexopt.check.breaches import Breach
from flexopt.check.context import AssetCase
from flexopt.check.registry import register_check


def pv_scale(asset) -> float:
    """Factor from the series to one array: peak_kw / series_peak_kw (required with a series; docs/inputs.md)."""
    return asset.peak_kw / asset.series_peak_kw


def forecast_kw(case: AssetCase) -> np.ndarray:
    """Output the entry's arrays are forecast to give (positive kW, all ``count`` devices)."""
    a = case.asset
    if a.generation_kw is None:
        return np.zeros(case.n)
    return np.clip(case.values(a.generation_kw) * pv_scale(a), 0, None) * case.count


def available_kw(case: AssetCase) -> np.ndarray:
    """Output the entry's arrays can give: the forecast, corrected where the run says so."""
    return -case.corrected(-forecast_kw(case))


@register_check("pv")
def check_pv(case: AssetCase) -> list[Breach]:
    g, p = available_kw(case), case.power_kw
    peak = case.asset.peak_kw * case.count
    out = case.correction_breaches(-forecast_kw(case), -max(peak, float(forecast_kw(case).max(initial=0.0))), 0.0)
    if case.asset.curtailable:
        return out + case.over("pv_output", np.maximum(-g - p, p), "kW", value=p,
                               limit=np.where(p > 0, 0.0, -g), note="curtailable PV outside -available..0 kW")
    return out + case.over("pv_output", np.abs(p + g), "kW", value=p, limit=-g,
                           note="PV that cannot be curtailed differs from -available output")


@register_check("load")
def check_load(case: AssetCase) -> list[Breach]:
    forecast = case.values(case.asset.power_kw) * case.count
    want = case.corrected(forecast)
    p = case.power_kw
    return case.correction_breaches(forecast, -np.inf, np.inf) + case.over(
        "load_power", np.abs(p - want), "kW", value=p, limit=want, note="load differs from its series")
