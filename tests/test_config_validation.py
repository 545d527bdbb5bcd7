"""Bad portfolios give every problem with file, path and fix, exit code 2 and no traceback."""

from __future__ import annotations

import copy
import textwrap
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from flexopt.cli import app
from flexopt.config.loader import PortfolioError, load_portfolio

runner = CliRunner()

BASE = {
    "portfolio": {"name": "t", "timezone": "Europe/Madrid"},
    "data_sources": {
        "prices": {"path": "prices.csv", "column": "price", "time_column": "t", "unit": "EUR/MWh"},
    },
    "tariff": {"import_price_eur_per_kwh": {"source": "prices"}, "export_price_eur_per_kwh": 0.02},
    "congestion_points": [{"id": "cp1", "import_limit_kw": 500}],
    "sites": [
        {
            "id": "s1",
            "congestion_point": "cp1",
            "connection": {"import_limit_kw": 100, "export_limit_kw": 100},
            "assets": [
                {"id": "bess", "type": "battery", "power_kw": 50, "energy_kwh": 100,
                 "endpoint": {"protocol": "iec104", "host": "127.0.0.1",
                              "points": {"setpoint_ioa": 1, "active_power_ioa": 2}}},
                {"id": "ev", "type": "ev_charger", "count": 2, "max_charge_kw": 11,
                 "sessions": [{"arrival_local": "08:00", "departure_local": "17:00", "energy_kwh": 20}]},
            ],
        }
    ],
}


def write(tmp_path: Path, doc: dict, name: str = "p.yaml") -> Path:
    (tmp_path / "prices.csv").write_text("t,price\n2024-06-12T00:00:00+00:00,50\n2024-06-12T01:00:00+00:00,60\n")
    path = tmp_path / name
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def mutate(fn):
    doc = copy.deepcopy(BASE)
    fn(doc)
    return doc


def battery(doc):
    return doc["sites"][0]["assets"][0]


