"""The whole check of one run folder against its portfolio: rows, horizon, every asset's physics, sites,
congestion points, prices and cost; then which breaches the run's kpis.json reported."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from flexopt.check import battery, ev, pv_load, thermal, water_heater  # noqa: F401 - they register their checks
from flexopt.check.breaches import Breach
from flexopt.check.context import AssetCase
from flexopt.check.cost import check_cost
from flexopt.check.dso_windows import COLUMNS, read_windows
from flexopt.check.grid import check_grid, site_nets
from flexopt.check.horizon import RunHorizon, horizon_breaches, run_horizon
from flexopt.check.local_time import LocalClock
from flexopt.check.registry import CHECKS, check_for
from flexopt.check.reported import mark_reported, parse_violations
from flexopt.check.rows import asset_rows, correction_rows, site_rows, state_rows
from flexopt.check.run_folder import CheckInputError, read_run_folder
from flexopt.check.start_state import check_start_state, start_values
from flexopt.config.loader import LoadedPortfolio, PortfolioError, load_portfolio
from flexopt.data.inputs import Horizon, Inputs
from flexopt.data.timeseries import SeriesError

ORDERED_WINDOWS_FILE = "limit_windows.csv"  # written by flexopt.runs.runner beside the schedule
__all__ = ["CHECKS", "CheckResult", "check_run"]  # CHECKS: asset type -> its physics check (check.registry)


@dataclass
class CheckResult:
    run_dir: Path
    portfolio: Path
    horizon: RunHorizon
    breaches: list[Breach]

    @property
    def unreported(self) -> list[Breach]:
        return [b for b in self.breaches if not b.reported]


def check_run(portfolio_path: str | Path, run_dir: str | Path) -> CheckResult:
    """Every breach of the run at ``run_dir``; raises CheckInputError when the inputs cannot be checked."""
    folder = read_run_folder(Path(run_dir))
    loaded = _load(Path(portfolio_path))
    pf = loaded.portfolio
    named = (folder.run.get("portfolio") or {}).get("name")
    if named is not None and named != pf.portfolio.name:
        raise CheckInputError(f"{folder.path}: the run is of portfolio {named!r}, not {pf.portfolio.name!r}")
    assets = {a.id: a for _, a in pf.assets()}
    unknown = sorted(set(folder.initial_state) - set(assets))
    if unknown:
        raise CheckInputError(f"{folder.path / 'run.json'}: initial_state names unknown asset(s) {', '.join(unknown)}")
    horizon = run_horizon(folder)
    violations = parse_violations(folder.violations, str(folder.path / "kpis.json"))
    windows = (read_windows(pf.dso_limits_file, {c.id for c in pf.congestion_points}) if pf.dso_limits_file
               else pd.DataFrame(columns=list(COLUMNS)))
    ordered = folder.path / ORDERED_WINDOWS_FILE  # limits the DSO ordered (UFTP), as the run was held to them
    if ordered.is_file():
        extra = read_windows(ordered, {c.id for c in pf.congestion_points}, signed=True)
        windows = extra if windows.empty else pd.concat([windows, extra], ignore_index=True)
    inputs = Inputs(loaded, Horizon(horizon.index, horizon.tz))
    clocks = {s.id: LocalClock.of(horizon.index, horizon.ends, s.timezone or pf.portfolio.timezone)
              for s in pf.sites}
    breaches = horizon_breaches(folder, horizon) + check_start_state(folder, pf, horizon.index[0])
    rows, found = asset_rows(folder.schedule, pf, horizon)
    breaches += found
    written, found = site_rows(folder.sites, pf, horizon)
    breaches += found
    states = state_rows(folder.states, pf, horizon)
    corrections, found = correction_rows(folder.corrections, pf, horizon)
    breaches += found
    try:
        for site, asset in pf.assets():
            case = AssetCase(site, asset, rows[asset.id], start_values(folder.initial_state.get(asset.id), asset),
                             clocks[site.id], horizon, inputs, states[asset.id], *corrections.get(asset.id, ()))
            try:
                check = check_for(asset.type)
            except KeyError as exc:
                raise CheckInputError(f"{loaded.path}: {exc.args[0]}") from None
            breaches += check(case)
        nets = site_nets(pf, rows, horizon.n)
        breaches += check_grid(pf, nets, written, horizon, windows)
        breaches += check_cost(pf, nets, written, folder.kpis, horizon, inputs, clocks)
    except SeriesError as exc:
        raise CheckInputError(f"{loaded.path}: {exc}") from None
    return CheckResult(folder.path, loaded.path, horizon, mark_reported(breaches, violations, horizon))


def _load(path: Path) -> LoadedPortfolio:
    try:
        return load_portfolio(path)
    except PortfolioError as exc:
        first = exc.problems[0] if exc.problems else "invalid"
        more = f" (and {len(exc.problems) - 1} more; see flexopt validate)" if len(exc.problems) > 1 else ""
        raise CheckInputError(f"portfolio does not load: {first}{more}") from None
