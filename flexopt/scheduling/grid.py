"""Sites and congestion points in the model: power balance, import/export split, soft limits, peak charge.

Each site's net power (sum of its assets, load convention) is split into import and export so each is
priced at its own tariff. Limits are soft: power above a limit goes to an overflow variable priced at
``penalties.limit_eur_per_kwh`` and is reported as a violation.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from flexopt.config.portfolio import Portfolio
from flexopt.data.dso_limits import limits_on_horizon, read_dso_limits
from flexopt.data.inputs import Horizon, Inputs
from flexopt.models.base import CostTerms, PowerTerms, add_row_triplets, add_var
from flexopt.models.calendar import local_days
from flexopt.models.violations import Violation, runs


@dataclass
class SiteData:
    id: str
    congestion_point: str | None
    import_price: np.ndarray  # EUR/kWh paid per kWh imported: energy price + grid fee
    export_price: np.ndarray  # EUR/kWh earned per kWh exported: energy price - grid fee
    import_limit_kw: float
    export_limit_kw: float
    peak_charge_eur_per_kw: float
    notes: list[str]
    timezone: str = "UTC"  # the site's wall clock: its days for the daily peak charge

    def days(self, horizon: Horizon) -> np.ndarray:
        """The site's local day of each interval."""
        return local_days(horizon.in_zone(self.timezone))


@dataclass
class PointData:
    id: str
    sites: list[int]
    import_limit_kw: np.ndarray  # inf where none
    export_limit_kw: np.ndarray
    # risk margins (>= 0): how much more the forecast uncontrolled load may draw (import) or less (export) at
    # the planning quantile than at the point forecast; the limit rows hold net + margin within the limit
    import_margin_kw: np.ndarray | None = None
    export_margin_kw: np.ndarray | None = None
    quantile: float | None = None


def site_data(pf: Portfolio, inputs: Inputs) -> list[SiteData]:
    out = []
    for site in pf.sites:
        tariff = pf.site_tariff(site)
        imp = inputs.values(tariff.import_price_eur_per_kwh) + tariff.grid_fee_import_eur_per_kwh
        exp = inputs.values(tariff.export_price_eur_per_kwh) - tariff.grid_fee_export_eur_per_kwh
        notes = []
        above = exp > imp
        if above.any():
            # importing and exporting at once would be a free arbitrage the meter cannot do
            notes.append(f"site {site.id}: export price above import price in {int(above.sum())} intervals; "
                         "the optimiser values that export at the import price")
            exp = np.minimum(exp, imp)
        conn = site.connection
        out.append(SiteData(
            id=site.id, congestion_point=site.congestion_point, import_price=imp, export_price=exp,
            import_limit_kw=np.inf if conn.import_limit_kw is None else conn.import_limit_kw,
            export_limit_kw=np.inf if conn.export_limit_kw is None else conn.export_limit_kw,
            peak_charge_eur_per_kw=tariff.peak_charge_eur_per_kw, notes=notes,
            timezone=site.timezone or pf.portfolio.timezone))
    return out


def dso_windows(pf: Portfolio, base_dir) -> list:
    """The DSO limit windows of the portfolio's ``dso_limits_file`` (none without one)."""
    if pf.dso_limits_file is None:
        return []
    path = pf.dso_limits_file if pf.dso_limits_file.is_absolute() else base_dir / pf.dso_limits_file
    return read_dso_limits(path, {cp.id for cp in pf.congestion_points})


def point_data(pf: Portfolio, base_dir, horizon: Horizon, sites: list[SiteData],
               inputs: Inputs | None = None) -> list[PointData]:
    given = inputs.dso_windows if inputs is not None else None
    windows = given if given is not None else dso_windows(pf, base_dir)
    if inputs is not None:
        windows = [*windows, *inputs.limit_windows]  # ordered and requested limits are windows like the file's
    out = []
    for cp in pf.congestion_points:
        members = [k for k, s in enumerate(sites) if s.congestion_point == cp.id]
        imp, exp = limits_on_horizon(windows, cp.id, horizon.index, horizon.ends, cp.import_limit_kw,
                                     cp.export_limit_kw)
        point = PointData(cp.id, members, imp, exp)
        if inputs is not None and inputs.congestion_quantile is not None:
            point.quantile = inputs.congestion_quantile
            point.import_margin_kw, point.export_margin_kw = risk_margins(pf, inputs, [sites[k].id for k in members])
        out.append(point)
    return out


