"""Cron safety with real processes: schedule runs of one portfolio and store take turns (its schedule lock), a
second run waits at most --wait-s or exits 6 before any work, a killed run releases the lock, and a run that fails
writes nothing and leaves the previous schedule in force (dispatch keeps following it)."""

from __future__ import annotations

import json
import signal
import subprocess
from pathlib import Path

import pandas as pd
from typer.testing import CliRunner

from flexopt.cli import app
from flexopt.commands.exit_codes import EXIT_BUSY, EXIT_INVALID, EXIT_SOLVER

# A real intraday run that stops while it holds the store's lock (where it reads its start states) until a line
# arrives on stdin.
HOLDING_RUN = """
import datetime as dt, sys
from pathlib import Path
from flexopt.runs.intraday import StartStates
from flexopt.runs.runner import RunRequest, run_schedule
def states(loaded):
    print("HOLDING", flush=True)
    sys.stdin.readline()
    return StartStates()
start = dt.datetime.fromisoformat(sys.argv[2])
out = run_schedule(RunRequest(portfolio_path=Path(sys.argv[1]), kind="intraday", day=start.date(), start=start,
                              store=Path(sys.argv[3]), resolve_state=states))
print("DONE", out.directory, flush=True)
"""

START = "2024-06-12T06:00"


def wait_for(proc: subprocess.Popen, text: str) -> str:
    """The first stdout line containing ``text`` (the process's own signal, never a sleep)."""
    for line in proc.stdout:
        if text in line:
            return line
    proc.wait()
    raise AssertionError(f"process ended (exit {proc.returncode}) before {text!r}: {proc.stderr.read()}")


def release(proc: subprocess.Popen) -> str:
    proc.stdin.write("go\n")
    proc.stdin.flush()
    done = wait_for(proc, "DONE ").split("DONE ", 1)[1].strip()
    assert proc.wait() == 0, proc.stderr.read()
    return done


def written(out: str) -> str:
    (line,) = [x for x in out.splitlines() if x.startswith("schedule written to ")]
    return line.removeprefix("schedule written to ").strip()


def intraday_cli(kit, tiny: Path, store: Path, *extra: str) -> subprocess.Popen:
    return kit.start_cli("schedule", "intraday", str(tiny), "--from", "2024-06-12T14:00", "--store", str(store),
                         *extra)


def test_runs_started_together_wait_for_each_other_and_all_land(tiny, kit, tmp_path):
    store = tmp_path / "runs"
    holder = kit.start_script(HOLDING_RUN, str(tiny), START, str(store))
    wait_for(holder, "HOLDING")
    waiting = [intraday_cli(kit, tiny, store) for _ in range(2)]
    try:
        for proc in waiting:
            line = wait_for(proc, "waiting up to 60 s for pid ")
            assert f"pid {holder.pid} " in line  # and what it runs (the line wraps at the console's width)
        first = release(holder)
        outs = [proc.communicate() for proc in waiting]
    finally:
        for proc in (holder, *waiting):
            if proc.poll() is None:
                proc.kill()
    assert [proc.returncode for proc in waiting] == [0, 0], outs
    folders = sorted([first] + [written(out) for out, _ in outs])
    kind_dir = store / "tiny" / "2024-06-12" / "intraday"
    assert folders == [str(kind_dir / f"v00{i}") for i in (1, 2, 3)]
    assert sorted(p.name for p in kind_dir.iterdir()) == ["v001", "v002", "v003"]  # nothing half-written
    sources = [json.loads((kind_dir / v / "run.json").read_text())["initial_state_source"] for v in ("v002", "v003")]
    # each waiting run read its start states once it held the lock: from the run it had waited for (v001, from
    # 06:00; the other, from 14:00 like itself, has no interval ending at 14:00)
    assert sources == [str(kind_dir / "v001"), str(kind_dir / "v001")]


