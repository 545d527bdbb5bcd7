"""The pilot portfolios in examples/: they validate, hold every device of the seed's tables, and their data is
bundled, reproducible and covers the demo date."""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import subprocess
import sys
from collections import Counter, defaultdict
from fnmatch import fnmatch
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from flexopt.cli import app
from flexopt.config.loader import load_portfolio
from flexopt.config.portfolio import Battery, EvCharger, Load
from flexopt.data.timeseries import day_index, load_on_index, read_source

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
PILOT_FILES = ["abadiano.yaml", "guadalix.yaml", "bilbao.yaml", "benidorm.yaml", "seville.yaml", "france.yaml"]
ALL_FILE = "all_pilots.yaml"
DEMO_DATE = dt.date(2024, 6, 25)
LOCALHOST = "127.0.0.1"

# The seed's tables 2-6 (BeFlexible D6.2, chapter 3), transcribed as printed (typos and blanks included):
# (table, location, cluster of practices, appliance, nominal power, number of devices, protocol), then where the
# portfolio puts it: (site id or glob, asset type). "connection" = a grid row, checked against the site's import
# limit. Blank numbers mean 1 device (the battery, the aggregated campus climate).
SEED_ROWS: list[tuple[str, str, str, str, str, str, str, str, str]] = [
    ("2", "Bizkaia", "Abadiano", "Stand alone battery", "6MW/6MWh", "1", "IEC 104", "abadiano-bess", "battery"),
    ("3", "Madrid", "Guadalix", "PV phase1", "40kW", "1", "MODBUS (BMS)", "guadalix-campus", "pv"),
    ("3", "Madrid", "Guadalix", "PV Solar Farm", "12kW", "1", "MODBUS (BMS)", "guadalix-campus", "pv"),
    ("3", "Madrid", "Guadalix", "PV phase2", "40kW", "1", "MODBUS (BMS)", "guadalix-campus", "pv"),
    ("3", "Madrid", "Guadalix", "BESS", "250kW/175 kWh", "1", "EIC 104", "guadalix-campus", "battery"),
    ("3", "Madrid", "Guadalix", "BESS", "250kW/175 kWh", "1", "EIC 104", "guadalix-campus", "battery"),
    ("3", "Madrid", "Guadalix", "EV charger Unidirectional", "7,3kW", "4", "MODBUS (BMS)", "guadalix-campus",
     "ev_charger"),
    ("3", "Madrid", "Guadalix", "EV charger Bidirectional", "charge 7,4kW\\ discharge 7,2kW", "2", "MODBUS (BMS)",
     "guadalix-campus", "ev_charger"),
    ("3", "Madrid", "Guadalix", "Climate", "", "", "MODBUS (BMS)", "guadalix-campus", "climate"),
    ("3", "Madrid", "Residential", "", "", "10", "", "madrid-home-*", "*"),
    ("4", "Benidorm", "Benidorm", "Daikin Exterior Split R410A", "0,5 Kw", "6", "API", "benidorm-apartments",
     "climate"),
    ("4", "Benidorm", "Benidorm", "Daikin Interior FDXM-F3", "0,5 Kw", "6", "API", "benidorm-apartments", "climate"),
    ("5", "Seville", "To be defined", "Electric water heater", "2kW", "30", "Proprietary/API",
     "seville-social-housing", "water_heater"),
    ("6", "France", "Area FastCharger", "Battery (150 kwh)", "150 kWh", "", "API", "sap-area-fastcharger", "battery"),
    ("6", "France", "Area FastCharger", "Solar Panels Roof (50 kWp)", "50 kW", "1", "API", "sap-area-fastcharger",
     "pv"),
    ("6", "France", "Area FastCharger", "Solar Panels Parking 1 (20 kWp)", "20 kW", "1", "API",
     "sap-area-fastcharger", "pv"),
    ("6", "France", "Area FastCharger", "Solar Panels Parking 2 (10 kWp)", "10 kW", "2", "API",
     "sap-area-fastcharger", "pv"),
    ("6", "France", "Area FastCharger", "6 x 25 l boiler", "", "6", "API", "sap-area-fastcharger", "water_heater"),
    ("6", "France", "Area FastCharger", "1 x 200 l boiler", "", "1", "API", "sap-area-fastcharger", "water_heater"),
    ("6", "France", "?", "2 x 1000 l boiler", "", "2", "API", "sap-mougins", "water_heater"),
    ("6", "France", "Area FastCharger", "4 x 50 kW DC", "50 kW DC", "4", "OCPP", "sap-area-fastcharger",
     "ev_charger"),
    ("6", "France", "Area FastCharger", "2 x 150 kW DC", "150 kW DC", "2", "OCPP", "sap-area-fastcharger",
     "ev_charger"),
    ("6", "France", "Area FastCharger", "2 x 120 kW DC", "120 kW DC", "2", "OCPP", "sap-area-fastcharger",
     "ev_charger"),
    ("6", "France", "Area South", "1 x 24 kW DC", "24 kW DC", "1", "API", "sap-area-south", "ev_charger"),
    ("6", "France", "Area South", "2 x 11 kW (AC)", "11 kW AC", "2", "API", "sap-area-south", "ev_charger"),
    ("6", "France", "Area South", "20 x 22kW (AC)", "22 kW AC", "20", "API", "sap-area-south", "ev_charger"),
    ("6", "France", "Area North", "Grid (150 kW x 3 phases)", "150 kW", "1", "API", "sap-area-north", "connection"),
    ("6", "France", "Area North", "8 x 22 kW (AC)", "22 kW AC", "8", "API", "sap-area-north", "ev_charger"),
    ("6", "France", "Area Parking", "Grid (180 kW x 3 phases)", "", "", "API", "sap-area-parking", "connection"),
    ("6", "France", "Area Parking", "Solar Panels Parking (36 kWp)", "36 kWp", "1", "API", "sap-area-parking", "pv"),
    ("6", "France", "Area Parking", "12 x 11 kW (AC)", "11 kW AC", "12", "OCPP", "sap-area-parking", "ev_charger"),
    ("6", "France", "Area Parking", "2 x 22 kW (AC)", "22 kW AC", "2", "OCPP", "sap-area-parking", "ev_charger"),
    ("6", "France", "SLF Employees", "To refine per pilot participant", "", "", "OCPP", "slf-home-*", "ev_charger"),
    ("6", "France", "Mougins", "32 x 3,7 kW", "3,7 kW", "32", "OCPP", "sap-mougins", "ev_charger"),
    ("6", "France", "Mougins", "15 x 7 kW", "7 kW", "15", "OCPP", "sap-mougins", "ev_charger"),
    ("6", "France", "Mougins", "2 x 11kW", "11 kW AC", "2", "OCPP", "sap-mougins", "ev_charger"),
    ("6", "France", "Mougins", "13 x 22kw", "22 kW", "13", "OCPP", "sap-mougins", "ev_charger"),
    ("6", "France", "Caen", "20 x 3,7kW", "3,7 kW", "20", "OCPP", "sap-caen", "ev_charger"),
    ("6", "France", "Paris", "9 x 3,7 kW", "3,7 kW", "9", "OCPP", "sap-paris", "ev_charger"),
    ("6", "France", "Paris", "10 x 7 kW", "7 kW", "10", "OCPP", "sap-paris", "ev_charger"),
    ("6", "France", "Paris", "2 x 22kw", "22 kW", "2", "OCPP", "sap-paris", "ev_charger"),
]
PROTOCOLS = {"IEC 104": "iec104", "EIC 104": "iec104", "MODBUS (BMS)": "modbus", "API": "http",
             "Proprietary/API": "http", "OCPP": "ocpp"}
