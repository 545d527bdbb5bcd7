"""The shape of the package: groups that import one way, few flat modules, an explicit public API, every imported
package declared.

Imports are read from the source with ``ast`` (function-level imports included) across the package-dir mapping of
pyproject.toml (``models/`` is ``flexopt.models``, and so on), so a lazy import cannot hide a cycle.
"""

from __future__ import annotations

import ast
import importlib
import importlib.metadata
import re
import sys
import tomllib
from collections import defaultdict
from pathlib import Path

import flexopt

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
PACKAGE_DIRS = PYPROJECT["tool"]["setuptools"]["package-dir"]  # "flexopt.models" -> "models"

# Each group may import only the groups listed for it (and itself). The order is the data flow:
# config -> data -> models -> scheduling -> runs -> operations -> commands; the solver, adapters and forecasts
# are libraries below it; the independent check sees configuration and data only.
ALLOWED: dict[str, set[str]] = {
    "version": set(),
    "config": set(),
    "forecasts": set(),
    "solver": set(),
    "adapters": {"config"},
    "data": {"config", "forecasts"},
    "models": {"config", "data"},
    "scheduling": {"config", "data", "models", "solver"},
    "check": {"config", "data", "commands.exit_codes"},
    "telemetry": {"config"},  # not runs: runs (intraday from measured state) may import telemetry
    "runs": {"config", "data", "models", "scheduling", "solver", "telemetry", "version"},
    "operations": {"config", "data", "adapters", "runs", "telemetry", "version"},
    # a replayed day: perturbations, the simulated truth, the day summary, the HTML report (commands run it)
    "replay": {"config", "data", "models", "adapters", "runs", "operations", "telemetry"},
    "commands": {"config", "data", "forecasts", "solver", "scheduling", "runs", "operations", "adapters", "check",
                 "models", "telemetry", "replay", "version", "uftp"},
    "uftp": {"config", "data", "scheduling", "solver", "runs", "telemetry", "operations"},
    "cli": {"commands", "version"},
    "package": {"version", "config", "data", "solver", "scheduling", "models", "runs", "check"},
}
FLAT_MODULES_MAX = 4  # beside cli.py in flexopt/


