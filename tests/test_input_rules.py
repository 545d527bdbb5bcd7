"""The input rules of docs/inputs.md, one regression test per issue-9 finding (the corpus in tests/hostile/ runs the
same inputs through the CLI under a memory limit; these tests pin the behaviour of each piece)."""

from __future__ import annotations

import copy
import json
import time
from pathlib import Path

import jsonschema
import pytest
import yaml
from rich.console import Console
from typer.testing import CliRunner

from flexopt.cli import app
from flexopt.config.loader import PortfolioError, load_portfolio
from flexopt.config.portfolio import DataSource
from flexopt.config.yaml_reader import YamlFileError, load_yaml_text
from flexopt.data.timeseries import SeriesError, day_index, history_before, read_source

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
runner = CliRunner()

BASE = {
    "portfolio": {"name": "rules", "timezone": "Europe/Madrid", "resolution_min": 60},
    "tariff": {"import_price_eur_per_kwh": 0.2},
    "sites": [{"id": "s", "assets": [{"id": "bat", "type": "battery", "power_kw": 5, "energy_kwh": 10}]}],
}


def problems_of(tmp_path: Path, text: str, name: str = "p.yaml") -> list[str]:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    with pytest.raises(PortfolioError) as info:
        load_portfolio(path)
    return [str(p) for p in info.value.problems]


def with_battery(**fields) -> str:
    doc = copy.deepcopy(BASE)
    doc["sites"][0]["assets"][0].update(fields)
    return json.dumps(doc)


# --- YAML -------------------------------------------------------------------------------------------------------


def test_alias_bomb_is_refused_in_milliseconds():
    lines = ["a: &a [x,x,x,x,x,x,x,x,x]"] + [
        f"{chr(98 + i)}: &{chr(98 + i)} [" + ",".join([f"*{chr(97 + i)}"] * 9) + "]" for i in range(8)]
    started = time.perf_counter()
    with pytest.raises(YamlFileError, match="alias bomb"):
        load_yaml_text("\n".join(lines))
    assert time.perf_counter() - started < 1.0


def test_duplicate_keys_name_both_lines(tmp_path):
    text = "portfolio: {name: a}\ntariff: {import_price_eur_per_kwh: 0.2}\nportfolio: {name: b}\n"
    (problem,) = problems_of(tmp_path, text)
    assert "p.yaml: line 3, column 1: duplicate key 'portfolio' (first on line 1)" in problem


def test_unquoted_time_is_refused_with_the_quoted_form(tmp_path):
    text = with_battery().replace('"assets": [', '"assets": [{"id": "ev", "type": "ev_charger", "max_charge_kw": 11, '
                                  '"sessions": [{"arrival_local": 18:00, "departure_local": "23:00", '
                                  '"energy_kwh": 20}]}, ')
    (problem,) = problems_of(tmp_path, text)
    assert "sites[0].assets[0].sessions[0].arrival_local" in problem
    assert 'YAML reads the unquoted time 18:00 as the number 1080; quote the time: "18:00"' in problem


def test_exponent_numbers_are_numbers():
    assert load_yaml_text("a: 1e3\nb: 2.5E-3\nc: '1e3'\n") == {"a": 1000.0, "b": 0.0025, "c": "1e3"}


@pytest.mark.parametrize(("value", "text"), [
    ("true", "not true/false"), ('"10"', "not text"), (".nan", "finite"), (".inf", "finite"),
    ("1.0e+300", "at most 10,000,000 kWh"), ("0", "above 0"), ("null", "got null"),
])
def test_numbers_are_strict_finite_and_in_range(tmp_path, value, text):
    (problem,) = problems_of(tmp_path, with_battery().replace('"energy_kwh": 10', f'"energy_kwh": {value}'))
    assert "sites[0].assets[0].energy_kwh" in problem and text in problem


@pytest.mark.parametrize(("data", "text"), [
    (b"\xff\xfep\x00", "UTF-16"), ("name: caf\xe9\n".encode("latin-1"), "line 1, column 10"),
    (bytes(range(256)), "binary"),
])
def test_encodings_are_named(tmp_path, data, text):
    path = tmp_path / "p.yaml"
    path.write_bytes(data)
    with pytest.raises(PortfolioError, match=text):
        load_portfolio(path)


