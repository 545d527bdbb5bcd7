"""Acceptance bar on real data: the chosen day-ahead load forecast beats the 4-week same-time mean."""

from pathlib import Path

import pytest

from flexopt.forecasts.evaluation import household_load_evaluation

ROOT = Path(__file__).resolve().parents[2]
CANDIDATES = [ROOT / "examples/data/household_fr_2024_30min.csv", Path("/work/shared/data/household_fr_2024_30min.csv")]
DATA = next((p for p in CANDIDATES if p.exists()), None)


@pytest.mark.slow
@pytest.mark.skipif(DATA is None, reason="household example data not available")
def test_chosen_load_forecast_beats_four_week_mean_on_household():
    table, per_origin = household_load_evaluation(DATA)
    mae = table.set_index("model")["mae"]
    assert len(per_origin) == 28
    assert mae["chosen (automatic)"] < mae["naive_mean_4w"]
    assert mae["naive_mean_4w"] < min(mae["naive_yesterday"], mae["naive_last_week"])
    coverage = table.set_index("model").loc["chosen (automatic)", "coverage_10_90"]
    assert 0.65 < coverage < 0.92  # nominal 80 %
