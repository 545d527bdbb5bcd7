"""A portfolio's independent zones solved on a Dask cluster, merged into one schedule.

A congestion point with its sites, or a site in none, shares nothing with the rest of the portfolio: no row of the
model joins it to another. Each such zone is scheduled on a worker as a portfolio of its own, with the very code
of an in-process run (:func:`flexopt.scheduling.problem.schedule`), from plain data: its sites, the series already
read and forecast here (a worker reads no files), its start states and the solve options (HiGHS single-threaded).
The results are merged here, with the merged gap computed as the whole run's.

Each zone is solved at the requested relative gap; when the zones' objectives differ in sign that is not enough for
the sum, and the zones still open are solved once more at the gap that makes the sum fit. A worker that dies has its
zone retried on another one (Dask's ``allowed-failures``, 1 for a cluster flexopt starts); when that one dies too,
the run fails with :class:`ClusterError` naming the zone. A zone whose solve raises on the worker (no solution, bad
data) fails the run the same way, with the zone, its sites and the worker's error in one message; workers flexopt
starts log that failure in one line, not as distributed's block with the remote traceback.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pandas as pd

from flexopt.config.loader import LoadedPortfolio
from flexopt.data.inputs import Horizon, Inputs
from flexopt.scheduling.grid import dso_windows
from flexopt.scheduling.memory import peak_rss_mb
from flexopt.scheduling.problem import ScheduleResult, schedule
from flexopt.solver.highs import relative_gap
from flexopt.solver.options import SolveOptions

ALLOWED_FAILURES = 1  # a zone whose worker died is retried once elsewhere
CONNECT_TIMEOUT_S = 20.0


class ClusterError(RuntimeError):
    """The cluster cannot be reached or used, or a zone could not be solved on it; the message says which and why."""


@dataclass(frozen=True)
class Zone:
    """Sites that are scheduled together: a congestion point's (``name`` is its id), or one site alone."""

    name: str
    site_ids: tuple[str, ...]
    point_ids: tuple[str, ...]


def zones(loaded: LoadedPortfolio) -> list[Zone]:
    """The portfolio's independent zones, largest first. Congestion points without sites go with the first zone
    (their rows are written as in an in-process run)."""
    pf = loaded.portfolio
    out = []
    for cp in pf.congestion_points:
        members = tuple(s.id for s in pf.sites if s.congestion_point == cp.id)
        if members:
            out.append(Zone(cp.id, members, (cp.id,)))
    out += [Zone(s.id, (s.id,), ()) for s in pf.sites if s.congestion_point is None]
    out.sort(key=lambda z: -sum(len(s.assets) for s in pf.sites if s.id in z.site_ids))
    empty = tuple(cp.id for cp in pf.congestion_points if not any(s.congestion_point == cp.id for s in pf.sites))
    if empty and out:
        out[0] = dataclasses.replace(out[0], point_ids=out[0].point_ids + empty)
    return out


# the first round's gap for each zone (the requested gap when that is looser): most zones then stop at their rounded
# schedule, and only the few whose gaps keep the merged gap from fitting are solved again at the requested gap
LOOSE_ZONE_GAP = 0.02


def zone_portfolio(loaded: LoadedPortfolio, zone: Zone) -> LoadedPortfolio:
    """The portfolio of one zone: its sites and congestion points, everything else as it is."""
    pf = loaded.portfolio
    part = pf.model_copy(update={"sites": [s for s in pf.sites if s.id in zone.site_ids],
                                 "congestion_points": [cp for cp in pf.congestion_points if cp.id in zone.point_ids]})
    return dataclasses.replace(loaded, portfolio=part)


def solve_zone(task: dict[str, Any]) -> ScheduleResult:
    """On a worker: one zone scheduled from the plain data of :func:`schedule_on_cluster`."""
    from flexopt.config.plugins import load_plugins

    load_plugins()  # the zone's asset types and protocols, as in the process that sent it
    loaded = task["loaded"]
    inputs = Inputs.from_portable(loaded, Horizon(task["index"], task["tz"]), task["inputs"])
    return schedule(loaded, inputs, task["options"], initial_state=task["initial_state"])


