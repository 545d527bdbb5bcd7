"""Zones on a Dask cluster (``--cluster``): a generated fleet scheduled in process and on LocalClusters of 1 and 2
workers, with the zones' own stage times, and the projection to 100,000 devices on N workers that docs/scale.md
states. Figures, not a test.

    .venv/bin/python bench/bench_cluster.py                  # fleet of 1,000 devices (25 zones of ~40)
    .venv/bin/python bench/bench_cluster.py --devices 4000 --workers 1 2
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import sys
import tempfile
import time
from pathlib import Path

from flexopt.scheduling.memory import peak_rss_mb
from flexopt.scheduling.problem import schedule
from flexopt.scheduling.zones import schedule_on_cluster, zones
from flexopt.solver.options import SolveOptions

HERE = Path(__file__).resolve().parent
_spec = importlib.util.spec_from_file_location("bench_schedule", HERE / "bench_schedule.py")
bench_schedule = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench_schedule)  # its generated fleet


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=1000)
    parser.add_argument("--workers", type=int, nargs="*", default=[1, 2])
    parser.add_argument("--mip-gap", type=float, default=0.005)
    parser.add_argument("--skip-in-process", action="store_true", help="only the clusters (10,000 devices need "
                        "about 16 GB in one process)")
    args = parser.parse_args(argv)
    options = SolveOptions(mip_gap=args.mip_gap)
    with tempfile.TemporaryDirectory() as tmp:
        loaded, inputs = bench_schedule.fleet(args.devices, Path(tmp))
        for name in loaded.portfolio.data_sources:
            inputs.source(name)
        parts = zones(loaded)
        print(f"fleet {args.devices}: {len(parts)} zones", flush=True)
        if not args.skip_in_process:
            t0 = time.perf_counter()
            alone = schedule(loaded, inputs, options)
            print(f"in process {time.perf_counter() - t0:.2f} s, objective {alone.kpis['solver']['objective']:.4f}, "
                  f"gap {100 * alone.kpis['solver']['mip_gap']:.3f} %, peak {peak_rss_mb():.0f} MB", flush=True)
        for n in args.workers:
            t0 = time.perf_counter()
            res = schedule_on_cluster(loaded, inputs, options, f"local:{n}")
            wall = time.perf_counter() - t0
            solver = res.kpis["solver"]
            zone_s = solver["components"]["zone_s"]
            per_zone = [sum(t[s] for s in ("build", "translate", "solve", "extract")) for t in zone_s.values()]
            devices = args.devices / len(parts)
            cluster_s = res.kpis["timings_s"]["cluster"]
            merge_s = res.kpis["timings_s"]["merge"]
            print(f"local:{n}: wall {wall:.2f} s (cluster start included), cluster part {cluster_s:.2f} s, merge "
                  f"{merge_s:.3f} s, this process's peak {peak_rss_mb():.0f} MB, a worker's "
                  f"{solver['components']['worker_peak_rss_mb']:.0f} MB; "
                  f"objective {solver['objective']:.4f}, gap {100 * solver['mip_gap']:.3f} %; zone stages: median "
                  f"{statistics.median(per_zone):.3f} s, max {max(per_zone):.3f} s, sum {sum(per_zone):.2f} s "
                  f"({devices:.0f} devices per zone)", flush=True)
            per_device = sum(per_zone) / args.devices
            for target in (10_000, 100_000):
                for workers in (2, 8, 32):
                    each = target * per_device / workers
                    print(f"  projection {target:,} devices on {workers} workers: {each:.0f} s "
                          f"of zone work per worker ({per_device * 1000:.1f} ms per device)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
