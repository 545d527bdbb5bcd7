"""``flexopt check`` from the command line: exit 0 / 1 / 2, a readable table, JSON for machines, no traceback."""

from __future__ import annotations

import json
import shutil

from typer.testing import CliRunner

from flexopt.cli import app

runner = CliRunner()


def test_clean_run_exits_0_and_shows_the_reported_violation(clean_run):
    result = runner.invoke(app, ["check", str(clean_run.portfolio), str(clean_run.run)])
    assert result.exit_code == 0, result.output
    assert "congestion_import_limit" in result.output
    assert "every breach is reported" in result.output


def test_unreported_breach_exits_1_and_is_named(clean_run, kit, tampered):
    kit.edit_kpis(tampered, lambda k: k.update(cost_eur=k["cost_eur"] + 1.0))
    result = runner.invoke(app, ["check", str(clean_run.portfolio), str(tampered)])
    assert result.exit_code == 1
    assert "cost" in result.output and "1 unreported breach run" in result.output


def test_json_lists_breaches_with_utc_times(clean_run, kit, tampered):
    kit.shift_power(tampered, "ev", 40, 3.0)
    result = runner.invoke(app, ["check", str(clean_run.portfolio), str(tampered), "--json"])
    assert result.exit_code == 1
    data = json.loads(result.stdout)
    unplugged = [b for b in data["breaches"] if b["kind"] == "ev_unplugged"]
    assert [(b["asset_id"], b["start_utc"], b["reported"]) for b in unplugged] == [
        ("ev", "2024-06-12T08:00:00+00:00", False)]
    assert data["counts"]["congestion_import_limit"] == {"runs": 1, "intervals": 12, "unreported_runs": 0}
    assert data["unreported_runs"] == sum(not b["reported"] for b in data["breaches"])


def test_missing_run_folder_exits_2_with_one_line(clean_run, tmp_path):
    result = runner.invoke(app, ["check", str(clean_run.portfolio), str(tmp_path / "nope")])
    assert result.exit_code == 2
    assert "no such run folder" in result.output
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1


def test_run_folder_without_kpis_exits_2(clean_run, tmp_path):
    run = shutil.copytree(clean_run.run, tmp_path / "run")
    (run / "kpis.json").unlink()
    result = runner.invoke(app, ["check", str(clean_run.portfolio), str(run)])
    assert result.exit_code == 2 and "kpis.json: missing" in result.output


def test_portfolio_that_does_not_load_exits_2(clean_run, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("portfolio: {name: x}\nsites: [\n")
    result = runner.invoke(app, ["check", str(bad), str(clean_run.run)])
    assert result.exit_code == 2
    assert result.output.startswith("error: portfolio does not load:")
    assert len(result.output.strip().splitlines()) == 1


def test_run_of_another_portfolio_exits_2(clean_run, tmp_path):
    other = tmp_path / "other.yaml"
    other.write_text(clean_run.portfolio.read_text().replace("name: check-test", "name: another"))
    for f in clean_run.portfolio.parent.glob("*.csv"):
        shutil.copy(f, tmp_path / f.name)
    result = runner.invoke(app, ["check", str(other), str(clean_run.run)])
    assert result.exit_code == 2 and "not 'another'" in result.output
