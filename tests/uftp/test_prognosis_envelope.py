"""D-Prognosis after each schedule run (a DSO that cannot be reached is a warning, not a failed run), the
flexibility envelope, and DSO limit files beside UFTP orders."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner
from uftp_peer import ENTITY, TZ, flex_request

from flexopt.cli import app
from flexopt.data.dso_limits import DsoLimitsError, LimitWindow
from flexopt.data.limit_ledger import active_windows, record_order
from flexopt.uftp.isp import isps_in_day


def test_each_schedule_run_sends_a_d_prognosis(agr):
    tomorrow = agr.today + dt.timedelta(days=1)
    args = ["schedule", "day-ahead", str(agr.path), "--date", tomorrow.isoformat(), "--store", str(agr.store)]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    first = agr.dso.wait_for("DPrognosis")
    assert first.congestion_point == ENTITY and first.time_zone == TZ and first.revision == 1
    assert [i.start for i in first.isps] == list(range(1, isps_in_day(tomorrow, TZ) + 1))
    [entry] = agr.ctx.log.entries(direction="out", message_type="DPrognosis")
    assert len(entry.notes["baseline_kw"]) == len(first.isps) and entry.notes["baseline_kw"][0] == 30.0
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    second = agr.dso.wait_for("DPrognosis")
    assert second.revision == 2
    # an offer for that day refers to the D-Prognosis it changes (UFTP's baseline)
    request = flex_request(tomorrow, 70, 1, 10_000)
    agr.dso.client().send_flex_request(request)
    offer = agr.dso.wait_for("FlexOffer", flex_request_message_id=request.message_id)
    assert offer.d_prognosis_message_id == second.message_id

    agr.dso.stop()  # the DSO is down: the run stands, the operator is warned
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    assert "warning: D-Prognosis not delivered" in res.output and "cannot reach" in res.output
    assert agr.ctx.log.entries(direction="out", message_type="DPrognosis", status="failed")
    agr.dso.start()


def test_the_envelope_says_how_far_and_at_what_cost(agr, tmp_path):
    out = tmp_path / "env"
    res = CliRunner().invoke(app, ["flexibility", str(agr.path), "--date", agr.today.isoformat(), "--out", str(out),
                                   "--store", str(agr.store), "--block-h", "24"])
    assert res.exit_code == 0, res.output
    frame = pd.read_parquet(out / "envelope.parquet")
    assert len(frame) == isps_in_day(agr.today, TZ) and set(frame["entity"]) == {ENTITY}
    assert frame["scheduled_kw"].notna().all()
    assert frame["up_kw"].max() == pytest.approx(50.0, abs=1e-3)  # the battery charging at full power
    assert 20.0 < frame["down_kw"].max() <= 50.0 + 1e-3  # its stored energy spread over the day
    assert (frame["max_kw"] >= frame["scheduled_kw"]).all() and (frame["min_kw"] <= frame["scheduled_kw"]).all()
    assert frame["down_cost_eur_per_kwh"].dropna().gt(0).all()  # discharging now costs recharging later
    assert (out / "envelope.csv").is_file()
    res = CliRunner().invoke(app, ["flexibility", str(agr.path), "--date", agr.today.isoformat(), "--out", str(out)])
    assert res.exit_code == 2  # never overwritten


def test_csv_windows_and_ordered_windows_both_bind(agr, tmp_path):
    day = agr.today + dt.timedelta(days=1)
    start = dt.datetime.combine(day, dt.time(18), tzinfo=agr.ctx.loaded.portfolio.tz)
    limits = tmp_path / "limits.csv"
    limits.write_text("congestion_point,start,end,max_import_kw,max_export_kw\n"
                      f"CP-NORTH,{start.isoformat()},{(start + dt.timedelta(hours=1)).isoformat()},15,\n")
    data = dict(agr.data, dso_limits_file=str(limits))
    path = tmp_path / "with_csv.yaml"
    path.write_text(yaml.safe_dump(data))
    later = pd.Timestamp(start + dt.timedelta(hours=2))
    record_order(agr.ctx.ledger, "order-1", "2024-01-01T00:00:00+00:00",
                 [LimitWindow("CP-NORTH", later, later + pd.Timedelta(minutes=30), 5.0, None)])
    res = CliRunner().invoke(app, ["schedule", "day-ahead", str(path), "--date", day.isoformat(),
                                   "--store", str(agr.store)])
    assert res.exit_code == 0, res.output
    run = sorted((agr.store / "uftp-test" / day.isoformat() / "day-ahead").glob("v*"))[-1]
    sites = pd.read_parquet(run / "sites.parquet")
    point = sites[sites["level"] == "congestion_point"].set_index("interval_start")
    assert point.loc[pd.Timestamp(start), "import_limit_kw"] == 15.0  # the file's window
    assert point.loc[later, "import_limit_kw"] == 5.0  # the order's window
    assert point.loc[later, "net_kw"] <= 5.0 + 1e-4 and point.loc[pd.Timestamp(start), "net_kw"] <= 15.0 + 1e-4
    res = CliRunner().invoke(app, ["check", str(path), str(run)])
    assert res.exit_code == 0, res.output
    # a portfolio without uftp: reads no ledger, only its file
    plain = {k: v for k, v in data.items() if k != "uftp"}
    path.write_text(yaml.safe_dump(plain))
    res = CliRunner().invoke(app, ["schedule", "day-ahead", str(path), "--date", day.isoformat(),
                                   "--store", str(agr.store)])
    assert res.exit_code == 0, res.output
    run = sorted((agr.store / "uftp-test" / day.isoformat() / "day-ahead").glob("v*"))[-1]
    assert not (run / "limit_windows.csv").exists()


def test_a_damaged_ledger_is_named(agr):
    agr.ctx.ledger.parent.mkdir(parents=True, exist_ok=True)
    agr.ctx.ledger.write_text("{not json\n")
    with pytest.raises(DsoLimitsError, match="line 1 is not JSON"):
        active_windows(agr.ctx.ledger)
    res = CliRunner().invoke(app, ["schedule", "day-ahead", str(agr.path), "--date", agr.today.isoformat(),
                                   "--store", str(agr.store)])
    assert res.exit_code == 2 and "orders.jsonl: line 1 is not JSON" in res.output
