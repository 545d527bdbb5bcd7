"""Write the hostile-input corpus: one small portfolio folder per case, with the commands to run and what to expect.

    python tests/hostile/make_corpus.py OUT_DIR      # writes OUT_DIR/<case>/ and OUT_DIR/<case>/case.json

Each case is a tiny portfolio (one site, one day at hourly resolution, a few assets, so that ``schedule`` takes well
under a second) with one thing wrong, or one awkward but valid thing. ``case.json`` lists the runs
(``flexopt validate`` and ``flexopt schedule day-ahead`` unless the case needs others) and for each the expected
outcome:

* ``{"exit": 2, "mentions": [...]}``: refused with a message naming the file and the field or row (every listed
  text must appear in the output) and no traceback;
* ``{"exit": 0, "run": true}``: accepted; the run folder exists and passes ``checks.check_run``;
  ``"violations": true`` additionally expects at least one reported violation.

Portfolios are written as JSON (which is YAML) unless a case is about YAML itself; only the Parquet cases need
pyarrow. Nothing here imports flexopt: the corpus does not depend on the code it tests.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import math
import os
import sys
from pathlib import Path
from typing import Any

DAY = "2024-06-12"
TZ = "Europe/Madrid"
SCHEDULE = ["schedule", "day-ahead", "p.yaml", "--date", DAY, "--store", "runs", "--time-limit", "30"]
VALIDATE = ["validate", "p.yaml"]

OK_VALIDATE: dict[str, Any] = {"exit": 0}
OK_RUN: dict[str, Any] = {"exit": 0, "run": True}


def bad(*mentions: str) -> dict[str, Any]:
    return {"exit": 2, "mentions": list(mentions)}


# --- data files -------------------------------------------------------------------------------------------------


def _hours(start: str, n: int, step_min: int) -> list[dt.datetime]:
    t0 = dt.datetime.fromisoformat(start)
    return [t0 + dt.timedelta(minutes=step_min * i) for i in range(n)]


def _iso(t: dt.datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def _local_hour(t: dt.datetime) -> float:
    return (t.hour + 2 + t.minute / 60) % 24  # Madrid summer time, enough for shapes


def prices_csv(values: dict[int, str] | None = None, header: str = "timestamp,price") -> str:
    """Hourly EUR/MWh prices in UTC from 2024-06-10 for five days: cheap nights, an expensive evening."""
    rows = [header]
    for i, t in enumerate(_hours("2024-06-10T00:00", 24 * 5, 60)):
        h = _local_hour(t)
        price = 20.0 if h < 6 else 250.0 if 19 <= h < 22 else 90.0
        rows.append(f"{_iso(t)},{values.get(i, price) if values else price}")
    return "\n".join(rows) + "\n"


def site_csv() -> str:
    """Quarter-hour PV (kW, 4 kWp array) and household load (kW) in UTC for five days."""
    rows = ["timestamp,pv_kw,load_kw,temp_c"]
    for t in _hours("2024-06-10T00:00", 96 * 5, 15):
        h = _local_hour(t)
        pv = max(0.0, math.sin((h - 7) / 14 * math.pi)) * 3.8
        temp = 18 + 8 * math.sin((h - 9) / 24 * 2 * math.pi)
        rows.append(f"{_iso(t)},{pv:.3f},{0.8 + 0.4 * (t.hour % 3):.2f},{temp:.1f}")
    return "\n".join(rows) + "\n"


def history_csv(start: str = "2024-05-08T00:00", days: float = 35) -> str:
    """Half-hourly household load history (W) ending before the scheduled day when started at the default."""
    rows = ["timestamp,load_w"]
    for t in _hours(start, round(48 * days), 30):
        h = _local_hour(t)
        rows.append(f"{_iso(t)},{500 + 400 * (18 <= h < 22) + 50 * (t.day % 7)}")
    return "\n".join(rows) + "\n"


def parquet_bytes(values: list[float], step_min: int = 60) -> bytes:
    """A tiny Parquet file (timestamp text, float values) written with pyarrow at generation time."""
    import io

    import pyarrow as pa
    import pyarrow.parquet as pq

    times = [_iso(t) for t in _hours("2024-06-10T00:00", len(values), step_min)]
    sink = io.BytesIO()
    pq.write_table(pa.table({"timestamp": times, "price": pa.array(values, pa.float64())}), sink)
    return sink.getvalue()


def dso_csv(*rows: str) -> str:
    return "congestion_point,start,end,max_import_kw,max_export_kw\n" + "".join(r + "\n" for r in rows)


# --- the base portfolio -----------------------------------------------------------------------------------------


BASE: dict[str, Any] = {
    "portfolio": {"name": "hostile", "timezone": TZ, "resolution_min": 60},
    "data_sources": {
        "prices": {"path": "data/prices.csv", "column": "price", "unit": "EUR/MWh"},
        "sun": {"path": "data/site.csv", "column": "pv_kw", "unit": "kW"},
        "house": {"path": "data/site.csv", "column": "load_kw", "unit": "kW"},
    },
    "tariff": {"import_price_eur_per_kwh": {"source": "prices"}, "export_price_eur_per_kwh": 0.02},
    "congestion_points": [{"id": "cp1", "import_limit_kw": 50}],
    "sites": [{
        "id": "home", "congestion_point": "cp1", "connection": {"import_limit_kw": 20, "export_limit_kw": 10},
        "assets": [
            {"id": "bat", "type": "battery", "power_kw": 5, "energy_kwh": 10},
            {"id": "pv", "type": "pv", "peak_kw": 4, "series_peak_kw": 4, "generation_kw": {"source": "sun"}},
            {"id": "house", "type": "load", "power_kw": {"source": "house"}},
        ],
    }],
}
EV = {"id": "ev", "type": "ev_charger", "max_charge_kw": 11,
      "sessions": [{"arrival_local": "18:00", "departure_local": "23:00", "energy_kwh": 20}]}
CLIMATE = {"id": "hvac", "type": "climate", "max_electric_kw": 3, "thermal_resistance_k_per_kw": 5,
           "thermal_capacitance_kwh_per_k": 3, "initial_temp_c": 21, "outdoor_temp_c": 12, "default_min_temp_c": 18,
           "default_max_temp_c": 24,
           "comfort": [{"start_local": "07:00", "end_local": "22:00", "min_temp_c": 20, "max_temp_c": 23}]}
HEATER = {"id": "wh", "type": "water_heater", "volume_l": 150, "element_kw": 2,
          "draws": [{"at_local": "07:00", "litres": 40}]}


def dump(doc: Any) -> str:
    """YAML by hand-rolled JSON (JSON is YAML): no PyYAML needed, and every value is written as intended."""
    return json.dumps(doc, indent=1) + "\n"


def base_files() -> dict[str, str | bytes]:
    return {"data/prices.csv": prices_csv(), "data/site.csv": site_csv()}


# --- cases ------------------------------------------------------------------------------------------------------


class Corpus:
    def __init__(self) -> None:
        self.cases: dict[str, dict[str, Any]] = {}

    def add(self, name: str, about: str, *, doc: Any = None, text: str | bytes | None = None,
            files: dict[str, str | bytes | None] | None = None, runs: list[tuple[list[str], dict]] | None = None,
            expect: dict | None = None, validate: dict | None = None, sparse: dict[str, int] | None = None,
            special: dict[str, tuple] | None = None) -> None:
        """One case: ``doc`` (dumped) or ``text`` is p.yaml; ``files`` add to or replace (None: remove) the base
        data; ``expect`` is the outcome of validate and schedule, ``validate`` overrides the former."""
        assert name not in self.cases, name
        all_files: dict[str, str | bytes | None] = {**base_files(), **(files or {})}
        if text is None and doc is not None:
            text = dump(doc)
        if text is not None:
            all_files["p.yaml"] = text
        if runs is None:
            exp = expect if expect is not None else OK_RUN
            val = validate if validate is not None else ({"exit": exp["exit"], "mentions": exp.get("mentions", [])}
                                                         if exp["exit"] else OK_VALIDATE)
            runs = [(VALIDATE, val), (SCHEDULE, exp)]
        for rel in special or {}:
            all_files.pop(rel, None)
        self.cases[name] = {"about": about, "files": all_files, "sparse": sparse or {}, "special": special or {},
                            "runs": [{"args": a, **e} for a, e in runs]}

    def mutate(self, name: str, about: str, fn, expect: dict | None = None, **kw: Any) -> None:
        doc = copy.deepcopy(BASE)
        fn(doc)
        self.add(name, about, doc=doc, expect=expect, **kw)

    def write(self, out: Path) -> int:
        out.mkdir(parents=True, exist_ok=True)
        for name, case in self.cases.items():
            folder = out / name
            folder.mkdir()
            for rel, content in case["files"].items():
                if content is None:
                    continue
                path = folder / rel
                path.parent.mkdir(parents=True, exist_ok=True)
                if isinstance(content, bytes):
                    path.write_bytes(content)
                else:
                    path.write_text(content, encoding="utf-8", newline="")
            for rel, size in case["sparse"].items():  # huge files cost nothing: a hole in the file system
                with (folder / rel).open("ab") as fh:
                    fh.truncate(size)
            for rel, (kind, *target) in case["special"].items():  # pipes and links that must not be followed
                path = folder / rel
                path.parent.mkdir(parents=True, exist_ok=True)
                if kind == "fifo":
                    os.mkfifo(path)
                else:
                    path.symlink_to(target[0])
            (folder / "case.json").write_text(json.dumps({"name": name, "about": case["about"],
                                                          "runs": case["runs"]}, indent=1))
        return len(self.cases)


def site(doc: dict) -> dict:
    return doc["sites"][0]


def asset(doc: dict, i: int = 0) -> dict:
    return doc["sites"][0]["assets"][i]


def with_asset(extra: dict):
    def fn(doc: dict) -> None:
        doc["sites"][0]["assets"].append(copy.deepcopy(extra))
    return fn


def chain(*fns):
    def fn(doc: dict) -> None:
        for f in fns:
            f(doc)
    return fn


def setter(path: str, value: Any):
    """Set a dotted path (list indexes as numbers), e.g. "sites.0.assets.0.energy_kwh"."""
    def fn(doc: dict) -> None:
        node: Any = doc
        parts = path.split(".")
        for part in parts[:-1]:
            node = node[int(part)] if isinstance(node, list) else node[part]
        last = parts[-1]
        if isinstance(node, list):
            node[int(last)] = value
        else:
            node[last] = value
    return fn


def yaml_text(replace: dict[str, str] | None = None, extra: str = "") -> str:
    """The base portfolio as block YAML text, with literal replacements (for YAML-level tricks)."""
    text = f"""portfolio: {{name: hostile, timezone: {TZ}, resolution_min: 60}}
