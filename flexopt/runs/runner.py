"""One scheduling run from portfolio file to files on disk, timed stage by stage.

The CLI, the demo and the benchmarks all go through :func:`run_schedule`, so what an operator runs
is what is measured.
"""

from __future__ import annotations

import datetime as dt
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flexopt.config.loader import LoadedPortfolio, PortfolioError, load_portfolio, series_refs
from flexopt.data.checks import check_inputs
from flexopt.data.inputs import Horizon, Inputs
from flexopt.runs.files import write_frame, write_json
from flexopt.runs.store import StorageError, new_run, sha256_of
from flexopt.version import __version__


@dataclass
class RunRequest:
    portfolio_path: Path
    kind: str  # "day-ahead" or "intraday"
    day: dt.date
    start: dt.datetime | None = None  # intraday: first interval (local or aware); None = whole day
    out: Path | None = None
    store: Path = Path("runs")
    mip_gap: float = 0.005
    time_limit_s: float | None = None
    threads: int | None = None
    initial_state: dict[str, dict] = field(default_factory=dict)  # the solver's: {asset: {state key: value}}
    state_source: str = ""
    state_warnings: list[str] = field(default_factory=list)  # assets that start from their configuration
    # intraday: run.json's initial_state (per asset source, at, values, reason) and how telemetry was looked up
    state_record: dict[str, dict] = field(default_factory=dict)
    state_telemetry: dict | None = None


@dataclass
class RunOutcome:
    directory: Path
    result: Any
    kpis: dict
    timings_s: dict[str, float]


def horizon_for(loaded: LoadedPortfolio, request: RunRequest) -> Horizon:
    info = loaded.portfolio.portfolio
    if request.start is None:
        return Horizon.for_day(request.day, info.timezone, info.resolution_min)
    end = dt.datetime.combine(request.day + dt.timedelta(days=1), dt.time())
    return Horizon.between(request.start, end, info.timezone, info.resolution_min)


def run_schedule(request: RunRequest, progress: Callable[[str], None] = lambda _m: None) -> RunOutcome:
    """Load, check the destination, read the data, solve, write. The destination is claimed right after the
    portfolio file is read, so an unusable ``--store`` or ``--out`` fails before data are read or solved;
    a versioned run gets its number only when it is complete (concurrent runs all land)."""
    from flexopt.scheduling.problem import schedule
    from flexopt.solver.options import SolveOptions

    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    progress(f"loading {request.portfolio_path}")
    loaded = load_portfolio(request.portfolio_path)
    problems = check_inputs(loaded)  # every file whole, as validate does: bad data fails before anything runs
    if problems:
        raise PortfolioError(problems)
    horizon = horizon_for(loaded, request)
    inputs = Inputs(loaded, horizon)
    with new_run(request.store, loaded.portfolio.portfolio.name, request.day, request.kind,
                 request.out) as target:
        for leftover in target.cleaned:
            progress(str(leftover))
        used = {name for _, name in series_refs(loaded.portfolio)}
        sources = loaded.portfolio.data_sources
        progress(f"reading {len(used)} data sources")
        for name in sources:  # read every series now: bad data fails before the solve
            if name in used:
                if sources[name].kind == "history":
                    progress(f"forecasting {name} from its history")
                inputs.source(name)
        timings["load"] = time.perf_counter() - t0

        options = SolveOptions(mip_gap=request.mip_gap, time_limit_s=request.time_limit_s, threads=request.threads)
        result = schedule(loaded, inputs, options, initial_state=request.initial_state or None, progress=progress)
        for stage in ("build", "solve", "extract"):
            timings[stage] = float(result.kpis.get("timings_s", {}).get(stage, float("nan")))

        t_write = time.perf_counter()
        progress(f"writing the run in {request.out or target.tmp.parent}"
                 + ("" if request.out else " (numbered when complete)"))
        kpis = dict(result.kpis)
        tmp = target.tmp
        try:
            written = (write_frame(result.schedule, tmp, "schedule") + write_frame(result.sites, tmp, "sites")
                       + write_frame(result.states, tmp, "states"))
            timings["write"] = time.perf_counter() - t_write
            timings["total"] = time.perf_counter() - t0
            kpis["timings_s"] = {**kpis.get("timings_s", {}), **timings}
            write_json(kpis, tmp / "kpis.json")
            write_json(_run_record(loaded, request, horizon, inputs, options, written), tmp / "run.json")
        except OSError as exc:
            raise StorageError(f"cannot write the run in {tmp.parent}: {exc.strerror or exc}") from None
        directory = target.commit()
    progress(f"written {directory}")
    return RunOutcome(directory=directory, result=result, kpis=kpis, timings_s=timings)


def _run_record(loaded: LoadedPortfolio, request: RunRequest, horizon: Horizon, inputs: Inputs, options,
                written: list[Path]) -> dict:
    sources = {}
    for name, src in loaded.portfolio.data_sources.items():
        if name in inputs.reports:
            sources[name] = {
                "path": str(src.path), "sha256": sha256_of([Path(src.path)]), "unit": src.unit,
                "kind": src.kind, "synthetic": src.synthetic, "model": inputs.models.get(name, ""),
                "report": inputs.reports[name].summary(),
            }
    return {
        "flexopt_version": __version__,
        "python": platform.python_version(),
        "created_utc": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "kind": request.kind,
        "portfolio": {"name": loaded.portfolio.portfolio.name, "path": str(loaded.path),
                      "files": [str(p) for p in loaded.files], "sha256": sha256_of(loaded.files)},
        "date": request.day.isoformat(),
        "timezone": horizon.tz,
        "horizon": {"start_utc": horizon.index[0].isoformat(), "end_utc": horizon.ends[-1].isoformat(),
                    "intervals": horizon.n, "resolution_min": round(horizon.dt_h * 60)},
        "options": {"mip_gap": options.mip_gap, "time_limit_s": options.time_limit_s, "threads": options.threads},
        "initial_state": request.state_record or request.initial_state, "initial_state_source": request.state_source,
        "initial_state_warnings": request.state_warnings,
        **({"initial_state_telemetry": request.state_telemetry} if request.state_telemetry is not None else {}),
        "input_files": sources,
        "outputs": [p.name for p in written] + ["kpis.json", "run.json"],
    }
