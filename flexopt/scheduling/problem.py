"""One optimisation run: assemble every asset formulation, sites and congestion points into one model (one sparse
matrix, :mod:`flexopt.models.arrays`), solve it with HiGHS and return the schedule, site flows, violations and KPIs.

Asset formulations live in :mod:`flexopt.models` (one per asset type, looked up in its registry);
site balance, limits and tariffs in :mod:`flexopt.scheduling.grid`; solving in :mod:`flexopt.solver.solve`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from flexopt.config.loader import LoadedPortfolio
from flexopt.data.inputs import Inputs
from flexopt.models.arrays import ArrayModel, ModelError
from flexopt.models.base import AssetItem, CostTerms, Formulation, ModelContext
from flexopt.models.registry import formulation_for
from flexopt.models.violations import Violation
from flexopt.scheduling.gc_pause import gc_paused
from flexopt.scheduling.grid import GridModel, SiteTerms, point_data, site_data
from flexopt.scheduling.kpis import compute_kpis
from flexopt.scheduling.memory import peak_rss_mb
from flexopt.scheduling.setpoints import device_setpoint
from flexopt.solver.matrix import ModelMatrix
from flexopt.solver.options import SolveOptions
from flexopt.solver.solve import SolveError, solve_model

__all__ = ["SCHEDULE_COLUMNS", "SITE_COLUMNS", "STATE_COLUMNS", "ScheduleResult", "schedule"]

SCHEDULE_COLUMNS = ["interval_start", "interval_end", "site_id", "asset_id", "asset_type", "power_kw", "baseline_kw",
                    "setpoint", "setpoint_unit", "state", "state_unit"]
SITE_COLUMNS = ["interval_start", "interval_end", "level", "id", "net_kw", "baseline_kw", "import_limit_kw",
                "export_limit_kw", "import_price_eur_per_kwh", "export_price_eur_per_kwh"]
# every state of every asset (long: one row per asset, state key and interval; value at the interval's end)
STATE_COLUMNS = ["interval_start", "interval_end", "asset_id", "key", "value", "unit"]


def no_states() -> pd.DataFrame:
    """The states frame of a portfolio whose assets have none (typed, so it writes like any other)."""
    when, text = pd.Series(dtype="datetime64[ns, UTC]"), pd.Series(dtype=object)
    return pd.DataFrame({"interval_start": when, "interval_end": when, "asset_id": text, "key": text,
                         "value": pd.Series(dtype=float), "unit": text})


@dataclass
class ScheduleResult:
    schedule: pd.DataFrame
    sites: pd.DataFrame
    violations: list[Violation]
    kpis: dict
    notes: list[str] = field(default_factory=list)
    states: pd.DataFrame = field(default_factory=no_states)


def schedule(loaded: LoadedPortfolio, inputs: Inputs, options: SolveOptions | None = None, *,
             initial_state: dict[str, dict] | None = None,
             progress: Callable[[str], None] | None = None) -> ScheduleResult:
    """Optimise the portfolio over ``inputs.horizon``; raise SolveError when HiGHS gives no schedule."""
    with gc_paused():
        return _schedule(loaded, inputs, options, initial_state=initial_state, progress=progress)


def _schedule(loaded: LoadedPortfolio, inputs: Inputs, options: SolveOptions | None, *,
              initial_state: dict[str, dict] | None, progress: Callable[[str], None] | None) -> ScheduleResult:
    options = options or SolveOptions()
    say = progress or (lambda _msg: None)
    pf, horizon = loaded.portfolio, inputs.horizon
    T = horizon.n

    t0 = time.perf_counter()
    say("building the model")
    sites = site_data(pf, inputs)
    points = point_data(pf, loaded.base_dir, horizon, sites, inputs)
    site_index = {s.id: k for k, s in enumerate(sites)}
    ctx = ModelContext(horizon=horizon, inputs=inputs, penalties=pf.penalties,
                       dumping_possible=_dumping_possible(pf, sites, points),
                       mode_binary=options.mode_binary, refill_price_eur_per_kwh=_refill_prices(pf, sites, horizon))
    groups = _group_assets(pf, initial_state or {})
    try:
        m, forms, grid = _state_model(pf, sites, points, ctx, groups, site_index, T)
    except ModelError as exc:  # a parameter or series that is not a number reached the model
        raise SolveError(f"the model cannot be stated: {exc}") from None
    build_s = time.perf_counter() - t0
    memory = {"build": peak_rss_mb()}

    say("solving")
    def rounder(values):
        return [pair for form in forms for pair in form.round_integers(values)]

    t_matrix = time.perf_counter()
    matrix = model_matrix(m, coupling=(getattr(grid.block, "balance", None),), names=options.write_model is not None)
    matrix_s = time.perf_counter() - t_matrix
    out = solve_model(matrix, options, rounder)
    out.translate_s += matrix_s  # the matrix in one piece, then in HiGHS
    memory["solve"] = peak_rss_mb()  # translate and solve

    say("reading the schedule")
    t1 = time.perf_counter()
    values = out.values
    frames, state_frames, base_by_site, shifted = [], [], np.zeros((len(sites), T)), 0.0
    violations: list[Violation] = []
    for form in forms:
        scheds = [device_setpoint(it.asset, s) for it, s in zip(form.items, form.extract(values), strict=True)]
        base = form.baseline_kw()
        for j, (it, sch) in enumerate(zip(form.items, scheds, strict=True)):
            base_by_site[site_index[it.site.id]] += base[j]
            shifted += float(np.clip(sch.power_kw - base[j], 0.0, None).sum() * horizon.dt_h)  # 0 for loads
        frames.append(_asset_frame(horizon, form, scheds, base))
        state_frames += _state_frames(horizon, form, scheds)
        violations += form.violations(values)
    net = grid.net_kw(values)
    violations += grid.violations(values)
    violations.sort(key=lambda v: (v.start, v.kind, v.site_id, v.asset_id or ""))
    schedule_df = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=SCHEDULE_COLUMNS)
    states_df = pd.concat(state_frames, ignore_index=True) if state_frames else no_states()
    sites_df = _sites_frame(horizon, sites, points, net, base_by_site)
    kpis = compute_kpis(horizon, sites, points, net, base_by_site, shifted)
    extract_s = time.perf_counter() - t1
    simultaneous = {f.asset_type: round(f.simultaneous_kwh, 6) for f in forms if f.simultaneous_kwh is not None}
    kpis["violations"] = {"count": len(violations), "list": [v.to_dict() for v in violations]}
    kpis["solver"] = {
        "name": "highs", "backend": out.backend, "method": out.method, "status": out.status,
        "termination": out.termination,
        "mip_gap": out.mip_gap, "bound": out.bound, "objective": out.objective, "binaries": out.binaries,
        "integers": out.integers, "variables": out.variables, "constraints": out.constraints,
        "simultaneous_modes_kwh": simultaneous,
    }
    if out.components is not None:
        kpis["solver"]["components"] = out.components
    kpis["timings_s"] = {"build": round(build_s, 4), "translate": round(out.translate_s, 4),
                         "solve": round(out.solve_s, 4), "extract": round(extract_s, 4)}
    kpis["peak_rss_mb"] = {**memory, "extract": peak_rss_mb()}
    notes = [n for s in sites for n in s.notes] + grid.margin_notes(values)
    return ScheduleResult(schedule=schedule_df, sites=sites_df, violations=violations, kpis=kpis, notes=notes,
                          states=states_df)


def _state_model(pf, sites, points, ctx: ModelContext, groups: dict[str, list[AssetItem]], site_index: dict[str, int],
                 T: int) -> tuple[ArrayModel, list[Formulation], GridModel]:
    """Every formulation's families, then the grid's, then the objective, in one array model."""
    m = ArrayModel()
    forms: list[Formulation] = []
    acc = SiteTerms.empty(len(sites), T)
    cost = CostTerms()
    for asset_type, items in groups.items():
        form = formulation_for(asset_type)(items, ctx)
        form.block = m.block(f"asset_{asset_type}")
        form.build(form.block)
        acc.add([site_index[it.site.id] for it in items], form.power())
        cost.extend(form.cost())
        forms.append(form)
    grid = GridModel(ctx.horizon, sites, points, pf.penalties.limit_eur_per_kwh)
    grid.build(m.block("grid"), acc)
    cost.extend(grid.cost())
    coefs, cols = cost.arrays()
    m.add_cost(cols, coefs, cost.constant)
    return m, forms, grid


def model_matrix(m: ArrayModel, coupling: tuple = (), names: bool = False) -> ModelMatrix:
    """The stated model as the solver's matrices; ``coupling``: the row families that join devices (the site
    balance, which the Lagrangian step prices); ``names``: keep every column's and row's name (for a model file)."""
    matrix = ModelMatrix(**m.arrays(), coupling=m.row_mask(tuple(c for c in coupling if c is not None)))
    if names:
        matrix.col_names, matrix.row_names = m.names()
    return matrix


def _group_assets(pf, initial_state: dict[str, dict]) -> dict[str, list[AssetItem]]:
    known = {a.id: a for _s, a in pf.assets()}
    for asset_id, state in initial_state.items():
        if asset_id not in known:
            raise ValueError(f"initial_state names unknown asset {asset_id!r}; assets: {', '.join(sorted(known))}")
        allowed = [spec.key for spec in known[asset_id].states]
        bad = sorted(set(state) - set(allowed))
        if bad:
            raise ValueError(f"initial_state for {asset_id!r} ({known[asset_id].type}): unknown key(s) "
                             f"{', '.join(bad)}; allowed: {', '.join(allowed) or 'none'}")
    groups: dict[str, list[AssetItem]] = {}
    for site, asset in pf.assets():
        groups.setdefault(asset.type, []).append(AssetItem(site, asset, dict(initial_state.get(asset.id, {}))))
    return groups


def _refill_prices(pf, sites, horizon) -> dict[str, float]:
    """Per site, the lowest import price over the horizon's last 24 h (not below 0): the day after the horizon
    is assumed to price energy as its last day did, so energy taken from storage now and put back then costs at
    least this much."""
    last_day = max(1, round(24 / horizon.dt_h))
    return {site.id: max(0.0, float(np.min(data.import_price[-last_day:]))) if len(data.import_price) else 0.0
            for site, data in zip(pf.sites, sites, strict=True)}


def _dumping_possible(pf, sites, points) -> dict[str, bool]:
    """Sites where storage could profit from wasting energy: negative prices, or an export limit with
    generation that cannot be curtailed."""
    out = {}
    cp_limited = {p.id for p in points if np.isfinite(p.export_limit_kw).any()}
    uncurtailable_cp = {s.congestion_point for s in pf.sites
                        if any(a.type == "pv" and not a.curtailable for a in s.assets)}
    for site, data in zip(pf.sites, sites, strict=True):
        negative = bool((data.import_price < 0).any() or (data.export_price < 0).any())
        uncurtailable = any(a.type == "pv" and not a.curtailable for a in site.assets)
        limited = np.isfinite(data.export_limit_kw) and uncurtailable
        cp_risk = site.congestion_point in cp_limited and site.congestion_point in uncurtailable_cp
        out[site.id] = negative or bool(limited) or cp_risk
    return out


def _asset_frame(horizon, form: Formulation, scheds, base: np.ndarray) -> pd.DataFrame:
    T, J = horizon.n, len(form.items)
    return pd.DataFrame({
        "interval_start": _tiled(horizon.index, J),
        "interval_end": _tiled(horizon.ends, J),
        "site_id": _repeated([it.site.id for it in form.items], T),
        "asset_id": _repeated([it.asset.id for it in form.items], T),
        "asset_type": form.asset_type,
        "power_kw": np.concatenate([s.power_kw for s in scheds]),
        "baseline_kw": base.ravel(),
        "setpoint": np.concatenate([s.setpoint for s in scheds]),
        "setpoint_unit": _repeated([s.setpoint_unit for s in scheds], T),
        "state": np.concatenate([s.state for s in scheds]),
        "state_unit": _repeated([s.state_unit for s in scheds], T),
    })[SCHEDULE_COLUMNS]


def _state_frames(horizon, form: Formulation, scheds) -> list[pd.DataFrame]:
    """The long states frame of these entries; a formulation must return exactly the states its type declares."""
    ids, keys, units, values = [], [], [], []
    for it, sch in zip(form.items, scheds, strict=True):
        specs = it.asset.states
        if set(sch.states) != {spec.key for spec in specs}:
            raise ValueError(f"{type(form).__name__} returned states {sorted(sch.states)} for {it.asset.id}; its "
                             f"type {it.asset.type!r} declares {sorted(spec.key for spec in specs)}")
        for spec in specs:
            ids.append(it.asset.id)
            keys.append(spec.key)
            units.append(spec.unit)
            values.append(np.asarray(sch.states[spec.key], dtype=float))
    if not values:
        return []
    T, k = horizon.n, len(values)
    return [pd.DataFrame({
        "interval_start": _tiled(horizon.index, k), "interval_end": _tiled(horizon.ends, k),
        "asset_id": _repeated(ids, T), "key": _repeated(keys, T), "value": np.concatenate(values),
        "unit": _repeated(units, T),
    })[STATE_COLUMNS]]


def _sites_frame(horizon, sites, points, net: np.ndarray, base: np.ndarray) -> pd.DataFrame:
    """Every site, then every congestion point, interval by interval: one frame built from whole arrays."""
    T, S = horizon.n, len(sites)
    ids = [site.id for site in sites] + [cp.id for cp in points]
    levels = ["site"] * S + ["congestion_point"] * len(points)

    def members(cp, of: np.ndarray) -> np.ndarray:
        return of[cp.sites].sum(axis=0) if cp.sites else np.zeros(T)

    rows = len(ids)
    no_price = np.full((len(points), T), np.nan)
    frame = pd.DataFrame({
        "interval_start": _tiled(horizon.index, rows), "interval_end": _tiled(horizon.ends, rows),
        "level": _repeated(levels, T), "id": _repeated(ids, T),
        "net_kw": np.concatenate([net.reshape(S, T), *[members(cp, net)[None] for cp in points]]).ravel(),
        "baseline_kw": np.concatenate([base.reshape(S, T), *[members(cp, base)[None] for cp in points]]).ravel(),
        "import_limit_kw": _nan_inf(np.concatenate([np.repeat([site.import_limit_kw for site in sites], T),
                                                    *[cp.import_limit_kw for cp in points]])),
        "export_limit_kw": _nan_inf(np.concatenate([np.repeat([site.export_limit_kw for site in sites], T),
                                                    *[cp.export_limit_kw for cp in points]])),
        "import_price_eur_per_kwh": np.concatenate([np.reshape([site.import_price for site in sites], (S, T)),
                                                    no_price]).ravel(),
        "export_price_eur_per_kwh": np.concatenate([np.reshape([site.export_price for site in sites], (S, T)),
                                                    no_price]).ravel(),
    })
    return frame[SITE_COLUMNS]


def _tiled(index: pd.DatetimeIndex, times: int) -> pd.DatetimeIndex:
    """The horizon's instants once per entry, kept tz-aware (``np.tile`` would make Timestamp objects)."""
    return index[np.tile(np.arange(len(index)), times)]


def _repeated(labels: list[str], times: int):
    """Each label ``times`` times, as pandas' string array (converted once per label, not once per row)."""
    return pd.array(labels, dtype="str").take(np.repeat(np.arange(len(labels)), times))


def _nan_inf(a: np.ndarray) -> np.ndarray:
    return np.where(np.isfinite(a), a, np.nan)
