"""Schedule files analysts open directly: Parquet (UTC, tz-aware) and CSV (ISO 8601 with offset).

Both are readable by pandas and DuckDB without conversion; KPIs and the run record are JSON.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from pathlib import Path
from typing import Any

import pandas as pd

TIME_COLUMNS = ("interval_start", "interval_end")


def write_frame(frame: pd.DataFrame, directory: Path, stem: str) -> list[Path]:
    """``stem.parquet`` with tz-aware UTC timestamps and ``stem.csv`` with ISO 8601 offsets."""
    parquet = directory / f"{stem}.parquet"
    csv = directory / f"{stem}.csv"
    frame.to_parquet(parquet, index=False)
    text = frame.assign(**{col: iso_text(frame[col]) for col in TIME_COLUMNS if col in frame})
    text.to_csv(csv, index=False, float_format="%.6g")
    return [parquet, csv]


def iso_text(times: pd.Series) -> pd.Series:
    """ISO 8601 with the offset written ``+00:00``. Each distinct time is formatted once: a schedule repeats the
    horizon's few hundred times over every asset."""
    codes, distinct = pd.factorize(times)
    text = pd.Index(distinct).strftime("%Y-%m-%dT%H:%M:%S%z").str.replace(r"(\d\d)(\d\d)$", r"\1:\2", regex=True)
    return pd.Series(text.to_numpy(dtype=object)[codes], index=times.index, name=times.name)


def write_json(data: dict[str, Any], path: Path) -> Path:
    path.write_text(json.dumps(jsonable(data), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return path


def jsonable(obj: Any) -> Any:
    """JSON has no NaN, timestamps or numpy scalars: make them plain (times as ISO 8601 in UTC)."""
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [jsonable(v) for v in obj]
    if isinstance(obj, pd.Timestamp):
        obj = obj.to_pydatetime()
    if isinstance(obj, dt.datetime):
        return (obj.astimezone(dt.UTC) if obj.tzinfo else obj).isoformat()
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "item") and not isinstance(obj, str | bytes):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj
