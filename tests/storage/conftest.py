"""A tiny portfolio (one battery, an hourly price CSV: a solve of well under a second) and the flexopt CLI
as a real process, for the store's concurrency, crash and path tests."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import yaml

DAY = "2024-06-12"
CLI = "from flexopt.cli import app; app()"


def write_portfolio(folder: Path, name: str = "tiny") -> Path:
    """A battery arbitraging a cheap night against an expensive evening, hourly, UTC."""
    folder.mkdir(parents=True, exist_ok=True)
    hours = pd.date_range(f"{DAY}T00:00Z", periods=24, freq="1h")
    price = np.where(hours.hour < 6, 0.05, np.where(hours.hour >= 18, 0.40, 0.20))
    pd.DataFrame({"timestamp": hours.strftime("%Y-%m-%dT%H:%M:%SZ"), "price": price}).to_csv(
        folder / "prices.csv", index=False)
    doc = {
        "portfolio": {"name": name, "timezone": "UTC", "resolution_min": 60},
        "data_sources": {"prices": {"path": "prices.csv", "column": "price", "unit": "EUR/kWh"}},
        "tariff": {"import_price_eur_per_kwh": {"source": "prices"}},
        "sites": [{"id": "home", "assets": [
            {"id": "bat", "type": "battery", "power_kw": 5, "energy_kwh": 10, "initial_soc_pct": 50},
            {"id": "house", "type": "load", "power_kw": 1},
        ]}],
    }
    path = folder / "portfolio.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


@pytest.fixture
def tiny(tmp_path) -> Path:
    return write_portfolio(tmp_path / "portfolio")


def start_cli(*args: str, **kwargs) -> subprocess.Popen:
    """``flexopt ARGS`` in its own Python process, output captured as text."""
    return subprocess.Popen([sys.executable, "-c", CLI, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, **kwargs)


def start_script(code: str, *args: str) -> subprocess.Popen:
    """Python ``code`` in its own process; the test talks to it through stdin and stdout lines."""
    return subprocess.Popen([sys.executable, "-c", code, *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def wait_for_line(proc: subprocess.Popen, prefix: str) -> str:
    """The rest of the first stdout line starting with ``prefix`` (the process's own signal, not a sleep)."""
    for line in proc.stdout:
        if line.startswith(prefix):
            return line[len(prefix):].strip()
    proc.wait()
    raise AssertionError(f"process ended (exit {proc.returncode}) before {prefix!r}: {proc.stderr.read()}")


@pytest.fixture
def kit() -> SimpleNamespace:
    """The helpers above (test modules cannot import conftest under --import-mode=importlib)."""
    return SimpleNamespace(day=DAY, write_portfolio=write_portfolio, start_cli=start_cli, start_script=start_script,
                           wait_for_line=wait_for_line)
