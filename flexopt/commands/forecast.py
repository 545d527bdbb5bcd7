"""``flexopt forecast`` and ``flexopt backtest``: forecasts of every history data source of a portfolio.

A data source with ``kind: history`` is forecast by :mod:`flexopt.forecasts` (as PV when it feeds a PV
asset's ``generation_kw``, else as load), in the portfolio's timezone and resolution.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd
import typer
from rich.console import Console
from rich.table import Table

from flexopt.commands.args import parse_day
from flexopt.commands.portfolio_cmds import EXIT_INVALID, load_or_exit
from flexopt.config.loader import LoadedPortfolio


def history_sources(loaded: LoadedPortfolio) -> dict[str, str]:
    """{data source name: "pv" or "load"} for every source flexopt has to forecast."""
    from flexopt.config.portfolio import PV

    pv_sources = {a.generation_kw.source for _, a in loaded.portfolio.assets()
                  if isinstance(a, PV) and a.generation_kw is not None}
    return {name: ("pv" if name in pv_sources else "load")
            for name, src in loaded.portfolio.data_sources.items() if src.kind == "history"}


def read_history(loaded: LoadedPortfolio, name: str) -> tuple[pd.Series, str]:
    """(series in its canonical unit, unit); unreadable files end the command with exit code 2."""
    from flexopt.data.timeseries import SeriesError, read_source

    try:
        series, report = read_source(loaded.portfolio.data_sources[name], name)
    except SeriesError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(EXIT_INVALID) from None
    return series, report.unit


def sources_or_exit(loaded: LoadedPortfolio, only: list[str] | None) -> dict[str, str]:
    sources = history_sources(loaded)
    if only:
        unknown = sorted(set(only) - set(sources))
        if unknown:
            typer.echo(f"--series: {', '.join(unknown)} not a history data source; "
                       f"history sources: {', '.join(sorted(sources)) or 'none'}", err=True)
            raise typer.Exit(EXIT_INVALID)
        sources = {k: v for k, v in sources.items() if k in only}
    if not sources:
        typer.echo("the portfolio has no data source with kind: history; nothing to forecast", err=True)
        raise typer.Exit(EXIT_INVALID)
    return sources


def run_forecast(loaded: LoadedPortfolio, day: dt.date, out: Path, jobs: int, only: list[str] | None,
                 console: Console) -> dict:
    """Forecast every history source for ``day``; write forecasts.parquet/.csv and summary.json to ``out``."""
    from flexopt.data.timeseries import SeriesError, day_index, history_before
    from flexopt.forecasts.batch import forecast_many
    from flexopt.runs.files import write_frame, write_json
    from flexopt.runs.store import StorageError, atomic_dir

    info = loaded.portfolio.portfolio
    index = day_index(day, info.timezone, info.resolution_min)
    sources = sources_or_exit(loaded, only)
    histories, units = {}, {}
    for name in sources:
        series, units[name] = read_history(loaded, name)
        try:
            histories[name] = history_before(series, index, name, info.timezone)
        except SeriesError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(EXIT_INVALID) from None
    extra = {name: regressor_kwargs(loaded, name, index[0], console) for name in sources}
    results = forecast_many(histories, index, sources, n_jobs=jobs, local_tz=info.timezone, per_series=extra)
    frames = []
    for name, result in results.items():
        result.unit = units[name]
        frames.append(result.to_long())
    table = pd.concat(frames, ignore_index=True).rename(columns={"interval_start_utc": "interval_start"})
    summary = {
        "portfolio": info.name, "date": day.isoformat(), "timezone": info.timezone,
        "resolution_min": info.resolution_min, "created_utc": pd.Timestamp.now(tz="UTC"),
        "series": {name: series_summary(r) for name, r in results.items()},
    }
    try:
        with atomic_dir(out) as tmp:
            write_frame(table, tmp, "forecasts")
            write_json(summary, tmp / "summary.json")
    except StorageError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(EXIT_INVALID) from None
    print_choices(results, console)
    console.print(f"forecasts written to [bold]{out}[/bold]")
    return summary


def regressor_kwargs(loaded: LoadedPortfolio, name: str, start: pd.Timestamp | None, console: Console) -> dict:
    """forecast_series' regressor arguments for a source: its site's weather (split at ``start``; the whole
    span for a backtest, ``start`` None) and country. An unreadable weather file ends the command (exit 2)."""
    from flexopt.data.forecasting import site_regressors
    from flexopt.data.timeseries import SeriesError

    try:
        frame, country, notes = site_regressors(loaded.portfolio, name)
    except SeriesError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(EXIT_INVALID) from None
    for note in notes:
        console.print(f"{name}: {note}", style="yellow", highlight=False, markup=False)
    out: dict = {"country": country}
    if frame is not None:
        past = frame if start is None else frame[frame.index < start]
        future = frame if start is None else frame[frame.index >= start]
        out.update(exog_history=past, exog_future=future)
    return out


def series_summary(result) -> dict:
    return {
        "kind": result.kind, "model": result.model, "members": result.details.get("weights", {}), "unit": result.unit,
        "warnings": result.warnings,
        "backtest": result.backtest.to_dict(orient="records"),
    }


def print_choices(results: dict, console: Console) -> None:
    table = Table("series", "kind", "model", "backtest MAE", "best naive MAE", "warnings", title="forecasts")
    fold(table)
    for name, r in results.items():
        bt = r.backtest.set_index("model") if not r.backtest.empty else None
        mae = f"{bt.loc[r.model, 'mae']:.3f}" if bt is not None and r.model in bt.index else "-"
        naive = bt[bt["family"] == "naive"]["mae"].min() if bt is not None else float("nan")
        table.add_row(name, r.kind, r.model, mae, "-" if pd.isna(naive) else f"{naive:.3f}", str(len(r.warnings)))
    console.print(table)
    for name, r in results.items():
        for warning in r.warnings:
            console.print(f"{name}: {warning}", style="yellow", highlight=False, markup=False)


def run_backtest(loaded: LoadedPortfolio, first: dt.date, last: dt.date, out: Path, train_days: int,
                 chosen: bool, only: list[str] | None, console: Console) -> pd.DataFrame:
    """Per series and model: MAE, RMSE, WAPE, bias over day-ahead origins at local midnights."""
    from flexopt.forecasts import backtest_series
    from flexopt.forecasts.evaluation import evaluate_chosen

    if last < first:
        typer.echo(f"--to ({last}) is before --from ({first})", err=True)
        raise typer.Exit(EXIT_INVALID)
    if out.exists():
        typer.echo(f"{out} already exists; flexopt never overwrites results, choose another --out", err=True)
        raise typer.Exit(EXIT_INVALID)
    tz = loaded.portfolio.portfolio.timezone
    all_origins = pd.date_range(pd.Timestamp(first).tz_localize(tz), pd.Timestamp(last).tz_localize(tz), freq="D")
    rows = []
    for name, kind in sources_or_exit(loaded, only).items():
        series, unit = read_history(loaded, name)
        origins = usable_origins(series, all_origins, tz, name, console)
        extra = regressor_kwargs(loaded, name, None, console)
        parts = [backtest_series(series, origins, kind, local_tz=tz, train_days=train_days,
                                 exog_history=extra.get("exog_history"), country=extra["country"])]
        if chosen:
            parts.insert(0, evaluate_chosen(series, origins, kind, local_tz=tz, train_days=train_days, **extra)[0])
        table = pd.concat(parts, ignore_index=True)
        best_naive = table[table["family"] == "naive"]["mae"].min()
        table["vs_best_naive_pct"] = 100.0 * (1.0 - table["mae"] / best_naive)
        table.insert(0, "series", name)
        table["unit"] = unit
        rows.append(table)
    result = pd.concat(rows, ignore_index=True)
    result = result.drop(columns=[c for c in ("n_origins",) if c in result])
    out.parent.mkdir(parents=True, exist_ok=True)
    result.to_csv(out, index=False, float_format="%.6g")
    print_backtest(result, f"day-ahead backtest, {len(all_origins)} origins {first} .. {last}", console)
    console.print(f"backtest written to [bold]{out}[/bold]")
    return result


def usable_origins(series: pd.Series, origins: pd.DatetimeIndex, tz: str, name: str,
                   console: Console) -> pd.DatetimeIndex:
    """The origins whose day has measured values and enough recent history before it (the rule a run applies);
    the others are listed and skipped, and a series with none ends the command (exit 2): a backtest of days
    the file does not cover is an error, not a table of NaN."""
    from flexopt.data.timeseries import SeriesError, history_before

    kept, skipped = [], []
    known = series.dropna()
    for origin in origins:
        end = origin + pd.DateOffset(days=1)
        day = pd.date_range(origin.tz_convert("UTC"), end.tz_convert("UTC"), freq="15min", inclusive="left")
        try:
            history_before(series, day, name, tz)
        except SeriesError as exc:
            skipped.append(f"{origin.date()}: {exc}")
            continue
        if not ((known.index >= day[0]) & (known.index < end)).any():
            skipped.append(f"{origin.date()}: no measured values on that day to score against")
            continue
        kept.append(origin)
    for line in skipped[:5]:
        console.print(f"{name}: skipped {line}", style="yellow", highlight=False, markup=False)
    if len(skipped) > 5:
        console.print(f"{name}: {len(skipped) - 5} more days skipped", style="yellow", highlight=False, markup=False)
    if not kept:
        span = (f"it covers {known.index.min():%Y-%m-%d} to {known.index.max():%Y-%m-%d} UTC" if len(known)
                else "it holds no values")
        typer.echo(f"error: history data source {name!r} cannot be backtested on {origins[0].date()} .. "
                   f"{origins[-1].date()}; {span}. Choose days inside that range, after its first day", err=True)
        raise typer.Exit(EXIT_INVALID)
    return pd.DatetimeIndex(kept)


def print_backtest(result: pd.DataFrame, title: str, console: Console) -> None:
    table = Table("series", "model", "family", "n", "MAE", "RMSE", "WAPE", "bias", "vs best naive", "unit",
                  title=title)
    fold(table)
    for r in result.itertuples(index=False):
        table.add_row(r.series, r.model, r.family, str(r.n), f"{r.mae:.3f}", f"{r.rmse:.3f}", f"{r.wape:.3f}",
                      f"{r.bias:+.3f}", "-" if pd.isna(r.vs_best_naive_pct) else f"{r.vs_best_naive_pct:+.1f} %",
                      r.unit)
    console.print(table)


def fold(table: Table) -> None:
    """Wrap long series and model names instead of cutting them to an ellipsis."""
    for column in table.columns:
        column.overflow = "fold"


def register(app: typer.Typer) -> None:
    @app.command()
    def forecast(
        portfolio: Path = typer.Argument(..., help="portfolio YAML file"),
        date: str = typer.Option(..., "--date", help="local day to forecast, YYYY-MM-DD"),
        out: Path = typer.Option(..., "--out", help="new directory for the files (never overwritten)"),
        series: list[str] | None = typer.Option(None, "--series", help="only this history source (repeatable)"),
        jobs: int = typer.Option(1, "--jobs", min=0, help="worker processes (0: all cores)"),
    ) -> None:
        """Forecast every history data source for one local day: Parquet, CSV and a JSON summary."""
        loaded = load_or_exit(portfolio)
        run_forecast(loaded, parse_day(date, "--date"), out, jobs, series, Console())

    @app.command()
    def backtest(
        portfolio: Path = typer.Argument(..., help="portfolio YAML file"),
        first: str = typer.Option(..., "--from", help="first origin (local midnight), YYYY-MM-DD"),
        last: str = typer.Option(..., "--to", help="last origin (local midnight), YYYY-MM-DD"),
        out: Path = typer.Option(Path("backtest.csv"), "--out", help="CSV to write (never overwritten)"),
        train_days: int = typer.Option(28, "--train-days", min=1, help="training window before each origin"),
        chosen: bool = typer.Option(True, "--chosen/--no-chosen", help="also score the automatic choice"),
        series: list[str] | None = typer.Option(None, "--series", help="only this history source (repeatable)"),
    ) -> None:
        """MAE, RMSE, WAPE and bias of every model and the naive baselines over day-ahead origins."""
        loaded = load_or_exit(portfolio)
        run_backtest(loaded, parse_day(first, "--from"), parse_day(last, "--to"), out, train_days, chosen,
                     series, Console())
