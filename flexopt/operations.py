"""Dispatch: carry the stored schedule to the devices, read them back, and keep an audit trail.

One *round* takes the schedule row of every asset for the interval containing a time, sends its per-device
``setpoint`` (OCPP chargers also get the rest of the day as profile periods, so they keep following the
schedule if flexopt goes away), waits for the devices to settle, reads them, compares measured power with the
schedule's ``power_kw`` and turns every failure into an alarm. Each round is written to a new JSON file that is
never rewritten, and summarised in one appended line of ``rounds.csv``: operators and cron monitoring read
alarms from there, not from exit codes.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import datetime as dt
import io
import json
import math
import os
import ssl
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pandas as pd

from flexopt import __version__
from flexopt.adapters.alarms import Alarm, alarms_from_results, alarms_from_telemetry
from flexopt.adapters.base import CommandResult, DeviceAdapter, Setpoint, SetpointPeriod, utcnow
from flexopt.adapters.dispatch import connect_all, dispatch, read_all
from flexopt.adapters.factory import adapter_for_asset, address_problems, setpoint_kind
from flexopt.adapters.group import GroupAdapter
from flexopt.adapters.ocpp_central import CentralSystem
from flexopt.endpoints import OcppCentralSystem
from flexopt.outputs import jsonable
from flexopt.storage import completed_runs, day_dir
from flexopt.tempdirs import TempDir, fsync_path

SCHEDULE_KINDS = ("intraday", "day-ahead")
DISPATCH_DIR = "dispatch"
SUMMARY_FILE = "rounds.csv"
SUMMARY_COLUMNS = ("file", "at_utc", "interval_start_utc", "schedule_run", "assets", "confirmed", "failed",
                   "clamped", "skipped", "alarms_critical", "alarms_warning")
_UNIT_ALIASES = {"1": "on_off"}


class ScheduleNotFound(LookupError):
    """No usable schedule for the requested day or time; the message says where flexopt looked."""


# --- the schedule -----------------------------------------------------------------------------


@dataclass
class ScheduleRun:
    """One stored run: its folder, its schedule rows and its run.json record."""

    path: Path
    frame: pd.DataFrame
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def version(self) -> str:
        return self.path.name

    def describe(self) -> dict[str, Any]:
        return {"path": str(self.path), "version": self.version, "kind": self.info.get("kind"),
                "date": self.info.get("date"), "created_utc": self.info.get("created_utc")}


def load_schedule_run(path: Path) -> ScheduleRun:
    """Read ``schedule.parquet`` (and ``run.json`` when present) of a run folder; a damaged one is
    :class:`ScheduleNotFound` with the reason, not a traceback."""
    file = path / "schedule.parquet"
    if not file.is_file():
        raise ScheduleNotFound(f"{path}: no schedule.parquet (is this a run folder of flexopt schedule?)")
    try:
        frame = pd.read_parquet(file)
        for col in ("interval_start", "interval_end"):
            frame[col] = pd.to_datetime(frame[col], utc=True)
        info: dict[str, Any] = {}
        if (path / "run.json").is_file():
            info = json.loads((path / "run.json").read_text())
    except (OSError, ValueError, KeyError) as exc:  # pyarrow's errors are OSError or ValueError
        raise ScheduleNotFound(f"{path}: cannot read the run ({type(exc).__name__}: {exc})") from None
    return ScheduleRun(path, frame, info)


def _covers(run: ScheduleRun, at: dt.datetime) -> bool:
    return not rows_at(run.frame, at).empty


def find_schedule_run(store: Path, portfolio_name: str, day: dt.date, at: dt.datetime | None = None) -> ScheduleRun:
    """The last completed run (intraday or day-ahead) of a local day in the store; with ``at``, the last one
    whose intervals contain it (an intraday run written before its first interval leaves the earlier run in
    force). A run that cannot be read is passed over and named in the error when nothing else fits."""
    runs = completed_runs(store, portfolio_name, day, SCHEDULE_KINDS)
    if not runs:
        raise ScheduleNotFound(
            f"no schedule for {portfolio_name} on {day.isoformat()} in {store} (looked for "
            f"{'/'.join(SCHEDULE_KINDS)} runs); run `flexopt schedule day-ahead ... --date {day.isoformat()}` "
            "or pass --run RUN_DIR"
        )
    unreadable = []
    for path in runs:
        try:
            candidate = load_schedule_run(path)
        except ScheduleNotFound as exc:
            unreadable.append(str(exc))
            continue
        if at is None or _covers(candidate, at):
            return candidate
    covers = "" if at is None else f" covers {at.isoformat()}"
    raise ScheduleNotFound(f"no schedule run for {portfolio_name} on {day.isoformat()} in {store}{covers} "
                           f"(newest: {runs[0]})" + "".join(f"; {u}" for u in unreadable))


def parse_at(text: str | None, tz: str) -> dt.datetime:
    """A local wall-clock time of the portfolio (or a time with an offset) as UTC; now when None."""
    if not text:
        return utcnow()
    try:
        t = dt.datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a time; use YYYY-MM-DDTHH:MM (portfolio local time)") from None
    if t.tzinfo is None:
        t = t.replace(tzinfo=ZoneInfo(tz))
    return t.astimezone(dt.UTC)


def rows_at(frame: pd.DataFrame, at: dt.datetime) -> pd.DataFrame:
    """The schedule rows of the interval that contains ``at``."""
    ts = pd.Timestamp(at)
    return frame[(frame["interval_start"] <= ts) & (frame["interval_end"] > ts)]


def _finite(x: Any) -> bool:
    try:
        return x is not None and math.isfinite(float(x))
    except (TypeError, ValueError):
        return False


def to_device_unit(value: float, unit: str, asset: Any, adapter: DeviceAdapter) -> tuple[float, str]:
    """The schedule's value in the unit the device takes where the conversion is physical (kW <-> A for
    chargers, kW <-> on/off for water heater elements); otherwise unchanged, and the adapter reports a
    unit mismatch as ``invalid``."""
    unit = _UNIT_ALIASES.get(unit, unit)
    want = adapter.limits.unit if adapter.limits is not None else unit
    if unit == want or {unit, want} <= {"kW", "W"}:
        return value, unit
    kind = getattr(asset, "type", "")
    if kind == "ev_charger" and {unit, want} == {"kW", "A"}:
        volts = asset.voltage_v * asset.phases / 1000.0
        return (value / volts, "A") if unit == "kW" else (value * volts, "kW")
    if kind == "water_heater" and {unit, want} == {"kW", "on_off"}:
        return (float(value >= 0.5 * asset.element_kw), "on_off") if unit == "kW" else (value * asset.element_kw,
                                                                                         "kW")
    return value, unit


def build_setpoints(
    schedule: ScheduleRun, at: dt.datetime, assets: Mapping[str, Any], adapters: Mapping[str, DeviceAdapter]
) -> tuple[list[Setpoint], dict[str, dict[str, Any]]]:
    """Setpoints for every scheduled asset with an adapter, and per asset what the schedule said (rows with
    a NaN setpoint are not sent: ``skipped`` says why)."""
    now_rows = rows_at(schedule.frame, at)
    setpoints: list[Setpoint] = []
    planned: dict[str, dict[str, Any]] = {}
    for row in now_rows.itertuples(index=False):
        adapter = adapters.get(row.asset_id)
        if adapter is None:
            continue
        start, end = row.interval_start.to_pydatetime(), row.interval_end.to_pydatetime()
        entry: dict[str, Any] = {
            "asset_type": row.asset_type, "site_id": row.site_id, "scheduled_power_kw": row.power_kw,
            "baseline_kw": row.baseline_kw, "schedule_setpoint": row.setpoint, "schedule_setpoint_unit":
            row.setpoint_unit, "state": row.state, "state_unit": row.state_unit, "skipped": None,
        }
        planned[row.asset_id] = entry
        if not _finite(row.setpoint):
            entry["skipped"] = "no setpoint in the schedule for this interval"
            continue
        asset = assets.get(row.asset_id)
        value, unit = to_device_unit(float(row.setpoint), str(row.setpoint_unit), asset, adapter)
        periods: tuple[SetpointPeriod, ...] = ()
        until = end
        endpoint = getattr(asset, "endpoint", None)
        if endpoint is not None and endpoint.protocol == "ocpp":
            rest = schedule.frame[(schedule.frame["asset_id"] == row.asset_id)
                                  & (schedule.frame["interval_start"] >= row.interval_start)]
            rest = rest.sort_values("interval_start")
            periods = tuple(
                SetpointPeriod(r.interval_start.to_pydatetime(),
                               to_device_unit(float(r.setpoint), str(r.setpoint_unit), asset, adapter)[0])
                for r in rest.itertuples(index=False) if _finite(r.setpoint)
            )
            until = rest["interval_end"].max().to_pydatetime()
            entry["profile_periods"] = len(periods)
            entry["profile_until"] = until
        setpoints.append(Setpoint(row.asset_id, value=value, unit=unit, valid_from=start,  # type: ignore[arg-type]
                                  valid_until=until, periods=periods))
    for asset_id in adapters:
        if asset_id not in planned:
            planned[asset_id] = {"skipped": "not in the schedule at this time"}
    return setpoints, planned


# --- deviations ---------------------------------------------------------------------------------


def deviation_alarm(asset_id: str, kind: str, scheduled_kw: float, measured_kw: float, tolerance_kw: float,
                    tolerance_pct: float, at: dt.datetime) -> tuple[float, Alarm | None]:
    """Measured minus scheduled power, and a warning when it is beyond max(tolerance_kw, tolerance_pct %).
    Ceilings count one way only, as in ``alarms_from_telemetry``: a charger may draw less (a full car), a PV
    array may feed in less (clouds)."""
    deviation = measured_kw - scheduled_kw
    allowed = max(tolerance_kw, abs(scheduled_kw) * tolerance_pct / 100.0)
    excess = {"import_ceiling": deviation, "export_ceiling": -deviation}.get(kind, abs(deviation))
    if excess <= allowed:
        return deviation, None
    return deviation, Alarm("warning", asset_id, "deviation",
                            f"measured {measured_kw:.2f} kW vs scheduled {scheduled_kw:.2f} kW "
                            f"({kind}, tolerance {allowed:.2f} kW)", at)


# --- one round ----------------------------------------------------------------------------------


@dataclass
class RoundOptions:
    settle_s: float = 5.0
    timeout_s: float | None = None  # per asset; default: the slowest adapter's own bound + 2 s
    tolerance_kw: float = 1.0
    tolerance_pct: float = 10.0


def _result(r: CommandResult, name: str | None = None) -> dict[str, Any]:
    d = asdict(r)
    if name is not None:
        d["device"] = name
    return d


async def run_round(
    adapters: Mapping[str, DeviceAdapter],
    schedule: ScheduleRun | None,
    at: dt.datetime,
    assets: Mapping[str, Any],
    options: RoundOptions | None = None,
    extra_alarms: list[Alarm] | None = None,
) -> dict[str, Any]:
    """Send, settle, read, compare; the audit record of the round (JSON-ready). Never raises for a device.
    Without a schedule nothing is sent, the devices are still read, and the round is a ``no_schedule`` alarm."""
    options = options or RoundOptions()
    started = utcnow()
    alarms = list(extra_alarms or [])
    if schedule is None:
        setpoints, planned = [], {}
        alarms.append(Alarm("critical", "*", "no_schedule", f"no schedule covers {jsonable(at)}: nothing was sent"))
    else:
        setpoints, planned = build_setpoints(schedule, at, assets, adapters)
    timeout_s = options.timeout_s or max((a.call_timeout_s for a in adapters.values()), default=10.0) + 2.0
    results = await dispatch(adapters, setpoints, timeout_s=timeout_s)
    by_asset = {r.asset_id: r for r in results}
    group_results = {a: list(ad.last_results) for a, ad in adapters.items()
                     if isinstance(ad, GroupAdapter) and a in by_asset}
    await asyncio.sleep(options.settle_s)
    telemetry = await read_all(adapters, timeout_s=timeout_s)
    alarms += alarms_from_results(results)
    alarms += alarms_from_telemetry(telemetry.values())  # unreachable, unavailable, bad data (no targets)
    kinds = {a: setpoint_kind(assets[a]) for a in adapters if a in assets}
    record_assets: dict[str, Any] = {}
    for asset_id, adapter in adapters.items():
        entry = dict(planned.get(asset_id, {}))
        entry["devices"] = adapter.count if isinstance(adapter, GroupAdapter) else 1
        entry["setpoint_kind"] = kinds.get(asset_id, "exact")
        result = by_asset.get(asset_id)
        entry["command"] = _result(result) if result is not None else None
        if asset_id in group_results:
            entry["device_results"] = [_result(r, n) for r, n in zip(group_results[asset_id], adapter.devices,
                                                                       strict=True)]
        t = telemetry[asset_id]
        entry["telemetry"] = asdict(t)
        if isinstance(adapter, GroupAdapter):
            entry["device_telemetry"] = [asdict(x) | {"device": n}
                                         for x, n in zip(adapter.last_telemetry, adapter.devices, strict=True)]
        scheduled = entry.get("scheduled_power_kw")
        entry["deviation_kw"] = None
        if t.connected and t.active_power_kw is not None and _finite(scheduled):
            deviation, alarm = deviation_alarm(asset_id, entry["setpoint_kind"], float(scheduled),
                                               t.active_power_kw, options.tolerance_kw, options.tolerance_pct, t.at)
            entry["deviation_kw"] = deviation
            if alarm is not None:
                alarms.append(alarm)
        if schedule is not None and entry.get("skipped") == "not in the schedule at this time":
            alarms.append(Alarm("warning", asset_id, "not_scheduled",
                                f"schedule {schedule.version} has no row for it at {jsonable(at)}"))
        record_assets[asset_id] = entry
    interval = rows_at(schedule.frame, at) if schedule is not None else pd.DataFrame(
        columns=["interval_start", "interval_end"])
    summary = {
        "assets": len(adapters),
        "sent": len(results),
        "confirmed": sum(r.ok for r in results),
        "failed": sum(not r.ok for r in results),
        "clamped": sum(r.clamped for r in results),
        "skipped": sum(1 for e in record_assets.values() if e.get("skipped")),
        "alarms_critical": sum(a.severity == "critical" for a in alarms),
        "alarms_warning": sum(a.severity == "warning" for a in alarms),
    }
    return jsonable({
        "flexopt_version": __version__,
        "at": at,
        "interval_start": interval["interval_start"].min() if len(interval) else None,
        "interval_end": interval["interval_end"].max() if len(interval) else None,
        "started_utc": started,
        "finished_utc": utcnow(),
        "settle_s": options.settle_s,
        "schedule": schedule.describe() if schedule is not None else None,
        "summary": summary,
        "assets": record_assets,
        "alarms": [asdict(a) for a in alarms],
    })


# --- the audit trail ----------------------------------------------------------------------------


def _stamp(at: dt.datetime) -> str:
    return at.astimezone(dt.UTC).strftime("%Y%m%dT%H%M%SZ")


def write_round(folder: Path, record: dict[str, Any], at: dt.datetime) -> Path:
    """Write the record as ``<folder>/<UTC stamp of at>-<n>.json`` with the first free n. The file appears
    complete or not at all: it is written and fsynced in a locked hidden folder, then hard-linked to its name
    (a rename that refuses to replace an existing file). A writer killed midway leaves only that hidden
    folder, which :func:`flexopt.storage.clean_leftovers` removes once its writer is provably gone."""
    folder.mkdir(parents=True, exist_ok=True)
    with TempDir(folder, "round") as tmp:
        file = tmp.path / "record.json"
        with open(file, "w", encoding="utf-8") as f:
            json.dump(record, f, indent=2)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        n = 1
        while True:
            dest = folder / f"{_stamp(at)}-{n}.json"
            try:
                os.link(file, dest)
                break
            except FileExistsError:
                n += 1
    fsync_path(folder)
    return dest


def read_rounds(folder: Path) -> tuple[list[dict[str, Any]], list[str]]:
    """Every round record of a dispatch folder in file-name order, and one line for each file that is not a
    readable record (damaged by hand or by a disk): skipped and reported, never a crash. Hidden files are
    temporary and not records."""
    records: list[dict[str, Any]] = []
    problems: list[str] = []
    for path in sorted(folder.glob("*.json")):
        if path.name.startswith("."):
            continue
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
            if not isinstance(record, dict) or "summary" not in record:
                raise ValueError("not a round record")
        except (OSError, ValueError) as exc:
            problems.append(f"{path}: skipped, not a readable round record ({exc})")
            continue
        record["file"] = path.name
        records.append(record)
    return records, problems


def append_summary(folder: Path, record: dict[str, Any], file: Path) -> Path:
    """Append one line to ``rounds.csv``; existing lines are never touched. The header is written to a
    temporary file and linked into place, so a killed writer never leaves a file without one."""
    path = folder / SUMMARY_FILE
    if not path.exists():
        with TempDir(folder, "summary") as tmp:
            header = tmp.path / SUMMARY_FILE
            with open(header, "w", encoding="utf-8", newline="") as f:
                csv.writer(f).writerow(SUMMARY_COLUMNS)
                f.flush()
                os.fsync(f.fileno())
            with contextlib.suppress(FileExistsError):  # another round created it first
                os.link(header, path)
    s = record["summary"]
    row = [file.name, record["at"], record["interval_start"], (record["schedule"] or {}).get("path"), s["assets"],
           s["confirmed"], s["failed"], s["clamped"], s["skipped"], s["alarms_critical"], s["alarms_warning"]]
    buf = io.StringIO()
    csv.writer(buf).writerow(row)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND)
    try:
        os.write(fd, buf.getvalue().encode())  # one write with O_APPEND: lines of parallel rounds never interleave
    finally:
        os.close(fd)
    return path


# --- the session: central system, adapters, rounds ----------------------------------------------


class DispatchSession:
    """What lives across rounds: the OCPP central system, the adapters and their connections."""

    def __init__(self, portfolio: Any, connect_wait_s: float = 15.0) -> None:
        self.portfolio = portfolio
        self.assets = {a.id: a for _, a in portfolio.assets()}
        self.connect_wait_s = connect_wait_s
        self.central: CentralSystem | None = None
        self.adapters: dict[str, DeviceAdapter] = {}
        self.startup_alarms: list[Alarm] = []
        self.connected: dict[str, bool] = {}

    def _ocpp_ids(self) -> list[str]:
        ids = []
        for adapter in self.adapters.values():
            children = adapter.children if isinstance(adapter, GroupAdapter) else [adapter]
            ids += [c.cp_id for c in children if getattr(c, "protocol", "") == "ocpp"]
        return ids

    async def start(self) -> None:
        """Start the central system (when chargers need it), build and connect every adapter. Problems become
        alarms of the first round, never exceptions."""
        for problem in address_problems(self.portfolio):
            self.startup_alarms.append(Alarm("critical", problem.split(":")[0].split(" ")[0], "address_conflict",
                                             problem))
        needs_ocpp = any(a.endpoint is not None and a.endpoint.protocol == "ocpp" for a in self.assets.values())
        listening = False
        if needs_ocpp:
            cfg = self.portfolio.ocpp_central_system
            if cfg is None:  # the loader requires it; a Portfolio built in code may not have it
                cfg = OcppCentralSystem()
                self.startup_alarms.append(Alarm(
                    "critical", "*", "central_system",
                    f"no ocpp_central_system in the portfolio: using {cfg.host}:{cfg.port}"))
            # built even when it cannot listen: the chargers' adapters then report them unreachable
            try:
                context = _ssl(cfg)
                self.central = CentralSystem(cfg.host, cfg.port, ssl_context=context,
                                             response_timeout_s=cfg.response_timeout_s)
                await self.central.start()
                listening = True
            except OSError as exc:  # port taken, certificate unreadable (ssl.SSLError is an OSError)
                self.startup_alarms.append(Alarm("critical", "*", "central_system",
                                                 f"cannot listen at {cfg.host}:{cfg.port}: {exc}"))
                if self.central is None:
                    self.central = CentralSystem(cfg.host, cfg.port, response_timeout_s=cfg.response_timeout_s)
        for asset in self.assets.values():
            try:
                adapter = adapter_for_asset(asset, self.central)
            except Exception as exc:  # a configuration the adapters cannot serve: an alarm, not a crash
                self.startup_alarms.append(Alarm("critical", asset.id, "adapter", f"{type(exc).__name__}: {exc}"))
                continue
            if adapter is not None:
                self.adapters[asset.id] = adapter
        ids = self._ocpp_ids()
        if listening and ids:
            central = self.central
            assert central is not None
            await central.wait_for(lambda: all(central.is_connected(i) and central.chargers[i].booted for i in ids),
                                   self.connect_wait_s)
        self.connected = await connect_all(self.adapters)

    async def round(self, schedule: ScheduleRun | None, at: dt.datetime, options: RoundOptions) -> dict[str, Any]:
        extra, self.startup_alarms = self.startup_alarms, []
        record = await run_round(self.adapters, schedule, at, self.assets, options, extra)
        if self.connected:  # the first round says which devices were there when dispatch started
            record["connected_at_start"] = dict(self.connected)
            self.connected = {}
        return record

    async def close(self) -> None:
        await asyncio.gather(*(a.close() for a in self.adapters.values()), return_exceptions=True)
        if self.central is not None:
            await self.central.stop()


def _ssl(cfg: Any) -> ssl.SSLContext | None:
    if not cfg.tls_cert_file:
        return None
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cfg.tls_cert_file, cfg.tls_key_file)
    return context


def dispatch_folder(store: Path, portfolio_name: str, day: dt.date) -> Path:
    """Rounds of a local day live beside that day's schedule runs: ``<store>/<portfolio>/<day>/dispatch/``
    (the same safe portfolio folder name as the runs; whichever run each round used is named in the record)."""
    return day_dir(store, portfolio_name, day) / DISPATCH_DIR


def next_boundary(now: dt.datetime, resolution_min: int) -> dt.datetime:
    """The next interval start after ``now`` (interval boundaries are whole multiples of the resolution in UTC,
    which is also local for every whole-quarter-hour offset)."""
    step = resolution_min * 60
    epoch = now.timestamp()
    return dt.datetime.fromtimestamp((math.floor(epoch / step) + 1) * step, dt.UTC)
