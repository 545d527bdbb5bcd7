"""FlexRequest -> priced FlexOffer options.

The requested ISPs (Disposition Requested, or none given) bound the congestion point's net power: MaxPower caps
it, MinPower floors it (W, load convention: positive is drawn from the grid). The portfolio is re-solved from the
next interval without the request (the reference) and once per option with a share of the requested change as
extra limit windows; an option's price is its extra cost over the reference plus the configured margin, its
power per ISP the change of the congestion point's net power. An option the portfolio cannot fully deliver is
offered for what it can (partial); a request nothing can be offered for gets the reason instead.
"""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass, field

import pandas as pd

from flexopt.data.dso_limits import LimitWindow
from flexopt.uftp import resolve
from flexopt.uftp.isp import ISP, expand, isp_start

TOLERANCE_KW = 1e-3  # below this a change is no change
SAFETY_S = 2.0  # kept between the last solve and the request's deadline, for sending


@dataclass
class RequestedIsp:
    number: int
    start: dt.datetime  # UTC
    max_kw: float | None
    min_kw: float | None

    @property
    def end(self) -> dt.datetime:
        return self.start + ISP


@dataclass
class OptionIsp:
    number: int
    start: dt.datetime
    baseline_kw: float  # the reference schedule's net power at the point
    net_kw: float  # with the option's limits
    max_import_kw: float | None  # the binding limit an order of this option makes
    max_export_kw: float | None

    @property
    def delta_kw(self) -> float:
        return self.net_kw - self.baseline_kw

    def record(self) -> dict:
        return {"number": self.number, "start_utc": self.start.isoformat(), "end_utc": (self.start + ISP).isoformat(),
                "baseline_kw": self.baseline_kw, "net_kw": self.net_kw, "delta_kw": self.delta_kw,
                "max_import_kw": self.max_import_kw, "max_export_kw": self.max_export_kw}


@dataclass
class Option:
    reference: str
    fraction: float
    isps: list[OptionIsp]
    cost_eur: float
    price_eur: float
    partial: bool
    shortfall_kw: float

    def record(self) -> dict:
        return {"reference": self.reference, "fraction": self.fraction, "cost_eur": self.cost_eur,
                "price_eur": self.price_eur, "partial": self.partial, "shortfall_kw": self.shortfall_kw,
                "isps": [i.record() for i in self.isps]}


@dataclass
class Pricing:
    point_id: str
    options: list[Option] = field(default_factory=list)
    reference_cost_eur: float | None = None
    reason: str = ""  # why there is nothing to offer
    notes: list[str] = field(default_factory=list)
    timings_s: dict[str, float] = field(default_factory=dict)


def requested_isps(message, tz: str) -> list[RequestedIsp]:
    """The ISPs the DSO asks for (Disposition Requested; Available ones only inform) with their bounds in kW."""
    day = dt.date(message.period.year, message.period.month, message.period.day)
    out = []
    for number, element in expand(message.isps, day, tz):
        disposition = getattr(element, "disposition", None)
        if disposition is not None and str(disposition) != "Requested":
            continue
        out.append(RequestedIsp(number, isp_start(day, tz, number), float(element.max_power) / 1000.0,
                                float(element.min_power) / 1000.0))
    return out


def option_windows(point_id: str, isps: list[RequestedIsp], baseline: pd.Series,
                   fraction: float) -> dict[int, LimitWindow]:
    """ISP number -> the window asking ``fraction`` of the change from the baseline to the requested bound."""
    out = {}
    for isp in isps:
        p0 = float(baseline.get(pd.Timestamp(isp.start), float("nan")))
        cap = floor = None
        if isp.max_kw is not None and p0 > isp.max_kw + TOLERANCE_KW:
            cap = p0 + fraction * (isp.max_kw - p0)
        if isp.min_kw is not None and p0 < isp.min_kw - TOLERANCE_KW:
            floor = p0 + fraction * (isp.min_kw - p0)
        if cap is not None or floor is not None:
            out[isp.number] = LimitWindow(point_id, pd.Timestamp(isp.start), pd.Timestamp(isp.end), cap,
                                          None if floor is None else -floor)
    return out


