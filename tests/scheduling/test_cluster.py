"""``--cluster``: the pilots' zones (congestion points, sites in none) scheduled on Dask workers give the schedule
of an in-process run, within the gap, and it passes ``flexopt check``; a worker that dies has its zone retried on
another; a zone that kills every worker it lands on fails the run with exit 3 and the zone's name, and so does a zone
whose solve raises on the worker (with its sites and the worker's message, no remote traceback); a bad cluster is
exit 2 (its form) or 3 (unreachable). The clusters are real: worker processes on 127.0.0.1."""

from __future__ import annotations

import json
import os
from pathlib import Path

import dask
import pytest
from distributed import LocalCluster
from distributed.diagnostics.plugin import WorkerPlugin
from typer.testing import CliRunner

from flexopt.cli import app
from flexopt.scheduling import zones

ROOT = Path(__file__).resolve().parents[2]
PILOTS = ROOT / "examples" / "all_pilots.yaml"
SMALL = ROOT / "examples" / "abadiano.yaml"  # one zone, one site
DAY = "2024-06-25"
ABADIANO = "IDE-ABADIANO-ST-30KV"


def run(*args) -> object:
    return CliRunner().invoke(app, [str(a) for a in args])


def kpis(out: Path) -> dict:
    return json.loads((out / "kpis.json").read_text())


@pytest.fixture(scope="module")
def in_process(tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("alone") / "run"
    result = run("schedule", "day-ahead", PILOTS, "--date", DAY, "--out", out)
    assert result.exit_code == 0, result.output
    return kpis(out)


def close_to(a: dict, b: dict) -> bool:
    gap = max(a["solver"]["mip_gap"], b["solver"]["mip_gap"], 0.005)
    return abs(a["solver"]["objective"] - b["solver"]["objective"]) <= gap * abs(b["solver"]["objective"]) + 1e-6


def test_zones_are_the_congestion_points_and_free_sites():
    from flexopt.config.loader import load_portfolio

    loaded = load_portfolio(PILOTS)
    parts = zones.zones(loaded)
    sites = [s for z in parts for s in z.site_ids]
    assert sorted(sites) == sorted(s.id for s in loaded.portfolio.sites)  # each site in exactly one zone
    assert {z.name for z in parts} >= {cp.id for cp in loaded.portfolio.congestion_points
                                       if any(s.congestion_point == cp.id for s in loaded.portfolio.sites)}
    for z in parts:
        sub = zones.zone_portfolio(loaded, z).portfolio
        assert all(s.congestion_point is None or s.congestion_point in z.point_ids for s in sub.sites)


def test_local_cluster_gives_the_in_process_schedule(tmp_path, in_process):
    out = tmp_path / "run"
    result = run("schedule", "day-ahead", PILOTS, "--date", DAY, "--out", out, "--cluster", "local:2")
    assert result.exit_code == 0, result.output
    k = kpis(out)
    assert close_to(k, in_process), (k["solver"], in_process["solver"])
    assert k["solver"]["mip_gap"] <= 0.005
    components = k["solver"]["components"]
    assert components["workers"] == 2 and components["zones"] >= 8
    # memory: this process's peak after the merge and the largest worker's
    assert set(k["peak_rss_mb"]) >= {"inputs", "cluster", "write"} and components["worker_peak_rss_mb"] > 0
    assert json.loads((out / "run.json").read_text())["options"]["cluster"] == "local:2"
    checked = run("check", PILOTS, out)
    assert checked.exit_code == 0, checked.output


def kill_on_zone(zone: str, marker: str, always: bool) -> WorkerPlugin:
    """A plugin that kills the worker process starting the zone's task: once (a marker file says it happened), or
    always. Defined in a function so that it travels to the workers by value (they cannot import the tests)."""

    class KillOnZone(WorkerPlugin):
        def transition(self, key, start, finish, **kwargs):
            mine = finish == "executing" and f"flexopt-zone-{zone}-" in str(key)
            if mine and (always or not os.path.exists(marker)):
                Path(marker).write_text(str(os.getpid()))
                os._exit(1)

    return KillOnZone()


@pytest.fixture
def cluster():
    with dask.config.set({"distributed.scheduler.allowed-failures": zones.ALLOWED_FAILURES}):
        c = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                         host="127.0.0.1")
    try:
        yield c
    finally:
        c.close()