data_sources:
  prices: {{path: data/prices.csv, column: price, unit: EUR/MWh}}
  sun: {{path: data/site.csv, column: pv_kw, unit: kW}}
  house: {{path: data/site.csv, column: load_kw, unit: kW}}
tariff: {{import_price_eur_per_kwh: {{source: prices}}, export_price_eur_per_kwh: 0.02}}
congestion_points: [{{id: cp1, import_limit_kw: 50}}]
sites:
  - id: home
    congestion_point: cp1
    connection: {{import_limit_kw: 20, export_limit_kw: 10}}
    assets:
      - id: bat
        type: battery
        power_kw: 5
        energy_kwh: 10
      - {{id: pv, type: pv, peak_kw: 4, series_peak_kw: 4, generation_kw: {{source: sun}}}}
      - {{id: house, type: load, power_kw: {{source: house}}}}
{extra}"""
    for old, new in (replace or {}).items():
        assert old in text, old
        text = text.replace(old, new)
    return text


def build() -> Corpus:
    c = Corpus()
    A0 = "sites[0].assets[0]"
    _types(c, A0)
    _not_finite(c, A0)
    _bounds(c, A0)
    _yaml_tricks(c, A0)
    _encodings(c)
    _data_files(c)
    _history(c)
    _pv(c)
    _dso(c)
    _paths(c)
    _cli(c)
    _semantics(c)
    _extremes(c)
    _special_files(c)
    return c


def _types(c: Corpus, A0: str) -> None:
    c.mutate("type-bool-energy", "energy_kwh: true would be a 1 kWh battery",
             setter("sites.0.assets.0.energy_kwh", True),
             bad("p.yaml", f"{A0}.energy_kwh", "true/false"))
    c.mutate("type-quoted-number", "a quoted number is text", setter("sites.0.assets.0.energy_kwh", "10"),
             bad("p.yaml", f"{A0}.energy_kwh", "not text"))
    c.mutate("type-number-with-unit", "the unit belongs in the field name",
             setter("sites.0.assets.0.energy_kwh", "10 kWh"),
             bad("p.yaml", f"{A0}.energy_kwh"))
    c.mutate("type-list-for-number", "a list is not a power", setter("sites.0.assets.0.power_kw", [5]),
             bad("p.yaml", f"{A0}.power_kw"))
    c.mutate("type-mapping-for-number", "a mapping is not a power", setter("sites.0.assets.0.power_kw", {"kw": 5}),
             bad("p.yaml", f"{A0}.power_kw"))
    c.mutate("type-fractional-count", "2.5 devices", setter("sites.0.assets.0.count", 2.5),
             bad("p.yaml", f"{A0}.count", "whole number"))
    c.mutate("type-bool-count", "count: true", setter("sites.0.assets.0.count", True), bad("p.yaml", f"{A0}.count"))
    c.mutate("type-text-count", "count: '3'", setter("sites.0.assets.0.count", "3"), bad("p.yaml", f"{A0}.count"))
    c.mutate("type-bool-resolution", "resolution_min: true", setter("portfolio.resolution_min", True),
             bad("p.yaml", "portfolio.resolution_min"))
    c.mutate("type-null-percent", "soc_min_pct: null", setter("sites.0.assets.0.soc_min_pct", None),
             bad("p.yaml", f"{A0}.soc_min_pct"))
    c.mutate("type-sites-number", "sites: 5 crashed with a TypeError", setter("sites", 5), bad("p.yaml", "sites"))
    c.mutate("type-sites-text", "sites: home", setter("sites", "home"), bad("p.yaml", "sites"))
    c.mutate("type-sites-mapping", "sites as a mapping", setter("sites", {"id": "home"}), bad("p.yaml", "sites"))
    c.mutate("type-assets-number", "assets: 5", setter("sites.0.assets", 5), bad("p.yaml", "sites[0].assets"))
    c.mutate("type-portfolio-list", "portfolio: []", setter("portfolio", []), bad("p.yaml", "portfolio"))
    c.add("type-top-level-list", "the document is a list", text="- portfolio\n- sites\n",
          expect=bad("p.yaml", "mapping"))
    c.add("type-top-level-scalar", "the document is a word", text="hello\n", expect=bad("p.yaml", "mapping"))
    c.add("type-empty-file", "an empty portfolio file", text="", expect=bad("p.yaml", "portfolio", "required"))
    c.mutate("type-number-name", "portfolio name 123", setter("portfolio.name", 123),
             bad("p.yaml", "portfolio.name", "quote"))
    c.add("type-norway-problem", "country: NO is false in YAML 1.1",
          text=yaml_text({"    congestion_point: cp1\n": "    congestion_point: cp1\n    location: {country: NO}\n"}),
          expect=bad("p.yaml", "sites[0].location.country", "quote"))
    c.mutate("type-bool-from-yes-text", "curtailable: 'yes' is an unambiguous yes",
             setter("sites.0.assets.1.curtailable", "yes"))
    c.mutate("type-data-sources-number", "data_sources: 5", setter("data_sources", 5), bad("p.yaml", "data_sources"))
    c.mutate("type-tariff-number", "tariff: 0.2", setter("tariff", 0.2), bad("p.yaml", "tariff"))
    c.mutate("type-price-text", "a quoted price", setter("tariff.import_price_eur_per_kwh", "0.2"),
             bad("p.yaml", "tariff.import_price_eur_per_kwh", "series"))
    c.add("type-unquoted-time", "arrival_local: 18:00 is 1080 in YAML 1.1: the session disappeared",
          text=yaml_text(extra="      - {id: ev, type: ev_charger, max_charge_kw: 11, "
                               "sessions: [{arrival_local: 18:00, "
                               "departure_local: '23:00', energy_kwh: 20}]}\n"),
          expect=bad("p.yaml", "sites[0].assets[3].sessions[0].arrival_local", '"18:00"'))
    c.mutate("type-integer-time", "arrival_local: 1080 (seconds?)",
             chain(with_asset(EV), setter("sites.0.assets.3.sessions.0.arrival_local", 1080)),
             bad("p.yaml", "sites[0].assets[3].sessions[0].arrival_local", "quotes"))
    c.add("type-unquoted-draw-time", "a hot-water draw at 7:30 unquoted",
          text=yaml_text(extra="      - {id: wh, type: water_heater, volume_l: 150, element_kw: 2, "
                               "draws: [{at_local: 7:30, litres: 40}]}\n"),
          expect=bad("p.yaml", "sites[0].assets[3].draws[0].at_local", '"7:30"'))
    c.mutate("type-time-25h", "start_local: 25:00", chain(with_asset(CLIMATE),
                                                          setter("sites.0.assets.3.comfort.0.start_local", "25:00")),
             bad("p.yaml", "sites[0].assets[3].comfort[0].start_local"))
    c.mutate("type-time-with-offset", "a local time with an offset",
             chain(with_asset(EV), setter("sites.0.assets.3.sessions.0.arrival_local", "18:00+02:00")),
             bad("p.yaml", "sites[0].assets[3].sessions[0].arrival_local", "offset"))
    c.add("type-octal-port", "port: 0502 is octal 322 in YAML 1.1",
          text=yaml_text({"        energy_kwh: 10\n": "        energy_kwh: 10\n        endpoint: {protocol: modbus, "
                          "host: 127.0.0.1, port: 0502, registers: {setpoint: {address: 1}}}\n"}),
          expect=bad("p.yaml", f"{A0}.endpoint.port", "0502"))
    c.add("type-base60-energy", "energy_kwh: 1:30 is 90 in YAML 1.1",
          text=yaml_text({"energy_kwh: 10\n": "energy_kwh: 1:30\n"}), expect=bad("p.yaml", f"{A0}.energy_kwh", "1:30"))
    c.add("type-base60-in-http-body", "an unquoted 10:30 inside an HTTP body template would be sent as 630",
          text=yaml_text({"        energy_kwh: 10\n": "        energy_kwh: 10\n        endpoint: {protocol: http, "
                          "base_url: 'http://127.0.0.1:1', device_id: b, setpoint: {path: /s, body: {start: 10:30}}, "
                          "telemetry: {path: /t}}\n"}),
          expect=bad("p.yaml", f"{A0}.endpoint.setpoint.body", '"10:30"'))
    c.add("type-base60-in-text", "notes: 10:30 is a number in YAML 1.1",
          text=yaml_text({"        energy_kwh: 10\n": "        energy_kwh: 10\n        notes: 10:30\n"}),
          expect=bad("p.yaml", f"{A0}.notes", '"10:30"'))
    c.add("type-exponent-number", "energy_kwh: 1e1 is a number (YAML 1.2), not text",
          text=yaml_text({"energy_kwh: 10\n": "energy_kwh: 1e1\n"}))
    c.add("type-duplicate-key", "energy_kwh twice: the last silently won",
          text=yaml_text({"energy_kwh: 10\n": "energy_kwh: 10\n        energy_kwh: 1000\n"}),
          expect=bad("p.yaml", "line 17", "duplicate key 'energy_kwh'"))
    c.add("type-duplicate-top-key", "sites twice", text=yaml_text(extra="sites: []\n"),
          expect=bad("p.yaml", "duplicate key 'sites'"))
    c.mutate("type-duplicate-site-id", "two sites called home",
             lambda d: d["sites"].append({"id": "home"}), bad("p.yaml", "sites[1].id", "duplicate site id"))
    c.mutate("type-typo", "enery_kwh", lambda d: asset(d).update(enery_kwh=5),
             bad("p.yaml", f"{A0}.enery_kwh", "did you mean 'energy_kwh'"))


def _not_finite(c: Corpus, A0: str) -> None:
    nan, inf = float("nan"), float("inf")
    cases = [
        ("nan-import-price", "the solver ran forever", setter("tariff.import_price_eur_per_kwh", nan),
         "tariff.import_price_eur_per_kwh"),
        ("nan-scale", "the solver ran forever", setter("tariff.import_price_eur_per_kwh", {"source": "prices",
                                                                                          "scale": nan}),
         "tariff.import_price_eur_per_kwh.scale"),
        ("inf-energy", "crashed in Pyomo", setter("sites.0.assets.0.energy_kwh", inf), f"{A0}.energy_kwh"),
        ("nan-initial-temp", "crashed in Pyomo", chain(with_asset(CLIMATE), setter("sites.0.assets.3.initial_temp_c",
                                                                                   nan)),
         "sites[0].assets[3].initial_temp_c"),
        ("nan-outdoor-temp", "crashed in Pyomo", chain(with_asset(CLIMATE),
                                                       setter("sites.0.assets.3.outdoor_temp_c", nan)),
         "sites[0].assets[3].outdoor_temp_c"),
        ("inf-cop", "crashed numpy", chain(with_asset(CLIMATE), setter("sites.0.assets.3.cop_heating", inf)),
         "sites[0].assets[3].cop_heating"),
        ("inf-export-price", "was accepted", setter("tariff.export_price_eur_per_kwh", inf),
         "tariff.export_price_eur_per_kwh"),
        ("inf-penalty", "solver failed naming no input", setter("penalties", {"limit_eur_per_kwh": inf}),
         "penalties.limit_eur_per_kwh"),
        ("minus-inf-power", "-inf power", setter("sites.0.assets.0.power_kw", -inf), f"{A0}.power_kw"),
        ("nan-latitude", "NaN latitude", setter("sites.0.location", {"latitude": nan}), "sites[0].location.latitude"),
        ("nan-connection", "NaN connection limit", setter("sites.0.connection.import_limit_kw", nan),
         "sites[0].connection.import_limit_kw"),
        ("inf-load", "infinite constant load", setter("sites.0.assets.2.power_kw", inf),
         "sites[0].assets[2].power_kw"),
        ("nan-modbus-scale", "NaN register scale", setter("sites.0.assets.0.endpoint", {
            "protocol": "modbus", "host": "127.0.0.1", "registers": {"setpoint": {"address": 1, "scale": nan}}}),
         f"{A0}.endpoint.registers.setpoint.scale"),
        ("inf-http-timeout", "infinite HTTP timeout", setter("sites.0.assets.0.endpoint", {
            "protocol": "http", "base_url": "http://127.0.0.1:1", "device_id": "b", "timeout_s": inf,
            "setpoint": {"path": "/s"}, "telemetry": {"path": "/t"}}), f"{A0}.endpoint.timeout_s"),
    ]
    for name, about, fn, field in cases:
        c.add(name, about, text=dump_nonfinite(fn), expect=bad("p.yaml", field, "finite"))


def dump_nonfinite(fn) -> str:
    """JSON has no NaN or infinity: write YAML's .nan / .inf instead."""
    doc = copy.deepcopy(BASE)
    fn(doc)
    return dump(doc).replace("-Infinity", "-.inf").replace("Infinity", ".inf").replace("NaN", ".nan")