def schedule_on_cluster(loaded: LoadedPortfolio, inputs: Inputs, options: SolveOptions, cluster: str, *,
                        initial_state: dict[str, dict] | None = None,
                        progress: Callable[[str], None] | None = None) -> ScheduleResult:
    """The portfolio scheduled zone by zone on the cluster ``cluster`` (``local:N`` or ``tcp://HOST:PORT``)."""
    say = progress or (lambda _m: None)
    t0 = time.perf_counter()
    if inputs.dso_windows is None:
        inputs.dso_windows = dso_windows(loaded.portfolio, loaded.base_dir)
    parts = zones(loaded)
    portable = inputs.portable()
    worker_options = dataclasses.replace(options, threads=1, verbose=False)
    states = initial_state or {}

    def task(zone: Zone, gap: float) -> dict[str, Any]:
        sub = zone_portfolio(loaded, zone)
        ids = {a.id for _s, a in sub.portfolio.assets()}
        return {"loaded": sub, "index": inputs.horizon.index, "tz": inputs.horizon.tz, "inputs": portable,
                "options": dataclasses.replace(worker_options, mip_gap=gap),
                "initial_state": {a: s for a, s in states.items() if a in ids}, "zone": zone.name}

    with connect(cluster) as client:
        workers = len(client.scheduler_info().get("workers", {}))
        say(f"solving {len(parts)} zones on {cluster} ({workers} workers)")
        # first every zone at a loose gap (most stop at their rounded schedule), then only the zones whose gaps
        # keep the sum from fitting, at the requested gap: the zones share one budget, as blocks do in process
        first_gap = max(options.mip_gap, LOOSE_ZONE_GAP) if len(parts) > 1 else options.mip_gap
        results = _solve(client, parts, [task(z, first_gap) for z in parts])
        merged_gap = _gap(results)
        if merged_gap > options.mip_gap:
            tighter = options.mip_gap * _sign_ratio(results)
            again = _to_tighten(results, options.mip_gap, tighter)
            say(f"merged gap {100 * merged_gap:.3f}%: {len(again)} zones again at {100 * tighter:.4f}%")
            for k, r in zip(again, _solve(client, [parts[k] for k in again],
                                          [task(parts[k], tighter) for k in again]), strict=True):
                results[k] = r
    t_merge = time.perf_counter()
    merged = merge(results, parts, cluster, workers, t_merge - t0)
    merged.kpis["timings_s"]["merge"] = round(time.perf_counter() - t_merge, 4)
    # this process's peak after the zones came back and were merged (build, solve and extract ran on the workers:
    # the largest worker's peak is solver.components.worker_peak_rss_mb)
    merged.kpis["peak_rss_mb"] = {"cluster": peak_rss_mb()}
    return merged


def _solve(client, parts: list[Zone], tasks: list[dict[str, Any]]) -> list[ScheduleResult]:
    from distributed import KilledWorker, wait

    futures = [client.submit(solve_zone, t, key=f"flexopt-zone-{z.name}-{time.time_ns()}", pure=False)
               for z, t in zip(parts, tasks, strict=True)]
    wait(futures)
    out, lost, failed = [], [], []
    for zone, future in zip(parts, futures, strict=True):
        try:
            out.append(future.result())
        except KilledWorker:
            lost.append(zone)
        except Exception as exc:  # raised in solve_zone on the worker (or the task lost): the zone cannot be had
            where = "the worker solving it failed" if future.status == "error" else "the cluster lost its task"
            failed.append(f"{_named(zone)}: {where}: {type(exc).__name__}: {_one_line(exc)}")
    if lost:  # a task running on a worker that dies counts against it, so the culprit is one of these
        failed.append(f"{'; '.join(_named(z) for z in lost)}: the worker solving it died, and so did the one it was "
                      "retried on; look at the workers' logs (memory, a crash in the solver)")
    if failed:
        raise ClusterError("; ".join(failed))
    return out


def _named(zone: Zone) -> str:
    return f"zone {zone.name} (sites {', '.join(zone.site_ids)})"


def _one_line(exc: BaseException) -> str:
    return "; ".join(line.strip() for line in str(exc).splitlines() if line.strip()) or "(no message)"