CASES = {
    "wrong type": (lambda d: battery(d).update(energy_kwh="lots"),
                   "sites[0].assets[0].energy_kwh", "must be a number, not text"),
    "negative power": (lambda d: battery(d).update(power_kw=-5),
                       "sites[0].assets[0].power_kw", "must be above 0 and at most 1,000,000 kW"),
    "soc min above max": (lambda d: battery(d).update(soc_min_pct=90, soc_max_pct=20),
                          "sites[0].assets[0].soc_max_pct", "must be above soc_min_pct"),
    "unknown key": (lambda d: battery(d).update(enery_kwh=5),
                    "sites[0].assets[0].enery_kwh", "did you mean 'energy_kwh'"),
    "missing data file": (lambda d: d["data_sources"]["prices"].update(path="nowhere.csv"),
                          "data_sources.prices.path", "file not found"),
    "missing column": (lambda d: d["data_sources"]["prices"].update(column="eur"),
                       "data_sources.prices.column", "has no column 'eur'"),
    "unknown protocol": (lambda d: battery(d)["endpoint"].update(protocol="bacnet"),
                         "sites[0].assets[0].endpoint", "protocol: unknown value 'bacnet'"),
    "duplicate asset id": (lambda d: d["sites"][0]["assets"][1].update(id="bess"),
                           "sites[0].assets[1].id", "duplicate asset id 'bess'"),
    "duplicate site id": (lambda d: d["sites"].append({"id": "s1"}), "sites[1].id", "duplicate site id"),
    "bad timezone": (lambda d: d["portfolio"].update(timezone="Europe/Madird"),
                     "portfolio.timezone", "unknown timezone 'Europe/Madird'"),
    "bad resolution": (lambda d: d["portfolio"].update(resolution_min=7),
                       "portfolio.resolution_min", "must divide 60"),
    "unknown asset type": (lambda d: d["sites"][0]["assets"].append({"id": "f", "type": "fridge"}),
                           "sites[0].assets[2]", "type: unknown value 'fridge'"),
    "unknown congestion point": (lambda d: d["sites"][0].update(congestion_point="cp9"),
                                 "sites[0].congestion_point", "unknown congestion point 'cp9'; defined: cp1"),
    "unknown data source": (lambda d: d["tariff"].update(import_price_eur_per_kwh={"source": "spot"}),
                            "tariff.import_price_eur_per_kwh.source", "unknown data source 'spot'"),
    "ev departs before arrival": (
        lambda d: d["sites"][0]["assets"][1]["sessions"][0].update(departure_local="07:00"),
        "sites[0].assets[1].sessions[0]", "must be after arrival_local"),
    "initial soc outside band": (lambda d: battery(d).update(initial_soc_pct=99),
                                 "sites[0].assets[0]", "initial_soc_pct (99) must lie between"),
    "modbus data type": (
        lambda d: battery(d).update(endpoint={"protocol": "modbus", "host": "h",
                                              "registers": {"p": {"address": 1, "data_type": "int8"}}}),
        "sites[0].assets[0].endpoint.registers.p.data_type", "'int16', 'uint16'"),
    "missing required": (lambda d: battery(d).pop("energy_kwh"),
                         "sites[0].assets[0].energy_kwh", "required field is missing"),
    "unquoted yaml on key": (
        lambda d: battery(d).update(endpoint={"protocol": "http", "base_url": "http://x", "device_id": "b",
                                              "setpoint": {"path": "/s", "body": {True: "{on}"}},
                                              "telemetry": {"path": "/t"}}),
        "sites[0].assets[0].endpoint.setpoint.body", "quote the key"),
    "sessions exceed chargers": (
        lambda d: d["sites"][0]["assets"][1]["sessions"][0].update(units=3),
        "sites[0].assets[1]", "sessions use 3 chargers but count is 2"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_portfolio_is_reported_with_path_and_exit_2(tmp_path, case):
    fn, path, text = CASES[case]
    file = write(tmp_path, mutate(fn))
    result = runner.invoke(app, ["validate", str(file)])
    output = result.output + (result.stderr if result.stderr_bytes is not None else "")
    assert result.exit_code == 2, output
    assert "Traceback" not in output
    line = next((ln for ln in output.splitlines() if f": {path}:" in ln), None)
    assert line is not None, f"no problem names {path!r}:\n{output}"
    assert text in line
    assert "p.yaml" in line


def test_valid_portfolio_prints_summary(tmp_path):
    result = runner.invoke(app, ["validate", str(write(tmp_path, BASE))])
    assert result.exit_code == 0, result.output
    assert "1 site(s), 3 devices" in result.output
    assert "iec104 (1)" in result.output
    assert "valid" in result.output


def test_all_problems_are_reported_at_once(tmp_path):
    doc = mutate(lambda d: (battery(d).update(power_kw=-1, enery_kwh=3), d["portfolio"].update(timezone="Mars")))
    with pytest.raises(PortfolioError) as info:
        load_portfolio(write(tmp_path, doc))
    paths = {p.path for p in info.value.problems}
    assert {"sites[0].assets[0].power_kw", "sites[0].assets[0].enery_kwh", "portfolio.timezone"} <= paths


def test_yaml_syntax_error_names_line(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("portfolio:\n  name: [unclosed\n")
    result = runner.invoke(app, ["validate", str(path)])
    assert result.exit_code == 2
    assert "not valid YAML" in result.output and "line" in result.output


def test_missing_portfolio_file(tmp_path):
    result = runner.invoke(app, ["validate", str(tmp_path / "nope.yaml")])
    assert result.exit_code == 2
    assert "file not found" in result.output


def test_includes_merge_sites_and_report_the_included_file(tmp_path):
    site = copy.deepcopy(BASE["sites"][0])
    site["id"] = "s2"
    for a in site["assets"]:
        a["id"] += "-2"
    site["assets"][0]["endpoint"]["common_address"] = 2  # each device its own address
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "prices.csv").write_text("t,price\n2024-06-12T00:00:00Z,1\n")
    sub = {"data_sources": {"sub_prices": {"path": "prices.csv", "column": "price", "time_column": "t",
                                           "unit": "EUR/MWh"}},
           "sites": [site]}
    (tmp_path / "sub" / "more.yaml").write_text(yaml.safe_dump(sub))
    main = copy.deepcopy(BASE)
    main["include"] = ["sub/more.yaml"]
    loaded = load_portfolio(write(tmp_path, main))
    assert [s.id for s in loaded.portfolio.sites] == ["s1", "s2"]
    # the included file's relative path resolves next to it, not next to the main file
    assert loaded.portfolio.data_sources["sub_prices"].path == (tmp_path / "sub" / "prices.csv").resolve()

    site["assets"][0]["power_kw"] = -3
    (tmp_path / "sub" / "more.yaml").write_text(yaml.safe_dump(sub))
    with pytest.raises(PortfolioError) as info:
        load_portfolio(tmp_path / "p.yaml")
    problem = info.value.problems[0]
    assert problem.file.endswith("more.yaml")
    assert problem.path == "sites[0].assets[0].power_kw"  # index inside the included file


def test_include_cycle_is_reported(tmp_path):
    (tmp_path / "a.yaml").write_text("include: [b.yaml]\n")
    (tmp_path / "b.yaml").write_text("include: [a.yaml]\n")
    with pytest.raises(PortfolioError) as info:
        load_portfolio(tmp_path / "a.yaml")
    assert "cycle" in str(info.value)


def test_schema_command_prints_json_schema():
    import json

    result = runner.invoke(app, ["schema"])
    assert result.exit_code == 0
    schema = json.loads(result.output)
    assert "sites" in schema["properties"]
    assert "Battery" in schema["$defs"]


def test_secrets_are_environment_variable_names_only():
    from flexopt.config.endpoints import HttpEndpoint, OcppEndpoint

    for model in (HttpEndpoint, OcppEndpoint):
        secret_like = [f for f in model.model_fields if any(w in f for w in ("token", "password", "key"))]
        assert secret_like and all(f.endswith("_env") for f in secret_like)


def test_textual_yaml_with_comments_validates(tmp_path):
    (tmp_path / "prices.csv").write_text("t,price\n2024-06-12T00:00:00+00:00,50\n")
    path = tmp_path / "x.yaml"
    path.write_text(textwrap.dedent("""
        # a minimal portfolio
        portfolio: {name: x}
        tariff: {import_price_eur_per_kwh: 0.2}
        sites:
          - id: home
            assets:
              - {id: pv, type: pv, peak_kw: 4}
    """))
    assert load_portfolio(path).portfolio.sites[0].assets[0].peak_kw == 4


def test_shared_file_is_included_once_and_identical_sources_may_repeat(tmp_path):
    (tmp_path / "prices.csv").write_text("t,price\n2024-06-12T00:00:00+00:00,50\n")
    common = {"data_sources": {"prices": BASE["data_sources"]["prices"]}}
    (tmp_path / "common.yaml").write_text(yaml.safe_dump(common))
    for name in ("a", "b"):
        site = copy.deepcopy(BASE["sites"][0])
        site["id"] = f"site-{name}"
        for asset in site["assets"]:
            asset["id"] += f"-{name}"
        site["assets"][0]["endpoint"]["common_address"] = 10 + ord(name)
        doc = {"include": ["common.yaml"], "data_sources": copy.deepcopy(common["data_sources"]), "sites": [site]}
        (tmp_path / f"{name}.yaml").write_text(yaml.safe_dump(doc))
    main = {k: v for k, v in copy.deepcopy(BASE).items() if k != "sites"}
    main["include"] = ["a.yaml", "b.yaml"]
    main["x-templates"] = {"battery": {"power_kw": 5}}  # extension keys are ignored
    loaded = load_portfolio(write(tmp_path, {**main, "sites": []}))
    assert [s.id for s in loaded.portfolio.sites] == ["site-a", "site-b"]
    assert loaded.files.count((tmp_path / "common.yaml").resolve()) == 1

    different = {"data_sources": {"prices": {**common["data_sources"]["prices"], "unit": "EUR/kWh"}}}
    (tmp_path / "common.yaml").write_text(yaml.safe_dump(different))
    with pytest.raises(PortfolioError, match="defined differently"):
        load_portfolio(tmp_path / "p.yaml")


def test_counted_devices_get_their_own_addresses():
    from flexopt.config.endpoints import HttpEndpoint, ModbusEndpoint, OcppEndpoint, device_endpoints

    ocpp = OcppEndpoint(protocol="ocpp", charge_point_id="MOUGINS-3K7", password_env="MOUGINS_PW")
    assert [e.charge_point_id for e in device_endpoints(ocpp, 3)] == ["MOUGINS-3K7-1", "MOUGINS-3K7-2", "MOUGINS-3K7-3"]
    assert device_endpoints(ocpp, 1) == [ocpp]
    modbus = ModbusEndpoint(protocol="modbus", host="h", device_id=4, registers={})
    assert [e.device_id for e in device_endpoints(modbus, 2)] == [4, 5]
    http = HttpEndpoint(protocol="http", base_url="http://x", device_id="wh", setpoint={"path": "/s"},
                        telemetry={"path": "/t"})
    assert device_endpoints(http, 2)[1].device_id == "wh-2"


def test_counted_devices_that_share_an_address_are_reported(tmp_path):
    def clash(d):
        ev = d["sites"][0]["assets"][1]
        ev["endpoint"] = {"protocol": "modbus", "host": "127.0.0.1", "port": 1502, "device_id": 1,
                          "registers": {"setpoint": {"address": 1}}}
        battery(d)["endpoint"] = {"protocol": "modbus", "host": "127.0.0.1", "port": 1502, "device_id": 2,
                                  "registers": {"setpoint": {"address": 1}}}

    result = runner.invoke(app, ["validate", str(write(tmp_path, mutate(clash)))])
    assert result.exit_code == 2
    assert "sites[0].assets[1].endpoint: device 2 (unit 2) has the address of bess device 1" in result.output