def test_includes_stay_in_the_folder_unless_allowed(tmp_path):
    (tmp_path / "shared").mkdir()
    (tmp_path / "shared" / "site.yaml").write_text(json.dumps({"sites": [{"id": "other"}]}))
    (tmp_path / "main").mkdir()
    doc = {**BASE, "include": ["../shared/site.yaml"]}
    (problem,) = problems_of(tmp_path / "main", json.dumps(doc))
    assert "include[0]" in problem and "allow_includes_outside: true" in problem
    (tmp_path / "main" / "p.yaml").write_text(json.dumps({**doc, "allow_includes_outside": True}))
    assert [s.id for s in load_portfolio(tmp_path / "main" / "p.yaml").portfolio.sites] == ["s", "other"]


def test_non_list_sites_is_a_message_not_a_type_error(tmp_path):
    (problem,) = problems_of(tmp_path, json.dumps({**BASE, "sites": 5}))
    assert "p.yaml: sites: must be a list" in problem


# --- PV scaling ---------------------------------------------------------------------------------------------------


def test_pv_series_needs_the_peak_it_was_measured_on(tmp_path):
    (tmp_path / "sun.csv").write_text("timestamp,kw\n2024-06-12T10:00Z,0.5\n2024-06-12T11:00Z,0.57\n")
    doc = copy.deepcopy(BASE)
    doc["data_sources"] = {"sun": {"path": "sun.csv", "column": "kw", "unit": "kW"}}
    doc["sites"][0]["assets"] = [{"id": "pv", "type": "pv", "peak_kw": 120, "generation_kw": {"source": "sun"}}]
    (problem,) = problems_of(tmp_path, json.dumps(doc))
    assert "sites[0].assets[0].series_peak_kw: required with generation_kw" in problem
    assert "use peak_kw itself if the series is this array's own output" in problem
    doc["sites"][0]["assets"][0]["series_peak_kw"] = 1.0
    (tmp_path / "p.yaml").write_text(json.dumps(doc))
    assert load_portfolio(tmp_path / "p.yaml").portfolio.sites[0].assets[0].series_peak_kw == 1.0


# --- data files and the DSO limits file ---------------------------------------------------------------------------


@pytest.mark.parametrize(("content", "text"), [
    ("t,v\n", "holds no data rows"),
    ("t,v\n2024-06-12T00:00Z,1\n2024-06-12T01:00Z,inf\n", "line 3 ('inf')"),
    ("t,v\n2024-06-12T00:00Z,1\n2024-06-12T01:00Z,n/a\n", "line 3 ('n/a')"),
    ("t,v\n2024-06-12T00:00Z,1\n2024-06-12T01:00Z,1,5\n", "line 3"),
    ("t,v\n2024-06-12T00:00Z,1\n2024-06-12T01:00,2\n", "mixed"),
    ("t,v\n2024-06-12T00:00Z,1\n2024-06-12T01:00Z,50000\n", "outside the physical range of EUR/kWh"),
])
def test_data_file_faults_name_file_column_and_line(tmp_path, content, text):
    path = tmp_path / "prices.csv"
    path.write_text(content)
    with pytest.raises(SeriesError) as info:
        read_source(DataSource(path=path, column="v", time_column="t", unit="EUR/MWh"), "prices")
    assert "prices.csv" in str(info.value) and text in str(info.value)


def test_validate_reads_the_dso_limits_file(tmp_path):
    (tmp_path / "dso.csv").write_text("congestion_point,start,end,max_import_kw,max_export_kw\n"
                                      "cp1,2024-06-12T18:00,2024-06-12T21:00:00+02:00,low,\n")
    doc = {**BASE, "congestion_points": [{"id": "cp1"}], "dso_limits_file": "dso.csv"}
    (tmp_path / "p.yaml").write_text(json.dumps(doc))
    result = runner.invoke(app, ["validate", str(tmp_path / "p.yaml")])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "dso_limits_file" in result.output and "dso.csv: row 2: start '2024-06-12T18:00' has no UTC offset" \
        in result.output


