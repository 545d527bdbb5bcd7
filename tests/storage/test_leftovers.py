"""Writers killed mid-write (kill -9) leave hidden temporary folders; the next writer removes them, but never
the folder of a writer that is still alive, and never anything complete. Readers skip damaged leftovers."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal

from flexopt import operations as ops
from flexopt.runs.runner import RunRequest, run_schedule
from flexopt.runs.store import latest_version_dir

OWNER_FILE, TEMP_PREFIX = ".owner.json", ".flexopt-tmp-"  # flexopt.runs.tempdirs

# A schedule run that stops after writing kpis.json (schedule files are already there, run.json is not)
# until a line arrives on stdin.
PAUSED_RUN = """
import datetime as dt, sys
from pathlib import Path
import flexopt.runs.runner as runner
real = runner.write_json
def paused(data, path):
    real(data, path)
    if path.name == "kpis.json":
        print("PAUSED", path.parent, flush=True)
        sys.stdin.readline()
    return path
runner.write_json = paused
out = runner.run_schedule(runner.RunRequest(portfolio_path=Path(sys.argv[1]), kind="day-ahead",
                                            day=dt.date.fromisoformat(sys.argv[2]), store=Path(sys.argv[3])))
print("DONE", out.directory, flush=True)
"""

# A dispatch round record that stops half written until a line arrives on stdin.
PAUSED_ROUND = """
import datetime as dt, json, sys
from pathlib import Path
import flexopt.operations as ops
def paused(obj, f, **kwargs):
    text = json.dumps(obj, **kwargs)
    f.write(text[: len(text) // 2])
    f.flush()
    print("PAUSED", Path(f.name).parent, flush=True)
    sys.stdin.readline()
    f.write(text[len(text) // 2:])
json.dump = paused
record = {"at": sys.argv[2], "summary": {"assets": 0}, "alarms": [], "note": "x" * 5000}
path = ops.write_round(Path(sys.argv[1]), record, dt.datetime.fromisoformat(sys.argv[2]))
print("DONE", path, flush=True)
"""


def kill(proc) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.wait()  # reaped: its pid is gone, as after any supervisor or shell


def release(proc, kit) -> str:
    proc.stdin.write("go\n")
    proc.stdin.flush()
    done = kit.wait_for_line(proc, "DONE ")
    assert proc.wait() == 0, proc.stderr.read()
    return done


def test_killed_run_is_cleaned_and_a_live_writer_is_left_alone(tiny, kit, tmp_path):
    """Schedule runs of one portfolio and store take turns (the store's schedule lock), so the live writer here is
    a run paused while the next run's clean-up (that of a dispatch round: clean_leftovers) looks at its folder."""
    from flexopt.runs.store import clean_leftovers

    store = tmp_path / "runs"
    day = dt.date.fromisoformat(kit.day)
    kind_dir = store / "tiny" / kit.day / "day-ahead"

    killed = kit.start_script(PAUSED_RUN, str(tiny), kit.day, str(store))
    killed_tmp = kit.wait_for_line(killed, "PAUSED ")
    kill(killed)  # the kernel drops its locks, the store's schedule lock included
    assert os.path.isdir(killed_tmp) and os.path.basename(killed_tmp).startswith(TEMP_PREFIX)
    assert (kind_dir / os.path.basename(killed_tmp) / "schedule.parquet").is_file()  # half a run, hidden
    assert latest_version_dir(store, "tiny", day, ("day-ahead",)) is None
    # the earlier scheme's temp folders on another day: one untouched for two days, one fresh
    other_day = store / "tiny" / "2024-06-11" / "intraday"
    old, fresh = other_day / ".v001.abc123", other_day / ".v002.def456"
    for folder in (old, fresh):
        folder.mkdir(parents=True)
        (folder / "schedule.csv").write_text("half")
    two_days_ago = dt.datetime.now().timestamp() - 2 * 86400
    for path in (old / "schedule.csv", old):
        os.utime(path, (two_days_ago, two_days_ago))

    messages = []
    outcome = run_schedule(RunRequest(portfolio_path=tiny, kind="day-ahead", day=day, store=store, wait_s=0),
                           messages.append)
    assert outcome.directory == kind_dir / "v001"
    assert not os.path.exists(killed_tmp)
    assert any(m.startswith(f"removed leftover {killed_tmp}") and f"pid {killed.pid}" in m and "is gone" in m
               for m in messages), messages
    assert not old.exists() and fresh.exists()
    assert any(m.startswith(f"removed leftover {old}") and "changed for 48 h" in m for m in messages), messages

    live = kit.start_script(PAUSED_RUN, str(tiny), kit.day, str(store))
    try:
        live_tmp = kit.wait_for_line(live, "PAUSED ")
        assert clean_leftovers(store, "tiny") == []  # its writer holds its folder's lock
        assert os.path.isdir(live_tmp) and (kind_dir / os.path.basename(live_tmp) / OWNER_FILE).is_file()
        # the live writer finishes: it lands as the next version and is the newest
        assert release(live, kit) == str(kind_dir / "v002")
    finally:
        if live.poll() is None:
            kill(live)
    assert sorted(p.name for p in kind_dir.iterdir()) == ["v001", "v002"]
    assert not (kind_dir / "v002" / OWNER_FILE).exists() and (kind_dir / "v002" / "run.json").is_file()
    assert latest_version_dir(store, "tiny", day, ("intraday", "day-ahead")) == kind_dir / "v002"


def test_killed_dispatch_record_is_cleaned_and_readers_skip_damage(kit, tmp_path):
    from flexopt.runs.store import clean_leftovers  # here: the module is importable before the fix

    folder = tmp_path / "runs" / "p" / "2024-06-25" / "dispatch"
    at = "2024-06-25T12:00:00+00:00"
    killed = kit.start_script(PAUSED_ROUND, str(folder), at)
    killed_tmp = kit.wait_for_line(killed, "PAUSED ")
    kill(killed)
    half = os.path.join(killed_tmp, "record.json")
    assert 0 < os.path.getsize(half) < 5000  # truncated, and hidden: no record name was ever taken
    assert not list(folder.glob("*.json"))

    # leftovers of the earlier temp-file scheme: an old truncated one, and a fresh one that may be live
    old, fresh = folder / ".round-abc123.json", folder / ".round-def456.json"
    for path in (old, fresh):
        path.write_text('{"at": "2024-06-25T11:00:00Z", "summ')
    two_days_ago = dt.datetime.now().timestamp() - 2 * 86400
    os.utime(old, (two_days_ago, two_days_ago))
    (folder / "20240625T110000Z-1.json").write_text('{"at": "2024-06-25T11:00:00Z", "sum')  # damaged by hand

    live = kit.start_script(PAUSED_ROUND, str(folder), at)
    try:
        live_tmp = kit.wait_for_line(live, "PAUSED ")
        cleaned = clean_leftovers(tmp_path / "runs", "p")
        assert {str(c.path) for c in cleaned} == {killed_tmp, str(old)}
        assert all(c.removed for c in cleaned)
        assert os.path.isdir(live_tmp) and fresh.exists()

        record = {"at": at, "summary": {"assets": 1}, "alarms": []}
        first = ops.write_round(folder, record, dt.datetime.fromisoformat(at))
        assert first.name == "20240625T120000Z-1.json"
        assert os.path.isdir(live_tmp)
        assert release(live, kit) == str(folder / "20240625T120000Z-2.json")
    finally:
        if live.poll() is None:
            kill(live)

    records, problems = ops.read_rounds(folder)
    assert [r["file"] for r in records] == ["20240625T120000Z-1.json", "20240625T120000Z-2.json"]
    assert records[1]["note"] == "x" * 5000  # the paused writer's record is whole
    assert len(problems) == 1 and "20240625T110000Z-1.json: skipped" in problems[0]
    assert sorted(p.name for p in folder.iterdir()) == [".round-def456.json", "20240625T110000Z-1.json",
                                                         "20240625T120000Z-1.json", "20240625T120000Z-2.json"]
    json.loads((folder / "20240625T120000Z-2.json").read_text())
