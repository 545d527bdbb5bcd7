"""Baseline forecasts of uncontrolled load and PV, judged against naive baselines."""