# Benidorm: an exterior and an interior unit are one split system, one climate asset with the pair's power.
PAIRED = {("benidorm-apartments", "climate")}

_QUANTITY = re.compile(r"(\d+(?:[.,]\d+)?)\s*(MWh|kWh|MW|kWp|kW)", re.IGNORECASE)


def quantities(text: str) -> dict[str, list[float]]:
    """'charge 7,4kW\\ discharge 7,2kW' -> {'kw': [7.4, 7.2]}; '6MW/6MWh' -> {'kw': [6000], 'kwh': [6000]}."""
    out: dict[str, list[float]] = defaultdict(list)
    for number, unit in _QUANTITY.findall(text):
        value = float(number.replace(",", "."))
        unit = unit.lower()
        factor = 1000.0 if unit.startswith("mw") else 1.0
        out["kwh" if unit.endswith("wh") else "kw"].append(value * factor)
    return out


def test_quantity_parser_reads_the_seed_notation():
    assert quantities("6MW/6MWh") == {"kw": [6000.0], "kwh": [6000.0]}
    assert quantities("charge 7,4kW\\ discharge 7,2kW") == {"kw": [7.4, 7.2]}
    assert quantities("0,5 Kw") == {"kw": [0.5]}
    assert quantities("150 kWh") == {"kwh": [150.0]}