def test_with_wait_0_a_second_run_exits_6_before_any_work(tiny, kit, tmp_path):
    store = tmp_path / "runs"
    holder = kit.start_script(HOLDING_RUN, str(tiny), START, str(store))
    try:
        wait_for(holder, "HOLDING")
        for extra in (["--wait-s", "0"], ["--wait-s", "0.5"]):
            proc = intraday_cli(kit, tiny, store, *extra)
            out, err = proc.communicate()
            assert proc.returncode == EXIT_BUSY, out + err
            assert f"busy: another schedule run of this portfolio holds {store / 'tiny' / '.schedule.lock'}" in err
            assert f"pid {holder.pid} " in err and "not started" in err
            assert "no stored schedule" in err and "Traceback" not in err
            assert "reading" not in out and "solving" not in out  # exited before reading data or solving
        day_ahead = kit.start_cli("schedule", "day-ahead", str(tiny), "--date", kit.day, "--store", str(store),
                                  "--wait-s", "0")  # one lock for both kinds
        assert day_ahead.wait() == EXIT_BUSY
        assert not (store / "tiny" / kit.day).exists()  # nothing written, no folder claimed
        assert release(holder) == str(store / "tiny" / kit.day / "intraday" / "v001")
    finally:
        if holder.poll() is None:
            holder.kill()


def test_a_killed_run_releases_the_lock(tiny, kit, tmp_path):
    store = tmp_path / "runs"
    holder = kit.start_script(HOLDING_RUN, str(tiny), START, str(store))
    wait_for(holder, "HOLDING")
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    proc = intraday_cli(kit, tiny, store, "--wait-s", "0")
    out, err = proc.communicate()
    assert proc.returncode == 0, out + err
    assert written(out) == str(store / "tiny" / kit.day / "intraday" / "v001")


def test_a_failed_run_leaves_the_previous_schedule_in_force(tiny, kit, tmp_path):
    store = tmp_path / "runs"
    proc = kit.start_cli("schedule", "day-ahead", str(tiny), "--date", kit.day, "--store", str(store))
    out, err = proc.communicate()
    assert proc.returncode == 0, out + err
    previous = written(out)

    # bad data: a price that is not a number
    prices = tiny.parent / "prices.csv"
    good = prices.read_text()
    lines = good.splitlines()
    lines[20] = lines[20].rsplit(",", 1)[0] + ",cheap"
    prices.write_text("\n".join(lines) + "\n")
    proc = intraday_cli(kit, tiny, store)
    out, err = proc.communicate()
    assert proc.returncode == EXIT_INVALID, out + err
    assert "cheap" in err
    assert f"nothing was written; the schedule in force at 2024-06-12T14:00+00:00 is still {previous} " \
           "(dispatch keeps following it)" in err
    assert not (store / "tiny" / kit.day / "intraday").exists() or not any(
        (store / "tiny" / kit.day / "intraday").iterdir())
    prices.write_text(good)

    # the solver gives no schedule (forced: HiGHS always finds one for this portfolio)
    import flexopt.scheduling.problem as problem
    from flexopt.solver.solve import SolveError

    def fails(*_args, **_kwargs):
        raise SolveError("no feasible solution (forced by the test)")

    real, problem.solve_model = problem.solve_model, fails
    try:
        result = CliRunner().invoke(app, ["schedule", "intraday", str(tiny), "--from", f"{kit.day}T14:00",
                                          "--store", str(store)])
    finally:
        problem.solve_model = real
    assert result.exit_code == EXIT_SOLVER, result.output
    assert "solver failed: no feasible solution" in result.output
    assert f"is still {previous} (dispatch keeps following it)" in result.output

    # dispatch follows the previous run
    result = CliRunner().invoke(app, ["dispatch", str(tiny), "--store", str(store), "--once", "--at",
                                      f"{kit.day}T14:30", "--settle-s", "0"])
    assert result.exit_code == 0, result.output
    (record,) = (store / "tiny" / kit.day / "dispatch").glob("*.json")
    assert json.loads(record.read_text())["schedule"]["path"] == previous
    assert pd.Timestamp(json.loads(record.read_text())["interval_start"]) == pd.Timestamp(f"{kit.day}T14:00Z")
