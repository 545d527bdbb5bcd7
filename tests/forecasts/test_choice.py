"""The combination of the best models against single models, out of sample, on periods and splits of the real
household: every candidate forecasts every day once; the choice for a day sees only the 14 days before it."""

from pathlib import Path

import pandas as pd
import pytest

from flexopt.forecasts.evaluation import choice_study, load_household_csv

DATA = Path(__file__).resolve().parents[2] / "examples/data/household_fr_2024_30min.csv"
TZ = "Europe/Paris"
PERIODS = {"2024-06": ("2024-06-01", "2024-06-28"), "2024-07": ("2024-07-01", "2024-07-28"),
           "2024-09": ("2024-09-01", "2024-09-28"), "2024-10": ("2024-10-15", "2024-11-11"),
           "2024-12": ("2024-12-01", "2024-12-28"), "2025-02": ("2025-01-30", "2025-02-26")}
SPLITS = {"2024-09 a": ("2024-09-01", "2024-09-14"), "2024-09 b": ("2024-09-15", "2024-09-28"),
          "2024-10": ("2024-10-15", "2024-10-28"), "2024-11": ("2024-10-29", "2024-11-11")}


@pytest.fixture(scope="module")
def load_30min() -> pd.Series:
    return load_household_csv(DATA)["load_kw"]


@pytest.fixture(scope="module")
def studies(load_30min) -> dict[str, pd.DataFrame]:
    hourly = load_30min.resample("60min").mean()
    return {"30 min": choice_study(load_30min, "load", PERIODS, TZ),
            "60 min": choice_study(hourly, "load", PERIODS, TZ),
            "60 min splits": choice_study(hourly, "load", SPLITS, TZ)}


def test_combination_is_on_average_no_worse_than_the_best_single_model(studies):
    ratios = []
    for name in ("30 min", "60 min"):
        study = studies[name]
        assert len(study) == len(PERIODS) and (study["days"] == 28).all()
        ratio = study["combination_mae"] / study["best_single_mae"]  # the best single model in hindsight
        assert ratio.mean() <= 1.02, (name, study)
        ratios += list(ratio)
    assert sum(ratios) / len(ratios) <= 1.01


def test_choosing_one_model_costs_more_than_combining(studies):
    for study in studies.values():
        assert study["combination_mae"].mean() < study["picked_single_mae"].mean(), study


def test_combination_beats_the_best_naive_baseline_on_every_period_and_split(studies):
    for name, study in studies.items():
        gain = 1 - study["combination_mae"] / study["best_naive_mae"]
        assert (gain > 0.03).all(), (name, study)
        assert gain.mean() > 0.08, (name, study)
