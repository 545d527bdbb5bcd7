"""The common interface of every asset formulation, and the helpers that state its variables and rows in bulk.

One formulation object handles ALL assets of its type in a run, so its variables and constraints are a few
families of columns and rows of one sparse matrix (:mod:`flexopt.models.arrays`) rather than one Python object
per device, per interval or per row.
An asset entry with ``count`` identical devices is one aggregate (totals in kW/kWh), which removes the
symmetry identical devices would put into the MILP.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from itertools import chain
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from flexopt.config.portfolio import Penalties, Site
from flexopt.data.inputs import Horizon, Inputs
from flexopt.models.violations import Violation, runs

# Reads the solved values of one variable family (``block.<name>``), in the order of its elements.
ValueReader = Callable[[Any], np.ndarray]

# A price on energy that passes through storage or a reversible unit, far below any tariff: where prices are zero
# wasting energy (charging and discharging at once, heating and cooling at once) costs nothing, and the solver
# would be free to report it. This makes the physically plain schedule the unique optimum.
TIE_BREAK_EUR_PER_KWH = 1e-5


@dataclass
class AssetItem:
    """One asset entry of the portfolio with its site and any initial-state override."""

    site: Site
    asset: Any
    initial_state: dict[str, float] = field(default_factory=dict)

    @property
    def count(self) -> int:
        return int(self.asset.count)


@dataclass
class ModelContext:
    """What every formulation may read: horizon, series, penalties and per-site price facts."""

    horizon: Horizon
    inputs: Inputs
    penalties: Penalties
    # site id -> True when storage at the site could profit from dumping energy (negative prices, export limits)
    dumping_possible: dict[str, bool] = field(default_factory=dict)
    # one-mode binaries (charge or discharge, heat or cool): where dumping could pay ("auto"), always, never
    mode_binary: str = "auto"
    # site id -> EUR per kWh drawn to put energy back after the horizon: its lowest import price over the horizon's
    # last 24 h (never below 0); what storage left below its target at a horizon that ends during a day costs
    refill_price_eur_per_kwh: dict[str, float] = field(default_factory=dict)

    def exclusive_modes(self, item: AssetItem) -> bool:
        """Whether an asset that can draw power in two opposite ways needs a binary to run one at a time.

        Doing both at once only wastes energy, which pays only where energy can be dumped at a profit; elsewhere
        the LP never does it (ties at zero prices are broken by :data:`TIE_BREAK_EUR_PER_KWH`)."""
        return self.mode_binary == "always" or (
            self.mode_binary == "auto" and self.dumping_possible.get(item.site.id, False))

    def site_horizon(self, item: AssetItem) -> Horizon:
        """The run's intervals on the site's wall clock: sessions, comfort windows and draws are local to the
        site (its ``timezone``, else the portfolio's)."""
        tz = item.site.timezone or self.horizon.tz
        return self.horizon.in_zone(tz)

    @property
    def n(self) -> int:
        return self.horizon.n

    @property
    def dt_h(self) -> float:
        return self.horizon.dt_h


@dataclass
class PowerTerms:
    """Power drawn by each asset entry: ``const_kw[j, t] + sum(coef * var)`` over the terms at (j, t)."""

    const_kw: np.ndarray  # (entries, T)
    entry: list[int] = field(default_factory=list)
    t: list[int] = field(default_factory=list)
    coef: list[float] = field(default_factory=list)
    var: list[Any] = field(default_factory=list)

    _chunks: list[tuple[np.ndarray, ...]] = field(default_factory=list, repr=False)

    def add(self, j: int, t: int, coef: float, var: Any) -> None:
        self.entry.append(j)
        self.t.append(t)
        self.coef.append(coef)
        self.var.append(var)

    def add_many(self, entry: np.ndarray, t: np.ndarray, coef: float | np.ndarray,
                 cols: Sequence[int] | np.ndarray) -> None:
        """Terms at once: ``coef[i] * x[cols[i]]`` drawn by entry ``entry[i]`` in interval ``t[i]`` (``coef`` a
        scalar or one per term)."""
        cols = np.asarray(cols, dtype=np.int64).ravel()
        entry, t = np.asarray(entry, dtype=np.int64).ravel(), np.asarray(t, dtype=np.int64).ravel()
        if not entry.size == t.size == cols.size:
            raise ValueError(f"power terms: {entry.size} entries, {t.size} intervals and {cols.size} columns")
        self._chunks.append((entry, t, np.broadcast_to(np.asarray(coef, dtype=float), cols.shape).ravel(), cols))

    def add_grid(self, cols: Sequence[int] | np.ndarray, coef: float | np.ndarray) -> None:
        """Terms for every entry and interval at once: ``cols`` holds one column per (entry, interval),
        entry-major as :func:`add_var` numbers them; ``coef`` a scalar or per column."""
        J, T = self.const_kw.shape
        self.add_many(np.repeat(np.arange(J), T), np.tile(np.arange(T), J), coef, cols)

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(entry, interval, coefficient, column) of every term, as arrays."""
        parts = [(np.asarray(self.entry, dtype=np.int64), np.asarray(self.t, dtype=np.int64),
                  np.asarray(self.coef, dtype=float), np.asarray(self.var, dtype=np.int64)), *self._chunks]
        return tuple(np.concatenate([p[k] for p in parts]) for k in range(4))


@dataclass
class AssetSchedule:
    """The schedule of one asset entry read back from the solution (arrays over the horizon).

    ``state``/``state_unit`` is the primary state of the schedule's columns (what analysts and the dispatcher
    read); ``states`` holds every state the asset type declares (``states`` of its portfolio class), by key, at
    each interval's end in the declared unit (NaN where it has none): what an intraday run restarts from."""

    power_kw: np.ndarray
    setpoint: np.ndarray
    setpoint_unit: str
    state: np.ndarray
    state_unit: str
    states: dict[str, np.ndarray] = field(default_factory=dict)