def _bounds(c: Corpus, A0: str) -> None:
    for name, path, value, field in [
        ("range-power-1e300", "sites.0.assets.0.power_kw", 1e300, f"{A0}.power_kw"),
        ("range-energy-1e12", "sites.0.assets.0.energy_kwh", 1e12, f"{A0}.energy_kwh"),
        ("range-price-50", "tariff.import_price_eur_per_kwh", 50, "tariff.import_price_eur_per_kwh"),
        ("range-soc-150", "sites.0.assets.0.soc_max_pct", 150, f"{A0}.soc_max_pct"),
        ("range-efficiency-1.5", "sites.0.assets.0.charge_efficiency", 1.5, f"{A0}.charge_efficiency"),
        ("range-efficiency-0", "sites.0.assets.0.discharge_efficiency", 0, f"{A0}.discharge_efficiency"),
        ("range-count-million", "sites.0.assets.0.count", 1_000_000, f"{A0}.count"),
        ("range-scale-1e6", "sites.0.assets.1.generation_kw.scale", 1e6, "sites[0].assets[1].generation_kw.scale"),
        ("range-resolution-7", "portfolio.resolution_min", 7, "portfolio.resolution_min"),
        ("range-resolution-0", "portfolio.resolution_min", 0, "portfolio.resolution_min"),
        ("range-negative-fee", "tariff.grid_fee_import_eur_per_kwh", -1, "tariff.grid_fee_import_eur_per_kwh"),
        ("range-latitude-91", "sites.0.location", {"latitude": 91}, "sites[0].location.latitude"),
    ]:
        c.mutate(name, f"{field} = {value}", setter(path, value), bad("p.yaml", field))
    c.mutate("range-cop-25", "COP 25", chain(with_asset(CLIMATE), setter("sites.0.assets.3.cop_heating", 25)),
             bad("p.yaml", "sites[0].assets[3].cop_heating", "at most 10"))
    c.mutate("range-temp-minus-300", "below absolute zero",
             chain(with_asset(CLIMATE), setter("sites.0.assets.3.initial_temp_c", -300)),
             bad("p.yaml", "sites[0].assets[3].initial_temp_c"))
    c.mutate("range-boiling-tank", "a tank at 150 degC", chain(with_asset(HEATER), setter("sites.0.assets.3.max_temp_c",
                                                                                           150)),
             bad("p.yaml", "sites[0].assets[3].max_temp_c", "at most 100"))
    c.mutate("range-huge-valid", "1 GW / 10 GWh at the top of the ranges: solves",
             chain(setter("sites.0.assets.0.power_kw", 1e6), setter("sites.0.assets.0.energy_kwh", 1e7),
                   setter("sites.0.connection", {"import_limit_kw": 1e6, "export_limit_kw": 1e6}),
                   setter("congestion_points.0.import_limit_kw", 1e6)))
    c.mutate("range-tiny-valid", "a 1 Wh battery: solves", chain(setter("sites.0.assets.0.power_kw", 0.001),
                                                                  setter("sites.0.assets.0.energy_kwh", 0.001)))
    c.mutate("range-negative-prices", "-5 EUR/kWh all day: solves", setter("tariff.import_price_eur_per_kwh", -5))
    c.mutate("range-constant-price-battery", "baseline cost 0: saving_pct is null, print_kpis crashed",
             chain(setter("tariff.import_price_eur_per_kwh", 0.0), setter("tariff.export_price_eur_per_kwh", 0.0)))


