"""A breached soft constraint, reported so operators know which limit could not be met and by how much."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd


@dataclass
class Violation:
    """What was breached, where (site / asset / congestion point), when (interval range) and how much."""

    kind: str
    site_id: str
    asset_id: str | None
    congestion_point: str | None
    start: pd.Timestamp
    end: pd.Timestamp
    amount: float
    unit: str
    detail: str

    def to_dict(self) -> dict:
        d = asdict(self)
        d["start"] = self.start.isoformat()
        d["end"] = self.end.isoformat()
        return d


def runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """Half-open [start, end) index ranges where ``mask`` is true."""
    m = np.concatenate(([False], np.asarray(mask, dtype=bool), [False]))
    edges = np.flatnonzero(m[1:] != m[:-1])
    return [(int(a), int(b)) for a, b in zip(edges[::2], edges[1::2], strict=True)]
