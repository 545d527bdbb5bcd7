"""Acceptance bar on real data: the automatic day-ahead load forecast is well below the best naive baseline and
level with the best single model (measured 2026-12: 0.572 kW against 0.638 for the 4-week mean, -10.3 %)."""

from pathlib import Path

import pytest

from flexopt.forecasts.evaluation import household_load_evaluation

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "examples/data/household_fr_2024_30min.csv"  # shipped with the examples: never skipped


@pytest.mark.slow
def test_chosen_load_forecast_beats_four_week_mean_on_household():
    table, per_origin = household_load_evaluation(DATA)
    mae = table.set_index("model")["mae"]
    assert len(per_origin) == 28
    assert mae["naive_mean_4w"] < min(mae["naive_yesterday"], mae["naive_last_week"])
    assert mae["chosen (automatic)"] < 0.93 * mae["naive_mean_4w"]
    singles = table[table["family"] == "statistical"].set_index("model")["mae"]
    assert mae["chosen (automatic)"] <= 1.01 * singles.min()
    assert mae["holt_winters_daily"] < mae["naive_last_week"]  # smoothing constants chosen for the day ahead
    coverage = table.set_index("model").loc["chosen (automatic)", "coverage_10_90"]
    assert 0.65 < coverage < 0.92  # nominal 80 %
