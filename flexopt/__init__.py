"""flexopt: optimisation-based flexibility scheduling for distributed energy resources.

The public API is the names in ``__all__`` (a test keeps the list and the exports equal); everything else is
internal and may move. Names load on first use, so ``import flexopt`` stays cheap for the command line.
"""

import importlib
import os

# Many small regressions run on few cores: multithreaded BLAS makes each one ~100x slower on a busy
# machine. Set before numpy loads; a user's own setting wins.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

from flexopt.version import __version__  # noqa: E402  (after the BLAS settings)

# public name -> "module" that defines it, or "module:attribute" where the public name differs
_EXPORTS = {
    "LoadedPortfolio": "flexopt.config.loader",
    "Portfolio": "flexopt.config.portfolio",
    "PortfolioError": "flexopt.config.loader",
    "load_portfolio": "flexopt.config.loader",
    "Horizon": "flexopt.data.inputs",
    "Inputs": "flexopt.data.inputs",
    "SeriesError": "flexopt.data.timeseries",
    "SolveError": "flexopt.solver.highs",
    "SolveOptions": "flexopt.solver.options",
    "ScheduleResult": "flexopt.scheduling.problem",
    "Violation": "flexopt.models.violations",
    "schedule": "flexopt.scheduling.problem",
    "RunRequest": "flexopt.runs.runner",
    "RunOutcome": "flexopt.runs.runner",
    "run_schedule": "flexopt.runs.runner",
    "check_run": "flexopt.check",
    # plug-ins (docs/architecture.md): an asset type is its portfolio class, formulation and physics check;
    # a protocol is one Protocol spec
    "AssetBase": "flexopt.config.portfolio",
    "register_asset_type": "flexopt.config.asset_types",
    "Formulation": "flexopt.models.base",
    "register_formulation": "flexopt.models.registry:register",
    "register_check": "flexopt.check.registry",
    "EndpointBase": "flexopt.config.protocols",
    "Protocol": "flexopt.config.protocols",
    "register_protocol": "flexopt.config.protocols:register",
}

__all__ = ["__version__", *sorted(_EXPORTS)]


def __getattr__(name: str):
    target = _EXPORTS.get(name)
    if target is None:
        raise AttributeError(f"module 'flexopt' has no attribute {name!r}")
    module, _, attribute = target.partition(":")
    value = getattr(importlib.import_module(module), attribute or name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