def _yaml_tricks(c: Corpus, A0: str) -> None:
    levels = ["a: &a [x,x,x,x,x,x,x,x,x]"] + [
        f"{chr(98 + i)}: &{chr(98 + i)} [" + ",".join([f"*{chr(97 + i)}"] * 9) + "]" for i in range(8)]
    bomb = "x-bomb:\n" + "".join(f"  {line}\n" for line in levels)
    c.add("yaml-alias-bomb", "billion laughs: 66 s into a MemoryError", text=yaml_text(extra=bomb),
          expect=bad("p.yaml", "alias"))
    c.add("yaml-recursive-alias", "a list containing itself", text=yaml_text(extra="x-loop: &l [1, *l]\n"),
          expect=bad("p.yaml", "recursive"))
    c.add("yaml-python-tag", "!!python/object",
          text=yaml_text({"name: hostile": "name: !!python/object/apply:os.getpid []"}),
          expect=bad("p.yaml", "tag"))
    c.add("yaml-binary-tag", "!!binary text is still text",
          text=yaml_text({"name: hostile": "name: !!binary aG9zdGlsZQ=="}))
    deep = "x-deep: " + "[" * 200 + "]" * 200 + "\n"
    c.add("yaml-deep-nesting", "200 nested lists", text=yaml_text(extra=deep), expect=bad("p.yaml", "nest"))
    c.add("yaml-long-notes", "a 1 MB notes field", text=yaml_text({"energy_kwh: 10\n": "energy_kwh: 10\n        notes: "
                                                                   + "x" * 1_000_000 + "\n"}))
    c.add("yaml-two-documents", "a second document", text=yaml_text(extra="---\nportfolio: {name: other}\n"),
          expect=bad("p.yaml", "document"))
    c.add("yaml-anchor-merge", "anchors and << merges are fine",
          text=yaml_text({"      - id: bat\n": "      - &bat\n        id: bat\n"},
                         extra="      - {<<: *bat, id: bat2, energy_kwh: 5}\n"))
    c.add("yaml-template-keys", "x- keys hold templates", text="x-bat: &b {type: battery, power_kw: 5}\n" + yaml_text(
        {"      - id: bat\n        type: battery\n        power_kw: 5\n": "      - <<: *b\n        id: bat\n"}))
    c.add("yaml-syntax-error", "an unclosed bracket", text=yaml_text({"[{id: cp1": "[{id: cp1,"}),
          expect=bad("p.yaml", "line", "not valid YAML"))
    c.add("yaml-tab-indent", "a tab as indentation", text=yaml_text({"        energy_kwh: 10\n": "\tenergy_kwh: 10\n"}),
          expect=bad("p.yaml", "line"))
    c.add("yaml-huge-file", "a 21 MB portfolio file", text="# big\n", sparse={"p.yaml": 21 * 2**20},
          expect=bad("p.yaml", "MB"))
    c.add("yaml-unhashable-key", "a list as a key", text=yaml_text(extra="? [a, b]\n: 1\n"),
          expect=bad("p.yaml", "line", "unhashable"))
    c.add("yaml-null-key", "~: 1 at the top level", text=yaml_text(extra="~: 1\n"), expect=bad("p.yaml", "is not text"))
    c.add("yaml-merge-twice", "two << keys in one mapping", text=yaml_text(
        {"      - id: bat\n": "      - &bat\n        id: bat\n"},
        extra="      - {<<: *bat, <<: *bat, id: bat2}\n"), expect=bad("p.yaml", "duplicate key '<<'"))


def _encodings(c: Corpus) -> None:
    text = yaml_text({"name: hostile": "name: hostile café"})
    c.add("enc-utf16-bom", "UTF-16 with a byte-order mark", text=text.encode("utf-16"), expect=bad("p.yaml", "UTF-16"))
    c.add("enc-utf16-no-bom", "UTF-16 without a byte-order mark", text=text.encode("utf-16-le"),
          expect=bad("p.yaml", "UTF-8"))
    c.add("enc-utf8-bom", "UTF-8 with a byte-order mark is fine", text=b"\xef\xbb\xbf" + text.encode("utf-8"))
    c.add("enc-latin1", "café in Latin-1", text=text.encode("latin-1"), expect=bad("p.yaml", "line 1", "UTF-8"))
    c.add("enc-binary", "random bytes", text=bytes(range(256)) * 8, expect=bad("p.yaml", "binary"))
    c.add("enc-control-char", "a BEL character", text=yaml_text({"name: hostile": "name: host\x07ile"}),
          expect=bad("p.yaml", "not valid YAML"))
    c.add("enc-crlf", "Windows line ends are fine", text=text.replace("\n", "\r\n"))
    c.add("enc-emoji", "non-ASCII text is fine", text=yaml_text({"name: hostile": "name: \"hostile ⚡ 日本\""}))