def register(cluster, plugin) -> None:
    from distributed import Client

    with Client(cluster) as client:
        client.register_plugin(plugin)


def test_a_dead_worker_has_its_zone_retried(tmp_path, cluster, in_process):
    marker = tmp_path / "killed"
    register(cluster, kill_on_zone(ABADIANO, str(marker), always=False))
    out = tmp_path / "run"
    result = run("schedule", "day-ahead", PILOTS, "--date", DAY, "--out", out, "--cluster", cluster.scheduler_address)
    assert marker.exists(), "no worker was killed: the test proves nothing"
    assert result.exit_code == 0, result.output
    assert close_to(kpis(out), in_process)


def test_a_zone_that_kills_every_worker_fails_the_run(tmp_path, cluster):
    register(cluster, kill_on_zone(ABADIANO, str(tmp_path / "killed"), always=True))
    out = tmp_path / "run"
    result = run("schedule", "day-ahead", PILOTS, "--date", DAY, "--out", out, "--cluster", cluster.scheduler_address)
    assert result.exit_code == 3, result.output
    assert f"zone {ABADIANO}" in result.output and "retried" in result.output
    assert not out.exists() or not (out / "schedule.parquet").exists()


def test_bad_clusters_are_clear(tmp_path, monkeypatch):
    result = run("schedule", "day-ahead", PILOTS, "--date", DAY, "--out", tmp_path / "a", "--cluster", "local:0")
    assert result.exit_code == 2 and "local:N" in result.output
    result = run("schedule", "day-ahead", PILOTS, "--date", DAY, "--out", tmp_path / "b", "--cluster", "somewhere")
    assert result.exit_code == 2 and "tcp://HOST:PORT" in result.output
    from flexopt.adapters.sim.util import free_port

    monkeypatch.setattr(zones, "CONNECT_TIMEOUT_S", 2.0)
    address = f"tcp://127.0.0.1:{free_port()}"
    result = run("schedule", "day-ahead", PILOTS, "--date", DAY, "--out", tmp_path / "c", "--cluster", address)
    assert result.exit_code == 3, result.output
    assert "cannot reach the dask scheduler" in result.output



FAILING_SOLVE = """
def dask_setup(worker):
    import flexopt.scheduling.zones as zones
    from flexopt.solver.highs import SolveError

    def schedule(*args, **kwargs):
        raise {error}

    zones.schedule = schedule
"""


@pytest.mark.parametrize(("error", "message"), [
    ('SolveError("HiGHS status kInfeasible: no schedule\\nrelax the limits")',
     "SolveError: HiGHS status kInfeasible: no schedule; relax the limits"),
    ('ValueError("price series has NaN at 2024-06-25T10:00Z")',
     "ValueError: price series has NaN at 2024-06-25T10:00Z"),
], ids=["no-solution", "bad-data"])
def test_a_zone_that_raises_on_its_worker_fails_the_run_with_its_message(tmp_path, capfd, error, message):
    """solve_zone raising on the worker (here through a worker preload that breaks the solve) is exit 3 with the
    zone, its sites and the worker's message in one line; distributed's traceback block is one line too."""
    preload = tmp_path / "failing_solve.py"
    preload.write_text(FAILING_SOLVE.replace("{error}", error))
    out = tmp_path / "run"
    with dask.config.set({"distributed.worker.preload": [str(preload)]}):
        result = run("schedule", "day-ahead", SMALL, "--date", DAY, "--out", out, "--cluster", "local:1")
    assert result.exit_code == 3, result.output
    assert (f"cluster failed: zone {ABADIANO} (sites abadiano-bess): the worker solving it failed: {message}"
            in result.output)
    assert "Traceback" not in result.output
    assert not out.exists() or not (out / "schedule.parquet").exists()
    workers = capfd.readouterr().err
    assert "Traceback" not in workers and "Compute Failed" not in workers
    assert f"failed: {message.split(':')[0]}(" in workers  # the worker's own line
