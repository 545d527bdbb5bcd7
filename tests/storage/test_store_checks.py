"""An unusable --store or a non-empty --out is refused with exit 2 and a message, before any data are read or
solved (the progress lines of those stages never appear), by schedule and by dispatch."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from flexopt.cli import app

WORK_LINES = ("reading 1 data sources", "building the model", "solving")


def unusable(tmp_path: Path, kind: str) -> Path:
    (tmp_path / "a-file").write_text("not a folder")
    return {"below a file": tmp_path / "a-file" / "runs",
            "a file": tmp_path / "a-file",
            "not writable, even by root": Path("/sys/flexopt-store")}[kind]


def assert_refused(result, *texts: str) -> None:
    assert result.exit_code == 2, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output
    for text in texts:
        assert text in result.output
    for line in WORK_LINES:
        assert line not in result.output


KINDS = ["below a file", "a file", "not writable, even by root"]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("command", ["day-ahead", "intraday"])
def test_unusable_store_is_refused_before_any_work(tiny, kit, tmp_path, kind, command):
    store = unusable(tmp_path, kind)
    when = ["--date", kit.day] if command == "day-ahead" else ["--from", f"{kit.day}T12:00"]
    result = CliRunner().invoke(app, ["schedule", command, str(tiny), *when, "--store", str(store)])
    assert_refused(result, "--store", str(store))


@pytest.mark.parametrize("command", ["day-ahead", "intraday"])
def test_non_empty_out_is_refused_before_any_work(tiny, kit, tmp_path, command):
    out = tmp_path / "out"
    out.mkdir()
    (out / "precious.csv").write_text("keep me")
    when = ["--date", kit.day] if command == "day-ahead" else ["--from", f"{kit.day}T12:00"]
    result = CliRunner().invoke(app, ["schedule", command, str(tiny), *when, "--out", str(out)])
    assert_refused(result, "never overwrites", str(out))
    assert [p.name for p in out.iterdir()] == ["precious.csv"]
    assert (out / "precious.csv").read_text() == "keep me"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "portfolio"]  # no temporary folder left


@pytest.mark.parametrize("kind", KINDS)
def test_dispatch_refuses_an_unusable_store_before_touching_devices(tiny, kit, tmp_path, kind):
    run = tmp_path / "run"  # a schedule given with --run: the store is only where rounds are recorded
    run.mkdir()
    start = pd.date_range(f"{kit.day}T00:00Z", periods=24, freq="1h")
    pd.DataFrame({"interval_start": start, "interval_end": start + pd.Timedelta(hours=1), "site_id": "home",
                  "asset_id": "bat", "asset_type": "battery", "power_kw": 1.0, "baseline_kw": 0.0, "setpoint": 1.0,
                  "setpoint_unit": "kW", "state": 5.0, "state_unit": "kWh"}).to_parquet(run / "schedule.parquet")
    (run / "run.json").write_text(json.dumps({"kind": "day-ahead", "date": kit.day}))
    store = unusable(tmp_path, kind)
    result = CliRunner().invoke(app, ["dispatch", str(tiny), "--store", str(store), "--run", str(run), "--once",
                                      "--at", f"{kit.day}T12:00", "--settle-s", "0"])
    assert_refused(result, "--store", str(store))
    assert "round" not in result.output
