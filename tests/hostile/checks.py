"""What an accepted hostile case must satisfy beyond exit code 0: the single place to plug in a physics check.

``check_run(run_dir)`` returns a list of problems (empty when the run is right): what every run must hold (the
files, finite numbers, one row per asset and interval), then the independent physics check (``flexopt check``)
against the portfolio the run records: every breach it finds must be one the run's kpis.json reports.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd

RUN_FILES = ("schedule.parquet", "schedule.csv", "sites.parquet", "sites.csv", "kpis.json", "run.json")


def find_runs(case_dir: Path) -> list[Path]:
    """Every run folder written below a case (whatever the store layout)."""
    return sorted(p.parent for p in case_dir.rglob("run.json") if not p.parent.name.startswith("."))


def check_run(run_dir: Path) -> list[str]:
    problems = [f"{name} missing" for name in RUN_FILES if not (run_dir / name).is_file()]
    if problems:
        return problems
    schedule = pd.read_parquet(run_dir / "schedule.parquet")
    for column in ("power_kw", "baseline_kw"):
        values = schedule[column].to_numpy(dtype=float)
        if not all(math.isfinite(v) for v in values):
            problems.append(f"schedule.{column} holds non-finite values")
    per_interval = schedule.groupby("interval_start")["asset_id"].nunique()
    if per_interval.nunique() != 1:
        problems.append("not every interval has a row for every asset")
    kpis = json.loads((run_dir / "kpis.json").read_text())
    if not math.isfinite(kpis.get("cost_eur", float("nan"))):
        problems.append("cost_eur is not finite")
    if not problems:
        from flexopt.check import check_run as physics_check

        portfolio = Path(json.loads((run_dir / "run.json").read_text())["portfolio"]["path"])
        result = physics_check(portfolio, run_dir)
        problems += [f"unreported breach: {b.kind} {b.subject} interval {b.t}: {b.amount:g} {b.unit} ({b.note})"
                     for b in result.unreported]
    return problems


def violation_count(run_dir: Path) -> int:
    violations = json.loads((run_dir / "kpis.json").read_text()).get("violations", {})
    return violations.get("count", 0) if isinstance(violations, dict) else len(violations)
