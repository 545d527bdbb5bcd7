"""``flexopt replay`` on three hours of the Guadalix day, through the simulators, dispatch and cron's intraday runs
on one compressed clock: a battery's SoC forced to 80 % at 10:00 shows as a deviation from the schedule, the next
intraday run starts from the measured SoC (run.json: telemetry), the deviation is smaller after it; the day summary
and a self-contained HTML report are written. Bad perturbation files are exit 2 naming file, entry and field."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from flexopt.cli import app
from flexopt.operations.audit import read_rounds

ROOT = Path(__file__).resolve().parents[2]
GUADALIX = ROOT / "examples" / "guadalix.yaml"
BESS = "guadalix-bess-1"


@pytest.fixture(scope="module")
def replayed(tmp_path_factory) -> tuple[Path, dict, str]:
    tmp = tmp_path_factory.mktemp("replay")
    perturb = tmp / "perturb.yaml"
    perturb.write_text(f'- {{at: "10:00", asset: {BESS}, soc_pct: 80}}\n'
                       '- {at: "09:30", asset: guadalix-pv-phase1, pv_scale: 0.5, until: "10:30"}\n')
    store = tmp / "runs"
    result = CliRunner().invoke(app, ["replay", str(GUADALIX), "--date", "2024-06-25", "--from", "09:00",
                                      "--until", "12:00", "--speed", "600", "--perturb", str(perturb),
                                      "--store", str(store)])
    assert result.exit_code == 0, result.output
    summary_path = next(store.glob("*/2024-06-25/replay/summary.json"))
    return summary_path.parent, json.loads(summary_path.read_text()), result.output


def test_every_interval_is_dispatched_and_every_hour_re_optimised(replayed):
    folder, summary, output = replayed
    assert summary["rounds"] == 12  # 09:00 .. 11:45
    cron = [r for r in summary["reoptimisations"] if r["kind"] == "intraday (cron)"]
    assert [r["from"][11:16] for r in cron] == ["10:00", "11:00"] and all(r["outcome"] == "written" for r in cron)
    records, problems = read_rounds(folder.parent / "dispatch")
    assert not problems and len(records) == 12
    assert {r["interval_start"][11:16] for r in records} >= {"07:00", "09:45"}  # UTC
    assert "intraday from 11:00: written" in output and "perturbation at" in output


def test_a_soc_perturbation_shows_as_a_deviation_and_intraday_starts_from_it(replayed):
    folder, summary, _ = replayed
    series = summary["series"][BESS]
    at_ten = next(i for i, t in enumerate(series["at"]) if t.startswith("2024-06-25T08:00"))
    assert series["soc_pct"][at_ten] == pytest.approx(80.0, abs=1.0)
    assert abs(series["soc_pct"][at_ten] - series["scheduled_soc_pct"][at_ten]) > 30  # measured vs expected
    eleven = next(r for r in summary["reoptimisations"] if r["from"].startswith("2024-06-25T11:00"))
    start = json.loads((Path(eleven["run"]) / "run.json").read_text())["initial_state"][BESS]
    assert start["source"] == "telemetry"
    records, _ = read_rounds(folder.parent / "dispatch")
    last = [r for r in records if r["at"] < "2024-06-25T09:00"][-1]  # the 10:45 round, read by the 10:55 run
    assert start["soc_pct"] == pytest.approx(last["assets"][BESS]["telemetry"]["soc_pct"], abs=0.01)
    gap = eleven["state_deviation"][BESS]
    assert gap["before"] > 30 and gap["after"] < gap["before"] / 3


def test_the_summary_says_energy_comfort_congestion_and_alarms(replayed):
    _, summary, output = replayed
    campus = summary["energy"]["sites"]["guadalix-campus"]
    assert campus["scheduled_kwh"] < 0 and campus["measured_kwh"] < 0  # PV over the morning
    pv = summary["energy"]["assets"]["guadalix-pv-phase1"]
    assert pv["measured_kwh"] > pv["scheduled_kwh"]  # half the sun from 09:30 to 10:30: less fed in
    assert summary["congestion"]["guadalix-campus"]["held"] is True
    assert set(summary["comfort"]) >= {"guadalix-climate", "madrid-home-01-ac"}
    assert summary["perturbations"] and isinstance(summary["alarms"], dict)
    assert "comfort met:" in output


def test_the_report_is_one_page_that_works_offline(replayed, tmp_path):
    folder, summary, _ = replayed
    html = (folder / "report.html").read_text(encoding="utf-8")
    assert '<script src="http' not in html and "plotly" in html.lower()
    assert "guadalix-campus measured" in html and "total deviation" in html
    result = CliRunner().invoke(app, ["report", summary["day_ahead"], "--out", str(tmp_path / "day-ahead.html")])
    assert result.exit_code == 0, result.output
    page = (tmp_path / "day-ahead.html").read_text(encoding="utf-8")
    assert '<script src="http' not in page and "guadalix-campus import limit" in page and "measured" not in page
    bad = CliRunner().invoke(app, ["report", str(tmp_path)])
    assert bad.exit_code == 2 and "not a schedule run folder" in bad.output


@pytest.mark.parametrize(("text", "expected"), [
    ('- {at: "10:00", asset: guadalix-bess-1, soc_pct: 120}\n', "entry 1, field 'soc_pct': 120"),
    ('- {at: "10:00", asset: guadalix-bess-1, soc_pct: 50}\n- {at: "25:00", asset: guadalix-bess-1, soc_pct: 5}\n',
     "entry 2, field 'at'"),
    ('- {at: "10:00", asset: nobody, temp_c: 20}\n', "entry 1, field 'asset': 'nobody'"),
    ('- {at: "10:00", asset: guadalix-bess-1, temp_c: 20}\n', "entry 1, field 'temp_c': applies to"),
    ('- {at: "10:00", asset: guadalix-pv-phase1, pv_scale: 0.5}\n', "entry 1, field 'until'"),
    ('- {at: "10:00", asset: guadalix-bess-1, soc_pct: 50, colour: red}\n', "entry 1, field 'colour'"),
    ("{at: 10}\n", "must be a YAML list"),
])
def test_a_bad_perturbation_file_is_exit_2_naming_file_entry_and_field(tmp_path, text, expected):
    bad = tmp_path / "bad.yaml"
    bad.write_text(text)
    result = CliRunner().invoke(app, ["replay", str(GUADALIX), "--date", "2024-06-25", "--perturb", str(bad),
                                      "--store", str(tmp_path / "runs")])
    assert result.exit_code == 2
    assert str(bad) in result.output and expected in result.output
    assert not (tmp_path / "runs").exists()  # nothing ran


def test_chargers_accept_their_setpoints_and_intraday_reads_the_cars_measured(replayed):
    """Setpoints at a charger's rating in float32 registers were refused (exception 3) before they were rounded
    toward zero; the chargers' session meters make the cars' energy a measured start state."""
    _, summary, _ = replayed
    assert not any(kind.startswith("critical") for kind in summary["alarms"]), summary["alarms"]
    eleven = next(r for r in summary["reoptimisations"] if r["from"].startswith("2024-06-25T11:00"))
    start = json.loads((Path(eleven["run"]) / "run.json").read_text())["initial_state"]
    for ev in ("guadalix-ev-unidirectional", "guadalix-ev-bidirectional"):
        assert start[ev]["source"] == "telemetry", start[ev]
        assert start[ev]["vehicles_plugged"] >= 1
