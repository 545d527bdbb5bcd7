"""The checker is independent of the model: it imports configuration and data reading only, and has a physics
check for every asset type and a meaning for every breach kind."""

from __future__ import annotations

import ast
from pathlib import Path

from flexopt.check.breaches import KINDS
from flexopt.check.checker import CHECKS
from flexopt.config.portfolio import ASSET_TYPES

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "flexopt" / "check"
COMMAND = ROOT / "flexopt" / "commands" / "check.py"
FORBIDDEN = ("flexopt.models", "flexopt.scheduling", "flexopt.solver", "flexopt.runs", "flexopt.operations",
             "flexopt.data.dso_limits")
ALLOWED_FLEXOPT = ("flexopt.check", "flexopt.config", "flexopt.data.timeseries", "flexopt.data.inputs",
                   "flexopt.commands.exit_codes")  # exit codes: the CLI's one table of them


def imported_modules(path: Path) -> set[str]:
    """Every module a file imports (relative imports resolved against flexopt.check)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(["flexopt", "check"][: 3 - node.level] + ([base] if base else []))
            found.add(base)
            found |= {f"{base}.{alias.name}" for alias in node.names}  # `from flexopt import models`
    return found


def test_the_check_package_imports_no_model_code():
    files = [*sorted(PACKAGE.glob("*.py")), COMMAND]
    assert len(files) > 5
    bad = {(f.name, m) for f in files for m in imported_modules(f)
           if any(m == x or m.startswith(x + ".") for x in FORBIDDEN)}
    assert not bad, f"flexopt/check must not import model code: {sorted(bad)}"
    other = {(f.name, m) for f in files for m in imported_modules(f)
             if m.startswith("flexopt") and m != "flexopt"
             and not any(m == x or m.startswith(x + ".") for x in ALLOWED_FLEXOPT)}
    assert not other, f"flexopt/check may import only {ALLOWED_FLEXOPT} from flexopt: {sorted(other)}"


def test_the_import_scan_sees_a_forbidden_import(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text("import flexopt.scheduling.grid\nfrom flexopt.scheduling import problem\n"
                      "from flexopt.models.pv import x\nfrom ..scheduling.kpis import compute_kpis\n")
    found = imported_modules(sample)
    assert {"flexopt.scheduling.grid", "flexopt.scheduling.problem", "flexopt.models.pv",
            "flexopt.scheduling.kpis"} <= found


def test_every_asset_type_has_a_physics_check():
    assert set(CHECKS) == set(ASSET_TYPES)


def test_every_breach_kind_says_what_it_means_and_names_a_real_violation_kind():
    for kind, (reported_by, meaning) in KINDS.items():
        assert meaning and kind == kind.lower()
        assert reported_by is None or reported_by.replace("_", "").isalpha()