def _data_files(c: Corpus) -> None:
    prices_at = "data_sources.prices"
    c.add("data-header-only", "a price file with only its header", doc=BASE,
          files={"data/prices.csv": "timestamp,price\n"}, expect=bad("prices.csv", prices_at, "no data rows"))
    c.add("data-all-text", "a text column", doc=BASE,
          files={"data/prices.csv": prices_csv({i: "high" for i in range(120)})},
          expect=bad("prices.csv", "'price'", "lines 2 ('high')", "right column"))
    c.add("data-some-text", "n/a in two rows", doc=BASE,
          files={"data/prices.csv": prices_csv({5: "n/a", 40: "1.5 kW"})},
          expect=bad("prices.csv", "'price'", "lines 7 ('n/a'), 42 ('1.5 kW')"))
    c.add("data-inf", "inf in a price CSV ended as 'solver failed'", doc=BASE,
          files={"data/prices.csv": prices_csv({50: "inf"})}, expect=bad("prices.csv", "'price'", "line 52", "finite"))
    c.add("data-nan-text", "NaN written out", doc=BASE, files={"data/prices.csv": prices_csv({50: "NaN"})},
          expect=bad("prices.csv", "'price'", "line 52"))
    c.add("data-1e308", "a price of 1e308 EUR/MWh", doc=BASE, files={"data/prices.csv": prices_csv({50: "1e308"})},
          expect=bad("prices.csv", "'price'", "line 52", "physical range"))
    dup = prices_csv().splitlines()
    c.add("data-duplicate-timestamps", "a repeated row is averaged and reported", doc=BASE,
          files={"data/prices.csv": "\n".join(dup[:60] + dup[59:]) + "\n"})
    c.add("data-unsorted", "rows in reverse order are sorted", doc=BASE,
          files={"data/prices.csv": "\n".join([dup[0], *reversed(dup[1:])]) + "\n"})
    short_gap = prices_csv({i: "" for i in range(48, 50)})
    c.add("data-short-gap", "two empty hours in the day are interpolated", doc=BASE,
          files={"data/prices.csv": short_gap})
    long_gap = prices_csv({i: "" for i in range(50, 60)})
    c.add("data-long-gap", "ten empty hours in the day: the day cannot be scheduled", doc=BASE,
          files={"data/prices.csv": long_gap}, expect=bad("prices", "gap of 10 h"), validate=OK_VALIDATE)
    c.mutate("data-wrong-unit-eur-kwh", "EUR/MWh values declared EUR/kWh",
             setter("data_sources.prices.unit", "EUR/kWh"), bad("prices.csv", "physical range", "EUR/kWh"))
    c.mutate("data-wrong-unit-w-as-mw", "load in W declared MW (1.2 GW of household load)",
             setter("data_sources.house", {"path": "data/history.csv", "column": "load_w", "unit": "MW"}),
             bad("history.csv", "data_sources.house", "physical range"), files={"data/history.csv": history_csv()})
    c.mutate("data-unknown-unit", "unit: Wh", setter("data_sources.prices.unit", "Wh"), bad("p.yaml",
                                                                                             "data_sources.prices.unit"))
    c.mutate("data-bad-timezone", "timezone: Mars/Olympus", setter("data_sources.prices.timezone", "Mars/Olympus"),
             bad("p.yaml", "data_sources.prices.timezone", "IANA"))
    mixed = prices_csv().splitlines()
    mixed[10] = mixed[10].replace("Z,", ",")
    c.add("data-mixed-offsets", "one timestamp without its Z", doc=BASE,
          files={"data/prices.csv": "\n".join(mixed) + "\n"},
          expect=bad("prices.csv", "'timestamp'", "line 11"))
    local = ["time_local,price"] + [f"2024-06-{10 + i // 24:02d} {i % 24:02d}:00:00,{50 + i % 24}" for i in range(120)]
    c.mutate("data-local-wallclock", "naive local timestamps with the source's timezone",
             setter("data_sources.prices", {"path": "data/local.csv", "column": "price", "time_column": "time_local",
                                            "unit": "EUR/MWh", "timezone": TZ}),
             files={"data/local.csv": "\n".join(local) + "\n"})
    garbage = prices_csv().splitlines()
    garbage[20] = "yesterday," + garbage[20].split(",")[1]
    c.add("data-bad-timestamp", "'yesterday' as a timestamp", doc=BASE,
          files={"data/prices.csv": "\n".join(garbage) + "\n"}, expect=bad("prices.csv", "line 21", "ISO 8601"))
    year3000 = prices_csv().splitlines()
    year3000[3] = year3000[3].replace("2024-", "3024-")
    c.add("data-year-3024", "a timestamp in 3024", doc=BASE, files={"data/prices.csv": "\n".join(year3000) + "\n"},
          expect=bad("prices.csv", "line 4", "1900-2200"))
    c.add("data-empty-file", "a 0-byte price file", doc=BASE, files={"data/prices.csv": ""},
          expect=bad("prices.csv", prices_at, "empty"))
    c.add("data-binary", "a binary file named .csv", doc=BASE, files={"data/prices.csv": bytes(range(256)) * 64},
          expect=bad("prices.csv", prices_at, "binary"))
    c.add("data-latin1", "a Latin-1 CSV", doc=BASE,
          files={"data/prices.csv": prices_csv().replace("price", "prix_é", 1).encode("latin-1")},
          expect=bad("prices.csv", prices_at, "UTF-8"))
    c.add("data-utf16", "a UTF-16 CSV", doc=BASE, files={"data/prices.csv": prices_csv().encode("utf-16")},
          expect=bad("prices.csv", prices_at, "UTF-16"))
    c.add("data-semicolons", "a semicolon-separated CSV", doc=BASE,
          files={"data/prices.csv": prices_csv().replace(",", ";")}, expect=bad("prices.csv", prices_at, "';'"))
    c.mutate("data-missing-column", "column: eur", setter("data_sources.prices.column", "eur"),
             bad("prices.csv", "data_sources.prices", "no column 'eur'"))
    c.mutate("data-path-is-directory", "path: data", setter("data_sources.prices.path", "data"),
             bad("data", "data_sources.prices", "directory"))
    c.mutate("data-path-missing", "path: nowhere.csv", setter("data_sources.prices.path", "nowhere.csv"),
             bad("nowhere.csv", "data_sources.prices", "not found"))
    c.mutate("data-xlsx", "an Excel file", setter("data_sources.prices.path", "data/prices.xlsx"),
             bad("prices.xlsx", "data_sources.prices", ".csv or .parquet"), files={"data/prices.xlsx": b"PK\x03\x04"})
    c.add("data-huge-file", "a 300 MB price file", doc=BASE, files={"data/prices.csv": "timestamp,price\n"},
          sparse={"data/prices.csv": 300 * 2**20}, expect=bad("prices.csv", prices_at, "MB"))
    big = ["timestamp,price"] + [f"{_iso(t)},{50 + (i % 97)}" for i, t in
                                 enumerate(_hours("2023-06-12T00:00", 12 * 24 * 400, 5))]
    c.add("data-large-valid", "400 days of 5-minute prices (115,000 rows) are averaged to the hour", doc=BASE,
          files={"data/prices.csv": "\n".join(big) + "\n"})
    ragged = prices_csv().splitlines()
    ragged[30] += ",extra,fields"
    c.add("data-ragged-row", "a row with too many fields", doc=BASE,
          files={"data/prices.csv": "\n".join(ragged) + "\n"}, expect=bad("prices.csv", prices_at, "line 31"))
    parquet_src = {"path": "data/prices.parquet", "column": "price", "unit": "EUR/MWh"}
    c.mutate("data-parquet-valid", "prices in Parquet", setter("data_sources.prices", parquet_src),
             files={"data/prices.parquet": parquet_bytes([50.0 + i % 24 for i in range(120)])})
    c.mutate("data-parquet-nan", "a NaN in Parquet", setter("data_sources.prices", parquet_src),
             bad("prices.parquet", "'price'", "row 51"),
             files={"data/prices.parquet": parquet_bytes([float("nan") if i == 50 else 50.0 for i in range(120)])})
    c.mutate("data-parquet-corrupt", "a truncated Parquet file", setter("data_sources.prices", parquet_src),
             bad("prices.parquet", "data_sources.prices"), files={"data/prices.parquet": b"PAR1" + b"\x00" * 100})
    c.add("data-day-outside", "the day is after the file ends", doc=BASE,
          files={"data/prices.csv": prices_csv().replace("2024-06-1", "2024-05-1")},
          expect=bad("prices", "covers"), validate=OK_VALIDATE)
    hot = site_csv().splitlines()
    hot[200] = ",".join([*hot[200].split(",")[:3], "500"])
    c.mutate("data-temperature-500", "an outdoor temperature of 500 degC",
             chain(with_asset(CLIMATE), lambda d: d["data_sources"].update(
                 temp={"path": "data/site.csv", "column": "temp_c", "unit": "degC"}),
                 setter("sites.0.assets.3.outdoor_temp_c", {"source": "temp"})),
             bad("site.csv", "data_sources.temp", "line 201"), files={"data/site.csv": "\n".join(hot) + "\n"})
    c.mutate("data-temperature-series", "outdoor temperature from a series: solves",
             chain(with_asset(CLIMATE), lambda d: d["data_sources"].update(
                 temp={"path": "data/site.csv", "column": "temp_c", "unit": "degC"}),
                 setter("sites.0.assets.3.outdoor_temp_c", {"source": "temp"})))


def _history(c: Corpus) -> None:
    def history(doc: dict) -> None:
        doc["data_sources"]["house"] = {"path": "data/history.csv", "column": "load_w", "unit": "W", "kind": "history"}

    c.mutate("history-ends-early", "history ends a month before the day: was forecast as 0 kW", history,
             bad("history", "ends", DAY, "needs"), validate=OK_VALIDATE,
             files={"data/history.csv": history_csv("2024-04-01T00:00", 35)})
    c.mutate("history-starts-after", "history starts after the day", history,
             bad("history", "no values before", DAY), validate=OK_VALIDATE,
             files={"data/history.csv": history_csv("2024-06-20T00:00", 10)})
    c.mutate("history-too-short", "six hours of history", history, bad("history", "only", "needs"),
             validate=OK_VALIDATE, files={"data/history.csv": history_csv("2024-06-11T15:30", 0.25)})
    c.mutate("history-valid", "35 days of history: forecast and scheduled", history,
             files={"data/history.csv": history_csv()})


def _pv(c: Corpus) -> None:
    c.mutate("pv-no-series-peak", "peak_kw was ignored without series_peak_kw",
             lambda d: asset(d, 1).pop("series_peak_kw"),
             bad("p.yaml", "sites[0].assets[1].series_peak_kw", "peak of the array the series was measured on"))
    c.mutate("pv-series-peak-alone", "series_peak_kw without a series",
             lambda d: asset(d, 1).pop("generation_kw"), bad("p.yaml", "sites[0].assets[1].series_peak_kw"))
    c.mutate("pv-series-above-peak", "a 3.8 kW series said to come from a 0.5 kWp array",
             setter("sites.0.assets.1.series_peak_kw", 0.5),
             bad("p.yaml", "sites[0].assets[1].series_peak_kw", "peaks at"))
    c.mutate("pv-scaled-up", "a 120 kWp array from the 4 kWp measurement",
             chain(setter("sites.0.assets.1.peak_kw", 120), setter("sites.0.assets.1.curtailable", True),
                   setter("sites.0.connection", {"import_limit_kw": 200, "export_limit_kw": 200}),
                   setter("congestion_points.0.import_limit_kw", 200)))


