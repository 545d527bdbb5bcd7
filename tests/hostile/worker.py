"""Run CLI invocations of the hostile corpus in-process, under a memory limit, one JSON line per run.

    python tests/hostile/worker.py MEMORY_MB < requests > results

Each request line is ``{"cwd": CASE_DIR, "args": [...], "timeout_s": T}``; each result line is ``{"exit": code,
"output": text, "crash": "" or "Type: message", "seconds": s}``. Python start-up and the flexopt imports cost
about 1.5 s, so one long-lived worker runs many cases; RLIMIT_AS turns a memory blow-up into a MemoryError (a
crash of that case) instead of a machine in trouble, and an alarm interrupts a case that runs too long in Python
code. A case stuck in C code (the solver) is caught by the parent, which kills and replaces the worker.
"""

from __future__ import annotations

import json
import os
import resource
import signal
import sys
import time
import traceback


class CaseTimeout(BaseException):
    """Raised by the alarm; not an Exception, so that no ``except Exception`` in flexopt swallows it."""


def _alarm(_signum, _frame) -> None:
    raise CaseTimeout


def main() -> int:
    memory_mb = int(sys.argv[1]) if len(sys.argv) > 1 else 2048
    resource.setrlimit(resource.RLIMIT_AS, (memory_mb * 2**20, memory_mb * 2**20))
    # Arrow's default allocator reserves about 1 GB of address space on its first Parquet write: real memory is
    # small, but under RLIMIT_AS it leaves no room for threads. The system allocator reserves what it uses.
    os.environ.setdefault("ARROW_DEFAULT_MEMORY_POOL", "system")
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    out = os.fdopen(os.dup(sys.stdout.fileno()), "w", buffering=1)  # CliRunner swaps sys.stdout
    from typer.testing import CliRunner

    from flexopt.cli import app

    signal.signal(signal.SIGALRM, _alarm)
    runner = CliRunner()
    out.write(json.dumps({"ready": True}) + "\n")
    for line in sys.stdin:
        request = json.loads(line)
        os.chdir(request["cwd"])
        started = time.perf_counter()
        crash = ""
        exit_code, output = -1, ""
        signal.setitimer(signal.ITIMER_REAL, request.get("timeout_s", 60))
        try:
            result = runner.invoke(app, request["args"], catch_exceptions=True)
            exit_code, output = result.exit_code, result.output
            if result.exception is not None and not isinstance(result.exception, SystemExit):
                exc = result.exception
                crash = f"{type(exc).__name__}: {exc}"[:2000]
                output += "".join(traceback.format_exception(exc))[-4000:]
        except CaseTimeout:
            crash = f"timeout after {request.get('timeout_s', 60)} s"
        except MemoryError:
            crash = "MemoryError"
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
        out.write(json.dumps({"exit": exit_code, "output": output[-20000:], "crash": crash,
                              "seconds": round(time.perf_counter() - started, 3)}) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
