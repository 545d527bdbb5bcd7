"""The model as arrays while the formulations state it: columns with their bounds, rows as coordinate triplets, the
objective as a cost vector.

Each formulation states a constraint family for all devices of its type at once (``add_var`` / ``add_rows`` /
``add_row_arrays`` in :mod:`flexopt.models.base`); here those families become slices of one sparse matrix, with no
object per variable or per row. The solver gets the matrix in one piece (:meth:`ArrayModel.arrays`), and any column
or row can still be named (``asset_battery.charge_kw[12]``) for a model file written for debugging.

Measured against building the same formulations as Pyomo components and compiling them with Pyomo's
``LinearStandardFormCompiler``: docs/benchmarks.md ("Array-built models").
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


class ModelError(ValueError):
    """A family that cannot be part of the model (a coefficient or a cost that is not a finite number): named, so
    that the run fails with the family and the element instead of HiGHS ignoring the entry."""


def _finite(name: str, what: str, values: np.ndarray) -> np.ndarray:
    bad = np.flatnonzero(~np.isfinite(values))
    if bad.size:
        raise ModelError(f"{name}: {what} {values[bad[0]]} at element {int(bad[0])} is not a finite number "
                         f"({bad.size} such); check the parameters and series of the assets of this type")
    return values


@dataclass(eq=False)
class VarArray:
    """One family of columns (an indexed variable): ``cols[i]`` is the column of element ``i``."""

    name: str  # "block.component"
    cols: np.ndarray

    def __len__(self) -> int:
        return int(self.cols.size)


@dataclass(eq=False)
class RowArray:
    """One family of rows (an indexed constraint): rows ``start .. stop - 1`` of the matrix."""

    name: str
    start: int
    stop: int

    @property
    def rows(self) -> np.ndarray:
        return np.arange(self.start, self.stop)


def _as_bounds(values, missing: float, k: int, name: str) -> np.ndarray:
    """Row or column bounds as floats: None (the whole argument or an element) and +-inf mean none; NaN is an
    error (a series or parameter that is not a number must not silently lift a bound)."""
    if values is None:
        return np.full(k, missing)
    if isinstance(values, np.ndarray) and values.dtype != object:
        out = values.astype(float, copy=True).ravel()
    else:
        out = np.array([missing if v is None else float(v) for v in values], dtype=float)
    if out.size != k:
        raise ValueError(f"{name}: {out.size} bounds for {k} elements")
    bad = np.flatnonzero(np.isnan(out))
    if bad.size:
        raise ModelError(f"{name}: a bound at element {int(bad[0])} is not a number ({bad.size} such); check the "
                         "parameters and series of the assets of this type")
    return out


@dataclass(eq=False)
class ArrayModel:
    """A MILP being stated: minimise ``cost x + offset`` s.t. ``row_lower <= A x <= row_upper``,
    ``lower <= x <= upper``, integer where marked."""

    n_cols: int = 0
    n_rows: int = 0
    offset: float = 0.0
    _lower: list[np.ndarray] = field(default_factory=list)
    _upper: list[np.ndarray] = field(default_factory=list)
    _integer: list[np.ndarray] = field(default_factory=list)
    _r: list[np.ndarray] = field(default_factory=list)
    _c: list[np.ndarray] = field(default_factory=list)
    _v: list[np.ndarray] = field(default_factory=list)
    _row_lower: list[np.ndarray] = field(default_factory=list)
    _row_upper: list[np.ndarray] = field(default_factory=list)
    _cost_cols: list[np.ndarray] = field(default_factory=list)
    _cost_coefs: list[np.ndarray] = field(default_factory=list)
    var_families: list[VarArray] = field(default_factory=list)
    row_families: list[RowArray] = field(default_factory=list)

    def block(self, name: str) -> ArrayBlock:
        """A named group of families (one per formulation, one for the grid)."""
        return ArrayBlock(self, name)

    def new_vars(self, name: str, lower, upper, integer: bool = False) -> VarArray:
        lo = _as_bounds(lower, -np.inf, len(lower), name)
        hi = _as_bounds(upper, np.inf, len(upper), name)
        if lo.size != hi.size:
            raise ValueError(f"{name}: {lo.size} lower and {hi.size} upper bounds")
        var = VarArray(name, np.arange(self.n_cols, self.n_cols + lo.size, dtype=np.int64))
        self.n_cols += lo.size
        self._lower.append(lo)
        self._upper.append(hi)
        self._integer.append(np.full(lo.size, bool(integer)))
        self.var_families.append(var)
        return var

    def new_rows(self, name: str, row: np.ndarray, col: np.ndarray, coef: np.ndarray, k: int, lower,
                 upper) -> RowArray:
        """``k`` rows with the entries ``(row[e], col[e], coef[e])``, rows numbered 0..k-1 within the family."""
        fam = RowArray(name, self.n_rows, self.n_rows + k)
        self._r.append(np.asarray(row, dtype=np.int64) + self.n_rows)
        self._c.append(np.asarray(col, dtype=np.int64))
        self._v.append(_finite(name, "coefficient", np.asarray(coef, dtype=float)))
        self._row_lower.append(_as_bounds(lower, -np.inf, k, name))
        self._row_upper.append(_as_bounds(upper, np.inf, k, name))
        self.n_rows += k
        self.row_families.append(fam)
        return fam

    def add_cost(self, cols, coefs, constant: float = 0.0) -> None:
        """Objective terms ``sum(coefs * x[cols]) + constant`` (terms on one column add up)."""
        self._cost_cols.append(np.asarray(cols, dtype=np.int64))
        self._cost_coefs.append(_finite("objective", "cost", np.asarray(coefs, dtype=float)))
        self.offset += float(_finite("objective", "constant", np.asarray([constant], dtype=float))[0])

    def arrays(self) -> dict:
        """The model in one piece: ``a_csc`` (scipy CSC, duplicates summed, zeros dropped), ``cost``, ``lower``,
        ``upper``, ``row_lower``, ``row_upper``, ``integrality`` (int32), ``offset``."""
        from scipy.sparse import coo_matrix

        def cat(parts: list[np.ndarray], dtype) -> np.ndarray:
            return np.concatenate(parts).astype(dtype, copy=False) if parts else np.zeros(0, dtype=dtype)

        a = coo_matrix((cat(self._v, float), (cat(self._r, np.int64), cat(self._c, np.int64))),
                       shape=(self.n_rows, self.n_cols)).tocsc()
        a.sum_duplicates()
        a.eliminate_zeros()
        cost = np.zeros(self.n_cols)
        np.add.at(cost, cat(self._cost_cols, np.int64), cat(self._cost_coefs, float))
        return {"a_csc": a, "cost": cost, "lower": cat(self._lower, float), "upper": cat(self._upper, float),
                "row_lower": cat(self._row_lower, float), "row_upper": cat(self._row_upper, float),
                "integrality": cat(self._integer, np.int32), "offset": self.offset}

    def row_mask(self, families: tuple[RowArray, ...]) -> np.ndarray:
        """True for the rows of these families."""
        mask = np.zeros(self.n_rows, dtype=bool)
        for fam in families:
            mask[fam.start:fam.stop] = True
        return mask

    def names(self) -> tuple[list[str], list[str]]:
        """(column names, row names): ``family[i]``, as a model file shows them."""
        cols = [f"{v.name}[{i}]" for v in self.var_families for i in range(len(v))]
        rows = [f"{r.name}[{i}]" for r in self.row_families for i in range(r.stop - r.start)]
        return cols, rows


class ArrayBlock:
    """A named group of variable and row families; a family is read back as an attribute (``block.charge_kw``)."""

    def __init__(self, model: ArrayModel, name: str) -> None:
        self.model = model
        self.name = name

    def add_component(self, name: str, component: VarArray | RowArray) -> None:
        if name in self.__dict__:
            raise ValueError(f"{self.name}: a family named {name!r} exists already")
        setattr(self, name, component)

    def qualified(self, name: str) -> str:
        return f"{self.name}.{name}"