class OneLineFailures(logging.Filter):
    """On a worker flexopt started: distributed's "Compute Failed" block (the task, the remote traceback) as one
    line; the run's own error names the zone, its sites and the message."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str) and record.msg.startswith("Compute Failed") and len(record.args or ()) >= 4:
            key, error = record.args[0], record.args[3]  # type: ignore[index]
            record.msg, record.args = "task %s failed: %s", (key, error)
        return True


def _quiet_worker():
    """A worker plug-in that installs :class:`OneLineFailures` (a class made on call: distributed is imported only
    when a cluster is used; it travels to the workers by value, the filter by reference to flexopt)."""
    from distributed.diagnostics.plugin import WorkerPlugin

    class QuietFailures(WorkerPlugin):
        name = "flexopt-one-line-failures"

        def setup(self, worker) -> None:
            logger = logging.getLogger("distributed.worker")
            if not any(isinstance(f, OneLineFailures) for f in logger.filters):
                logger.addFilter(OneLineFailures())

    return QuietFailures()


def _gap(results: list[ScheduleResult]) -> float:
    objective = sum(r.kpis["solver"]["objective"] for r in results)
    bound = sum(r.kpis["solver"]["bound"] for r in results)
    return relative_gap(objective, bound)


def _to_tighten(results: list[ScheduleResult], mip_gap: float, tighter: float) -> list[int]:
    """The zones to solve again at ``tighter`` so that the merged gap fits ``mip_gap``: largest saving first (its
    absolute gap less what it may keep at ``tighter``), until the gaps left add up to 90 % of the budget; every zone
    above ``tighter`` when that is not enough."""
    solvers = [r.kpis["solver"] for r in results]
    budget = 0.9 * mip_gap * abs(sum(s["objective"] for s in solvers))
    gap = [max(s["objective"] - s["bound"], 0.0) for s in solvers]
    keeps = [tighter * abs(s["objective"]) for s in solvers]
    order = sorted(range(len(results)), key=lambda k: -(gap[k] - keeps[k]))
    left, chosen = sum(gap), []
    for k in order:
        if left <= budget or gap[k] <= keeps[k]:
            break
        chosen.append(k)
        left += keeps[k] - gap[k]
    if left > budget:
        return [k for k, s in enumerate(solvers) if s["mip_gap"] > tighter]
    return sorted(chosen)


def _sign_ratio(results: list[ScheduleResult]) -> float:
    """|sum of objectives| / sum of |objectives|: what a zone's relative gap must shrink by for the sum to fit."""
    objectives = [r.kpis["solver"]["objective"] for r in results]
    total = sum(abs(o) for o in objectives)
    return abs(sum(objectives)) / total if total > 0 else 1.0


def merge(results: list[ScheduleResult], parts: list[Zone], cluster: str, workers: int,
          wall_s: float) -> ScheduleResult:
    """One result from the zones': frames side by side, costs and counts added, the merged gap recomputed."""
    kpis = [r.kpis for r in results]
    solvers = [k["solver"] for k in kpis]
    objective, bound = sum(s["objective"] for s in solvers), sum(s["bound"] for s in solvers)
    open_ = next((s for s in solvers if s["termination"] != "optimal"), None)
    cost, base = sum(k["cost_eur"] for k in kpis), sum(k["baseline_cost_eur"] for k in kpis)
    violations = sorted((v for r in results for v in r.violations),
                        key=lambda v: (v.start, v.kind, v.site_id, v.asset_id or ""))
    slowest = max(range(len(results)), key=lambda k: kpis[k]["timings_s"]["solve"])
    sites = pd.concat([r.sites for r in results], ignore_index=True)
    sites = sites.sort_values("level", kind="stable", key=lambda c: c != "site", ignore_index=True)
    merged = {
        "cost_eur": round(cost, 6), "baseline_cost_eur": round(base, 6), "saving_eur": round(base - cost, 6),
        "saving_pct": None if abs(base) < 1e-9 else round(100.0 * (base - cost) / abs(base), 4),
        "peak_import_kw": {key: value for k in kpis for key, value in k["peak_import_kw"].items()},
        "energy_shifted_kwh": round(sum(k["energy_shifted_kwh"] for k in kpis), 6),
        "violations": {"count": len(violations), "list": [v.to_dict() for v in violations]},
        "solver": {
            "name": "highs", "backend": solvers[0]["backend"], "method": "zones on a cluster",
            "status": "kOptimal" if open_ is None else open_["status"],
            "termination": "optimal" if open_ is None else open_["termination"],
            "mip_gap": relative_gap(objective, bound), "bound": bound, "objective": objective,
            **{key: sum(s[key] for s in solvers) for key in ("binaries", "integers", "variables", "constraints")},
            "simultaneous_modes_kwh": _added([s["simultaneous_modes_kwh"] for s in solvers]),
            "components": {"zones": len(parts), "cluster": cluster, "workers": workers,
                           "slowest_zone": parts[slowest].name,
                           "slowest_s": round(kpis[slowest]["timings_s"]["solve"], 4),
                           "zone_s": {z.name: k["timings_s"] for z, k in zip(parts, kpis, strict=True)},
                           "worker_peak_rss_mb": max(k.get("peak_rss_mb", {}).get("extract", 0.0) for k in kpis)},
        },
        # the critical path: the slowest zone's stages; the wall time from connecting to the cluster to the merge
        "timings_s": {**{stage: max(k["timings_s"][stage] for k in kpis)
                         for stage in ("build", "translate", "solve", "extract")}, "cluster": round(wall_s, 4)},
    }
    states = [r.states for r in results if len(r.states)]
    return ScheduleResult(schedule=pd.concat([r.schedule for r in results], ignore_index=True), sites=sites,
                          violations=violations, kpis=merged, notes=[n for r in results for n in r.notes],
                          states=pd.concat(states, ignore_index=True) if states else results[0].states)


