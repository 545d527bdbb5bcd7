"""Effective prices and the run's cost, from the tariff and the site flows.

Import pays price + import fee; export earns price - export fee, capped at the import price where it would
exceed it (the meter cannot import and export at once). Cost = sum over sites of
``dt*(max(net, 0)*import_price - max(-net, 0)*export_price)`` + ``peak_charge_eur_per_kw`` times each local day's
highest import.
"""

from __future__ import annotations

import numpy as np

from flexopt.check import tolerances
from flexopt.check.breaches import Breach, over
from flexopt.check.horizon import RunHorizon
from flexopt.check.local_time import LocalClock
from flexopt.config.portfolio import Portfolio, Site
from flexopt.data.inputs import Inputs


def effective_prices(pf: Portfolio, site: Site, inputs: Inputs) -> tuple[np.ndarray, np.ndarray]:
    tariff = site.tariff or pf.tariff
    imp = inputs.values(tariff.import_price_eur_per_kwh) + tariff.grid_fee_import_eur_per_kwh
    exp = inputs.values(tariff.export_price_eur_per_kwh) - tariff.grid_fee_export_eur_per_kwh
    return imp, np.minimum(exp, imp)


def site_cost_eur(net: np.ndarray, imp: np.ndarray, exp: np.ndarray, peak_eur_per_kw: float, clock: LocalClock,
                  dt_h: float) -> float:
    bought = np.clip(net, 0, None)
    energy = float(np.sum(dt_h * (bought * imp - np.clip(-net, 0, None) * exp)))
    peaks = sum(float(bought[clock.day == d].max()) for d in np.unique(clock.day)) if peak_eur_per_kw else 0.0
    return energy + peak_eur_per_kw * peaks


def check_cost(pf: Portfolio, nets: dict[str, np.ndarray], written: dict[tuple[str, str], dict], kpis: dict,
               horizon: RunHorizon, inputs: Inputs, clocks: dict[str, LocalClock]) -> list[Breach]:
    out: list[Breach] = []
    total = 0.0
    for site in pf.sites:
        imp, exp = effective_prices(pf, site, inputs)
        row = written[("site", site.id)]
        for column, mine in (("import_price_eur_per_kwh", imp), ("export_price_eur_per_kwh", exp)):
            shown = row[column]
            out += over("price", np.where(row["present"], np.abs(shown - mine), 0.0), "EUR/kWh", value=shown,
                        limit=mine, site_id=site.id, note=f"sites.parquet {column} vs the tariff")
        peak = (site.tariff or pf.tariff).peak_charge_eur_per_kw
        total += site_cost_eur(nets[site.id], imp, exp, peak, clocks[site.id], horizon.dt_h)
    reported = kpis.get("cost_eur")
    if not isinstance(reported, int | float):
        out.append(Breach("cost", None, float("nan"), "EUR", None, total, note="kpis.json has no cost_eur"))
        return out
    diff = abs(float(reported) - total)
    if diff > max(tolerances.COST_ABS_EUR, tolerances.COST_REL * abs(total)):
        out.append(Breach("cost", None, diff, "EUR", float(reported), total,
                          note="kpis cost_eur vs the site flows at the tariff"))
    return out