@pytest.fixture(scope="module")
def combined():
    return load_portfolio(EXAMPLES / ALL_FILE).portfolio


# --- every file validates ----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", [*PILOT_FILES, ALL_FILE])
def test_portfolio_validates(name):
    loaded = load_portfolio(EXAMPLES / name)
    assert loaded.portfolio.sites
    result = CliRunner().invoke(app, ["validate", str(EXAMPLES / name)])
    assert result.exit_code == 0, result.output
    assert "valid" in result.output and "UNREADABLE" not in result.output


def test_all_pilots_is_the_union_of_the_pilot_files(combined):
    sites: list[str] = []
    cps: list[str] = []
    for name in PILOT_FILES:
        pf = load_portfolio(EXAMPLES / name).portfolio
        sites += [s.id for s in pf.sites]
        cps += [c.id for c in pf.congestion_points]
        assert pf.portfolio.name and pf.tariff is not None
    assert [s.id for s in combined.sites] == sites
    assert sorted(c.id for c in combined.congestion_points) == sorted(cps)
    assert len(set(cps)) == len(cps)
    # the including file's own settings win
    assert combined.portfolio.timezone == "Europe/Madrid"
    assert combined.portfolio.name == "BeFlexible WP6 pilots (all sites)"
    assert combined.tariff.import_price_eur_per_kwh.source == "price_be_day_ahead"


# --- every device of the seed's tables ---------------------------------------------------------------------


def _sites(pf, pattern: str):
    found = [s for s in pf.sites if fnmatch(s.id, pattern)]
    assert found, f"no site matches {pattern!r}"
    return found


def _devices(site, kind: str) -> list:
    return [a for a in site.assets if not isinstance(a, Load) and (kind == "*" or a.type == kind)]


def test_every_seed_row_is_in_the_portfolio(combined):
    expected: dict[tuple[str, str], Counter] = defaultdict(Counter)
    rows_by_key: dict[tuple[str, str], list] = defaultdict(list)
    for row in SEED_ROWS:
        rows_by_key[(row[7], row[8])].append(row)
    for (site, kind), rows in rows_by_key.items():
        if kind == "connection":
            for row in rows:
                limit = quantities(row[4] or row[3])["kw"][0]
                (s,) = _sites(combined, site)
                assert s.connection.import_limit_kw == pytest.approx(limit), f"{site}: {row[3]} -> total 3-phase kW"
            continue
        if "*" in site:
            continue
        if (site, kind) in PAIRED:
            pair_kw = sum(quantities(r[4])["kw"][0] for r in rows)
            assert len({r[5] for r in rows}) == 1
            expected[(site, kind)][round(pair_kw, 3)] += int(rows[0][5])
            continue
        for row in rows:
            kw = quantities(row[4]).get("kw")
            expected[(site, kind)][round(kw[0], 3) if kw else None] += int(row[5] or 1)
    for (site, kind), want in expected.items():
        (s,) = _sites(combined, site)
        devices = _devices(s, kind)
        have = Counter()
        for a in devices:
            have[round(a.rated_power_kw, 3)] += a.count
        if None in want:  # the seed gives no power for some rows: compare counts, and powers where given
            assert sum(have.values()) == sum(want.values()), f"{site} {kind}: {have} vs seed {want}"
            for kw, n in want.items():
                if kw is not None:
                    assert have[kw] >= n, f"{site} {kind} {kw} kW: {have} vs seed {want}"
        else:
            assert have == want, f"{site} {kind}: portfolio {dict(have)} vs seed {dict(want)}"


