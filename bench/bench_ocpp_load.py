"""Load benchmark of the OCPP central system: N simulated charge points (half OCPP 1.6, half 2.0.1)
in a second process connect, boot, start a transaction and send meter values every 10 s, while
flexopt sends a SetChargingProfile to every one of them each round.

Reports p50/p95/p99/max of connect+BootNotification and of SetChargingProfile round trips as seen
by the OCPP adapter (clamp, build, validate, send, wait for the answer), both for the bursts to all
chargers at once and for profiles sent one at a time afterwards (meter values still flowing).

    .venv/bin/python bench/bench_ocpp_load.py --chargers 500 --steady-s 60
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import multiprocessing as mp
import os
import random
import statistics
import time

from flexopt.adapters.base import Setpoint, SetpointLimits
from flexopt.adapters.fanout import send_all
from flexopt.adapters.ocpp_adapter import OcppAdapter
from flexopt.adapters.ocpp_central import CentralSystem
from flexopt.config.endpoints import OcppEndpoint


def percentiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    qs = statistics.quantiles(values, n=100, method="inclusive")
    return {"n": len(values), "p50": qs[49], "p95": qs[94], "p99": qs[98], "max": max(values)}


def cp_ids(n: int) -> list[tuple[str, str]]:
    return [(f"LOAD-{i:04d}", "1.6" if i % 2 == 0 else "2.0.1") for i in range(n)]


# --- charge point process -------------------------------------------------------------------------
def charger_process(url: str, n: int, meter_s: float, connect_parallel: int, stop, out) -> None:
    logging.basicConfig(level=logging.WARNING)
    asyncio.run(_chargers(url, n, meter_s, connect_parallel, stop, out))


async def _chargers(url: str, n: int, meter_s: float, connect_parallel: int, stop, out) -> None:
    from flexopt.adapters.sim.charge_point import Ev, SimChargePoint

    gate = asyncio.Semaphore(connect_parallel)
    sims = [SimChargePoint(cp, url, version, password=f"pw-{cp}", ev=Ev(max_w=11_000), meter_interval_s=meter_s)
            for cp, version in cp_ids(n)]
    failures: list[str] = []

    async def bring_up(sim):
        async with gate:
            try:
                await sim.start()
            except Exception as exc:
                failures.append(f"{sim.cp_id}: {type(exc).__name__}: {exc}")

    t0 = time.perf_counter()
    await asyncio.gather(*(bring_up(s) for s in sims))
    out.put({"connected_in_s": time.perf_counter() - t0})
    while not stop.is_set():
        await asyncio.sleep(0.2)
    out.put({"connect_s": [s.connect_s for s in sims if s.connect_s is not None], "failures": failures,
             "profiles_received": sum(len(s.profile_calls) for s in sims)})
    await asyncio.gather(*(s.stop() for s in sims), return_exceptions=True)


# --- central system side ----------------------------------------------------------------------------
async def main(args) -> dict:
    logging.basicConfig(level=logging.WARNING)
    central = CentralSystem(port=0, response_timeout_s=30.0)
    ids = cp_ids(args.chargers)
    adapters = {}
    limits = SetpointLimits(0.0, 11.0, "kW")
    for cp, version in ids:
        os.environ[f"PW_{cp.replace('-', '_')}"] = f"pw-{cp}"
        ep = OcppEndpoint(protocol="ocpp", charge_point_id=cp, version=version,
                          password_env=f"PW_{cp.replace('-', '_')}")
        adapters[cp] = OcppAdapter(cp, ep, limits, central)
    await central.start()
    ctx = mp.get_context("spawn")
    stop, out = ctx.Event(), ctx.Queue()
    proc = ctx.Process(target=charger_process,
                       args=(central.url, args.chargers, args.meter_s, args.connect_parallel, stop, out))
    t_start = time.perf_counter()
    proc.start()
    up = await asyncio.to_thread(out.get, True, 300)
    everyone = await central.wait_for(
        lambda: sum(1 for s in central.chargers.values() if s.connected and s.booted) == args.chargers, 60)
    print(f"{args.chargers} charge points up in {up['connected_in_s']:.1f} s (all booted: {everyone})")
    round_trips: list[float] = []
    failed: dict[str, int] = {}
    rounds = 0
    t_steady = time.perf_counter()
    msgs0 = sum(s.messages for s in central.chargers.values())
    while time.perf_counter() - t_steady < args.steady_s:
        t_round = time.perf_counter()
        value = random.choice([3.7, 5.0, 7.4, 11.0])
        results = await send_all(adapters, [Setpoint(cp, value) for cp, _ in ids], timeout_s=35)
        rounds += 1
        for r in results:
            if r.ok:
                round_trips.append(r.latency_ms)
            else:
                failed[r.status] = failed.get(r.status, 0) + 1
        print(f"round {rounds}: {len(results)} profiles in {time.perf_counter() - t_round:.2f} s, "
              f"{sum(r.ok for r in results)} confirmed")
        await asyncio.sleep(max(0.0, args.round_s - (time.perf_counter() - t_round)))
    steady = time.perf_counter() - t_steady
    msgs = sum(s.messages for s in central.chargers.values()) - msgs0
    # one profile at a time to random chargers, meter values still flowing: service time without queueing
    single: list[float] = []
    t_trickle = time.perf_counter()
    while time.perf_counter() - t_trickle < args.trickle_s:
        cp = random.choice(ids)[0]
        r = await adapters[cp].send_setpoint(Setpoint(cp, random.choice([3.7, 7.4, 11.0])))
        if r.ok:
            single.append(r.latency_ms)
        else:
            failed[r.status] = failed.get(r.status, 0) + 1
        await asyncio.sleep(0.05)
    stop.set()
    sims = await asyncio.to_thread(out.get, True, 120)
    await asyncio.to_thread(proc.join, 60)
    await central.stop()
    connect_ms = [s * 1000.0 for s in sims["connect_s"]]
    report = {
        "chargers": args.chargers,
        "meter_interval_s": args.meter_s,
        "connect_parallel": args.connect_parallel,
        "connect_boot_ms": percentiles(connect_ms),
        "set_charging_profile_ms": percentiles(round_trips),
        "set_charging_profile_one_at_a_time_ms": percentiles(single),
        "profile_rounds": rounds,
        "profiles_failed": failed,
        "connect_failures": len(sims["failures"]),
        "charger_messages_per_s": msgs / steady,
        "total_s": time.perf_counter() - t_start,
    }
    print(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--chargers", type=int, default=500)
    p.add_argument("--meter-s", type=float, default=10.0, help="meter value interval per charger")
    p.add_argument("--steady-s", type=float, default=60.0, help="how long profiles go out")
    p.add_argument("--round-s", type=float, default=10.0, help="one profile to every charger this often")
    p.add_argument("--trickle-s", type=float, default=10.0, help="then profiles one at a time this long")
    p.add_argument("--connect-parallel", type=int, default=100, help="chargers connecting at the same time")
    asyncio.run(main(p.parse_args()))
