"""The long schedule and sites tables as one array per asset (site, congestion point) and interval.

Every asset of the portfolio must have exactly one row per interval, and nothing else may be there. A missing
row is a breach; its power counts as 0 and its state as what the physics gives, so one gap is reported once and
does not disturb the other checks.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from flexopt.check.breaches import Breach
from flexopt.check.horizon import RunHorizon, positions
from flexopt.config.portfolio import Portfolio


@dataclass
class AssetRows:
    power_kw: np.ndarray
    state: np.ndarray
    present: np.ndarray


def asset_rows(schedule: pd.DataFrame, pf: Portfolio, horizon: RunHorizon) -> tuple[dict[str, AssetRows],
                                                                                   list[Breach]]:
    assets = {a.id: (s, a) for s, a in pf.assets()}
    breaches: list[Breach] = []
    t = positions(horizon, schedule["interval_start"])
    known = schedule["asset_id"].isin(list(assets))
    for asset_id in sorted(set(schedule.loc[~known, "asset_id"])):
        breaches.append(Breach("unknown_row", None, float((schedule["asset_id"] == asset_id).sum()), "rows",
                               asset_id=str(asset_id), note="rows for an asset the portfolio does not have"))
    off = known.to_numpy() & (t < 0)
    if off.any():
        first = schedule.loc[off, "interval_start"].min()
        breaches.append(Breach("unknown_row", None, float(off.sum()), "rows",
                               note=f"schedule rows outside the horizon (first at {first})"))
    frame = schedule.loc[known.to_numpy() & (t >= 0)].assign(t=t[known.to_numpy() & (t >= 0)])
    out: dict[str, AssetRows] = {}
    groups = dict(tuple(frame.groupby("asset_id", sort=False)))
    for asset_id, (site, asset) in assets.items():
        rows = groups.get(asset_id, frame.iloc[0:0])
        power, state, present, found = _spread(rows, horizon.n, ("power_kw", "state"))
        where = {"site_id": site.id, "asset_id": asset_id}
        breaches += _row_breaches(present, found, where)
        wrong = rows[(rows["site_id"] != site.id) | (rows["asset_type"] != asset.type)]
        if len(wrong):
            r = wrong.iloc[0]
            breaches.append(Breach("row_identity", int(r["t"]), float(len(wrong)), "rows",
                                   note=f"rows say site {r['site_id']} / type {r['asset_type']}; the portfolio "
                                        f"has site {site.id} / type {asset.type}", **where))
        out[asset_id] = AssetRows(power, state, present)
    return out, breaches


def state_rows(states: pd.DataFrame, pf: Portfolio, horizon: RunHorizon) -> dict[str, dict[str, np.ndarray]]:
    """asset id -> state key -> values on the horizon (NaN where states.parquet has none), for the keys each
    asset's type declares."""
    t = positions(horizon, states["interval_start"]) if len(states) else np.zeros(0, dtype=int)
    frame = states.loc[t >= 0].assign(t=t[t >= 0])
    groups = dict(tuple(frame.groupby(["asset_id", "key"], sort=False))) if len(frame) else {}
    out: dict[str, dict[str, np.ndarray]] = {}
    for _site, asset in pf.assets():
        out[asset.id] = {}
        for spec in asset.states:
            rows = groups.get((asset.id, spec.key), frame.iloc[0:0])
            (values, *_rest) = _spread(rows, horizon.n, ("value",))
            out[asset.id][spec.key] = values
    return out


