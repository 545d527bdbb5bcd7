"""Every case of the hostile-input corpus through ``flexopt validate`` and ``flexopt schedule``: refused with exit 2
and a message naming the file and the field or row, or accepted and correct. Never a traceback, a hang, a crash
or a memory blow-up.

Two long-lived workers (``worker.py``, 2 GB address-space limit) run the cases in-process through typer's
CliRunner; a worker that stops answering is killed and replaced, and its case fails as a hang. Run with ``-s``
to see the timing summary (``pytest tests/hostile -s``).
"""

from __future__ import annotations

import importlib.util
import json
import os
import queue
import select
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
WORKERS = 2
MEMORY_MB = 2048
CASE_TIMEOUT_S = 40  # the alarm inside the worker (Python code)
HANG_S = 60  # the parent's limit (a worker stuck in C code)


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"hostile_{name}", HERE / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


checks = _load("checks")


class Worker:
    """One worker process; replaced when it dies or hangs."""

    def __init__(self, log: Path) -> None:
        env = {**os.environ, "COLUMNS": "400", "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
               "MALLOC_ARENA_MAX": "2", "ARROW_DEFAULT_MEMORY_POOL": "system"}
        self.log = log.open("ab")
        self.proc = subprocess.Popen([sys.executable, str(HERE / "worker.py"), str(MEMORY_MB)], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=self.log, env=env, bufsize=0)
        self.buffer = b""
        ready = self.readline(120)
        assert ready and json.loads(ready).get("ready"), f"worker did not start; see {log}"

    def readline(self, timeout_s: float) -> bytes | None:
        deadline = time.monotonic() + timeout_s
        fd = self.proc.stdout.fileno()
        while b"\n" not in self.buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                return None
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                return None
            self.buffer += chunk
        line, self.buffer = self.buffer.split(b"\n", 1)
        return line

    def run(self, cwd: Path, args: list[str]) -> dict:
        self.proc.stdin.write(json.dumps({"cwd": str(cwd), "args": args, "timeout_s": CASE_TIMEOUT_S}).encode() + b"\n")
        line = self.readline(HANG_S)
        if line is None:
            died = self.proc.poll() is not None
            self.stop()
            return {"exit": -1, "output": "", "crash": "worker died" if died else f"hang: no answer in {HANG_S} s",
                    "seconds": HANG_S}
        return json.loads(line)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()  # our own child, by its handle
        self.proc.wait()
        self.log.close()


def run_corpus(corpus: Path, log: Path) -> dict[str, list[tuple[dict, dict]]]:
    cases = sorted(p.parent for p in corpus.glob("*/case.json"))
    todo: queue.Queue = queue.Queue()
    for case in cases:
        todo.put(case)
    results: dict[str, list[tuple[dict, dict]]] = {}

    def serve() -> None:
        worker = Worker(log)
        try:
            while True:
                try:
                    case = todo.get_nowait()
                except queue.Empty:
                    return
                spec = json.loads((case / "case.json").read_text())
                outcomes = []
                for run in spec["runs"]:
                    if worker.proc.poll() is not None:
                        worker = Worker(log)
                    outcome = worker.run(case, run["args"])
                    if outcome["crash"].startswith(("hang", "worker died")):
                        worker = Worker(log)
                    outcomes.append((run, outcome))
                results[case.name] = outcomes
        finally:
            worker.stop()

    threads = [threading.Thread(target=serve) for _ in range(WORKERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def judge(case_dir: Path, run: dict, outcome: dict) -> list[str]:
    """What is wrong with one outcome (empty when it is what the case expects)."""
    problems = []
    output = outcome["output"]
    if outcome["crash"]:
        problems.append(f"crash: {outcome['crash']}")
    if "Traceback" in output:
        problems.append("traceback in the output")
    if outcome["exit"] != run["exit"]:
        problems.append(f"exit {outcome['exit']}, expected {run['exit']}")
    for text in run.get("mentions", []):
        if text not in output:
            problems.append(f"output does not mention {text!r}")
    if run["exit"] == 0 and run.get("run") and outcome["exit"] == 0:
        runs = checks.find_runs(case_dir)
        if not runs:
            problems.append("exit 0 but no run folder")
        for run_dir in runs:
            problems += [f"{run_dir.name}: {p}" for p in checks.check_run(run_dir)]
        if run.get("violations") and not any(checks.violation_count(r) for r in runs):
            problems.append("expected a reported violation, none in kpis.json")
    return problems


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("hostile") / "corpus"
    n = _load("make_corpus").build().write(out)
    assert n >= 100
    return out


def test_every_hostile_input_is_refused_clearly_or_handled(corpus, tmp_path):
    started = time.perf_counter()
    results = run_corpus(corpus, tmp_path / "workers.log")
    wall = time.perf_counter() - started
    failures = []
    for name, outcomes in sorted(results.items()):
        for run, outcome in outcomes:
            problems = judge(corpus / name, run, outcome)
            if problems:
                failures.append(f"{name}: {' '.join(run['args'])}\n    " + "\n    ".join(problems)
                                + "\n    output: " + outcome["output"][-1500:].replace("\n", "\n      "))
    runs = [o for outcomes in results.values() for _, o in outcomes]
    slowest = sorted(((o["seconds"], n) for n, outs in results.items() for _, o in outs), reverse=True)[:5]
    print(f"\nhostile corpus: {len(results)} cases, {len(runs)} runs in {wall:.1f} s wall "
          f"({sum(o['seconds'] for o in runs):.1f} s in cases); slowest: "
          + ", ".join(f"{n} {s:.1f} s" for s, n in slowest))
    assert len(results) == len(list(corpus.glob("*/case.json")))
    assert not failures, f"{len(failures)} of {len(runs)} runs wrong:\n" + "\n".join(failures)
