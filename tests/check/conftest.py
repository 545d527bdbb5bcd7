"""A small portfolio the model schedules without physics defects, its real run folder, and ways to tamper with a
copy of it (schedule.parquet, sites.parquet, kpis.json) so that each breach kind can be injected."""

from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import yaml

from flexopt.check import check_run
from flexopt.runs.runner import RunRequest, run_schedule

DAY = dt.date(2024, 6, 12)
TZ = "Europe/Madrid"


def write_clean_portfolio(folder: Path) -> Path:
    """Home (battery, PV, load, EV, V2G, heating zone, cooling heat pump, water heaters) and a shop with a peak
    charge behind one congestion point whose DSO window 18:00-20:00 cannot be met (a reported violation).
    EV efficiencies are 1 and prices are positive (nothing pays for burning energy): the model of today has no
    defect here."""
    folder.mkdir(parents=True, exist_ok=True)
    hours = pd.date_range("2024-06-10T00:00Z", periods=24 * 5, freq="1h")
    local = hours.tz_convert(TZ).hour
    price = np.where(local < 6, 40.0, np.where((local >= 19) & (local < 22), 220.0, 100.0))
    pd.DataFrame({"timestamp": hours.strftime("%Y-%m-%dT%H:%M:%SZ"), "price": price}).to_csv(
        folder / "prices.csv", index=False)
    quarter = pd.date_range("2024-06-10T00:00Z", periods=96 * 5, freq="15min")
    q_local = quarter.tz_convert(TZ)
    solar = np.clip(np.sin((q_local.hour + q_local.minute / 60 - 7) / 14 * np.pi), 0, None)
    pd.DataFrame({"timestamp": quarter.strftime("%Y-%m-%dT%H:%M:%SZ"), "pv_w": 4000 * solar,
                  "load_w": 600 + 300 * (quarter.hour % 3), "outdoor_c": 14 + 4 * solar}).to_csv(
        folder / "site.csv", index=False)
    (folder / "dso.csv").write_text("congestion_point,start,end,max_import_kw,max_export_kw\n"
                                    "cp,2024-06-12T18:00:00+02:00,2024-06-12T20:00:00+02:00,5,\n"
                                    "cp,2024-06-12T19:00:00+02:00,2024-06-12T21:00:00+02:00,7,3\n")
    heater = {"type": "water_heater", "volume_l": 100, "element_kw": 2.0, "min_temp_c": 45, "max_temp_c": 90,
              "initial_temp_c": 60, "thermostat_c": 60, "cold_water_temp_c": 15, "ambient_temp_c": 20,
              "draws": [{"at_local": "07:00", "litres": 40}, {"at_local": "21:00", "litres": 120}]}
    doc = {
        "portfolio": {"name": "check-test", "timezone": TZ},
        "data_sources": {
            "prices": {"path": "prices.csv", "column": "price", "unit": "EUR/MWh"},
            "pv": {"path": "site.csv", "column": "pv_w", "unit": "W"},
            "load": {"path": "site.csv", "column": "load_w", "unit": "W"},
            "outdoor": {"path": "site.csv", "column": "outdoor_c", "unit": "degC"},
        },
        "tariff": {"import_price_eur_per_kwh": {"source": "prices"}, "grid_fee_import_eur_per_kwh": 0.03,
                   "export_price_eur_per_kwh": {"source": "prices", "scale": 0.5}},
        "congestion_points": [{"id": "cp", "import_limit_kw": 60, "export_limit_kw": 40}],
        "dso_limits_file": "dso.csv",
        "sites": [
            {"id": "home", "congestion_point": "cp", "connection": {"import_limit_kw": 40, "export_limit_kw": 10},
             "assets": [
                 {"id": "bat", "type": "battery", "power_kw": 5, "energy_kwh": 10, "initial_soc_pct": 50,
                  "terminal_soc_pct": 60},
                 {"id": "pv-roof", "type": "pv", "peak_kw": 4, "series_peak_kw": 4.0, "curtailable": True,
                  "generation_kw": {"source": "pv"}},
                 {"id": "pv-shed", "type": "pv", "peak_kw": 2, "count": 2, "series_peak_kw": 4.0,
                  "generation_kw": {"source": "pv"}},
                 {"id": "house", "type": "load", "power_kw": {"source": "load"}},
                 {"id": "ev", "type": "ev_charger", "max_charge_kw": 11, "charge_efficiency": 1.0,
                  "discharge_efficiency": 1.0,
                  "sessions": [{"arrival_local": "18:00", "departure_local": "23:00", "energy_kwh": 10}]},
                 {"id": "v2g", "type": "ev_charger", "count": 2, "max_charge_kw": 7.4, "max_discharge_kw": 7.2,
                  "current_type": "dc", "charge_efficiency": 1.0, "discharge_efficiency": 1.0,
                  "sessions": [{"arrival_local": "08:00", "departure_local": "20:00", "energy_kwh": 8, "units": 1,
                                "vehicle_battery_kwh": 60, "arrival_soc_pct": 30, "min_soc_pct": 20}]},
                 {"id": "zone", "type": "climate", "max_electric_kw": 3, "mode": "both",
                  "thermal_resistance_k_per_kw": 5, "thermal_capacitance_kwh_per_k": 10, "initial_temp_c": 20,
                  "outdoor_temp_c": {"source": "outdoor"}, "default_min_temp_c": 16, "default_max_temp_c": 26,
                  "comfort": [{"start_local": "07:00", "end_local": "09:00", "min_temp_c": 20, "max_temp_c": 23},
                              {"start_local": "18:00", "end_local": "22:00", "min_temp_c": 20, "max_temp_c": 23}]},
                 {"id": "cooler", "type": "heat_pump", "max_electric_kw": 2, "min_electric_kw": 0.5, "count": 2,
                  "mode": "cooling", "thermal_resistance_k_per_kw": 6, "thermal_capacitance_kwh_per_k": 8,
                  "initial_temp_c": 24, "outdoor_temp_c": 30.0, "default_min_temp_c": 18,
                  "default_max_temp_c": 26},
                 {"id": "boiler", **heater},
                 {"id": "boilers", "count": 3, **heater},
             ]},
            {"id": "shop", "congestion_point": "cp",
             "tariff": {"import_price_eur_per_kwh": 0.15, "peak_charge_eur_per_kw": 0.05},
             "assets": [{"id": "shop-load", "type": "load", "power_kw": 30.0}]},
        ],
    }
    path = folder / "portfolio.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    return path