def _dso(c: Corpus) -> None:
    def with_dso(doc: dict) -> None:
        doc["dso_limits_file"] = "data/dso.csv"

    row = "cp1,2024-06-12T18:00:00+02:00,2024-06-12T21:00:00+02:00,{imp},"
    for name, about, rows, mentions in [
        ("dso-missing-offset", "times without offset", ["cp1,2024-06-12T18:00,2024-06-12T21:00,5,"], ["no UTC offset"]),
        ("dso-text-limit", "a limit of 'low'", [row.format(imp="low")], ["max_import_kw", "not a number"]),
        ("dso-bad-time", "start 'tomorrow'", ["cp1,tomorrow,2024-06-12T21:00:00+02:00,5,"], ["start", "ISO 8601"]),
        ("dso-unknown-point", "congestion point cp9", [row.format(imp=5).replace("cp1", "cp9")], ["'cp9'", "cp1"]),
        ("dso-end-before-start", "end before start", ["cp1,2024-06-12T21:00:00+02:00,2024-06-12T18:00:00+02:00,5,"],
         ["must be after start"]),
        ("dso-inf-limit", "an infinite limit", [row.format(imp="inf")], ["max_import_kw", "finite"]),
        ("dso-huge-limit", "a limit of 1e300 kW", [row.format(imp="1e300")], ["max_import_kw"]),
        ("dso-extra-fields", "a row with extra fields", [row.format(imp=5) + ",7,8"], ["more fields"]),
        ("dso-year-9999", "a window in 9999", ["cp1,9999-06-12T18:00:00+02:00,9999-06-12T21:00:00+02:00,5,"],
         ["1900-2200"]),
    ]:
        c.mutate(name, about, with_dso, bad("dso.csv", "dso_limits_file", "row 2", *mentions),
                 files={"data/dso.csv": dso_csv(*rows)})
    c.mutate("dso-missing-column", "no max_export_kw column", with_dso, bad("dso.csv", "max_export_kw"),
             files={"data/dso.csv": "congestion_point,start,end,max_import_kw\n"})
    c.mutate("dso-binary", "a binary limits file", with_dso, bad("dso.csv", "dso_limits_file", "NUL"),
             files={"data/dso.csv": bytes(range(256))})
    c.mutate("dso-empty", "an empty limits file", with_dso, bad("dso.csv", "dso_limits_file", "missing column"),
             files={"data/dso.csv": ""})
    c.mutate("dso-header-only", "no windows at all is fine", with_dso, files={"data/dso.csv": dso_csv()})
    c.mutate("dso-valid", "a whole-day window of 0.1 kW that the house breaks: a reported violation", with_dso,
             {"exit": 0, "run": True, "violations": True},
             files={"data/dso.csv": dso_csv("cp1,2024-06-12T00:00:00+02:00,2024-06-13T00:00:00+02:00,0.1,")})
    c.mutate("dso-directory", "dso_limits_file names a folder", setter("dso_limits_file", "data"),
             bad("dso_limits_file", "data"))
    c.mutate("dso-path-very-long", "a 5,000-character path", setter("dso_limits_file", "d/" * 2500 + "l.csv"),
             bad("p.yaml", "dso_limits_file"))
    c.mutate("dso-latin1", "a Latin-1 limits file", with_dso, bad("dso.csv", "UTF-8"),
             files={"data/dso.csv": dso_csv(row.format(imp=5)).replace("cp1", "cp1é").encode("latin-1")})


def _paths(c: Corpus) -> None:
    c.add("path-portfolio-missing", "the portfolio file does not exist", files={},
          runs=[(VALIDATE, bad("p.yaml", "not found")), (SCHEDULE, bad("p.yaml", "not found"))])
    c.add("path-portfolio-directory", "the portfolio path is a folder", files={"p.yaml/readme.txt": "x"},
          runs=[(VALIDATE, bad("p.yaml", "directory")), (SCHEDULE, bad("p.yaml", "directory"))])
    site_only = dump({"sites": [{"id": "other", "assets": [{"id": "l2", "type": "load", "power_kw": 1}]}]})
    c.add("path-include-outside", "an include from outside the folder was merged without a word",
          doc={**BASE, "include": ["../path-include-outside-shared/site.yaml"]},
          files={"../path-include-outside-shared/site.yaml": site_only},
          expect=bad("p.yaml", "include[0]", "outside", "allow_includes_outside"))
    c.add("path-include-outside-allowed", "the same, with allow_includes_outside: true",
          doc={**BASE, "include": ["../path-include-outside-allowed-shared/site.yaml"],
               "allow_includes_outside": True},
          files={"../path-include-outside-allowed-shared/site.yaml": site_only})
    c.add("path-include-inside", "an include from a sub-folder", doc={**BASE, "include": ["sites/other.yaml"]},
          files={"sites/other.yaml": site_only})
    c.add("path-include-cycle", "a includes b includes a", doc={**BASE, "include": ["b.yaml"]},
          files={"b.yaml": dump({"include": ["p.yaml"]})}, expect=bad("include cycle", "p.yaml", "b.yaml"))
    c.add("path-include-self", "a file including itself", doc={**BASE, "include": ["p.yaml"]},
          expect=bad("include cycle", "p.yaml"))
    c.add("path-include-missing", "an include that does not exist", doc={**BASE, "include": ["nope.yaml"]},
          expect=bad("nope.yaml", "not found"))
    c.add("path-include-number", "include: 5", doc={**BASE, "include": 5}, expect=bad("p.yaml", "include"))
    c.add("path-include-list-of-numbers", "include: [5]", doc={**BASE, "include": [5]},
          expect=bad("p.yaml", "include[0]"))
    c.add("path-include-directory", "include: [data]", doc={**BASE, "include": ["data"]},
          expect=bad("data", "directory"))
    c.add("path-include-sets-outside", "allow_includes_outside in an included file",
          doc={**BASE, "include": ["more.yaml"]}, files={"more.yaml": dump({"allow_includes_outside": True})},
          expect=bad("more.yaml", "allow_includes_outside", "main portfolio file"))
    c.add("path-include-sites-number", "an included file with sites: 5", doc={**BASE, "include": ["more.yaml"]},
          files={"more.yaml": dump({"sites": 5})}, expect=bad("more.yaml", "sites", "list"))
    c.mutate("path-nul-byte", "a NUL byte in a path", setter("data_sources.prices.path", "data/pri\u0000ces.csv"),
             bad("p.yaml", "data_sources.prices.path"))
    c.mutate("path-unknown-user", "~nosuchuser/prices.csv", setter("data_sources.prices.path",
                                                                    "~nosuchuser-flexopt/prices.csv"),
             bad("data_sources.prices"))
    c.mutate("path-very-long", "a 5,000-character path", setter("data_sources.prices.path", "d/" * 2500 + "p.csv"),
             bad("data_sources.prices"))