def test_history_ending_long_before_the_day_is_an_error_not_zero_kw():
    import pandas as pd

    history = pd.Series(1.0, index=pd.date_range("2024-01-01", "2024-03-01", freq="30min", tz="UTC"))
    index = day_index(pd.Timestamp("2024-06-12").date(), "Europe/Madrid", 60)
    with pytest.raises(SeriesError, match=r"ends 103 days before 2024-06-12; it covers 2024-01-01 00:00 to "
                                          r"2024-03-01 00:00 UTC\. a forecast of 2024-06-12 needs at least 1 day"):
        history_before(history, index, "load", "Europe/Madrid")
    assert len(history_before(history, day_index(pd.Timestamp("2024-03-02").date(), "UTC", 60), "load", "UTC"))


# --- command line and KPIs ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("date", ["9999-12-31", "1850-01-01"])
def test_dates_outside_the_calendar_range_are_exit_2(tmp_path, date):
    (tmp_path / "p.yaml").write_text(json.dumps(BASE))
    result = runner.invoke(app, ["schedule", "day-ahead", str(tmp_path / "p.yaml"), "--date", date,
                                 "--out", str(tmp_path / "o")])
    assert result.exit_code == 2 and "--date" in result.output and "1900-2200" in result.output


def test_nan_mip_gap_is_refused_as_not_finite(tmp_path):
    (tmp_path / "p.yaml").write_text(json.dumps(BASE))
    result = runner.invoke(app, ["schedule", "day-ahead", str(tmp_path / "p.yaml"), "--date", "2024-06-12",
                                 "--mip-gap", "nan"])
    assert result.exit_code == 2 and "not a finite number" in result.output


def test_kpis_without_a_saving_percentage_print_n_a():
    from flexopt.commands.schedule import print_kpis

    console = Console(record=True, width=200)
    print_kpis({"cost_eur": 0.0, "baseline_cost_eur": 0.0, "saving_eur": 0.0, "saving_pct": None,
                "solver": {"status": "kOptimal", "mip_gap": None}}, console)
    text = console.export_text()
    assert "│ 0.00  " in text and "%" not in text.split("saving (EUR)")[1].split("\n")[0]  # no percentage of nothing
    assert "kOptimal, gap n/a" in text


# --- the published schema -----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def file_schema() -> jsonschema.Draft202012Validator:
    schema = json.loads(runner.invoke(app, ["schema"]).output)
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


@pytest.mark.parametrize("name", sorted(p.name for p in EXAMPLES.glob("*.yaml")))
def test_schema_accepts_every_example_file(file_schema, name):
    doc = yaml.safe_load((EXAMPLES / name).read_text(encoding="utf-8"))
    assert [e.message for e in file_schema.iter_errors(doc)] == []


def test_schema_accepts_fragments_and_refuses_typos(file_schema):
    fragment = {"include": ["a.yaml"], "x-tmpl": {"type": "battery"}, "sites": [{"id": "s", "assets": []}]}
    assert list(file_schema.iter_errors(fragment)) == []
    bad = copy.deepcopy(BASE)
    bad["sites"][0]["assets"][0]["enery_kwh"] = 5
    assert list(file_schema.iter_errors(bad))
    assert list(file_schema.iter_errors({**BASE, "tariff": {"import_price_eur_per_kwh": 50}}))


def test_hourly_data_on_a_day_that_starts_at_a_quarter_past_is_averaged_by_overlap(tmp_path):
    """Pacific/Chatham is UTC+12:45: hourly UTC data straddles every local hour (it read as 'no values')."""
    import numpy as np
    import pandas as pd

    from flexopt.data.timeseries import load_on_index

    hours = pd.date_range("2024-06-10T00:00Z", periods=96, freq="1h")
    path = tmp_path / "p.csv"
    pd.DataFrame({"timestamp": hours.strftime("%Y-%m-%dT%H:%M:%SZ"), "v": np.arange(96.0)}).to_csv(path, index=False)
    index = day_index(pd.Timestamp("2024-06-12").date(), "Pacific/Chatham", 60)
    assert index[0].minute == 15
    values, report = load_on_index(DataSource(path=path, column="v", unit="kW"), index)
    first = (index[0] - hours[0]) / pd.Timedelta(hours=1)  # the hour number the first interval starts in
    expected = 0.75 * np.floor(first + np.arange(len(index))) + 0.25 * (np.floor(first + np.arange(len(index))) + 1)
    np.testing.assert_allclose(values.to_numpy(), expected)
    assert report.missing == 0 and "overlapping" in report.resampled
