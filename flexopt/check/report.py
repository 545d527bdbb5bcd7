"""Breaches as runs of consecutive intervals, printed as a table (local time shown) or written as JSON (UTC)."""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from itertools import groupby

import pandas as pd
from rich.console import Console
from rich.table import Table

from flexopt.check.breaches import KINDS, Breach
from flexopt.check.checker import CheckResult
from flexopt.check.horizon import RunHorizon


@dataclass(frozen=True)
class BreachRun:
    """Consecutive intervals with the same breach of the same subject; amount is the largest, value and limit
    are taken where it is largest."""

    kind: str
    site_id: str | None
    asset_id: str | None
    congestion_point: str | None
    start: pd.Timestamp | None  # UTC; None for run-wide breaches (cost, horizon)
    end: pd.Timestamp | None
    intervals: int
    amount: float
    unit: str
    value: float | None
    limit: float | None
    reported: bool
    note: str

    @property
    def subject(self) -> str:
        return self.asset_id or self.congestion_point or self.site_id or "run"


def breach_runs(breaches: list[Breach], horizon: RunHorizon) -> list[BreachRun]:
    def key(b: Breach):
        return (b.kind, b.site_id or "", b.asset_id or "", b.congestion_point or "", b.note, b.unit, b.reported)

    out = []
    for _, items in groupby(sorted(breaches, key=lambda b: (key(b), -1 if b.t is None else b.t)), key=key):
        items = list(items)
        runs: list[list[Breach]] = []
        for b in items:
            if runs and b.t is not None and runs[-1][-1].t is not None and b.t == runs[-1][-1].t + 1:
                runs[-1].append(b)
            else:
                runs.append([b])
        for run in runs:
            top = max(run, key=lambda b: -math.inf if math.isnan(b.amount) else b.amount)
            first, last = run[0].t, run[-1].t
            out.append(BreachRun(
                top.kind, top.site_id, top.asset_id, top.congestion_point,
                None if first is None else horizon.index[first], None if last is None else horizon.ends[last],
                len(run), top.amount, top.unit, top.value, top.limit, top.reported, top.note))
    return sorted(out, key=lambda r: (r.reported, r.start or pd.Timestamp(0, tz="UTC"), r.kind, r.subject))


def counts(runs: list[BreachRun]) -> dict[str, dict[str, int]]:
    out: dict[str, Counter] = {}
    for r in runs:
        c = out.setdefault(r.kind, Counter())
        c["runs"] += 1
        c["intervals"] += r.intervals
        c["unreported_runs"] += not r.reported
    return {k: dict(v) for k, v in sorted(out.items())}


def _local(ts: pd.Timestamp | None, tz: str) -> str:
    return "" if ts is None else ts.tz_convert(tz).strftime("%Y-%m-%d %H:%M %Z")


def _num(x: float | None) -> str:
    return "" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:,.4g}"


def print_report(result: CheckResult, console: Console) -> list[BreachRun]:
    runs = breach_runs(result.breaches, result.horizon)
    tz = result.horizon.tz
    head = f"{result.run_dir} against {result.portfolio}: {result.horizon.n} intervals"
    if not runs:
        console.print(f"{head}; [green]no breach[/green]", highlight=False)
        return runs
    table = Table("kind", "asset / site", f"from ({tz})", "to", "n", "amount", "value", "limit", "reported", "what",
                  title=head, title_justify="left")
    for r in runs:
        table.add_row(r.kind, r.subject, _local(r.start, tz), _local(r.end, tz), str(r.intervals),
                      f"{_num(r.amount)} {r.unit}", _num(r.value), _num(r.limit),
                      "yes" if r.reported else "[bold red]no[/bold red]", r.note)
    console.print(table)
    summary = Table("kind", "runs", "intervals", "unreported runs", "meaning", title="by kind", title_justify="left")
    for kind, c in counts(runs).items():
        summary.add_row(kind, str(c["runs"]), str(c["intervals"]), str(c["unreported_runs"]), KINDS[kind][1])
    console.print(summary)
    bad = sum(not r.reported for r in runs)
    console.print(f"[bold red]{bad} unreported breach run(s)[/bold red]" if bad else "[green]every breach is "
                  "reported by the run[/green]")
    return runs


def as_json(result: CheckResult) -> dict:
    runs = breach_runs(result.breaches, result.horizon)
    tz = result.horizon.tz

    def iso(ts):
        return None if ts is None else ts.isoformat()

    def num(x):
        return None if x is None or (isinstance(x, float) and not math.isfinite(x)) else x

    return {
        "run_dir": str(result.run_dir), "portfolio": str(result.portfolio),
        "horizon": {"start_utc": iso(result.horizon.index[0]), "end_utc": iso(result.horizon.ends[-1]),
                    "intervals": result.horizon.n, "timezone": tz},
        "unreported_runs": sum(not r.reported for r in runs),
        "counts": counts(runs),
        "breaches": [{"kind": r.kind, "site_id": r.site_id, "asset_id": r.asset_id,
                      "congestion_point": r.congestion_point, "start_utc": iso(r.start), "end_utc": iso(r.end),
                      "start_local": _local(r.start, tz) or None, "intervals": r.intervals, "amount": num(r.amount),
                      "unit": r.unit, "value": num(r.value), "limit": num(r.limit), "reported": r.reported,
                      "reported_by": KINDS[r.kind][0], "note": r.note} for r in runs],
    }