def risk_margins(pf: Portfolio, inputs: Inputs, site_ids: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """(import, export) margins in kW of the uncontrolled loads forecast from history at these sites: the
    congestion quantile q minus the point forecast (load may be higher), and the point minus the 1 - q
    quantile (load may be lower, so more is exported). Loads given as forecasts or numbers add nothing.

    The loads' margins add as independent errors (root sum of squares: the q quantile of a sum of independent
    normal errors) or, with ``risk.congestion_errors: comonotone``, plainly (the bound for any correlation)."""
    q = inputs.congestion_quantile
    ups, downs = [np.zeros(inputs.horizon.n)], [np.zeros(inputs.horizon.n)]
    for site, asset in pf.assets():
        power = getattr(asset, "power_kw", None)
        if site.id not in site_ids or asset.type != "load" or not inputs.is_forecast(power):
            continue
        point = inputs.values(power) * asset.count
        ups.append(np.clip(inputs.quantile(power, q) * asset.count - point, 0.0, None))
        downs.append(np.clip(point - inputs.quantile(power, round(1.0 - q, 10)) * asset.count, 0.0, None))
    if pf.risk.congestion_errors == "comonotone":
        return np.sum(ups, axis=0), np.sum(downs, axis=0)
    return np.sqrt(np.sum(np.square(ups), axis=0)), np.sqrt(np.sum(np.square(downs), axis=0))


class GridModel:
    """Balance and limit rows for all sites and congestion points, plus their cost terms."""

    def __init__(self, horizon: Horizon, sites: list[SiteData], points: list[PointData], limit_penalty: float):
        self.h, self.sites, self.points, self.penalty = horizon, sites, points, limit_penalty

    def build(self, block, terms: SiteTerms) -> None:
        """The site balance (``terms``: what each site's assets draw), connection limits, daily peaks and the
        congestion points' limits, each family stated for all sites and intervals at once."""
        self.block = block
        T, S = self.h.n, len(self.sites)
        imp_ub = np.repeat([s.import_limit_kw for s in self.sites], T)
        exp_ub = np.repeat([s.export_limit_kw for s in self.sites], T)
        self.imp = add_var(block, "import_kw", np.zeros(S * T), imp_ub)
        self.exp = add_var(block, "export_kw", np.zeros(S * T), exp_ub)
        # overflow above the connection limits, only for sites that have one
        self.oi_sites = [k for k, s in enumerate(self.sites) if np.isfinite(s.import_limit_kw)]
        self.oe_sites = [k for k, s in enumerate(self.sites) if np.isfinite(s.export_limit_kw)]
        self.oi = add_var(block, "import_over_kw", np.zeros(len(self.oi_sites) * T), np.full(len(self.oi_sites) * T,
                                                                                                np.inf))
        self.oe = add_var(block, "export_over_kw", np.zeros(len(self.oe_sites) * T), np.full(len(self.oe_sites) * T,
                                                                                                np.inf))
        # the columns of each site's net import (import - export + overflows) per interval; -1: no overflow column
        over_imp, over_exp = np.full((S, T), -1, dtype=np.int64), np.full((S, T), -1, dtype=np.int64)
        over_imp[self.oi_sites] = np.asarray(self.oi, dtype=np.int64).reshape(len(self.oi_sites), T)
        over_exp[self.oe_sites] = np.asarray(self.oe, dtype=np.int64).reshape(len(self.oe_sites), T)
        self._net_cols = (np.asarray(self.imp, dtype=np.int64).reshape(S, T),
                          np.asarray(self.exp, dtype=np.int64).reshape(S, T), over_imp, over_exp)
        # balance, row s*T + t: what the assets draw - the net import = -what they draw as a constant
        site, t, coef, col = terms.arrays()
        cells = np.arange(S * T)
        nr, nc, nv = self._net_entries(cells, cells // T, cells % T)
        const = terms.const_kw.ravel()
        add_row_triplets(block, "balance", np.concatenate([site * T + t, nr]), np.concatenate([col, nc]),
                         np.concatenate([coef, -nv]), S * T, -const, -const)
        self._peaks(block)
        self._points(block)

    def _net_entries(self, rows: np.ndarray, s: np.ndarray, t: np.ndarray) -> tuple[np.ndarray, ...]:
        """(row, column, coefficient) of site ``s[i]``'s net import at interval ``t[i]``, written into ``rows[i]``."""
        imp, exp, over_imp, over_exp = self._net_cols
        r, c, v = [rows, rows], [imp[s, t], exp[s, t]], [np.ones(rows.size), -np.ones(rows.size)]
        for cols, sign in ((over_imp[s, t], 1.0), (over_exp[s, t], -1.0)):
            has = cols >= 0
            r.append(rows[has])
            c.append(cols[has])
            v.append(np.full(int(has.sum()), sign))
        return np.concatenate(r), np.concatenate(c), np.concatenate(v)

    def _peaks(self, block) -> None:
        """peak[site, day] >= the site's net import in every interval of that local day."""
        days = {s: site.days(self.h) for s, site in enumerate(self.sites) if site.peak_charge_eur_per_kw > 0}
        self.peak_keys: list[tuple[int, int]] = [(s, int(d)) for s, site_days in days.items()
                                                 for d in np.unique(site_days)]
        self.peak = add_var(block, "peak_import_kw", np.zeros(len(self.peak_keys)), np.full(len(self.peak_keys),
                                                                                              np.inf))
        key, site, when = [], [], []
        for k, (s, d) in enumerate(self.peak_keys):
            ts = np.flatnonzero(days[s] == d)
            key.append(np.full(ts.size, k))
            site.append(np.full(ts.size, s))
            when.append(ts)
        if not key:
            return
        key, site, when = np.concatenate(key), np.concatenate(site), np.concatenate(when)
        rows = np.arange(key.size)
        nr, nc, nv = self._net_entries(rows, site, when)
        add_row_triplets(block, "peak", np.concatenate([rows, nr]),
                         np.concatenate([np.asarray(self.peak, dtype=np.int64)[key], nc]),
                         np.concatenate([np.ones(rows.size), -nv]), rows.size, np.zeros(rows.size), None)

    def _points(self, block) -> None:
        """A congestion point's import (export) limit on the sum of its sites' net imports, with a priced
        overflow; the risk margin is kept inside the limit."""
        self.cp_oi_keys, self.cp_oe_keys = [], []
        for p, cp in enumerate(self.points):
            if cp.sites:
                self.cp_oi_keys += [(p, int(t)) for t in np.flatnonzero(np.isfinite(cp.import_limit_kw))]
                self.cp_oe_keys += [(p, int(t)) for t in np.flatnonzero(np.isfinite(cp.export_limit_kw))]
        self.cp_oi = add_var(block, "cp_import_over_kw", np.zeros(len(self.cp_oi_keys)),
                             np.full(len(self.cp_oi_keys), np.inf))
        self.cp_oe = add_var(block, "cp_export_over_kw", np.zeros(len(self.cp_oe_keys)),
                             np.full(len(self.cp_oe_keys), np.inf))
        for name, keys, over, direction in (("cp_import_limit", self.cp_oi_keys, self.cp_oi, "import"),
                                            ("cp_export_limit", self.cp_oe_keys, self.cp_oe, "export")):
            if not keys:
                continue
            row, site, when = [], [], []
            for k, (p, t) in enumerate(keys):
                members = self.points[p].sites
                row += [k] * len(members)
                site += members
                when += [t] * len(members)
            nr, nc, nv = self._net_entries(np.asarray(row), np.asarray(site), np.asarray(when))
            rows = np.arange(len(keys))
            room = np.array([getattr(self.points[p], f"{direction}_limit_kw")[t] - self._margin(p, direction)[t]
                             for p, t in keys])
            # import: net - over <= limit; export: net + over >= -limit
            sign = -1.0 if direction == "import" else 1.0
            add_row_triplets(block, name, np.concatenate([nr, rows]), np.concatenate([nc, np.asarray(over)]),
                             np.concatenate([nv, np.full(rows.size, sign)]), rows.size,
                             None if direction == "import" else -room, room if direction == "import" else None)

    def _margin(self, p: int, direction: str) -> np.ndarray:
        """The risk margin of congestion point ``p`` (zeros without a congestion quantile)."""
        margin = getattr(self.points[p], f"{direction}_margin_kw")
        return np.zeros(self.h.n) if margin is None else margin

    def cost(self) -> CostTerms:
        """Energy at each site's tariffs, overflows at the limit penalty (on top of the energy), daily peaks."""
        T, dt = self.h.n, self.h.dt_h
        c = CostTerms()
        imp_price = np.array([site.import_price for site in self.sites]).reshape(len(self.sites), T)
        exp_price = np.array([site.export_price for site in self.sites]).reshape(len(self.sites), T)
        c.add_many(dt * imp_price.ravel(), self.imp)
        c.add_many(-dt * exp_price.ravel(), self.exp)
        c.add_many(dt * (imp_price[self.oi_sites] + self.penalty).ravel(), self.oi)
        c.add_many(dt * (self.penalty - exp_price[self.oe_sites]).ravel(), self.oe)
        c.add_many(np.array([self.sites[s].peak_charge_eur_per_kw for s, _d in self.peak_keys]), self.peak)
        c.add_many(dt * self.penalty, self.cp_oi)
        c.add_many(dt * self.penalty, self.cp_oe)
        return c

    # --- reading back ------------------------------------------------------------------------

    def net_kw(self, values) -> np.ndarray:
        """(sites, T) net import of each site in the solution."""
        T, S = self.h.n, len(self.sites)
        net = (values(self.block.import_kw) - values(self.block.export_kw)).reshape(S, T)
        if self.oi_sites:
            net[self.oi_sites] += values(self.block.import_over_kw).reshape(len(self.oi_sites), T)
        if self.oe_sites:
            net[self.oe_sites] -= values(self.block.export_over_kw).reshape(len(self.oe_sites), T)
        return net

    def violations(self, values) -> list[Violation]:
        T = self.h.n
        out: list[Violation] = []
        for name, keys, comp, kind in (("import", self.oi_sites, "import_over_kw", "site_import_limit"),
                                       ("export", self.oe_sites, "export_over_kw", "site_export_limit")):
            if not keys:
                continue
            over = values(getattr(self.block, comp)).reshape(len(keys), T)
            for i, s in enumerate(keys):
                site = self.sites[s]
                limit = site.import_limit_kw if name == "import" else site.export_limit_kw
                out += self._runs(over[i], kind, site.id, None, f"{name} limit {limit:g} kW of the connection")
        for name, keys, comp, kind in (("import", self.cp_oi_keys, "cp_import_over_kw", "congestion_import_limit"),
                                       ("export", self.cp_oe_keys, "cp_export_over_kw", "congestion_export_limit")):
            if not keys:
                continue
            vals = values(getattr(self.block, comp))
            for p, cp in enumerate(self.points):
                amount = np.zeros(T)
                for k, (pk, t) in enumerate(keys):
                    if pk == p:
                        amount[t] = vals[k]
                # the overflow includes the risk margin; a breach is what the point forecast itself exceeds
                amount = np.clip(amount - self._margin(p, name), 0.0, None)
                site_ids = ",".join(self.sites[s].id for s in cp.sites)
                out += self._runs(amount, kind, site_ids, cp.id, f"{name} limit of congestion point {cp.id}")
        return out

    def margin_notes(self, values) -> list[str]:
        """Congestion points where the schedule keeps within the limit at the point forecast but not with the
        whole risk margin (the quantile load would breach it): the planned risk, stated."""
        notes = []
        for name, keys, comp in (("import", self.cp_oi_keys, "cp_import_over_kw"),
                                 ("export", self.cp_oe_keys, "cp_export_over_kw")):
            if not keys:
                continue
            vals = values(getattr(self.block, comp))
            for p, cp in enumerate(self.points):
                short = np.zeros(self.h.n)
                for k, (pk, t) in enumerate(keys):
                    if pk == p:
                        short[t] = min(vals[k], self._margin(p, name)[t])
                if (short > 1e-3).any():
                    notes.append(f"congestion point {cp.id}: the {name} limit holds at the point forecast but not "
                                 f"at the {cp.quantile:g} load quantile in {int((short > 1e-3).sum())} intervals "
                                 f"(short by up to {short.max():.3f} kW)")
        return notes

    def _runs(self, amount: np.ndarray, kind: str, site_id: str, cp: str | None, what: str) -> list[Violation]:
        out = []
        for a, b in runs(amount > 1e-3):
            seg = amount[a:b]
            out.append(Violation(kind=kind, site_id=site_id, asset_id=None, congestion_point=cp,
                                 start=self.h.index[a], end=self.h.ends[b - 1], amount=float(seg.max()), unit="kW",
                                 detail=f"{what} exceeded by up to {seg.max():.3f} kW "
                                        f"({seg.sum() * self.h.dt_h:.3f} kWh over {b - a} intervals)"))
        return out


@dataclass
class SiteTerms:
    """The power each site's assets draw: ``const_kw[s, t]`` plus the terms ``coef * x[col]`` at (site, interval),
    gathered from every formulation's :class:`PowerTerms`."""

    const_kw: np.ndarray  # (sites, T)
    _parts: list[tuple[np.ndarray, ...]] = field(default_factory=list)

    @classmethod
    def empty(cls, n_sites: int, T: int) -> SiteTerms:
        return cls(np.zeros((n_sites, T)))

    def add(self, site_of_entry: list[int], terms: PowerTerms) -> None:
        """One formulation's terms (``site_of_entry``: the site index of each of its entries)."""
        sites = np.asarray(site_of_entry, dtype=np.int64)
        if sites.size:
            np.add.at(self.const_kw, sites, terms.const_kw)
        entry, t, coef, col = terms.arrays()
        self._parts.append((sites[entry] if sites.size else entry, t, coef, col))

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(site, interval, coefficient, column) of every term."""
        if not self._parts:
            empty = np.zeros(0, dtype=np.int64)
            return empty, empty, np.zeros(0), empty
        return tuple(np.concatenate([p[k] for p in self._parts]) for k in range(4))