@dataclass
class CostTerms:
    """Linear objective terms (EUR): ``sum(coef * var) + constant``."""

    coef: list[float] = field(default_factory=list)
    var: list[Any] = field(default_factory=list)
    constant: float = 0.0

    _chunks: list[tuple[np.ndarray, np.ndarray]] = field(default_factory=list, repr=False)

    def add(self, coef: float, var: Any) -> None:
        if coef != 0.0:
            self.coef.append(float(coef))
            self.var.append(var)

    def add_many(self, coefs: float | np.ndarray, cols: Sequence[int] | np.ndarray) -> None:
        """``sum(coefs * x[cols])`` at once (``coefs`` a scalar or one per column)."""
        cols = np.asarray(cols, dtype=np.int64)
        self._chunks.append((np.broadcast_to(np.asarray(coefs, dtype=float), cols.shape).ravel(), cols.ravel()))

    def extend(self, other: CostTerms) -> None:
        """Add another formulation's terms."""
        self.coef += other.coef
        self.var += other.var
        self._chunks += other._chunks
        self.constant += other.constant

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """(coefficient, column) of every term, as arrays."""
        parts = [(np.asarray(self.coef, dtype=float), np.asarray(self.var, dtype=np.int64)), *self._chunks]
        return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


class Formulation(ABC):
    """Variables, constraints and cost terms of all assets of one type, and how to read them back."""

    asset_type: ClassVar[str]

    def __init__(self, items: list[AssetItem], ctx: ModelContext) -> None:
        self.items = items
        self.ctx = ctx
        self.block: Any = None
        # energy (kWh) the solution ran through two opposite modes at once, for types that have two; set by extract
        self.simultaneous_kwh: float | None = None

    @abstractmethod
    def build(self, block: Any) -> None:
        """Add variable and row families to ``block`` (an :class:`~flexopt.models.arrays.ArrayBlock` owned by this
        formulation)."""

    @abstractmethod
    def power(self) -> PowerTerms:
        """Power each entry draws per interval (load convention, kW, total over its devices)."""

    def cost(self) -> CostTerms:
        """Cost terms of these assets (degradation, curtailment, penalties); none by default."""
        return CostTerms()

    @abstractmethod
    def extract(self, values: ValueReader) -> list[AssetSchedule]:
        """One schedule per entry, in the order of ``items``, with every state its type declares. The start
        states are ``item.initial_state`` (keys of the type's ``states``), the configuration where absent."""

    @abstractmethod
    def baseline_kw(self) -> np.ndarray:
        """(entries, T) power each entry would draw without flexopt."""

    def round_integers(self, values: ValueReader) -> list[tuple[Any, np.ndarray]]:
        """Integer values consistent with an LP-relaxed solution, for the relax-and-round start.

        Default: none (the solver rounds to the nearest integer). Formulations override this where nearest
        rounding would break their accounting.
        """
        return []

    def violations(self, values: ValueReader) -> list[Violation]:
        """Soft-constraint breaches of these assets in the solution; none by default."""
        return []

    def counts(self) -> dict[str, int]:
        """Binary and integer variables this formulation added (for the benchmark record)."""
        return {}


# --- helpers to build components in bulk ------------------------------------------------------


def add_var(block: Any, name: str, lower: Sequence[float] | np.ndarray, upper: Sequence[float] | np.ndarray,
            integer: bool = False) -> list[int]:
    """One family of variables with per-element bounds (None or inf: none); returns their columns as a list (element
    ``i`` at position ``i``), which rows and cost terms name. The family is read back as ``block.<name>``."""
    var = block.model.new_vars(block.qualified(name), lower, upper, integer)
    block.add_component(name, var)
    return var.cols.tolist()