def test_no_device_at_a_table_site_is_missing_from_the_tables(combined):
    listed = {(row[7], row[8]) for row in SEED_ROWS if "*" not in row[7]}
    table_sites = {site for site, _ in listed}
    checked = 0
    for site in combined.sites:
        if site.id in table_sites:
            for a in _devices(site, "*"):
                assert (site.id, a.type) in listed, f"{a.id} at {site.id} is not a row of the seed's tables"
                checked += 1
    assert checked >= 40


def test_protocols_match_the_seed(combined):
    for row in SEED_ROWS:
        site, kind, protocol = row[7], row[8], row[6]
        if kind == "connection" or not protocol:
            continue
        for s in _sites(combined, site):
            for a in _devices(s, kind):
                assert a.endpoint is not None, a.id
                assert a.endpoint.protocol == PROTOCOLS[protocol], f"{a.id}: {a.endpoint.protocol} vs {protocol}"


def test_storage_energy_and_v2g_discharge_follow_the_seed(combined):
    def battery(site_id):
        (s,) = _sites(combined, site_id)
        return [a for a in s.assets if isinstance(a, Battery)]

    assert [(b.max_charge_kw, b.energy_kwh) for b in battery("abadiano-bess")] == [(6000, 6000)]
    assert [(b.max_charge_kw, b.energy_kwh) for b in battery("guadalix-campus")] == [(250, 175)] * 2
    assert [b.energy_kwh for b in battery("sap-area-fastcharger")] == [150]
    (campus,) = _sites(combined, "guadalix-campus")
    v2g = [a for a in campus.assets if isinstance(a, EvCharger) and a.max_discharge_kw > 0]
    assert [(a.count, a.max_charge_kw, a.max_discharge_kw) for a in v2g] == [(2, 7.4, 7.2)]


def test_residential_customers_and_employee_homes(combined):
    homes = _sites(combined, "madrid-home-*")
    assert len(homes) == 10
    kinds = Counter()
    for home in homes:
        assert home.user_type == "Residential"
        devices = _devices(home, "*")
        assert devices, f"{home.id} has no controllable device"
        assert {a.endpoint.protocol for a in devices} == {"http"}
        assert any(isinstance(a, Load) for a in home.assets), f"{home.id} has no household load"
        kinds.update(a.type for a in devices)
    # the seed names climate/air conditioning, heat pumps, EVs and PV: every kind appears
    assert {"climate", "heat_pump", "ev_charger", "pv"} <= set(kinds)
    for home in _sites(combined, "slf-home-*"):
        assert [a.type for a in _devices(home, "*")] == ["ev_charger"]


def test_bilbao_city_hall_has_pv_climate_and_load(combined):
    (hall,) = _sites(combined, "bilbao-city-hall")
    assert sorted(a.type for a in hall.assets) == ["climate", "load", "pv"]
    assert {a.endpoint.protocol for a in _devices(hall, "*")} == {"modbus"}


def test_every_site_and_asset_is_documented(combined):
    for site in combined.sites:
        loc = site.location
        assert loc.city and loc.country in ("ES", "FR") and loc.latitude and loc.longitude, site.id
        assert site.archetype and site.user_type and site.congestion_point and site.timezone, site.id
        assert site.connection.import_limit_kw, site.id
        for a in site.assets:
            assert len(a.notes) > 20, f"{a.id} has no documented assumptions"
    ids = {s.congestion_point for s in combined.sites}
    assert all(i.startswith(("IDE-", "ENEDIS-", "EDIST-")) for i in ids)


# --- endpoints: all on loopback, one address per simulated server ------------------------------------------


