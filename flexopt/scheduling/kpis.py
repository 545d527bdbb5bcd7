"""Costs and KPIs of a schedule against its baseline, from per-site net power and prices."""

from __future__ import annotations

import numpy as np

from flexopt.scheduling.grid import SiteData


def site_cost_eur(net_kw: np.ndarray, site: SiteData, days: np.ndarray, dt_h: float) -> float:
    """What the site pays: import at import price + fee, export at export price - fee, peak charge per local day
    of the site (``days``)."""
    imp = np.clip(net_kw, 0.0, None)
    exp = np.clip(-net_kw, 0.0, None)
    energy = float(np.sum(imp * site.import_price - exp * site.export_price) * dt_h)
    peak = 0.0
    if site.peak_charge_eur_per_kw > 0:
        peak = sum(float(imp[days == d].max()) for d in np.unique(days)) * site.peak_charge_eur_per_kw
    return energy + peak


def compute_kpis(horizon, sites: list[SiteData], points, net_kw: np.ndarray, base_kw: np.ndarray,
                 shifted_kwh: float) -> dict:
    dt = horizon.dt_h
    cost = sum(site_cost_eur(net_kw[s], site, site.days(horizon), dt) for s, site in enumerate(sites))
    base = sum(site_cost_eur(base_kw[s], site, site.days(horizon), dt) for s, site in enumerate(sites))
    peaks: dict[str, dict[str, float]] = {}
    for s, site in enumerate(sites):
        peaks[site.id] = {"optimised": float(max(net_kw[s].max(), 0.0)), "baseline": float(max(base_kw[s].max(), 0.0))}
    for cp in points:
        if cp.sites:
            opt = net_kw[cp.sites].sum(axis=0)
            bl = base_kw[cp.sites].sum(axis=0)
            peaks[cp.id] = {"optimised": float(max(opt.max(), 0.0)), "baseline": float(max(bl.max(), 0.0))}
    saving = base - cost
    return {
        "cost_eur": round(cost, 6),
        "baseline_cost_eur": round(base, 6),
        "saving_eur": round(saving, 6),
        "saving_pct": None if abs(base) < 1e-9 else round(100.0 * saving / abs(base), 4),
        "peak_import_kw": peaks,
        "energy_shifted_kwh": round(shifted_kwh, 6),
    }
