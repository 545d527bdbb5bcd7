"""Run every benchmark in turn and print its figures (``make bench``). Benchmarks are never pass/fail."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
BENCHES = [
    ["bench_schedule.py"],
    ["bench_intraday.py"],
    ["bench_forecasts.py"],
    ["bench_forecasts.py", "--household", str(ROOT / "examples" / "data" / "household_fr_2024_30min.csv")],
    ["bench_forecast_blocks.py"],
    ["bench_ocpp_load.py"],
    ["bench_uftp_offer.py"],
]


def main() -> int:
    failed = 0
    for script, *args in BENCHES:
        print(f"\n=== {script} {' '.join(args)}", flush=True)
        t0 = time.perf_counter()
        run = subprocess.run([sys.executable, str(HERE / script), *args], cwd=ROOT)
        print(f"=== {script}: exit {run.returncode} after {time.perf_counter() - t0:.1f} s", flush=True)
        failed += run.returncode != 0
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