def _cli(c: Corpus) -> None:
    sched = ["schedule", "day-ahead", "p.yaml", "--store", "runs"]
    for name, args, mentions in [
        ("cli-date-9999", ["--date", "9999-12-31"], ["--date", "1900-2200"]),
        ("cli-date-year-1", ["--date", "0001-01-01"], ["--date", "1900-2200"]),
        ("cli-date-feb-30", ["--date", "2024-02-30"], ["--date", "not a date"]),
        ("cli-date-words", ["--date", "tomorrow"], ["--date", "not a date"]),
        ("cli-date-empty", ["--date", ""], ["--date"]),
        ("cli-gap-negative", ["--date", DAY, "--mip-gap", "-1"], ["--mip-gap"]),
        ("cli-gap-nan", ["--date", DAY, "--mip-gap", "nan"], ["--mip-gap", "finite"]),
        ("cli-time-limit-inf", ["--date", DAY, "--time-limit", "inf"], ["--time-limit"]),
        ("cli-time-limit-nan", ["--date", DAY, "--time-limit", "nan"], ["--time-limit", "finite"]),
        ("cli-time-limit-zero", ["--date", DAY, "--time-limit", "0"], ["--time-limit"]),
        ("cli-threads-zero", ["--date", DAY, "--threads", "0"], ["--threads"]),
        ("cli-threads-text", ["--date", DAY, "--threads", "many"], ["--threads"]),
    ]:
        c.add(name, " ".join(args), doc=BASE, runs=[(sched + args, bad(*mentions))])
    intra = ["schedule", "intraday", "p.yaml", "--store", "runs"]
    for name, args, mentions in [
        ("cli-from-words", ["--from", "noon"], ["--from", "YYYY-MM-DDTHH:MM"]),
        ("cli-from-9999", ["--from", "9999-12-31T23:00"], ["--from"]),
        ("cli-from-off-boundary", ["--from", f"{DAY}T10:07"], ["--from", "boundary"]),
    ]:
        c.add(name, " ".join(args), doc=BASE, runs=[(intra + args, bad(*mentions))])
    for name, state, mentions in [
        ("cli-state-not-json", "{soc: 5", ["--state", "state.json"]),
        ("cli-state-unknown-asset", '{"nobody": {"soc_pct": 5}}', ["--state", "'nobody'", "bat"]),
        ("cli-state-soc-500", '{"bat": {"soc_pct": 500}}', ["--state", "bat.soc_pct", "0 to 100"]),
        ("cli-state-nan", '{"bat": {"soc_pct": NaN}}', ["--state", "bat.soc_pct", "finite"]),
        ("cli-state-list", "[1, 2]", ["--state", "JSON object"]),
        ("cli-state-wrong-key", '{"bat": {"temp_c": 20}}', ["--state", "bat.temp_c", "soc_pct"]),
        ("cli-state-latin1", b'{"bat\xe9": 1}', ["--state"]),
    ]:
        c.add(name, f"--state {state!r}", doc=BASE, files={"state.json": state},
              runs=[([*intra, "--from", f"{DAY}T14:00", "--state", "state.json"], bad(*mentions))])
    c.add("cli-state-valid", "a measured SoC for 14:00", doc=BASE, files={"state.json": '{"bat": {"soc_pct": 90}}'},
          runs=[([*intra, "--from", f"{DAY}T14:00", "--state", "state.json"], OK_RUN)])
    c.add("cli-forecast-date-9999", "forecast --date 9999-12-31", doc=BASE,
          runs=[(["forecast", "p.yaml", "--date", "9999-12-31", "--out", "fc"], bad("--date"))])
    c.add("cli-backtest-reversed", "backtest --from after --to", doc=BASE,
          runs=[(["backtest", "p.yaml", "--from", "2024-06-12", "--to", "2024-06-01", "--out", "bt.csv"],
                 bad("--to", "--from"))])
    c.add("cli-validate-no-argument", "validate without a file", doc=BASE,
          runs=[(["validate"], bad("Missing argument 'portfolio'"))])


def _semantics(c: Corpus) -> None:
    c.mutate("sem-ev-departs-first", "departure before arrival",
             chain(with_asset(EV), setter("sites.0.assets.3.sessions.0.departure_local", "07:00")),
             bad("p.yaml", "sites[0].assets[3].sessions[0]", "after arrival_local"))
    c.mutate("sem-ev-too-many-units", "sessions need more chargers than there are",
             chain(with_asset(EV), setter("sites.0.assets.3.sessions.0.units", 3)),
             bad("p.yaml", "sites[0].assets[3]", "count is 1"))
    c.mutate("sem-thermal-band-inverted", "min above max",
             chain(with_asset(CLIMATE), setter("sites.0.assets.3.default_min_temp_c", 30)),
             bad("p.yaml", "sites[0].assets[3]", "default_max_temp_c"))
    c.mutate("sem-heater-thermostat", "thermostat outside the tank band",
             chain(with_asset(HEATER), setter("sites.0.assets.3.thermostat_c", 90)),
             bad("p.yaml", "sites[0].assets[3]", "thermostat_c"))
    c.mutate("sem-soc-outside-band", "initial SoC above soc_max", setter("sites.0.assets.0.initial_soc_pct", 99),
             bad("p.yaml", "sites[0].assets[0]", "initial_soc_pct"))
    c.mutate("sem-cold-start", "a zone starting at 5 degC cannot reach its band at once: violations",
             chain(with_asset(CLIMATE), setter("sites.0.assets.3.initial_temp_c", 5)),
             {"exit": 0, "run": True, "violations": True})
    c.mutate("sem-tiny-connection", "a 10 W connection under a 1 kW house: violations",
             setter("sites.0.connection", {"import_limit_kw": 0.01, "export_limit_kw": 0.01}),
             {"exit": 0, "run": True, "violations": True})
    c.mutate("sem-every-asset", "EV, climate and water heater together", chain(with_asset(EV), with_asset(CLIMATE),
                                                                               with_asset(HEATER)))
    c.mutate("sem-site-timezone", "a site in another timezone", setter("sites.0.timezone", "Atlantic/Canary"))
    c.add("sem-dst-autumn", "the 25-hour day", doc=BASE, files={"data/prices.csv": _dst_prices(),
                                                                "data/site.csv": _dst_site()},
          runs=[(VALIDATE, OK_VALIDATE), (["schedule", "day-ahead", "p.yaml", "--date", "2024-10-27", "--store",
                                            "runs", "--time-limit", "30"], OK_RUN)])


