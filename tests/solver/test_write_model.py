"""``--write-model``: the model a run solves, as a file another HiGHS reads and solves to the same optimum; and the
peak memory after every stage in kpis.json."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from flexopt.cli import app

ROOT = Path(__file__).resolve().parents[2]
PILOTS = ROOT / "examples" / "all_pilots.yaml"
DAY = "2024-06-25"


def run(*args) -> object:
    return CliRunner().invoke(app, [str(a) for a in args])


def kpis(out: Path) -> dict:
    return json.loads((out / "kpis.json").read_text())


def test_write_model_is_the_model_that_was_solved(tmp_path):
    """--write-model: the MPS file, read back by a fresh HiGHS and solved to optimality, has the run's optimum
    (the run stops within its gap, so within that); the LP file names the model's variable families; an existing
    file is never overwritten; kpis.json has the peak memory after every stage."""
    import highspy

    out, mps = tmp_path / "run", tmp_path / "model.mps"
    result = run("schedule", "day-ahead", PILOTS, "--date", DAY, "--out", out, "--write-model", mps)
    assert result.exit_code == 0, result.output
    k = kpis(out)
    h = highspy.Highs()
    h.setOptionValue("output_flag", False)
    assert h.readModel(str(mps)) == highspy.HighsStatus.kOk
    h.setOptionValue("mip_rel_gap", 1e-6)
    h.run()
    optimum = h.getInfo().objective_function_value
    assert optimum <= k["solver"]["objective"] + 1e-6
    assert optimum >= k["solver"]["bound"] - 1e-6 * max(1.0, abs(optimum))
    assert set(k["peak_rss_mb"]) >= {"inputs", "build", "solve", "extract", "write"}
    assert 0 < k["peak_rss_mb"]["inputs"] <= k["peak_rss_mb"]["write"]
    lp = tmp_path / "model.lp"
    result = run("schedule", "day-ahead", PILOTS, "--date", DAY, "--out", tmp_path / "run2", "--write-model", lp)
    assert result.exit_code == 0, result.output
    assert "asset_battery" in lp.read_text() and "asset_battery" in mps.read_text()
    again = run("schedule", "day-ahead", PILOTS, "--date", DAY, "--out", tmp_path / "run3", "--write-model", lp)
    assert again.exit_code == 2 and "never overwrites" in again.output
    both = run("schedule", "day-ahead", PILOTS, "--date", DAY, "--out", tmp_path / "run4", "--write-model",
               tmp_path / "x.mps", "--cluster", "local:1")
    assert both.exit_code == 2 and "--write-model" in both.output
