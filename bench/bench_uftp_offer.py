"""UFTP benchmark: time from a FlexRequest leaving the DSO to its FlexOffer arriving there, on the combined pilots.

The combined pilots (examples/all_pilots.yaml, included by a temporary portfolio that adds a ``uftp:`` section)
are scheduled day-ahead for 2024-06-25 into a temporary store; flexopt's AGR service and a DSO built with
shapeshifter-uftp run on 127.0.0.1. The service's clock is set to ``--at`` (the data are of 2024), so the offer is
priced from the next interval as it would be on that day. Each round the DSO asks to cap Guadalix's campus
congestion point at ``--cap-pct`` of its scheduled net power in ``--isps`` ISPs from ``--first`` and waits for
the offer; the figure is the wall time from the send to the offer's arrival (signing, HTTP, three solves:
reference, half and all of the change, and the replies). The solve stages come from the offer's log record.

    .venv/bin/python bench/bench_uftp_offer.py                  # 3 requests, 8 ISPs from 18:00 at 12:00
    .venv/bin/python bench/bench_uftp_offer.py --rounds 5 --isps 4
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from zoneinfo import ZoneInfo

import pandas as pd
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "uftp"))

from uftp_peer import AGR_DOMAIN, DSO_DOMAIN, Dso, flex_request  # noqa: E402

from flexopt.adapters.sim.util import free_port  # noqa: E402
from flexopt.runs.runner import RunRequest, run_schedule  # noqa: E402
from flexopt.uftp.context import AgrContext  # noqa: E402
from flexopt.uftp.isp import isp_number  # noqa: E402
from flexopt.uftp.keys import new_key_pair  # noqa: E402
from flexopt.uftp.service import AgrService  # noqa: E402

DAY = dt.date(2024, 6, 25)
TZ = "Europe/Madrid"
POINT = "IDE-GUADALIX-CAMPUS-MV"
ENTITY = "ean.871685900012345678"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--at", default="2024-06-25T12:00", help="the service's clock (local time)")
    parser.add_argument("--first", default="18:00", help="first requested ISP (local time)")
    parser.add_argument("--isps", type=int, default=8)
    parser.add_argument("--cap-pct", type=float, default=70.0)
    parser.add_argument("--deadline-s", type=float, default=60.0, help="the request's validity")
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="bench-uftp-"))
    agr_private, agr_public = new_key_pair()
    dso_private, dso_public = new_key_pair()
    os.environ["FLEXOPT_BENCH_UFTP_KEY"] = agr_private
    dso = Dso(dso_private, dso_public, agr_public, free_port()).start()
    portfolio = tmp / "pilots_uftp.yaml"
    portfolio.write_text(yaml.safe_dump({
        "include": [str(ROOT / "examples" / "all_pilots.yaml")], "allow_includes_outside": True,
        "uftp": {"domain": AGR_DOMAIN, "signing_key_env": "FLEXOPT_BENCH_UFTP_KEY",
                 "listen": f"127.0.0.1:{dso.agr_port}",
                 "participants": [{"domain": DSO_DOMAIN, "role": "DSO", "endpoint": dso.endpoint,
                                   "public_key": dso_public}],
                 "congestion_points": {ENTITY: POINT}}}))
    store = tmp / "runs"
    t0 = time.perf_counter()
    day_ahead = run_schedule(RunRequest(portfolio_path=portfolio, kind="day-ahead", day=DAY, store=store))
    print(f"day-ahead run {day_ahead.directory.name} in {time.perf_counter() - t0:.1f} s")
    sites = day_ahead.result.sites
    net = sites[(sites["level"] == "congestion_point") & (sites["id"] == POINT)].set_index("interval_start")["net_kw"]

    zone = ZoneInfo(TZ)
    clock_at = dt.datetime.fromisoformat(f"{args.at}").replace(tzinfo=zone).astimezone(dt.UTC)
    started = time.monotonic()
    ctx = AgrContext(portfolio, store, now=lambda: clock_at + dt.timedelta(seconds=time.monotonic() - started))
    service = AgrService(ctx)
    service.run_in_thread()
    first_utc = dt.datetime.fromisoformat(f"{DAY}T{args.first}").replace(tzinfo=zone).astimezone(dt.UTC)
    window = net[(net.index >= pd.Timestamp(first_utc))][: args.isps]
    cap_w = int(1000 * args.cap_pct / 100 * float(window.min()))
    number = isp_number(DAY, TZ, first_utc)
    print(f"{POINT}: scheduled {window.min():.1f}-{window.max():.1f} kW in ISPs {number}-{number + args.isps - 1}; "
          f"cap asked {cap_w / 1000:.1f} kW")
    figures, stages = [], []
    try:
        for _ in range(args.rounds):
            request = flex_request(DAY, number, args.isps, cap_w, expires_s=args.deadline_s)
            request.expiration_date_time = (ctx.now() + dt.timedelta(seconds=args.deadline_s)).isoformat(
                timespec="seconds")
            t = time.perf_counter()
            dso.client().send_flex_request(request)
            response = dso.wait_for("FlexRequestResponse", timeout_s=args.deadline_s + 30,
                                    flex_request_message_id=request.message_id)
            if response.result != "Accepted":
                print(f"rejected: {response.rejection_reason}")
                continue
            offer = dso.wait_for("FlexOffer", timeout_s=args.deadline_s + 30,
                                 flex_request_message_id=request.message_id)
            figures.append(time.perf_counter() - t)
            time.sleep(0.3)
            record = ctx.log.entries(direction="out", message_type="FlexOffer")[-1].notes
            stages.append(record["timings_s"])
            curve = ", ".join(f"{o.option_reference} {sum(i.power for i in o.isps) / len(o.isps) / 1000:.1f} kW "
                              f"{o.price} EUR" for o in offer.offer_options)
            print(f"request -> offer {figures[-1]:.2f} s (states {record['timings_s']['states']:.2f}, reference "
                  f"{record['timings_s']['reference']:.2f}, total solves {record['timings_s']['total']:.2f}): {curve}")
    finally:
        service.stop()
        dso.stop()
        ctx.close()
        shutil.rmtree(tmp, ignore_errors=True)
    if figures:
        print(f"request -> offer over {len(figures)} requests: median {statistics.median(figures):.2f} s, "
              f"min {min(figures):.2f} s, max {max(figures):.2f} s (deadline {args.deadline_s:g} s)")


if __name__ == "__main__":
    main()
