"""One self-contained HTML page of a day (plotly, with plotly.js embedded so it opens offline): per site net power
against its limits, battery SoC, EV energy, temperatures against the comfort band, prices; for a replay also what
was measured, the deviations and the alarms. ``flexopt report RUN_DIR`` draws a schedule run alone."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from flexopt.config.loader import PortfolioError, load_portfolio
from flexopt.data.inputs import Horizon
from flexopt.models.thermal import comfort_band

PANELS = ("net power per site against its limits (kW, + import)", "battery SoC (%)", "EV energy in the cars (kWh)",
          "temperatures and comfort band (degC)", "prices (EUR/kWh)", "total deviation per round (kW)",
          "alarms per round")


class ReportError(ValueError):
    """The folder is not a schedule run that can be drawn."""


def _read_run(run_dir: Path) -> dict[str, Any]:
    needed = ("schedule.parquet", "sites.parquet", "run.json")
    missing = [name for name in needed if not (run_dir / name).is_file()]
    if missing:
        raise ReportError(f"{run_dir}: not a schedule run folder (no {', '.join(missing)})")
    try:
        run = {"sites": pd.read_parquet(run_dir / "sites.parquet"),
               "states": (pd.read_parquet(run_dir / "states.parquet") if (run_dir / "states.parquet").is_file()
                          else pd.DataFrame(columns=["interval_end", "asset_id", "key", "value"])),
               "info": json.loads((run_dir / "run.json").read_text(encoding="utf-8"))}
    except (OSError, ValueError) as exc:
        raise ReportError(f"{run_dir}: cannot read the run ({type(exc).__name__}: {exc})") from None
    return run


def _portfolio(info: dict[str, Any]) -> Any | None:
    """The run's portfolio when its file is still there (for comfort bands and asset types), else None."""
    path = Path(info.get("portfolio", {}).get("path", ""))
    try:
        return load_portfolio(path) if path.is_file() else None
    except (PortfolioError, OSError):
        return None


def _figure(run: dict[str, Any], title: str, measured: dict[str, Any] | None = None) -> go.Figure:
    fig = make_subplots(rows=len(PANELS), cols=1, shared_xaxes=True, subplot_titles=PANELS, vertical_spacing=0.03)
    sites = run["sites"][run["sites"]["level"] == "site"]
    for site_id, rows in sites.groupby("id"):
        x = rows["interval_start"]
        fig.add_trace(go.Scatter(x=x, y=rows["net_kw"], name=f"{site_id} scheduled", legendgroup=site_id,
                                 line={"shape": "hv"}), row=1, col=1)
        fig.add_trace(go.Scatter(x=x, y=rows["import_limit_kw"], name=f"{site_id} import limit",
                                 legendgroup=site_id, line={"dash": "dot", "shape": "hv"}), row=1, col=1)
        fig.add_trace(go.Scatter(x=x, y=-rows["export_limit_kw"], name=f"{site_id} export limit",
                                 legendgroup=site_id, line={"dash": "dot", "shape": "hv"}), row=1, col=1)
    prices = sites.drop_duplicates("interval_start")
    fig.add_trace(go.Scatter(x=prices["interval_start"], y=prices["import_price_eur_per_kwh"], name="import price",
                             line={"shape": "hv"}), row=5, col=1)
    states = run["states"]
    loaded = _portfolio(run["info"])
    for row, key in ((2, "soc_pct"), (3, "energy_delivered_kwh"), (4, "temp_c")):
        for asset_id, rows in states[states["key"] == key].groupby("asset_id"):
            fig.add_trace(go.Scatter(x=rows["interval_end"], y=rows["value"], name=f"{asset_id} scheduled",
                                     legendgroup=asset_id), row=row, col=1)
    if loaded is not None:
        _comfort_bands(fig, loaded, run["info"], set(states.loc[states["key"] == "temp_c", "asset_id"]))
    if measured:
        _measured(fig, measured)
    fig.update_layout(title=title, height=320 * len(PANELS), hovermode="x unified", template="plotly_white")
    return fig


def _comfort_bands(fig: go.Figure, loaded: Any, info: dict[str, Any], assets: set[str]) -> None:
    horizon_info = info.get("horizon", {})
    start, end = horizon_info.get("start_utc"), horizon_info.get("end_utc")
    pf = loaded.portfolio
    if not (start and end):
        return
    horizon = Horizon.between(pd.Timestamp(start).to_pydatetime(), pd.Timestamp(end).to_pydatetime(),
                              pf.portfolio.timezone, pf.portfolio.resolution_min)
    for _, asset in pf.assets():
        if asset.id in assets and hasattr(asset, "comfort"):
            lo, hi = comfort_band(asset, horizon)
            for name, values in (("min", lo), ("max", hi)):
                fig.add_trace(go.Scatter(x=horizon.index, y=values, name=f"{asset.id} comfort {name}",
                                         legendgroup=asset.id, line={"dash": "dash", "shape": "hv"}), row=4, col=1)


def _measured(fig: go.Figure, series: dict[str, Any]) -> None:
    """The replay's measurements on top of the schedule."""
    for site_id, s in series.get("site_net", {}).items():
        fig.add_trace(go.Scatter(x=s["at"], y=s["net_kw"], name=f"{site_id} measured", legendgroup=site_id,
                                 mode="markers+lines"), row=1, col=1)
    for asset_id, s in series.items():
        if asset_id in ("site_net", "deviation_kw", "alarms"):
            continue
        for row, key in ((2, "soc_pct"), (3, "ev_energy_kwh"), (4, "temp_c")):
            values = s.get(key) or []
            if any(v is not None for v in values):
                fig.add_trace(go.Scatter(x=s["at"], y=values, name=f"{asset_id} measured", legendgroup=asset_id,
                                         mode="markers"), row=row, col=1)
    if "deviation_kw" in series:
        fig.add_trace(go.Bar(x=series["deviation_kw"]["at"], y=series["deviation_kw"]["value"],
                             name="total deviation"), row=6, col=1)
    if "alarms" in series:
        a = series["alarms"]
        fig.add_trace(go.Bar(x=a["at"], y=a["critical"], name="critical alarms", marker_color="crimson"), row=7,
                      col=1)
        fig.add_trace(go.Bar(x=a["at"], y=a["warning"], name="warnings", marker_color="orange"), row=7, col=1)


def _write(fig: go.Figure, out: Path) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    fig.write_html(tmp, include_plotlyjs=True, full_html=True)  # plotly.js inside the page: no network needed
    tmp.replace(out)
    return out


def run_report(run_dir: Path, out: Path | None = None) -> Path:
    """The page of one schedule run (what was planned; nothing measured)."""
    run = _read_run(run_dir)
    info = run["info"]
    title = f"{info.get('portfolio', {}).get('name', '')} {info.get('kind', '')} {info.get('date', '')}: {run_dir}"
    return _write(_figure(run, title), out or run_dir / "report.html")


def replay_report(summary: dict[str, Any], out: Path) -> Path:
    """The page of a replayed day: its day-ahead run with everything measured on top."""
    run = _read_run(Path(summary["day_ahead"]))
    title = (f"replay of {summary['portfolio']} on {summary['date']} ({summary['rounds']} rounds, "
             f"{len(summary['reoptimisations'])} re-optimisations)")
    return _write(_figure(run, title, summary.get("series") or {}), out)
