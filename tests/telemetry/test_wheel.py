"""A wheel carries the migrations: installed from it, flexopt creates a telemetry database from an unrelated
directory (Alembic finds its scripts through the package, not through the source tree)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

CODE = """
import sys
sys.path.insert(0, sys.argv[1])
from sqlalchemy.engine import make_url
import flexopt.telemetry
from flexopt.telemetry import open_db
assert flexopt.telemetry.__file__.startswith(sys.argv[1]), flexopt.telemetry.__file__
db = open_db(make_url("sqlite:///" + sys.argv[2]))
print(db.revision)
"""


def test_the_wheel_ships_and_runs_the_migrations(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    for folder in ("flexopt", "models", "adapters", "forecasts"):
        shutil.copytree(ROOT / folder, src / folder, ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation", "-w",
                    str(tmp_path / "dist"), str(src)], check=True, timeout=240)
    wheel = next((tmp_path / "dist").glob("flexopt-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    for name in ("env.py", "script.py.mako", "versions/0001_rounds_and_readings.py", "versions/0002_alarms.py"):
        assert f"flexopt/telemetry/migrations/{name}" in names
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    run = subprocess.run([sys.executable, "-c", CODE, str(site), str(elsewhere / "t.sqlite3")], cwd=elsewhere,
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "0002"