def test_endpoints_are_local_and_unambiguous(combined):
    ports: dict[int, str] = {combined.ocpp_central_system.port: "ocpp-csms"}
    seen: set[tuple] = set()
    for site in combined.sites:
        for a in _devices(site, "*"):
            ep = a.endpoint
            assert ep is not None, f"{a.id} has no endpoint"
            if ep.protocol == "ocpp":
                key: tuple = ("ocpp", ep.charge_point_id, ep.connector_id)
                assert combined.ocpp_central_system.host == LOCALHOST
            else:
                if ep.protocol == "http":
                    url = urlparse(ep.base_url)
                    host, port, unit = url.hostname, url.port, ep.device_id
                    assert ep.token_env and ep.token_env.endswith("_TOKEN")
                else:
                    host, port = ep.host, ep.port
                    unit = ep.device_id if ep.protocol == "modbus" else ep.common_address
                assert host == LOCALHOST, a.id
                assert ports.setdefault(port, ep.protocol) == ep.protocol, f"port {port} used by two protocols"
                key = (ep.protocol, port, unit)
            assert key not in seen, f"{a.id}: {key} addresses another asset too"
            seen.add(key)
    iec_ports = [k[1] for k in seen if k[0] == "iec104"]
    assert len(iec_ports) == len(set(iec_ports)) == 3  # one RTU per BESS


# --- data: bundled, real where it exists, reproducible where synthetic, covering the demo date -------------

REAL_FILES = {
    "be_day_ahead_prices_2022_2024_hourly.csv": "f9aec6ad8202e67de650225f366b1c0af554bf0f1cc994d198eb9338eda8a1ae",
    "household_fr_2024_30min.csv": "e872140761ef0d6888ac1393d35d2439aa838baaf490fe265ecf978cbeed7b33",
}


@pytest.mark.parametrize("name", sorted(REAL_FILES))
def test_real_data_is_bundled_unchanged(name):
    assert hashlib.sha256((EXAMPLES / "data" / name).read_bytes()).hexdigest() == REAL_FILES[name]
    assert name in (EXAMPLES / "data" / "README.md").read_text(encoding="utf-8")


def test_every_data_source_is_inside_examples(combined):
    for name, src in combined.data_sources.items():
        assert Path(src.path).resolve().is_relative_to(EXAMPLES / "data"), name
        assert src.synthetic == Path(src.path).name.startswith("synthetic_"), name


def test_synthetic_data_script_is_deterministic(tmp_path):
    script = EXAMPLES / "scripts" / "make_synthetic.py"
    subprocess.run([sys.executable, str(script), "--out", str(tmp_path)], check=True, capture_output=True)
    written = sorted(p.name for p in tmp_path.iterdir())
    assert written == ["synthetic_building_load_30min.csv", "synthetic_outdoor_temp_hourly.csv"]
    for name in written:
        assert (tmp_path / name).read_bytes() == (EXAMPLES / "data" / name).read_bytes(), name


def test_demo_date_is_covered_by_every_series(combined):
    index = day_index(DEMO_DATE, combined.portfolio.timezone, combined.portfolio.resolution_min)
    for name, src in combined.data_sources.items():
        if src.kind == "forecast":
            values, report = load_on_index(src, index, name)
            assert len(values) == 96 and np.isfinite(values.to_numpy()).all(), name
            assert report.missing <= 4, report.summary()
        else:  # history: at least four weeks before the demo day for the forecaster
            series, _ = read_source(src, name)
            before = series[series.index < index[0]].dropna()
            assert before.index.min() <= index[0] - pd.Timedelta(days=28), name


def test_demo_date_has_the_price_shape_documented(combined):
    index = day_index(DEMO_DATE, "Europe/Madrid", 60)
    prices, _ = load_on_index(combined.data_sources["price_be_day_ahead"], index)
    local_hour = index.tz_convert("Europe/Madrid").hour
    assert prices.min() < 0, "the demo day has negative midday prices (battery and V2G interest)"
    assert prices[local_hour >= 18].max() > 0.12 > prices[(local_hour >= 10) & (local_hour < 16)].max()
    readme = (EXAMPLES / "README.md").read_text(encoding="utf-8")
    assert f"Demo date: {DEMO_DATE.isoformat()}" in readme


def test_pv_scaling_matches_the_measured_array(combined):
    series, _ = read_source(combined.data_sources["guadalix_pv_measured"])
    observed_kw = float(series.max())
    for site in combined.sites:
        for a in site.assets:
            if a.type == "pv":
                # the measured array's kWp must be at least its highest output and not far above it
                assert observed_kw <= a.series_peak_kw <= 1.1 * observed_kw, a.id