def copy_run(run: Path, dest: Path) -> Path:
    shutil.copytree(run, dest)
    return dest


def edit_parquet(run: Path, name: str, edit) -> None:
    """Replace ``run/name`` by ``edit(frame)``."""
    edit(pd.read_parquet(run / name)).to_parquet(run / name, index=False)


def edit_kpis(run: Path, edit) -> None:
    kpis = json.loads((run / "kpis.json").read_text())
    edit(kpis)
    (run / "kpis.json").write_text(json.dumps(kpis))


def shift_power(run: Path, asset_id: str, t: int, delta_kw: float, state_delta: float = 0.0,
                state_from_t: bool = False) -> None:
    """Add ``delta_kw`` to an asset's power at interval ``t`` and to its site's and congestion point's net there
    (so only the asset's own physics and the cost are off); optionally shift its state from t on."""
    schedule = pd.read_parquet(run / "schedule.parquet")
    rows = schedule.index[schedule.asset_id == asset_id]
    schedule.loc[rows[t], "power_kw"] += delta_kw
    if state_delta:
        schedule.loc[rows[t:] if state_from_t else rows[t:t + 1], "state"] += state_delta
    schedule.to_parquet(run / "schedule.parquet", index=False)
    site_id = schedule.loc[rows[0], "site_id"]
    sites = pd.read_parquet(run / "sites.parquet")
    start = schedule.loc[rows[t], "interval_start"]
    hit = (sites.interval_start == start) & (((sites.level == "site") & (sites.id == site_id))
                                            | (sites.level == "congestion_point"))
    sites.loc[hit, "net_kw"] += delta_kw
    sites.to_parquet(run / "sites.parquet", index=False)


def unreported(portfolio: Path, run: Path) -> set[tuple[str, str]]:
    """(kind, asset / site / congestion point) of every unreported breach."""
    return {(b.kind, b.subject) for b in check_run(portfolio, run).unreported}


@pytest.fixture(scope="session")
def clean_run(tmp_path_factory) -> SimpleNamespace:
    root = tmp_path_factory.mktemp("clean")
    portfolio = write_clean_portfolio(root / "portfolio")
    outcome = run_schedule(RunRequest(portfolio_path=portfolio, kind="day-ahead", day=DAY, out=root / "run"))
    return SimpleNamespace(portfolio=portfolio, run=outcome.directory, kpis=outcome.kpis)


@pytest.fixture(scope="session")
def kit() -> SimpleNamespace:
    """The helpers above, for test modules (conftest is not importable under --import-mode=importlib)."""
    return SimpleNamespace(DAY=DAY, TZ=TZ, copy_run=copy_run, edit_parquet=edit_parquet, edit_kpis=edit_kpis,
                           shift_power=shift_power, unreported=unreported)


@pytest.fixture
def tampered(clean_run, tmp_path) -> Path:
    """A fresh copy of the clean run folder to tamper with."""
    return copy_run(clean_run.run, tmp_path / "run")
