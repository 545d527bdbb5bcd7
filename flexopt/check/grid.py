"""Sites and congestion points: each site's net power is the sum of its assets, within its connection; each
congestion point's net is the sum of its sites', within its limits (defaults replaced by DSO windows)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from flexopt.check.breaches import Breach, over
from flexopt.check.dso_windows import point_limits
from flexopt.check.horizon import RunHorizon
from flexopt.check.rows import AssetRows
from flexopt.config.portfolio import Portfolio


def site_nets(pf: Portfolio, assets: dict[str, AssetRows], n: int) -> dict[str, np.ndarray]:
    """Net power of every site from its assets' rows (load convention; a missing row counts 0)."""
    nets = {}
    for site in pf.sites:
        net = np.zeros(n)
        for asset in site.assets:
            rows = assets[asset.id]
            net += np.where(rows.present, rows.power_kw, 0.0)
        nets[site.id] = net
    return nets


def check_grid(pf: Portfolio, nets: dict[str, np.ndarray], written: dict[tuple[str, str], dict],
               horizon: RunHorizon, windows: pd.DataFrame) -> list[Breach]:
    out: list[Breach] = []
    for site in pf.sites:
        net, row = nets[site.id], written[("site", site.id)]
        where = {"site_id": site.id}
        out += _balance("site_balance", net, row, where, "net_kw vs the sum of the site's assets")
        conn = site.connection
        out += _limits("site", net, conn.import_limit_kw, conn.export_limit_kw, row, where, "connection")
    for cp in pf.congestion_points:
        members = [s.id for s in pf.sites if s.congestion_point == cp.id]
        net = sum((nets[s] for s in members), np.zeros(horizon.n))
        row = written[("congestion_point", cp.id)]
        where = {"congestion_point": cp.id, "site_id": ",".join(members)}
        out += _balance("congestion_balance", net, row, where, "net_kw vs the sum of the point's sites")
        imp, exp = point_limits(windows, cp.id, horizon.index, horizon.ends, cp.import_limit_kw, cp.export_limit_kw)
        out += _limits("congestion", net, imp, exp, row, where, "congestion point (with DSO windows)")
    return out


def _balance(kind: str, net: np.ndarray, row: dict, where: dict, note: str) -> list[Breach]:
    written = row["net_kw"]
    return over(kind, np.where(row["present"], np.abs(written - net), 0.0), "kW", value=written, limit=net,
                note=note, **where)


def _limits(level: str, net: np.ndarray, import_kw, export_kw, row: dict, where: dict, what: str) -> list[Breach]:
    n = net.size
    imp = np.broadcast_to(np.inf if import_kw is None else np.asarray(import_kw, dtype=float), (n,))
    exp = np.broadcast_to(np.inf if export_kw is None else np.asarray(export_kw, dtype=float), (n,))
    out = over(f"{level}_import_limit", net - imp, "kW", value=net, limit=imp, note=f"import above the {what} limit",
               **where)
    out += over(f"{level}_export_limit", -net - exp, "kW", value=-net, limit=exp,
                note=f"export above the {what} limit", **where)
    for column, mine in (("import_limit_kw", imp), ("export_limit_kw", exp)):
        shown = row[column]
        same = (np.isnan(shown) & ~np.isfinite(mine)) | (np.abs(shown - mine) <= 1e-6)
        out += over("limit_column", np.where(row["present"] & ~same, 1.0, 0.0), "rows", value=shown,
                    limit=np.where(np.isfinite(mine), mine, np.nan), tol=0.5,
                    note=f"sites.parquet {column} differs from the {what} limit", **where)
    return out
