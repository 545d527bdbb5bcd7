"""How a model is solved: gap, time, threads, backend and the solver's modelling switches."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal


@dataclass
class SolveOptions:
    mip_gap: float = 0.005  # relative gap at which a schedule is accepted
    time_limit_s: float | None = None  # for the whole solve; a schedule found by then is returned with its gap
    threads: int | None = None  # HiGHS threads, and independent parts solved side by side (default: 2)
    backend: Literal["matrix", "persistent"] = "matrix"
    # one-mode binaries (battery and V2G charge/discharge, reversible climate heat/cool): only where dumping
    # energy could pay ("auto"), always, never
    mode_binary: Literal["auto", "always", "never"] = "auto"
    verbose: bool = False  # print the HiGHS log
    # relax-and-round first: accept the rounded LP schedule when within mip_gap, else use it as the MIP start
    mip_start: bool = True
    highs_options: dict[str, Any] = field(default_factory=dict)  # passed to HiGHS as they are
    # solve independent parts (congestion points, sites without one) as separate models, gap budget shared
    decompose: bool = True
    # write the whole model (LP or MPS by the file's extension, with its families' names) before solving, for debugging
    write_model: str | None = None
