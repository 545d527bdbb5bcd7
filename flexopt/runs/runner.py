"""One scheduling run from portfolio file to files on disk, timed stage by stage.

The CLI, the demo and the benchmarks all go through :func:`run_schedule`, so what an operator runs
is what is measured.
"""

from __future__ import annotations

import datetime as dt
import os
import platform
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from flexopt.config.loader import LoadedPortfolio, PortfolioError, load_portfolio, series_refs
from flexopt.data.checks import check_inputs
from flexopt.data.dso_limits import COLUMNS
from flexopt.data.inputs import Horizon, Inputs
from flexopt.data.limit_ledger import LEDGER_NAME, active_windows, window_record
from flexopt.runs.files import write_frame, write_json
from flexopt.runs.horizon import HorizonPlan, plan_horizon
from flexopt.runs.intraday import StartStates
from flexopt.runs.locks import held
from flexopt.runs.store import StorageError, check_writable, new_run, schedule_lock_path, sha256_of, uftp_dir
from flexopt.scheduling.gc_pause import gc_paused
from flexopt.scheduling.memory import peak_rss_mb
from flexopt.version import __version__

if TYPE_CHECKING:
    from flexopt.runs.correction import Corrections

StateResolver = Callable[[LoadedPortfolio], StartStates]  # intraday: the start states, read under the lock
Corrector = Callable[[LoadedPortfolio, Inputs], "Corrections"]  # intraday: forecast corrections from telemetry
DEFAULT_WAIT_S = 60.0
LIMIT_WINDOWS_FILE = "limit_windows.csv"


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
    horizon_h: float | None = None  # None: day-ahead its local day, intraday DEFAULT_INTRADAY_H (runs/horizon.py)
    wait_s: float = DEFAULT_WAIT_S  # longest wait for another schedule run of the portfolio in the same store
    resolve_state: StateResolver | None = None  # the start states from the store, read under the lock
    correct: Corrector | None = None  # intraday: the forecast corrections, once the inputs are read
    cluster: str | None = None  # local:N or tcp://HOST:PORT: the zones solved on a Dask cluster (scheduling/zones)
    write_model: Path | None = None  # the whole model as an LP or MPS file before it is solved (debugging)


@dataclass
class RunOutcome:
    directory: Path
    result: Any
    kpis: dict
    timings_s: dict[str, float]
    loaded: LoadedPortfolio | None = None  # the portfolio the run was made from


def horizon_for(loaded: LoadedPortfolio, request: RunRequest) -> Horizon:
    """The intervals the run schedules (rules: :mod:`flexopt.runs.horizon`)."""
    return plan_horizon(loaded, request.kind, request.day, request.start, request.horizon_h).horizon


def run_schedule(request: RunRequest, progress: Callable[[str], None] = lambda _m: None,
                 warn: Callable[[str], None] | None = None) -> RunOutcome:
    """Load, take the store's lock, read the start states, check the destination, read the data, solve, write.

    A run that writes a version into the store holds the portfolio's schedule lock from before it reads the
    start states until its version is in place, so runs from cron never overlap: a second one waits at most
    ``request.wait_s`` and then raises :class:`flexopt.runs.locks.LockBusy` before any work. The destination is
    claimed before data are read or solved; a versioned run gets its number only when it is complete."""
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    progress(f"loading {request.portfolio_path}")
    loaded = load_portfolio(request.portfolio_path)
    with _lock(loaded, request, progress) as waited_s, gc_paused():  # rest of the run too (forecasts, frames)
        timings["wait"] = waited_s
        outcome = _run_locked(request, loaded, progress, warn or progress, timings, t0)
    progress(f"written {outcome.directory}")
    return outcome


@contextmanager
def _lock(loaded: LoadedPortfolio, request: RunRequest, progress: Callable[[str], None]) -> Iterator[float]:
    """The portfolio's schedule lock in the store, for runs that write a version there; none for ``--out``."""
    if request.out is not None:
        yield 0.0
        return
    check_writable(request.store, "--store")
    path = schedule_lock_path(request.store, loaded.portfolio.portfolio.name)
    what = f"schedule {request.kind} {request.day}" + (f" from {request.start:%H:%M}" if request.start else "")
    owner = {"pid": os.getpid(), "host": socket.gethostname(), "what": what,
             "since_utc": dt.datetime.now(dt.UTC).isoformat(timespec="seconds")}
    with held(path, request.wait_s, owner, on_wait=progress) as waited_s:
        yield waited_s