def correction_rows(corrections: pd.DataFrame, pf: Portfolio, horizon: RunHorizon
                    ) -> tuple[dict[str, tuple[np.ndarray, np.ndarray]], list[Breach]]:
    """asset id -> (correction kW, the forecast kW the file says it corrected) on the horizon, for the assets in
    corrections.parquet: 0 and NaN where it has no row. Rows for an asset that is neither a load nor a PV array of
    the portfolio are breaches (nothing else is forecast)."""
    out: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    if not len(corrections):
        return out, []
    kinds = {a.id: a.type for _s, a in pf.assets()}
    breaches = [Breach("forecast_correction", None, float((corrections["asset_id"] == a).sum()), "rows", asset_id=a,
                       note="corrections.parquet corrects an asset that is not a load or PV array of the portfolio")
                for a in sorted(set(corrections["asset_id"])) if kinds.get(a) not in ("load", "pv")]
    t = positions(horizon, corrections["interval_start"])
    frame = corrections.loc[t >= 0].assign(t=t[t >= 0])
    for asset_id, rows in frame.groupby("asset_id", sort=False):
        if kinds.get(asset_id) in ("load", "pv"):
            correction, forecast, _present, _found = _spread(rows, horizon.n, ("correction_kw", "forecast_power_kw"))
            out[str(asset_id)] = (np.nan_to_num(correction), forecast)
    return out, breaches


def site_rows(sites: pd.DataFrame, pf: Portfolio, horizon: RunHorizon) -> tuple[dict[tuple[str, str], dict],
                                                                              list[Breach]]:
    """(level, id) -> {column: values, "present": mask} for every site and congestion point."""
    wanted = {("site", s.id) for s in pf.sites} | {("congestion_point", c.id) for c in pf.congestion_points}
    breaches: list[Breach] = []
    t = positions(horizon, sites["interval_start"])
    keys = list(zip(sites["level"], sites["id"], strict=True))
    known = np.array([k in wanted for k in keys], dtype=bool)
    for level, ident in sorted({k for k, ok in zip(keys, known, strict=True) if not ok}):
        breaches.append(Breach("unknown_row", None, 1.0, "rows", site_id=str(ident),
                               note=f"sites.parquet rows for a {level} the portfolio does not have"))
    if (known & (t < 0)).any():
        breaches.append(Breach("unknown_row", None, float((known & (t < 0)).sum()), "rows",
                               note="sites.parquet rows outside the horizon"))
    frame = sites.loc[known & (t >= 0)].assign(t=t[known & (t >= 0)])
    groups = dict(tuple(frame.groupby(["level", "id"], sort=False)))
    columns = ("net_kw", "import_limit_kw", "export_limit_kw", "import_price_eur_per_kwh", "export_price_eur_per_kwh")
    out = {}
    for level, ident in sorted(wanted):
        rows = groups.get((level, ident), frame.iloc[0:0])
        *values, present, found = _spread(rows, horizon.n, columns)
        where = {"congestion_point": ident} if level == "congestion_point" else {"site_id": ident}
        breaches += _row_breaches(present, found, where, prefix="sites.parquet: ")
        out[(level, ident)] = {**dict(zip(columns, values, strict=True)), "present": present}
    return out, breaches


def _spread(rows: pd.DataFrame, n: int, columns: tuple[str, ...]):
    """Columns as arrays on the horizon (first row per interval; NaN where none) plus presence and row counts."""
    found = np.bincount(rows["t"].to_numpy(dtype=int), minlength=n) if len(rows) else np.zeros(n, int)
    first = rows.drop_duplicates("t")
    idx = first["t"].to_numpy(dtype=int)
    arrays = []
    for col in columns:
        a = np.full(n, np.nan)
        a[idx] = first[col].to_numpy(dtype=float)
        arrays.append(a)
    return (*arrays, found > 0, found)


def _row_breaches(present: np.ndarray, found: np.ndarray, where: dict, prefix: str = "") -> list[Breach]:
    out = [Breach("missing_row", int(t), 1.0, "rows", note=f"{prefix}no row for this interval", **where)
           for t in np.flatnonzero(~present)]
    out += [Breach("duplicate_row", int(t), float(found[t]), "rows", note=f"{prefix}several rows for this interval",
                   **where) for t in np.flatnonzero(found > 1)]
    return out
