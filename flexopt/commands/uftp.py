"""``flexopt uftp``: the aggregator side of UFTP (keygen, serve, prognosis, settle; docs/uftp.md)."""

from __future__ import annotations

import logging
import signal
import threading
from pathlib import Path

import typer

from flexopt.commands.exit_codes import EXIT_INVALID, EXIT_PORT_IN_USE, EXIT_SOLVER
from flexopt.commands.portfolio_cmds import load_or_exit

uftp_app = typer.Typer(no_args_is_help=True, help="UFTP (Shapeshifter) aggregator: flexibility for DSOs.")
DB_HELP = ("telemetry database (default: $FLEXOPT_DB, else <store>/telemetry.sqlite3 when it exists): the start "
           "states of offers and order reschedules, and settlement")


def context_or_exit(portfolio: Path, store: Path, db: str | None):
    """The AGR context, or the reason (portfolio, missing section, signing key) and exit 2."""
    from flexopt.uftp.context import AgrContext
    from flexopt.uftp.keys import SigningKeyError

    loaded = load_or_exit(portfolio)
    if loaded.portfolio.uftp is None:
        typer.echo(f"{portfolio}: no uftp: section; add one (docs/uftp.md)", err=True)
        raise typer.Exit(EXIT_INVALID)
    try:
        return AgrContext(portfolio, store, db)
    except SigningKeyError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(EXIT_INVALID) from None
    except OSError as exc:
        typer.echo(f"error: --store {store}: {exc.strerror or exc}", err=True)
        raise typer.Exit(EXIT_INVALID) from None


@uftp_app.command("keygen")
def keygen() -> None:
    """Print a new signing key pair: the private key goes into uftp.signing_key_env's variable, the public key to
    the DSO."""
    from flexopt.uftp.keys import new_key_pair

    private, public = new_key_pair()
    typer.echo(f"private (signing) key: {private}")
    typer.echo(f"public key:            {public}")


@uftp_app.command("serve")
def serve(
    portfolio: Path = typer.Argument(..., help="portfolio YAML file with a uftp: section"),
    store: Path = typer.Option(Path("runs"), "--store", help="schedule runs, the message log and the order ledger"),
    db: str | None = typer.Option(None, "--db", help=DB_HELP),
) -> None:
    """Run the AGR service until stopped (Ctrl-C or SIGTERM): FlexRequests are answered with priced offers,
    FlexOrders become binding limits and a new intraday schedule."""
    import socket

    from flexopt.config.redaction import install_log_filter
    from flexopt.uftp.service import AgrService

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    install_log_filter()
    ctx = context_or_exit(portfolio, store, db)
    uftp = ctx.uftp
    with socket.socket() as probe:
        try:
            probe.bind((uftp.host, uftp.port))
        except OSError as exc:
            typer.echo(f"error: uftp.listen {uftp.listen}: {exc.strerror or exc}", err=True)
            raise typer.Exit(EXIT_PORT_IN_USE) from None
    service = AgrService(ctx)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    service.run_in_thread()
    typer.echo(f"UFTP AGR {uftp.domain} listening on http://{uftp.listen}{uftp.path}; log {ctx.log.path}")
    try:
        stop.wait()
    finally:
        service.stop()
        ctx.close()




@uftp_app.command("prognosis")
def prognosis(
    portfolio: Path = typer.Argument(..., help="portfolio YAML file with a uftp: section"),
    run: Path = typer.Option(..., "--run", help="the schedule run folder whose D-Prognoses to send"),
    store: Path = typer.Option(Path("runs"), "--store", help="the store holding the message log"),
) -> None:
    """Send a run's D-Prognoses (scheduled net power per traded congestion point and ISP) to the DSOs again;
    `flexopt schedule` sends them itself after each run."""
    ctx = context_or_exit(portfolio, store, None)
    try:
        if not (run / "sites.parquet").is_file():
            typer.echo(f"--run {run}: no sites.parquet; give a run folder of flexopt schedule", err=True)
            raise typer.Exit(EXIT_INVALID)
        from flexopt.uftp.prognosis import send_prognoses

        for problem in send_prognoses(ctx, run):
            typer.echo(f"warning: {problem}", err=True)
    finally:
        ctx.close()


@uftp_app.command("revoke-offer")
def revoke_offer_cmd(
    portfolio: Path = typer.Argument(..., help="portfolio YAML file with a uftp: section"),
    offer: str = typer.Option(..., "--offer", help="MessageID of the FlexOffer (the message log's message_id)"),
    store: Path = typer.Option(Path("runs"), "--store", help="the store holding the message log"),
) -> None:
    """Revoke an offer nobody ordered yet (FlexOfferRevocation): an order of it is refused from then on."""
    from flexopt.uftp.orders import revoke_offer

    ctx = context_or_exit(portfolio, store, None)
    try:
        problem = revoke_offer(ctx, offer)
    finally:
        ctx.close()
    if problem:
        typer.echo(f"error: {problem}", err=True)
        raise typer.Exit(EXIT_INVALID)
    typer.echo(f"FlexOffer {offer} revoked")


