"""A built wheel installs models/, adapters/ and forecasts/ as sub-packages of flexopt, never top-level."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FOLDERS = {"flexopt": "flexopt", "models": "flexopt.models", "adapters": "flexopt.adapters",
           "forecasts": "flexopt.forecasts"}


def source_packages() -> set[str]:
    """Every folder with an __init__.py, under its installed name."""
    found = set()
    for folder, name in FOLDERS.items():
        for init in (ROOT / folder).rglob("__init__.py"):
            rel = init.parent.relative_to(ROOT / folder)
            found.add(".".join([name, *rel.parts]) if rel.parts else name)
    return found


def test_every_package_folder_is_listed_in_pyproject():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    listed = set(config["tool"]["setuptools"]["packages"])
    assert source_packages() == listed


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    src = tmp_path_factory.mktemp("src")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    for folder in FOLDERS:
        shutil.copytree(ROOT / folder, src / folder, ignore=shutil.ignore_patterns("__pycache__"))
    out = tmp_path_factory.mktemp("dist")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
                    "-w", str(out), str(src)], check=True, timeout=240)
    return next(out.glob("flexopt-*.whl"))


def test_wheel_holds_only_the_flexopt_namespace(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    top = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert top == {"flexopt"}
    for package in source_packages():
        assert "/".join(package.split(".")) + "/__init__.py" in names
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    assert "flexopt = flexopt.cli:app" in zipfile.ZipFile(wheel).read(entry_points).decode()


def test_wheel_imports_from_an_unrelated_directory(wheel, tmp_path):
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    code = (
        "import sys; sys.path.insert(0, sys.argv[1])\n"
        "import flexopt.models, flexopt.adapters, flexopt.forecasts, flexopt.cli\n"
        "for m in (flexopt.models, flexopt.adapters, flexopt.forecasts):\n"
        "    assert m.__file__.startswith(sys.argv[1]), m.__file__\n"
        "import importlib.util\n"
        "spec = importlib.util.find_spec('models')\n"
        "assert spec is None or 'flexopt' not in str(spec.origin)\n"
        "print('ok')\n"
    )
    run = subprocess.run([sys.executable, "-c", code, str(site)], cwd=tmp_path, capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "ok"


def test_installed_package_maps_the_design_folders(tmp_path):
    """The development install (editable) resolves flexopt.models to models/ from any directory."""
    code = ("import flexopt.models as m, flexopt.adapters as a, flexopt.forecasts as f\n"
            "print(m.__file__, a.__file__, f.__file__)")
    run = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    files = [Path(p) for p in run.stdout.split()]
    assert [p.parent.name for p in files] == ["models", "adapters", "forecasts"]