def _run_locked(request: RunRequest, loaded: LoadedPortfolio, progress: Callable[[str], None],
                warn: Callable[[str], None], timings: dict[str, float], t0: float) -> RunOutcome:
    from flexopt.scheduling.problem import schedule
    from flexopt.solver.options import SolveOptions

    t_state = time.perf_counter()
    if request.resolve_state is not None:
        found = request.resolve_state(loaded)
        request.initial_state, request.state_source = found.values, found.source
        request.state_warnings, request.state_record = found.warnings, found.record
        counts = ", ".join(f"{found.count(s)} from {s}" for s in ("telemetry", "schedule", "file", "config")
                           if found.count(s))
        progress(f"asset states: {counts or 'none needed'}")
        for text in found.warnings:
            warn(text)
    timings["state"] = time.perf_counter() - t_state
    problems = check_inputs(loaded)  # every file whole, as validate does: bad data fails before anything runs
    if problems:
        raise PortfolioError(problems)
    plan = plan_horizon(loaded, request.kind, request.day, request.start, request.horizon_h)
    horizon = plan.horizon
    progress(f"horizon {horizon.local[0]:%Y-%m-%d %H:%M} to {horizon.ends[-1].tz_convert(horizon.tz):%Y-%m-%d %H:%M}"
             f" ({horizon.n} intervals)")
    for note in plan.notes:
        progress(f"horizon {note}")
    inputs = Inputs(loaded, horizon)
    inputs.limit_windows = ordered_windows(loaded, request.store)
    if inputs.limit_windows:
        progress(f"{len(inputs.limit_windows)} limit windows ordered by the DSO (UFTP) in force")
    with new_run(request.store, loaded.portfolio.portfolio.name, request.day, request.kind,
                 request.out) as target:
        for leftover in target.cleaned:
            progress(str(leftover))
        timings["load"] = time.perf_counter() - t0 - timings["state"] - timings["wait"]
        t_inputs = time.perf_counter()
        used = {name for _, name in series_refs(loaded.portfolio)}
        sources = loaded.portfolio.data_sources
        progress(f"reading {len(used)} data sources")
        for name in sources:  # read every series now: bad data fails before the solve
            if name in used:
                if sources[name].kind == "history":
                    progress(f"forecasting {name} from its history")
                inputs.source(name)
        timings["inputs"] = time.perf_counter() - t_inputs
        corrections = None
        if request.correct is not None:
            t_correct = time.perf_counter()
            corrections = request.correct(loaded, inputs)
            inputs.corrections_kw.update(corrections.kw)
            for text in corrections.warnings:
                warn(text)
            timings["correction"] = time.perf_counter() - t_correct
            if corrections.kw:
                progress(f"forecast corrected from telemetry for {len(corrections.kw)} asset(s), "
                         f"{corrections.moved_kwh:.1f} kWh moved")

        options = SolveOptions(mip_gap=request.mip_gap, time_limit_s=request.time_limit_s, threads=request.threads,
                               write_model=None if request.write_model is None else str(request.write_model))
        memory = {"inputs": peak_rss_mb()}
        if request.cluster:
            from flexopt.scheduling.zones import schedule_on_cluster

            result = schedule_on_cluster(loaded, inputs, options, request.cluster,
                                         initial_state=request.initial_state or None, progress=progress)
        else:
            result = schedule(loaded, inputs, options, initial_state=request.initial_state or None,
                              progress=progress)
        for stage in ("build", "translate", "solve", "extract", "cluster", "merge"):
            if stage in result.kpis.get("timings_s", {}) or stage not in ("cluster", "merge"):
                timings[stage] = float(result.kpis.get("timings_s", {}).get(stage, float("nan")))

        t_write = time.perf_counter()
        progress(f"writing the run in {request.out or target.tmp.parent}"
                 + ("" if request.out else " (numbered when complete)"))
        kpis = dict(result.kpis)
        tmp = target.tmp
        try:
            written = (write_frame(result.schedule, tmp, "schedule") + write_frame(result.sites, tmp, "sites")
                       + write_frame(result.states, tmp, "states"))
            if corrections is not None and len(corrections.frame):
                written += write_frame(corrections.frame, tmp, "corrections")
            if inputs.limit_windows:  # flexopt check holds the run to them as to the DSO limits file
                written.append(write_limit_windows(inputs.limit_windows, tmp))
            timings["write"] = time.perf_counter() - t_write
            timings["total"] = time.perf_counter() - t0
            kpis["timings_s"] = {**kpis.get("timings_s", {}), **timings}
            kpis["peak_rss_mb"] = {**memory, **kpis.get("peak_rss_mb", {}), "write": peak_rss_mb()}
            if corrections is not None:
                kpis["forecast_correction_kwh"] = round(corrections.moved_kwh, 6)
            write_json(kpis, tmp / "kpis.json")
            record = _run_record(loaded, request, plan, inputs, options, written)
            if corrections is not None:
                record["forecast_correction"] = corrections.record
            write_json(record, tmp / "run.json")
        except OSError as exc:
            raise StorageError(f"cannot write the run in {tmp.parent}: {exc.strerror or exc}") from None
        directory = target.commit()
    return RunOutcome(directory=directory, result=result, kpis=kpis, timings_s=timings, loaded=loaded)


def ordered_windows(loaded: LoadedPortfolio, store: Path) -> list:
    """The limit windows of the DSO's orders in force (UFTP), for a portfolio that trades; none otherwise."""
    if loaded.portfolio.uftp is None:
        return []
    ledger = uftp_dir(store, loaded.portfolio.portfolio.name) / LEDGER_NAME
    return active_windows(ledger, {cp.id for cp in loaded.portfolio.congestion_points})


def write_limit_windows(windows: list, directory: Path) -> Path:
    """``limit_windows.csv`` in the DSO limits file's columns: the ordered limits the run was held to."""
    frame = pd.DataFrame([window_record(w) for w in windows], columns=list(COLUMNS))
    path = directory / LIMIT_WINDOWS_FILE
    frame.to_csv(path, index=False)
    return path


def _run_record(loaded: LoadedPortfolio, request: RunRequest, plan: HorizonPlan, inputs: Inputs, options,
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
        "timezone": plan.horizon.tz,
        "horizon": plan.record(),
        "options": {"mip_gap": options.mip_gap, "time_limit_s": options.time_limit_s, "threads": options.threads,
                    **({"cluster": request.cluster} if request.cluster else {})},
        "initial_state": request.state_record or request.initial_state, "initial_state_source": request.state_source,
        "initial_state_warnings": request.state_warnings,
        **({"initial_state_telemetry": request.state_telemetry} if request.state_telemetry is not None else {}),
        "input_files": sources,
        "outputs": [p.name for p in written] + ["kpis.json", "run.json"],
    }