def add_rows(block: Any, name: str, rows: list[tuple[list[float], list[int]]],
             lower: Sequence[float | None] | np.ndarray | None,
             upper: Sequence[float | None] | np.ndarray | None) -> None:
    """Rows ``lower[i] <= sum(coefs * vars) <= upper[i]`` given one by one as ``(coefs, vars)`` (equal bounds: an
    equality row; None: no bound). :func:`add_row_arrays` states a family with as many terms in every row at once."""
    if not rows:
        return
    lengths = np.fromiter((len(c) for c, _ in rows), dtype=np.int64, count=len(rows))
    coef = np.fromiter(chain.from_iterable(c for c, _ in rows), dtype=float, count=int(lengths.sum()))
    col = np.fromiter(chain.from_iterable(v for _, v in rows), dtype=np.int64, count=int(lengths.sum()))
    add_row_triplets(block, name, np.repeat(np.arange(len(rows)), lengths), col, coef, len(rows), lower, upper)


def add_row_triplets(block: Any, name: str, row: np.ndarray, col: np.ndarray, coef: np.ndarray, k: int,
                     lower: np.ndarray | None, upper: np.ndarray | None) -> None:
    """A family of ``k`` rows given by its entries ``(row[e], col[e], coef[e])`` (rows numbered 0..k-1), for rows
    whose number of terms differs (a site's balance holds all its devices)."""
    if k == 0:
        return
    block.add_component(name, block.model.new_rows(block.qualified(name), row, col, coef, k, lower, upper))


def add_row_arrays(block: Any, name: str, coefs: np.ndarray, cols: np.ndarray,
                   lower: np.ndarray | None, upper: np.ndarray | None) -> None:
    """A family of ``k`` rows with ``w`` terms each, ``lower[i] <= sum_w coefs[i, w] * x[cols[i, w]] <= upper[i]``
    (``coefs`` and ``cols`` of shape (k, w); a zero coefficient is no term). The vectorised form of
    :func:`add_rows`, for the families every device of a type has in every interval."""
    coefs = np.asarray(coefs, dtype=float)
    cols = np.asarray(cols, dtype=np.int64)
    if coefs.shape != cols.shape or coefs.ndim != 2:
        raise ValueError(f"{name}: coefficients {coefs.shape} and columns {cols.shape} must be (rows, terms)")
    k, w = coefs.shape
    add_row_triplets(block, name, np.repeat(np.arange(k), w), cols.ravel(), coefs.ravel(), k, lower, upper)


def add_one_mode_rows(block: Any, name: str, first: Sequence[Any], second: Sequence[Any], binary: Sequence[Any],
                      first_max: Sequence[float], second_max: Sequence[float]) -> None:
    """One of two opposite flows per interval (charge or discharge, heat or cool): ``first <= first_max * b`` and
    ``second <= second_max * (1 - b)`` for each position, ``b`` binary (two rows per position, in that order)."""
    x, y, b = (np.asarray(v, dtype=np.int64) for v in (first, second, binary))
    p1, p2 = np.asarray(first_max, dtype=float), np.asarray(second_max, dtype=float)
    n = x.size
    coefs, cols, upper = np.empty((2 * n, 2)), np.empty((2 * n, 2), dtype=np.int64), np.empty(2 * n)
    coefs[0::2], cols[0::2], upper[0::2] = np.column_stack([np.ones(n), -p1]), np.column_stack([x, b]), 0.0
    coefs[1::2], cols[1::2], upper[1::2] = np.column_stack([np.ones(n), p2]), np.column_stack([y, b]), p2
    add_row_arrays(block, name, coefs, cols, None, upper)


def as_matrix(values: np.ndarray, entries: int, n: int) -> np.ndarray:
    return np.asarray(values, dtype=float).reshape(entries, n)


def interval_violations(kind: str, item: AssetItem, horizon: Horizon, amount: np.ndarray, unit: str,
                        describe: Callable[[float, float], str], tol: float = 1e-3) -> list[Violation]:
    """One Violation per run of consecutive intervals where ``amount`` exceeds ``tol``.

    ``describe(max_amount, integral)`` writes the detail (integral = amount * hours over the run).
    """
    out = []
    for a, b in runs(amount > tol):
        seg = amount[a:b]
        out.append(Violation(
            kind=kind, site_id=item.site.id, asset_id=item.asset.id, congestion_point=None,
            start=horizon.index[a], end=horizon.ends[b - 1], amount=float(seg.max()), unit=unit,
            detail=describe(float(seg.max()), float(seg.sum() * horizon.dt_h)),
        ))
    return out


def timestamp(horizon: Horizon, t: int, end: bool = False) -> pd.Timestamp:
    return horizon.ends[t] if end else horizon.index[t]