def _extremes(c: Corpus) -> None:
    """Valid values at the edges of their ranges, and odd but valid calendars: they must solve, not hang."""
    thermal = chain(with_asset(CLIMATE), setter("sites.0.assets.3.mode", "both"))
    for name, path, value in [
        ("edge-thermal-r-max", "sites.0.assets.3.thermal_resistance_k_per_kw", 1000),
        ("edge-thermal-r-tiny", "sites.0.assets.3.thermal_resistance_k_per_kw", 1e-6),
        ("edge-thermal-c-max", "sites.0.assets.3.thermal_capacitance_kwh_per_k", 1e6),
        ("edge-thermal-c-tiny", "sites.0.assets.3.thermal_capacitance_kwh_per_k", 1e-6),
        ("edge-cop-max", "sites.0.assets.3.cop_cooling", 10),
        ("edge-cop-tiny", "sites.0.assets.3.cop_heating", 1e-6),
    ]:
        c.mutate(name, f"{path} = {value}", chain(thermal, setter(path, value)))
    c.mutate("edge-heater-huge-draw", "a 100,000 l draw from a 150 l tank: violations, no crash",
             chain(with_asset(HEATER), setter("sites.0.assets.3.draws.0.litres", 1e5)),
             {"exit": 0, "run": True, "violations": True})
    c.mutate("edge-ev-huge-session", "2,000 kWh wanted from a 1 kW charger: violations",
             chain(with_asset(EV), setter("sites.0.assets.3.max_charge_kw", 1),
                   setter("sites.0.assets.3.sessions.0.energy_kwh", 2000)), {"exit": 0, "run": True,
                                                                               "violations": True})
    c.mutate("edge-ev-v2g", "a bidirectional charger",
             chain(with_asset(EV), setter("sites.0.assets.3.max_discharge_kw", 7),
                   setter("sites.0.assets.3.sessions.0.vehicle_battery_kwh", 60)))
    v2g = chain(with_asset(EV), setter("sites.0.assets.3.max_discharge_kw", 7),
                setter("sites.0.assets.3.sessions.0.vehicle_battery_kwh", 60))
    c.mutate("edge-v2g-arrival-below-min", "a vehicle arriving below its V2G minimum",
             chain(v2g, setter("sites.0.assets.3.sessions.0.arrival_soc_pct", 5)))
    c.mutate("edge-v2g-energy-above-battery", "100 kWh wanted by a 60 kWh vehicle battery",
             chain(v2g, setter("sites.0.assets.3.sessions.0.energy_kwh", 100)),
             bad("p.yaml", "sites[0].assets[3].sessions[0]", "vehicle_battery_kwh"))
    c.mutate("edge-heater-draw-colder-than-mains", "mixed water at 10 degC from 15 degC mains would heat the tank",
             chain(with_asset(HEATER), setter("sites.0.assets.3.draw_temp_c", 10)),
             bad("p.yaml", "sites[0].assets[3]", "cold_water_temp_c"))
    c.mutate("edge-comfort-overnight", "a comfort window from 22:00 to 06:00 wraps over midnight",
             chain(with_asset(CLIMATE), setter("sites.0.assets.3.comfort.0.start_local", "22:00"),
                   setter("sites.0.assets.3.comfort.0.end_local", "06:00")))
    c.mutate("edge-count-100000", "100,000 identical batteries", chain(
        setter("sites.0.assets.0.count", 100_000), setter("sites.0.connection", {}),
        setter("congestion_points.0.import_limit_kw", 1e6)))
    c.mutate("edge-no-assets", "no asset anywhere: nothing to schedule (crashed writing an empty schedule)",
             setter("sites.0.assets", []), bad("p.yaml", "sites", "no site has any asset"))
    c.mutate("edge-site-without-assets", "a second site without assets",
             lambda d: d["sites"].append({"id": "empty"}))
    c.mutate("edge-only-load", "a site with only its load", lambda d: d["sites"][0].update(assets=[asset(d, 2)]))
    c.mutate("edge-unused-congestion-point", "a congestion point without sites",
             lambda d: d["congestion_points"].append({"id": "cp2", "import_limit_kw": 1}))
    c.mutate("edge-penalty-tiny", "penalties of 1e-9", setter("penalties", {
        "limit_eur_per_kwh": 1e-9, "comfort_eur_per_degc_h": 1e-9, "ev_energy_eur_per_kwh": 1e-9,
        "terminal_soc_eur_per_kwh": 1e-9}))
    c.mutate("edge-resolution-5", "5-minute intervals from hourly data", setter("portfolio.resolution_min", 5))
    for tz, day, minutes in (("Asia/Kathmandu", DAY, 60), ("Australia/Lord_Howe", "2024-10-06", 30),
                             ("Pacific/Chatham", DAY, 60)):
        name = "edge-tz-" + tz.split("/")[1].lower()
        c.add(name, f"a portfolio in {tz} (odd UTC offsets or a 30-minute DST shift)",
              doc={**BASE, "portfolio": {"name": "hostile", "timezone": tz, "resolution_min": minutes}},
              files={"data/prices.csv": _long_prices(), "data/site.csv": _long_site()},
              runs=[(VALIDATE, OK_VALIDATE), (["schedule", "day-ahead", "p.yaml", "--date", day, "--store", "runs",
                                                "--time-limit", "30"], OK_RUN)])
    c.add("edge-tz-lord_howe-hourly", "hourly intervals cannot tile Lord Howe's 23.5-hour DST day",
          doc={**BASE, "portfolio": {"name": "hostile", "timezone": "Australia/Lord_Howe", "resolution_min": 60}},
          files={"data/prices.csv": _long_prices(), "data/site.csv": _long_site()},
          runs=[(["schedule", "day-ahead", "p.yaml", "--date", "2024-10-06", "--store", "runs"],
                 bad("23.5 h", "resolution_min"))])
    c.add("edge-from-dst-gap", "intraday from 02:00 on the spring-forward day (a local time that does not exist): "
          "refused with the time that exists and the offset form, never shifted silently",
          doc=BASE, files={"data/prices.csv": _long_prices(), "data/site.csv": _long_site()},
          runs=[(["schedule", "intraday", "p.yaml", "--from", "2024-03-31T02:00", "--store", "runs"],
                 bad("--from", "does not exist", "2024-03-31T03:00", "2024-03-31T02:00+01:00"))])
    c.add("edge-from-dst-gap-offset", "intraday from the spring-forward night's 02:00+01:00 (= 03:00 CEST)",
          doc=BASE, files={"data/prices.csv": _long_prices(), "data/site.csv": _long_site()},
          runs=[(["schedule", "intraday", "p.yaml", "--from", "2024-03-31T02:00+01:00", "--store", "runs"],
                 OK_RUN)])
    c.add("edge-single-row", "a price file of one row covers one hour of the day only", doc=BASE,
          files={"data/prices.csv": "timestamp,price\n2024-06-12T10:00:00Z,50\n"}, expect=bad("prices", "gap of"),
          validate=OK_VALIDATE)
    stamps = ["timestamp,price"] + [f"2024-06-{10 + i // 24:02d}T{i % 24:02d}:00:00.123456789Z,50" for i in range(120)]
    c.add("edge-nanosecond-timestamps", "timestamps with nanoseconds", doc=BASE,
          files={"data/prices.csv": "\n".join(stamps) + "\n"})
    c.mutate("edge-parquet-timestamps", "a Parquet file with a real timestamp column",
             setter("data_sources.prices", {"path": "data/prices.parquet", "column": "price", "unit": "EUR/MWh"}),
             files={"data/prices.parquet": parquet_typed()})
    c.mutate("edge-same-column", "time_column and column are the same", setter("data_sources.prices.column",
                                                                                "timestamp"),
             bad("prices.csv", "'timestamp'"))


def _special_files(c: Corpus) -> None:
    """Pipes, devices and link loops: reading them would never end (or never stop growing)."""
    c.add("path-portfolio-fifo", "the portfolio is a named pipe", special={"p.yaml": ("fifo",)},
          expect=bad("p.yaml", "not a regular file"))
    c.add("path-portfolio-link-loop", "the portfolio is a link to itself", special={"p.yaml": ("symlink", "p.yaml")},
          expect=bad("p.yaml", "cannot be used as a path"))
    c.mutate("data-fifo", "a data file that is a named pipe", lambda d: None, bad("prices.csv", "not a regular file"),
             special={"data/prices.csv": ("fifo",)})
    c.mutate("data-dev-zero", "a data file /dev/zero", setter("data_sources.prices.path", "/dev/zero"),
             bad("/dev/zero", "data_sources.prices"))
    c.mutate("data-symlink-loop", "a data file that is a link to itself", lambda d: None,
             bad("data_sources.prices"), special={"data/prices.csv": ("symlink", "prices.csv")})
    c.mutate("dso-dev-zero", "dso_limits_file: /dev/zero", setter("dso_limits_file", "/dev/zero"),
             bad("dso_limits_file", "/dev/zero"))
    c.mutate("dso-fifo", "a DSO limits file that is a named pipe", setter("dso_limits_file", "data/dso.csv"),
             bad("dso_limits_file", "dso.csv"), special={"data/dso.csv": ("fifo",)})
    c.add("path-include-dev-urandom", "an include of /dev/urandom (allowed outside the folder)",
          doc={**BASE, "include": ["/dev/urandom"], "allow_includes_outside": True},
          expect=bad("/dev/urandom", "not a regular file"))
    c.add("cli-state-dev-zero", "--state /dev/zero", doc=BASE,
          runs=[(["schedule", "intraday", "p.yaml", "--store", "runs", "--from", f"{DAY}T14:00", "--state",
                  "/dev/zero"], bad("--state", "regular file"))])
    chain_files = {f"inc/f{i}.yaml": dump({"include": [f"f{i + 1}.yaml"]}) for i in range(40)}
    chain_files["inc/f40.yaml"] = dump({})
    c.add("path-include-depth", "a chain of 40 includes", doc={**BASE, "include": ["inc/f0.yaml"]},
          files=chain_files, expect=bad("include", "nested more than 32"))
    c.mutate("data-parquet-bomb", "a small Parquet file of 6 million rows", setter(
        "data_sources.prices", {"path": "data/prices.parquet", "column": "price", "unit": "EUR/MWh"}),
        bad("prices.parquet", "6,000,000 rows"), files={"data/prices.parquet": parquet_bomb(6_000_000)})


def parquet_bomb(rows: int) -> bytes:
    import io

    import pyarrow as pa
    import pyarrow.parquet as pq

    sink = io.BytesIO()
    pq.write_table(pa.table({"timestamp": pa.repeat("2024-06-12T00:00:00Z", rows),
                             "price": pa.repeat(pa.scalar(50.0), rows)}), sink)
    return sink.getvalue()


def parquet_typed() -> bytes:
    import io

    import pyarrow as pa
    import pyarrow.parquet as pq

    times = _hours("2024-06-10T00:00", 120, 60)
    sink = io.BytesIO()
    pq.write_table(pa.table({"timestamp": pa.array(times, pa.timestamp("us", tz="UTC")),
                             "price": pa.array([50 + i % 24 for i in range(120)], pa.int64())}), sink)
    return sink.getvalue()


def _price_csv(start: str, hours: int) -> str:
    rows = ["timestamp,price"] + [f"{_iso(t)},{40 + t.hour}" for t in _hours(start, hours, 60)]
    return "\n".join(rows) + "\n"


def _site_csv(start: str, count: int, minutes: int) -> str:
    rows = ["timestamp,pv_kw,load_kw,temp_c"] + [
        f"{_iso(t)},{max(0.0, math.sin((t.hour - 6) / 12 * math.pi)) * 3:.3f},1.0,12"
        for t in _hours(start, count, minutes)]
    return "\n".join(rows) + "\n"


def _long_prices() -> str:
    return _price_csv("2024-03-25T00:00", 24 * 240)


def _long_site() -> str:
    return _site_csv("2024-03-25T00:00", 24 * 240, 60)


def _dst_prices() -> str:
    return _price_csv("2024-10-25T00:00", 24 * 4)


def _dst_site() -> str:
    return _site_csv("2024-10-25T00:00", 96 * 4, 15)


def main(argv: list[str]) -> int:
    out = Path(argv[1]) if len(argv) > 1 else Path("hostile-corpus")
    n = build().write(out)
    print(f"{n} cases written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