def _added(parts: list[dict[str, float]]) -> dict[str, float]:
    out: dict[str, float] = {}
    for part in parts:
        for key, value in part.items():
            out[key] = round(out.get(key, 0.0) + value, 6)
    return out


def parse_cluster(spec: str) -> tuple[str, int | str]:
    """``local:N`` -> ("local", N); ``tcp://HOST:PORT`` -> ("tcp", the address); ValueError with the forms."""
    text = spec.strip()
    if text.startswith("local:"):
        try:
            n = int(text.removeprefix("local:"))
        except ValueError:
            n = 0
        if not 1 <= n <= 256:
            raise ValueError(f"{spec!r}: local:N needs N workers from 1 to 256, e.g. local:2")
        return "local", n
    if text.startswith(("tcp://", "tls://")) and ":" in text.split("://", 1)[1]:
        return "tcp", text
    raise ValueError(f"{spec!r} is not a cluster; use local:N (N worker processes here) or tcp://HOST:PORT (a "
                     "running dask scheduler)")


@contextmanager
def connect(spec: str) -> Iterator[Any]:
    """A Dask client: on a LocalCluster of N single-threaded worker processes started for the run and stopped after
    it, or on the scheduler at tcp://HOST:PORT."""
    import dask
    from distributed import Client, LocalCluster

    kind, where = parse_cluster(spec)
    quiet = {"distributed.scheduler.allowed-failures": ALLOWED_FAILURES, "distributed.admin.tick.limit": "10s"}
    for name in ("distributed", "distributed.worker", "distributed.scheduler", "distributed.nanny"):
        logging.getLogger(name).setLevel(logging.ERROR)
    with dask.config.set(quiet):
        if kind == "local":
            try:
                cluster = LocalCluster(n_workers=int(where), threads_per_worker=1, processes=True,
                                       dashboard_address=None, silence_logs=logging.ERROR)
            except Exception as exc:  # ports, processes: whatever stops a cluster from starting is the reason
                raise ClusterError(f"cannot start a local cluster of {where} workers: {exc}") from None
            try:
                with Client(cluster) as client:
                    client.register_plugin(_quiet_worker())  # their logs are this process's stderr
                    yield client
            finally:
                cluster.close()
            return
        try:
            client = Client(str(where), timeout=CONNECT_TIMEOUT_S)
        except (OSError, TimeoutError) as exc:
            raise ClusterError(f"cannot reach the dask scheduler at {where} within {CONNECT_TIMEOUT_S:g} s "
                               f"({exc}); start one with `dask scheduler` and workers with `dask worker {where}`"
                               ) from None
        try:
            if not client.scheduler_info().get("workers"):
                try:
                    client.wait_for_workers(1, timeout=CONNECT_TIMEOUT_S)
                except TimeoutError:
                    raise ClusterError(f"the dask scheduler at {where} has no workers; start some with "
                                       f"`dask worker {where}`") from None
            yield client
        finally:
            client.close()