def price_request(ctx, point_id: str, isps: list[RequestedIsp], deadline: dt.datetime) -> Pricing:
    """The offer options for ``isps`` at ``point_id``, each solved within the time left before ``deadline``."""
    loaded, cfg = ctx.loaded, ctx.uftp.offers
    pricing = Pricing(point_id)
    now = ctx.now()
    start = resolve.intraday_start(loaded, now)
    late = [i.number for i in isps if i.start < start]
    usable = [i for i in isps if i.start >= start]
    if late:
        pricing.notes.append(f"ISPs {', '.join(map(str, late))} begin before the next interval can be rescheduled "
                             f"({start.isoformat(timespec='minutes')}): not offered")
    if not usable:
        pricing.reason = (f"every requested ISP begins before {start.isoformat(timespec='minutes')}, the first "
                          "interval flexopt can still reschedule")
        return pricing
    solves = len(cfg.option_fractions) + 1
    left_s = (deadline - now).total_seconds() - SAFETY_S
    if left_s < cfg.min_solve_s * solves:
        pricing.reason = (f"the request expires at {deadline.isoformat(timespec='seconds')}: {max(left_s, 0):.1f} s "
                          f"left, {cfg.min_solve_s * solves:.1f} s needed for {solves} solves")
        return pricing
    t0 = time.perf_counter()
    with ctx.solve_lock:
        left_s = (deadline - ctx.now()).total_seconds() - SAFETY_S  # another solve may have held the lock
        if left_s < cfg.min_solve_s * solves:
            pricing.reason = (f"the request expires at {deadline.isoformat(timespec='seconds')}: after waiting for "
                              f"another solve, {max(left_s, 0):.1f} s are left, too few for {solves} solves")
            return pricing
        where = resolve.situation(loaded, ctx.store, now, max(i.end for i in usable), ctx.db)
        pricing.timings_s["states"] = time.perf_counter() - t0
        penalty = loaded.portfolio.penalties.limit_eur_per_kwh
        dt_h = loaded.portfolio.portfolio.resolution_min / 60

        def budget() -> float:
            remaining = (deadline - ctx.now()).total_seconds() - SAFETY_S
            return max(cfg.min_solve_s, remaining / max(solves, 1))

        inputs = resolve.inputs_for(loaded, where)
        reference = resolve.solve(loaded, ctx.store, where, [], mip_gap=ctx.mip_gap, time_limit_s=budget(),
                                  inputs=inputs)
        solves -= 1
        pricing.timings_s["reference"] = time.perf_counter() - t0
        base_cost = resolve.economic_cost(reference, penalty, dt_h)
        pricing.reference_cost_eur = base_cost
        baseline = resolve.point_net(reference, point_id)
        for fraction in cfg.option_fractions:
            windows = option_windows(point_id, usable, baseline, fraction)
            if not windows:
                break
            result = resolve.solve(loaded, ctx.store, where, list(windows.values()), mip_gap=ctx.mip_gap,
                                   time_limit_s=budget(), inputs=inputs)
            solves -= 1
            option = _option(point_id, fraction, windows, baseline, resolve.point_net(result, point_id),
                             resolve.economic_cost(result, penalty, dt_h) - base_cost, cfg)
            if option is not None and not any(_same(o, option) for o in pricing.options):
                pricing.options.append(option)  # a larger share the devices cannot follow adds nothing
        pricing.timings_s["total"] = time.perf_counter() - t0
    if not pricing.options:
        needed = option_windows(point_id, usable, baseline, 1.0)
        pricing.reason = (f"the schedule already keeps congestion point {point_id} within the requested limits in "
                          "every requested ISP: there is no change to offer" if not needed else
                          f"the portfolio cannot move congestion point {point_id} towards the requested limits in "
                          f"ISPs {', '.join(map(str, sorted(needed)))} (its devices are at their limits there)")
    return pricing


def _same(a: Option, b: Option) -> bool:
    return all(abs(x.net_kw - y.net_kw) < TOLERANCE_KW for x, y in zip(a.isps, b.isps, strict=False))


def _option(point_id: str, fraction: float, windows: dict[int, LimitWindow], baseline: pd.Series, net: pd.Series,
            extra_cost_eur: float, cfg) -> Option | None:
    isps, shortfall = [], 0.0
    for number, w in sorted(windows.items()):
        p0, p1 = float(baseline[w.start]), float(net[w.start])
        # binding: the limit asked where it was reached (within the solver's tolerance), else what was reached
        cap = None if w.max_import_kw is None else (
            w.max_import_kw if p1 <= w.max_import_kw + TOLERANCE_KW else p1)
        floor_export = None if w.max_export_kw is None else (
            w.max_export_kw if -p1 <= w.max_export_kw + TOLERANCE_KW else -p1)
        if w.max_import_kw is not None:
            shortfall = max(shortfall, p1 - w.max_import_kw)
        if w.max_export_kw is not None:
            shortfall = max(shortfall, -p1 - w.max_export_kw)
        isps.append(OptionIsp(number, w.start.to_pydatetime(), p0, p1, cap, floor_export))
    if all(abs(i.delta_kw) < TOLERANCE_KW for i in isps):
        return None
    cost = max(extra_cost_eur, 0.0)
    price = round(cost * (1 + cfg.margin_pct / 100) + cfg.margin_eur, 4)
    return Option(f"{point_id}-{round(fraction * 100):d}pct", fraction, isps, extra_cost_eur, price,
                  shortfall > 0.5, max(shortfall, 0.0))
