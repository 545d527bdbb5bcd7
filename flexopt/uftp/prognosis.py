"""D-Prognoses: after a day-ahead or intraday run, the scheduled net power of every traded congestion point, per
ISP of each local day the run covers, goes to the DSOs. UFTP's D-Prognosis carries one power per ISP, the
schedule's; the baseline (the devices left to themselves) is kept beside it in the message log's record.
A run that does not reach the DSO is a warning for the operator, never a failed schedule."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from shapeshifter_uftp.uftp import DPrognosis, DPrognosisISP
from xsdata.models.datatype import XmlDate

from flexopt.config.redaction import excerpt
from flexopt.uftp.isp import ISP_DURATION, isp_number


def point_rows(run_dir: Path, point_id: str) -> pd.DataFrame:
    sites = pd.read_parquet(run_dir / "sites.parquet")
    rows = sites[(sites["level"] == "congestion_point") & (sites["id"] == point_id)].copy()
    rows["interval_start"] = pd.to_datetime(rows["interval_start"], utc=True)
    return rows


def send_prognoses(ctx, run_dir: Path) -> list[str]:
    """Send one D-Prognosis per traded congestion point and local day of the run to every DSO; the problems."""
    problems = []
    tz = ctx.tz
    for entity, point_id in ctx.uftp.congestion_points.items():
        rows = point_rows(run_dir, point_id)
        for day, part in rows.groupby(rows["interval_start"].dt.tz_convert(tz).dt.date):
            isps = [DPrognosisISP(power=round(float(r.net_kw) * 1000), start=isp_number(day, tz, r.interval_start),
                                  duration=1) for r in part.itertuples()]
            earlier = [e for e in ctx.log.entries(message_type="DPrognosis", direction="out")
                       if e.fields.get("CongestionPoint") == entity and e.fields.get("Period") == day.isoformat()]
            notes = {"run": str(run_dir), "point_id": point_id,
                     "baseline_kw": [round(float(v), 6) for v in part["baseline_kw"]],
                     "net_kw": [round(float(v), 6) for v in part["net_kw"]],
                     "interval_start_utc": [t.isoformat() for t in part["interval_start"]]}
            for participant in ctx.uftp.participants:
                message = DPrognosis(isp_duration=ISP_DURATION, time_zone=tz, congestion_point=entity,
                                     period=XmlDate(day.year, day.month, day.day), revision=len(earlier) + 1,
                                     isps=isps)
                sent = ctx.outbound.send(participant.domain, message, notes=notes)
                if not sent.ok:
                    problems.append(f"D-Prognosis of {point_id} ({entity}) for {day} to {participant.domain}: "
                                    f"{sent.reason}")
    return problems


def after_run(portfolio_path: Path, store: Path, run_dir: Path) -> list[str]:
    """The hook of ``flexopt schedule``: send the run's D-Prognoses when the portfolio trades over UFTP; every
    problem (no key, DSO unreachable) comes back as a warning."""
    from flexopt.config.loader import PortfolioError, load_portfolio
    from flexopt.uftp.context import AgrContext

    try:
        if load_portfolio(portfolio_path).portfolio.uftp is None:
            return []
        ctx = AgrContext(portfolio_path, store)
    except (PortfolioError, ValueError, OSError) as exc:
        return [f"D-Prognosis not sent: {excerpt(str(exc), 300)}"]
    try:
        return [f"D-Prognosis not delivered: {p}" for p in send_prognoses(ctx, run_dir)]
    except (OSError, ValueError, KeyError) as exc:
        return [f"D-Prognosis not sent: {type(exc).__name__}: {excerpt(str(exc), 300)}"]
    finally:
        ctx.close()