@uftp_app.command("settle")
def settle(
    portfolio: Path = typer.Argument(..., help="portfolio YAML file with a uftp: section"),
    date: str = typer.Option(..., "--date", help="local day to settle, YYYY-MM-DD"),
    store: Path = typer.Option(Path("runs"), "--store", help="runs, telemetry, the order ledger"),
    db: str | None = typer.Option(None, "--db", help=DB_HELP),
    send: bool = typer.Option(True, "--send/--no-send", help="send the measured power to the DSOs (Metering)"),
) -> None:
    """Delivered flexibility of every order of the day per ISP, from telemetry against the order's baseline:
    a new settlement version (Parquet and CSV) in the store, and the measurements to the DSO."""
    from flexopt.commands.args import parse_day
    from flexopt.uftp.resolve import open_telemetry
    from flexopt.uftp.settlement import send_metering, settle_day, write_settlement

    day = parse_day(date, "--date")
    ctx = context_or_exit(portfolio, store, db)
    database = open_telemetry(db, store)
    try:
        frame = settle_day(ctx.loaded, store, ctx.ledger, database, day)
        if frame.empty:
            typer.echo(f"no order in force on {day}: nothing to settle")
            return
        folder = write_settlement(ctx.loaded, store, day, frame)
        tz = ctx.loaded.portfolio.tz
        for r in frame.itertuples():
            typer.echo(f"{r.order_id[:8]} ISP {r.isp:3d} ({r.interval_start.tz_convert(tz):%H:%M}) baseline "
                       f"{r.baseline_kw:8.2f} kW  ordered {r.ordered_flex_kw:+8.2f}  delivered "
                       f"{r.delivered_flex_kw:+8.2f}  {r.status} {r.note}".rstrip())
        typer.echo(f"settlement written to {folder}")
        if send:
            for problem in send_metering(ctx, frame, day):
                typer.echo(f"warning: {problem}", err=True)
    finally:
        if database is not None:
            database.close()
        ctx.close()


def flexibility(
    portfolio: Path = typer.Argument(..., help="portfolio YAML file"),
    date: str = typer.Option(..., "--date", help="local day, YYYY-MM-DD"),
    out: Path | None = typer.Option(None, "--out", help="new directory for the files (never overwritten)"),
    store: Path = typer.Option(Path("runs"), "--store", help="without --out: kept as a new version here; the "
                               "orders in force are read from it"),
    block_h: float = typer.Option(24.0, "--block-h", min=0.25, max=24.0,
                                  help="hours solved together per direction (0.25: each ISP alone; slower)"),
    point: list[str] = typer.Option([], "--point", help="congestion point id (repeat; default: all)"),
    time_limit: float | None = typer.Option(None, "--time-limit", min=0.1, help="solver seconds per solve"),
) -> None:
    """Per congestion point and ISP: how far the portfolio can move up and down from its schedule, and at what
    cost per kWh (envelope.parquet and envelope.csv)."""
    from flexopt.commands.args import parse_day
    from flexopt.runs.files import write_frame, write_json
    from flexopt.runs.store import StorageError, check_new_dir, new_run
    from flexopt.solver.highs import SolveError
    from flexopt.uftp.envelope import envelope

    day = parse_day(date, "--date")
    loaded = load_or_exit(portfolio)
    known = {cp.id for cp in loaded.portfolio.congestion_points}
    unknown = sorted(set(point) - known)
    if unknown or not known:
        typer.echo(f"--point {', '.join(unknown)}: not a congestion point of the portfolio (defined: "
                   f"{', '.join(sorted(known)) or 'none'})" if unknown else f"{portfolio}: no congestion points",
                   err=True)
        raise typer.Exit(EXIT_INVALID)
    try:
        if out is not None:
            check_new_dir(out)
        frame = envelope(loaded, store, day, block_h=block_h, time_limit_s=time_limit, points=point or None)
        with new_run(store, loaded.portfolio.portfolio.name, day, "flexibility", out) as target:
            write_frame(frame, target.tmp, "envelope")
            write_json({"date": day.isoformat(), "block_h": block_h, "points": sorted(set(frame["congestion_point"]))},
                       target.tmp / "envelope.json")
            folder = target.commit()
    except StorageError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(EXIT_INVALID) from None
    except SolveError as exc:
        typer.echo(f"solver failed: {exc}", err=True)
        raise typer.Exit(EXIT_SOLVER) from None
    for name, part in frame.groupby("congestion_point"):
        typer.echo(f"{name}: up to {part['up_kw'].max():.1f} kW up, {part['down_kw'].max():.1f} kW down "
                   f"(median cost {part['up_cost_eur_per_kwh'].median():.4f} / "
                   f"{part['down_cost_eur_per_kwh'].median():.4f} EUR/kWh)")
    typer.echo(f"envelope written to {folder}")


def register(app: typer.Typer) -> None:
    app.add_typer(uftp_app, name="uftp")
    app.command("flexibility")(flexibility)