def _module_of(path: Path) -> str:
    for package, folder in sorted(PACKAGE_DIRS.items(), key=lambda kv: -len(kv[1])):
        base = ROOT / folder
        if base in path.parents:
            parts = list(path.relative_to(base).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            return ".".join([package, *parts])
    raise AssertionError(f"{path} is in no package folder")


def _source_files() -> list[Path]:
    return sorted(p for folder in set(PACKAGE_DIRS.values()) for p in (ROOT / folder).rglob("*.py"))


def imports_of(path: Path, module: str | None = None) -> set[str]:
    """Every module a file imports, relative imports resolved, ``from x import y`` also as ``x.y``."""
    module = module or _module_of(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            found.add(base)
            found |= {f"{base}.{a.name}" for a in node.names}
    return found


def group_of(module: str) -> str | None:
    """The group a flexopt module belongs to (None for modules outside flexopt)."""
    parts = module.split(".")
    if parts[0] != "flexopt":
        return None
    if len(parts) == 1:
        return "package"
    if parts[:3] == ["flexopt", "commands", "exit_codes"]:
        return "commands.exit_codes"
    return parts[1]


def _group_edges(extra: tuple[tuple[Path, str], ...] = ()) -> dict[tuple[str, str], set[str]]:
    """(importing group, imported group) -> the imports behind it; ``extra`` adds (file, module name) pairs."""
    edges: dict[tuple[str, str], set[str]] = defaultdict(set)
    for path, module in [*((p, _module_of(p)) for p in _source_files()), *extra]:
        here = group_of(module)
        here = "commands" if here == "commands.exit_codes" else here
        for target in imports_of(path, module):
            there = group_of(target)
            if there is None or there == here or (here == "commands" and there == "commands.exit_codes"):
                continue
            if importlib.util.find_spec(target.rpartition(".")[0] or target) is None:
                continue
            edges[(here, there)].add(f"{module} imports {target}")
    return edges


def test_groups_import_one_way():
    wrong = {f"{a} -> {b}: {sorted(why)[0]}" for (a, b), why in _group_edges().items()
             if b not in ALLOWED.get(a, set()) and not (b == "commands.exit_codes" and "commands" in ALLOWED[a])}
    assert not wrong, "imports against the layering:\n" + "\n".join(sorted(wrong))


def test_no_cycle_between_groups():
    graph: dict[str, set[str]] = defaultdict(set)
    for a, b in _group_edges():
        graph[a].add("commands" if b == "commands.exit_codes" else b)
    seen: dict[str, int] = {}

    def visit(node: str, path: list[str]) -> None:
        seen[node] = 1
        for nxt in graph[node]:
            assert seen.get(nxt) != 1, "cycle between groups: " + " -> ".join([*path, node, nxt])
            if nxt not in seen:
                visit(nxt, [*path, node])
        seen[node] = 2

    for node in list(graph):
        if node not in seen:
            visit(node, [])


def test_the_layering_check_sees_a_cycle(tmp_path):
    """The scan must catch a function-level import that goes back up (it is how cycles usually hide)."""
    sample = tmp_path / "probe.py"
    sample.write_text("def f():\n    from ..scheduling.problem import schedule\n    return schedule\n")
    edges = _group_edges(((sample, "flexopt.models.probe"),))
    assert edges[("models", "scheduling")] == {"flexopt.models.probe imports flexopt.scheduling.problem",
                                               "flexopt.models.probe imports flexopt.scheduling.problem.schedule"}


def test_models_and_adapters_stay_apart_and_off_the_cli():
    for path in _source_files():
        group = group_of(_module_of(path))
        if group not in ("models", "adapters"):
            continue
        other = "adapters" if group == "models" else "models"
        bad = {m for m in imports_of(path) if group_of(m) in (other, "commands", "cli", "operations", "runs")}
        assert not bad, f"{path.relative_to(ROOT)} imports {sorted(bad)}"


def test_at_most_four_modules_beside_the_cli():
    flat = sorted(p.name for p in (ROOT / "flexopt").glob("*.py") if p.name not in ("cli.py", "__init__.py"))
    assert len(flat) <= FLAT_MODULES_MAX, flat


def test_the_public_api_is_what_all_says():
    expected = {"__version__", "LoadedPortfolio", "Portfolio", "PortfolioError", "load_portfolio", "Horizon",
                "Inputs", "SeriesError", "SolveError", "SolveOptions", "ScheduleResult", "Violation", "schedule",
                "RunRequest", "RunOutcome", "run_schedule", "check_run", "AssetBase", "register_asset_type",
                "Formulation", "register_formulation", "register_check", "EndpointBase", "Protocol",
                "register_protocol"}
    assert set(flexopt.__all__) == expected
    for name in flexopt.__all__:
        assert getattr(flexopt, name) is not None, name
    assert flexopt.SolveOptions().mip_gap == 0.005


def test_importing_flexopt_loads_no_solver_or_data_stack():
    """The command line starts fast: the public names load on first use."""
    code = ("import sys, flexopt; heavy = [m for m in ('pandas', 'pyomo', 'highspy', 'numpy') if m in sys.modules];"
            "print(','.join(heavy))")
    import subprocess

    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "", f"import flexopt loaded {out}"


def _third_party_imports() -> set[str]:
    stdlib = set(sys.stdlib_module_names)
    found = set()
    for path in _source_files():
        for module in imports_of(path):
            top = module.split(".")[0]
            if top and top not in stdlib and top != "flexopt" and not top.startswith("_"):
                found.add(top)
    return found


def test_every_imported_package_is_declared():
    declared = {re.split(r"[\s<>=!~\[;]", d, maxsplit=1)[0].lower().replace("_", "-")
                for d in PYPROJECT["project"]["dependencies"]}
    providers = importlib.metadata.packages_distributions()
    missing = {}
    for top in _third_party_imports():
        dists = {d.lower().replace("_", "-") for d in providers.get(top, [])}
        if not dists & declared:
            missing[top] = sorted(dists) or ["not installed"]
    assert not missing, f"imported but not in [project] dependencies: {missing}"
