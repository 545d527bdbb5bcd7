"""The summary of a replayed day, from what the day left behind: dispatch's round records (scheduled and measured
power, states, alarms), the schedule runs (limits, comfort bands, sessions) and the replay's own events (intraday
runs, re-optimisations, perturbations). Written as JSON beside the day's runs and printed."""

from __future__ import annotations

import datetime as dt
import json
import math
from pathlib import Path
from typing import Any

import pandas as pd
from rich.console import Console
from rich.table import Table

from flexopt.data.inputs import Horizon
from flexopt.models.thermal import comfort_band
from flexopt.operations.audit import dispatch_folder, read_rounds
from flexopt.operations.triggers import round_deviation_kw
from flexopt.runs.files import jsonable, write_json
from flexopt.runs.store import day_dir

WINDOW = dt.timedelta(hours=1)  # deviations are compared over this long before and after each re-optimisation


def _num(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(
        value) else None


def rounds_frame(records: list[dict[str, Any]]) -> pd.DataFrame:
    """One row per round and asset: times, schedule, scheduled and measured power, states, deviation."""
    rows = []
    for r in records:
        for asset_id, e in r.get("assets", {}).items():
            t = e.get("telemetry") or {}
            devices = e.get("device_telemetry") or []
            rows.append({
                "at": pd.Timestamp(r["at"]), "interval_start": pd.Timestamp(r["interval_start"]) if r.get(
                    "interval_start") else pd.NaT, "schedule": (r.get("schedule") or {}).get("path"),
                "asset_id": asset_id, "site_id": e.get("site_id"), "asset_type": e.get("asset_type"),
                "scheduled_kw": _num(e.get("scheduled_power_kw")), "measured_kw": _num(t.get("active_power_kw")),
                "deviation_kw": _num(e.get("deviation_kw")), "setpoint_kind": e.get("setpoint_kind"),
                "soc_pct": _num(t.get("soc_pct")), "temp_c": _num(t.get("temp_c")),
                "ev_energy_kwh": (sum(_num(d.get("ev_energy_kwh")) or 0.0 for d in devices) if devices
                                  else _num(t.get("ev_energy_kwh"))),
                "quality": t.get("quality"),
            })
    return pd.DataFrame(rows)


STATE_KEYS = ("soc_pct", "temp_c")  # states measured and scheduled alike, compared round by round


def with_scheduled_states(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with the state the schedule in force expected at each round's interval start
    (``scheduled_soc_pct``, ``scheduled_temp_c``: its ``states.parquet`` value at that interval end)."""
    frame = frame.copy()
    for key in STATE_KEYS:
        frame[f"scheduled_{key}"] = float("nan")
    if not len(frame):
        return frame
    for path, rows in frame.groupby("schedule"):
        file = Path(path) / "states.parquet"
        if not file.is_file():
            continue
        states = pd.read_parquet(file)
        states["interval_end"] = pd.to_datetime(states["interval_end"], utc=True)
        states = pd.concat([_start_states(Path(path)), states[["asset_id", "key", "interval_end", "value"]]])
        for key in STATE_KEYS:
            table = states[states["key"] == key].drop_duplicates(["asset_id", "interval_end"]).set_index(
                ["asset_id", "interval_end"])["value"]
            keys = list(zip(rows["asset_id"], rows["interval_start"], strict=True))
            frame.loc[rows.index, f"scheduled_{key}"] = pd.to_numeric(table.reindex(keys), errors="coerce").to_numpy(
                dtype=float)
    return frame


def _start_states(run: Path) -> pd.DataFrame:
    """A run's states at its first interval's start (run.json ``initial_state``; ``states.parquet`` begins one
    interval later)."""
    rows = []
    try:
        info = json.loads((run / "run.json").read_text(encoding="utf-8"))
        start = pd.Timestamp(info["horizon"]["start_utc"])
    except (OSError, ValueError, KeyError):
        return pd.DataFrame(columns=["asset_id", "key", "interval_end", "value"])
    for asset_id, state in (info.get("initial_state") or {}).items():
        for key in STATE_KEYS:
            if _num(state.get(key)) is not None:
                rows.append({"asset_id": asset_id, "key": key, "interval_end": start, "value": float(state[key])})
    return pd.DataFrame(rows, columns=["asset_id", "key", "interval_end", "value"])


def _energy(frame: pd.DataFrame, column: str, dt_h: float) -> float:
    return float(frame[column].fillna(0.0).sum() * dt_h)


def day_summary(loaded: Any, store: Path, day: dt.date, begin: dt.datetime, end: dt.datetime, day_ahead: Path,
                events: dict[str, list], *, wall_s: float, speed: float) -> dict[str, Any]:
    """Everything the day summary says (JSON-ready)."""
    pf = loaded.portfolio
    info = pf.portfolio
    dt_h = info.resolution_min / 60
    records, problems = read_rounds(dispatch_folder(store, info.name, day))
    records = [r for r in records if begin <= dt.datetime.fromisoformat(r["at"]) < end]
    frame = with_scheduled_states(rounds_frame(records))
    assets = {a.id: (s, a) for s, a in pf.assets()}
    per_asset, per_site = {}, {}
    for asset_id, rows in (frame.groupby("asset_id") if len(frame) else []):
        per_asset[asset_id] = {"site_id": assets[asset_id][0].id, "type": assets[asset_id][1].type,
                               "scheduled_kwh": round(_energy(rows, "scheduled_kw", dt_h), 3),
                               "measured_kwh": round(_energy(rows, "measured_kw", dt_h), 3),
                               "abs_deviation_kwh": round(float(rows["deviation_kw"].abs().sum() * dt_h), 3)}
    for entry in per_asset.values():
        site = per_site.setdefault(entry["site_id"], {"scheduled_kwh": 0.0, "measured_kwh": 0.0})
        site["scheduled_kwh"] = round(site["scheduled_kwh"] + entry["scheduled_kwh"], 3)
        site["measured_kwh"] = round(site["measured_kwh"] + entry["measured_kwh"], 3)
    deviation = pd.Series({pd.Timestamp(r["at"]): round_deviation_kw(r) for r in records}, dtype=float)
    reruns = [{"kind": "intraday (cron)", **e} for e in events.get("intraday", [])] + [
        {"kind": "intraday (trigger)", **e} for e in events.get("reoptimisations", []) if e.get("outcome") == "written"]
    for rerun in reruns:
        rerun.update(_before_after(deviation, pd.Timestamp(rerun["from"]), rerun.get("run")))
        rerun["state_deviation"] = _state_before_after(frame, pd.Timestamp(rerun["from"]))
    alarms: dict[str, int] = {}
    for r in records:
        for a in r.get("alarms", []):
            key = f"{a['severity']} {a['kind']}"
            alarms[key] = alarms.get(key, 0) + 1
    return jsonable({
        "portfolio": info.name, "date": day.isoformat(), "from": begin, "until": end, "speed": speed,
        "wall_s": round(wall_s, 1), "rounds": len(records), "unreadable_records": problems,
        "day_ahead": str(day_ahead), "energy": {"assets": per_asset, "sites": per_site},
        "deviation_kw": {"mean": _mean(deviation), "max": float(deviation.max()) if len(deviation) else None},
        "reoptimisations": reruns, "perturbations": events.get("perturbations", []),
        "comfort": _comfort(loaded, frame, day), "ev": _ev(loaded, frame, day),
        "congestion": _congestion(loaded, frame, store, day), "alarms": alarms,
        "series": _series(loaded, frame, deviation, records),
    })


def _mean(series: pd.Series) -> float | None:
    return round(float(series.mean()), 3) if len(series) else None


def _before_after(deviation: pd.Series, start: pd.Timestamp, run: str | None) -> dict[str, Any]:
    """Mean total deviation over the hour before a run's first interval and the hour after, and its start state."""
    before = deviation[(deviation.index >= start - WINDOW) & (deviation.index < start)]
    after = deviation[(deviation.index >= start) & (deviation.index < start + WINDOW)]
    out: dict[str, Any] = {"deviation_before_kw": _mean(before), "deviation_after_kw": _mean(after)}
    if run and (Path(run) / "run.json").is_file():
        state = json.loads((Path(run) / "run.json").read_text()).get("initial_state", {})
        out["initial_state_sources"] = {k: sum(1 for v in state.values() if v.get("source") == k)
                                        for k in ("telemetry", "schedule", "config")}
    return out


def _state_before_after(frame: pd.DataFrame, start: pd.Timestamp) -> dict[str, Any]:
    """Per asset with a measured and a scheduled state: the largest |measured - scheduled| over the hour before a
    run's first interval and over the hour after (SoC in percentage points, temperatures in K)."""
    out: dict[str, Any] = {}
    if not len(frame):
        return out
    for key in STATE_KEYS:
        gap = (frame[key] - frame[f"scheduled_{key}"]).abs()
        rows = frame.assign(gap=gap)[gap.notna()]
        for asset_id, r in rows.groupby("asset_id"):
            before = r[(r["at"] >= start - WINDOW) & (r["at"] < start)]["gap"]
            after = r[(r["at"] >= start) & (r["at"] < start + WINDOW)]["gap"]
            out[asset_id] = {"key": key, "before": _max(before), "after": _max(after)}
    return out


def _max(series: pd.Series) -> float | None:
    return round(float(series.max()), 3) if len(series) else None


def _comfort(loaded: Any, frame: pd.DataFrame, day: dt.date) -> dict[str, Any]:
    """Per zone or tank with a comfort band: the rounds whose measured temperature was inside it."""
    info = loaded.portfolio.portfolio
    horizon = Horizon.for_day(day, info.timezone, info.resolution_min)
    out = {}
    for _, asset in loaded.portfolio.assets():
        if not hasattr(asset, "comfort") or not len(frame) or asset.id not in set(frame["asset_id"]):
            continue
        lo, hi = comfort_band(asset, horizon)
        band = pd.DataFrame({"lo": lo, "hi": hi}, index=horizon.index)
        rows = frame[(frame["asset_id"] == asset.id) & frame["temp_c"].notna()]
        limits = band.reindex(rows["interval_start"])
        inside = (rows["temp_c"].to_numpy() >= limits["lo"].to_numpy() - 0.5) & (
            rows["temp_c"].to_numpy() <= limits["hi"].to_numpy() + 0.5)
        out[asset.id] = {"rounds": len(rows), "inside": int(inside.sum()),
                         "met": bool(inside.all()) if len(rows) else None}
    return out


def _ev(loaded: Any, frame: pd.DataFrame, day: dt.date) -> dict[str, Any]:
    """Per charger with sessions that departed within the replay: the energy its meters counted by departure
    (times the charge efficiency) against what the sessions needed."""
    tz = loaded.portfolio.tz
    out = {}
    for _, asset in loaded.portfolio.assets():
        if asset.type != "ev_charger" or not len(frame) or asset.id not in set(frame["asset_id"]):
            continue
        rows = frame[(frame["asset_id"] == asset.id)].set_index("at")
        for s in asset.sessions:
            departure = pd.Timestamp(dt.datetime.combine(day, s.departure_local, tzinfo=tz))
            seen = rows[rows.index < departure]["ev_energy_kwh"].dropna()
            if not len(seen) or rows.index.max() < departure - pd.Timedelta(minutes=30):
                continue
            units = s.units or asset.count
            delivered = float(seen.iloc[-1]) * getattr(asset, "charge_efficiency", 1.0)
            out[f"{asset.id} {s.arrival_local:%H:%M}-{s.departure_local:%H:%M}"] = {
                "needed_kwh": s.energy_kwh * units, "delivered_kwh": round(delivered, 2),
                "met": delivered >= 0.95 * s.energy_kwh * units}
    return out


def site_net(loaded: Any, frame: pd.DataFrame) -> pd.DataFrame:
    """Per round and site, the measured net power: every controlled asset as measured plus what has no device
    (uncontrolled loads) as the schedule in force at that round had it."""
    if not len(frame):
        return pd.DataFrame(columns=["at", "site_id", "net_kw"])
    no_device = {a.id for _, a in loaded.portfolio.assets() if a.endpoint is None}
    loads = []
    for path, rows in frame.groupby("schedule"):
        schedule = pd.read_parquet(Path(path) / "schedule.parquet", columns=["interval_start", "site_id",
                                                                              "asset_id", "power_kw"])
        schedule["interval_start"] = pd.to_datetime(schedule["interval_start"], utc=True)
        schedule = schedule[schedule["asset_id"].isin(no_device)]
        per_site = schedule.groupby(["interval_start", "site_id"])["power_kw"].sum().rename("load_kw").reset_index()
        rounds = rows[["at", "interval_start"]].drop_duplicates()
        loads.append(rounds.merge(per_site, on="interval_start"))
    measured = frame.groupby(["at", "site_id"])["measured_kw"].sum().rename("controlled_kw").reset_index()
    load = pd.concat(loads)[["at", "site_id", "load_kw"]] if loads else pd.DataFrame(
        columns=["at", "site_id", "load_kw"])
    net = measured.merge(load, on=["at", "site_id"], how="outer").fillna(0.0)
    net["net_kw"] = net["controlled_kw"] + net["load_kw"]
    return net


def _congestion(loaded: Any, frame: pd.DataFrame, store: Path, day: dt.date) -> dict[str, Any]:
    """Per site: the measured net power (:func:`site_net`) against the site's import and export limits."""
    out = {}
    nets = site_net(loaded, frame)
    for site in loaded.portfolio.sites:
        rows = nets[nets["site_id"] == site.id]
        if not len(rows):
            continue
        net = rows.set_index("at")["net_kw"]
        limit_in = site.connection.import_limit_kw if site.connection else None
        limit_out = site.connection.export_limit_kw if site.connection else None
        over = int(((net > limit_in).sum() if limit_in is not None else 0)
                   + ((net < -limit_out).sum() if limit_out is not None else 0))
        out[site.id] = {"max_import_kw": round(float(net.max()), 2), "max_export_kw": round(float(-net.min()), 2),
                        "import_limit_kw": limit_in, "export_limit_kw": limit_out, "rounds_over": over,
                        "held": over == 0}
    return out


def _series(loaded: Any, frame: pd.DataFrame, deviation: pd.Series, records: list[dict[str, Any]]) -> dict[str, Any]:
    """The measured series the report draws (per asset, per site, per round)."""
    if not len(frame):
        return {}
    out: dict[str, Any] = {"deviation_kw": {"at": list(deviation.index), "value": list(deviation.to_numpy())}}
    out["alarms"] = {"at": [r["at"] for r in records],
                     "critical": [r["summary"].get("alarms_critical", 0) for r in records],
                     "warning": [r["summary"].get("alarms_warning", 0) for r in records]}
    out["site_net"] = {site_id: {"at": list(rows["at"]), "net_kw": list(rows["net_kw"].round(3))}
                       for site_id, rows in site_net(loaded, frame).sort_values("at").groupby("site_id")}
    for asset_id, rows in frame.groupby("asset_id"):
        out[asset_id] = {col: list(rows[col].to_numpy()) for col in
                         ("at", "scheduled_kw", "measured_kw", "soc_pct", "temp_c", "ev_energy_kwh",
                          "scheduled_soc_pct", "scheduled_temp_c")}
    return out


def summary_folder(store: Path, loaded: Any, day: dt.date) -> Path:
    """Where a replay's summary and report go: ``<store>/<portfolio>/<day>/replay/``."""
    return day_dir(store, loaded.portfolio.portfolio.name, day) / "replay"


def write_summary(summary: dict[str, Any], store: Path, loaded: Any, day: dt.date) -> Path:
    folder = summary_folder(store, loaded, day)
    folder.mkdir(parents=True, exist_ok=True)
    write_json(summary, folder / "summary.json")
    return folder


def print_summary(summary: dict[str, Any], console: Console) -> None:
    sites = Table("site", "scheduled kWh", "measured kWh", "max import kW", "limit", "held",
                  title=f"replay {summary['date']}: energy of the controlled assets, congestion")
    for site_id, e in summary["energy"]["sites"].items():
        c = summary["congestion"].get(site_id, {})
        sites.add_row(site_id, f"{e['scheduled_kwh']:.1f}", f"{e['measured_kwh']:.1f}",
                      f"{c.get('max_import_kw', float('nan')):.1f}", str(c.get("import_limit_kw")),
                      "yes" if c.get("held") else "NO")
    console.print(sites)
    runs = Table("run from", "kind", "outcome", "deviation before kW", "after kW", "states from",
                 title="re-optimisations (mean total deviation, hour before vs hour after)")
    for r in summary["reoptimisations"]:
        states = r.get("initial_state_sources") or {}
        runs.add_row(str(r.get("from", ""))[11:16], r["kind"], r.get("outcome", ""),
                     _fmt(r.get("deviation_before_kw")), _fmt(r.get("deviation_after_kw")),
                     ", ".join(f"{v} {k}" for k, v in states.items() if v))
    console.print(runs)
    comfort = summary["comfort"]
    ev = summary["ev"]
    console.print(f"comfort met: {sum(1 for c in comfort.values() if c['met'])} of {len(comfort)} zones/tanks; "
                  f"EV sessions met: {sum(1 for e in ev.values() if e['met'])} of {len(ev)}; "
                  f"alarms: {sum(summary['alarms'].values())} "
                  f"({', '.join(f'{k} {v}' for k, v in sorted(summary['alarms'].items())) or 'none'}); "
                  f"{summary['rounds']} rounds in {summary['wall_s']:.0f} s", highlight=False, soft_wrap=True)


def _fmt(value: Any) -> str:
    return "-" if value is None else f"{value:.2f}"


__all__ = ["day_summary", "print_summary", "rounds_frame", "summary_folder", "write_summary"]
