"""Read one time column and one value column from a CSV or Parquet file, refusing what cannot be trusted.

Everything a data file can get wrong ends here as a :class:`SeriesError` naming the file, the column, the lines
and the fix: not a file, too large, binary or not UTF-8, empty, header only, ragged rows, text or NaN/infinity in
the value column, timestamps that do not parse or mix offsets. A blank cell is a missing value (a gap the caller
may fill); anything else must be a finite number.
"""

from __future__ import annotations

import codecs
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd

MAX_DATA_FILE_BYTES = 64 * 1024 * 1024
"""About 2.5 million CSV rows (four years of one-minute values), read in about 3 s and 0.6 GB; larger files are cut
to the years needed."""
MAX_PARQUET_ROWS = 5_000_000
"""Parquet compresses well: a small file can hold a billion rows; the row count is checked before reading."""
CSV_SUFFIXES = (".csv", ".txt")
PARQUET_SUFFIXES = (".parquet", ".pq")
FIRST_YEAR, LAST_YEAR = 1900, 2200
_SHOWN = 5  # lines quoted in a message


class SeriesError(ValueError):
    """A time series cannot serve the request; the message says which file and what to do."""


@dataclass
class RawColumns:
    """The two columns as read: timestamps (text or datetime), values (float, NaN = blank cell), line labels."""

    times: pd.Series
    values: np.ndarray
    lines: np.ndarray  # the line (CSV, header = line 1) or row (Parquet, from 1) of each value
    line_word: str


def _where(path: Path, column: str | None = None) -> str:
    from flexopt.config.loader import display_path

    return f"{display_path(path)}" + (f", column {column!r}" if column else "")


def file_problem(path: Path) -> str | None:
    """Why ``path`` cannot be read as a data file, or None."""
    shown = _where(path)
    try:
        if not path.exists():
            return f"file not found: {shown}; check the path (relative paths are relative to the YAML file)"
        if path.is_dir():
            return f"{shown} is a directory, not a data file; give the CSV or Parquet file itself"
        if not path.is_file():
            return f"{shown} is not a regular file; give a CSV or Parquet file"
        size = path.stat().st_size
    except (OSError, ValueError) as exc:
        return f"cannot use {str(path)[:120]!r} as a file path ({exc})"
    if path.suffix.lower() not in CSV_SUFFIXES + PARQUET_SUFFIXES:
        return f"{path.name}: unknown file type {path.suffix or '(none)'!r}; use .csv or .parquet"
    if size > MAX_DATA_FILE_BYTES:
        return (f"{path.name} is {size / 2**20:,.0f} MB; data files may be at most {MAX_DATA_FILE_BYTES // 2**20} MB: "
                "keep only the years needed")
    if size == 0:
        return f"{path.name} is empty; it needs a header line and one row per timestamp"
    if path.suffix.lower() in CSV_SUFFIXES:
        return _text_problem(path)
    return None


def _text_problem(path: Path) -> str | None:
    """Binary content and encodings other than UTF-8, found on the first MB (the rest fails in the parser)."""
    try:
        with path.open("rb") as fh:
            head = fh.read(1 << 20)
    except OSError as exc:
        return f"cannot read {path.name}: {exc.strerror or exc}"
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return f"{path.name} is UTF-16 encoded; save it as UTF-8 CSV"
    if b"\x00" in head:
        return f"{path.name} holds NUL bytes: it is binary, not a CSV text file; check the path or export it as CSV"
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start < len(head) - 4:  # not merely a character cut at the 1 MB boundary
            line = head[: exc.start].count(b"\n") + 1
            return (f"{path.name} is not UTF-8 (byte 0x{head[exc.start]:02x} on line {line}; probably Latin-1 or "
                    "Windows-1252); save it as UTF-8")
    return None


def _version(path: Path) -> tuple[str, int, int] | None:
    """(path, mtime in ns, size): what a file's parsed content is cached under; None when it cannot be stat'ed."""
    try:
        stat = path.stat()
    except (OSError, ValueError):
        return None
    return str(path), stat.st_mtime_ns, stat.st_size


def columns(path: Path) -> list[str]:
    """Column names of a data file (SeriesError when it cannot be read). Read once per file version: every data
    source naming the file asks, at validation and again when it is read."""
    version = _version(path)
    return list(_columns_of(*version) if version else _columns(path))


@lru_cache(maxsize=64)
def _columns_of(path: str, _mtime_ns: int, _size: int) -> tuple[str, ...]:
    return tuple(_columns(Path(path)))


def _columns(path: Path) -> list[str]:
    problem = file_problem(path)
    if problem:
        raise SeriesError(problem)
    try:
        if path.suffix.lower() in PARQUET_SUFFIXES:
            import pyarrow.parquet as pq

            return list(pq.read_schema(path).names)
        return [str(c) for c in pd.read_csv(path, nrows=0, encoding="utf-8-sig").columns]
    except pd.errors.EmptyDataError:
        raise SeriesError(f"{path.name} has no header line; the first line names the columns") from None
    except (ValueError, OSError, UnicodeDecodeError) as exc:
        raise SeriesError(f"cannot read {path.name}: {exc}") from None
    except Exception as exc:  # pyarrow raises its own types for a corrupt file
        raise SeriesError(f"cannot read {path.name} ({type(exc).__name__}: {exc}); is it a Parquet file?") from None


def column_problem(path: Path, wanted: list[str]) -> str | None:
    """Missing columns, with a hint when the file is separated by something other than commas."""
    try:
        have = columns(path)
    except SeriesError as exc:
        return str(exc)
    missing = [c for c in wanted if c not in have]
    if not missing:
        return None
    text = f"{path.name} has no column {', '.join(map(repr, missing))}; its columns are: {', '.join(have)}"
    if len(have) == 1 and any(sep in have[0] for sep in ";\t|"):
        text += " (the file seems separated by ';', tab or '|': flexopt reads comma-separated CSV)"
    return text


def read_columns(path: Path, time_column: str, column: str) -> RawColumns:
    """The time and value columns of a file (blank values NaN); text or non-finite values are an error."""
    problem = column_problem(path, [time_column, column])
    if problem:
        raise SeriesError(problem)
    if path.suffix.lower() in PARQUET_SUFFIXES:
        raw = _read_parquet(path, time_column, column)
    else:
        raw = _read_csv(path, time_column, column)
    if len(raw.values) == 0:
        raise SeriesError(f"{_where(path)} holds no data rows, only a header; add one row per timestamp")
    return raw


def _read_csv(path: Path, time_column: str, column: str) -> RawColumns:
    version = _version(path)
    frame = _csv_text_of(*version) if version else _csv_text(path)  # never modified: a cached frame is shared
    lines = np.arange(len(frame)) + 2
    times = frame[time_column].fillna("").str.strip()
    text = frame[column].fillna("").str.strip()
    keep = (times != "") | (text != "")  # blank lines carry nothing
    times, text, lines = times[keep], text[keep], lines[keep.to_numpy()]
    return RawColumns(times.reset_index(drop=True), _numbers(text, lines, path, column, "line"), lines, "line")


@lru_cache(maxsize=8)
def _csv_text_of(path: str, _mtime_ns: int, _size: int) -> pd.DataFrame:
    """A CSV file's cells as text, once per file version: a file often holds several data sources' columns."""
    return _csv_text(Path(path))


def _csv_text(path: Path) -> pd.DataFrame:
    try:
        # every column is read (not usecols): only then does pandas refuse a row with more fields than the header
        return pd.read_csv(path, dtype=str, keep_default_na=False, na_filter=False, skip_blank_lines=False,
                           encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise SeriesError(f"{_where(path)} is not UTF-8 ({exc.reason} at byte {exc.start}); save it as UTF-8") from None
    except (pd.errors.ParserError, ValueError) as exc:
        raise SeriesError(f"{_where(path)} cannot be parsed as CSV: {str(exc).strip()}; every line needs as many "
                          "comma-separated fields as the header") from None


def _read_parquet(path: Path, time_column: str, column: str) -> RawColumns:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        rows = pq.ParquetFile(path).metadata.num_rows
        if rows > MAX_PARQUET_ROWS:
            raise SeriesError(f"{_where(path)} holds {rows:,} rows; data files may hold at most {MAX_PARQUET_ROWS:,}: "
                              "keep only the years needed")
        table = pq.read_table(path, columns=[time_column, column])
    except SeriesError:
        raise
    except Exception as exc:  # corrupt or truncated file
        raise SeriesError(f"{_where(path)} cannot be read as Parquet ({type(exc).__name__}: {exc})") from None
    lines = np.arange(table.num_rows) + 1
    col = table.column(column)
    if pa.types.is_integer(col.type) or pa.types.is_floating(col.type) or pa.types.is_decimal(col.type):
        values = col.to_pandas().astype(float).to_numpy()
        nulls = col.is_null().to_numpy(zero_copy_only=False)
        bad = ~nulls & ~np.isfinite(values)
        if bad.any():
            raise SeriesError(_bad_values_message(path, column, lines[bad], values[bad].astype(str), "row", False))
    elif pa.types.is_string(col.type) or pa.types.is_large_string(col.type):
        text = pd.Series(col.to_pylist(), dtype=object).fillna("").astype(str).str.strip()
        values = _numbers(text, lines, path, column, "row")
    else:
        raise SeriesError(f"{_where(path, column)} holds {col.type} values, not numbers; store the values as "
                          "numbers (float)")
    tcol = table.column(time_column)
    if pa.types.is_timestamp(tcol.type) or pa.types.is_date(tcol.type):
        times = tcol.to_pandas()
    elif pa.types.is_string(tcol.type) or pa.types.is_large_string(tcol.type):
        times = pd.Series(tcol.to_pylist(), dtype=object).fillna("").astype(str).str.strip()
    else:
        raise SeriesError(f"{_where(path, time_column)} holds {tcol.type} values; store timestamps as a Parquet "
                          "timestamp column or ISO 8601 text")
    return RawColumns(pd.Series(times).reset_index(drop=True), values, lines, "row")


def _numbers(text: pd.Series, lines: np.ndarray, path: Path, column: str, word: str) -> np.ndarray:
    """Finite numbers, NaN for blank cells; anything else (text, nan, inf) is an error naming the lines."""
    blank = (text == "").to_numpy()
    values = pd.to_numeric(text.where(~(text == ""), None), errors="coerce").to_numpy(dtype=float)
    bad = ~blank & ~np.isfinite(values)
    if bad.any():
        all_bad = bool(bad.sum() == (~blank).sum())
        raise SeriesError(_bad_values_message(path, column, lines[bad], text.to_numpy()[bad], word, all_bad))
    return values


def _bad_values_message(path: Path, column: str, lines: np.ndarray, shown: np.ndarray, word: str,
                        all_bad: bool) -> str:
    examples = ", ".join(f"{int(n)} ({str(v)[:30]!r})" for n, v in zip(lines[:_SHOWN], shown[:_SHOWN], strict=True))
    more = f" and {len(lines) - _SHOWN} more" if len(lines) > _SHOWN else ""
    text = (f"{_where(path, column)}: not a finite number on {_plural(word, len(lines))} {examples}{more}; write "
            "plain numbers with a "
            "dot as the decimal separator (no unit, no thousands separator), and leave the cell empty where a "
            "value is missing (NaN and infinity are not values)")
    if all_bad:
        text += f"; no value of column {column!r} is a number: is it the right column?"
    return text


def parse_times(raw: RawColumns, timezone: str, path: Path, time_column: str) -> pd.DatetimeIndex:
    """UTC timestamps of every row: ISO 8601 text with an offset, or without one in ``timezone``."""
    where = _where(path, time_column)
    times = raw.times
    if pd.api.types.is_datetime64_any_dtype(times):
        index = pd.DatetimeIndex(times)
        missing = index.isna()
        if missing.any():
            raise SeriesError(f"{where}: no timestamp on {_lines(raw, missing)}; every row needs one")
        aware = index if index.tz is not None else _localize(index, timezone, where)
        return _in_years(aware.tz_convert("UTC"), raw, where)
    text = times.astype(str)
    blank = (text == "").to_numpy()
    if blank.any():
        raise SeriesError(f"{where}: no timestamp on {_lines(raw, blank)}; every row needs one")
    offset = text.str.contains(r"(?:[+-]\d\d:?\d\d|Z)$", regex=True).to_numpy()
    if offset.any() and not offset.all():
        _refuse_unparsed(raw, text, offset, where)
        raise SeriesError(f"{where}: timestamps with a UTC offset ({_lines(raw, offset, 1)}) mixed with timestamps "
                          f"without one ({_lines(raw, ~offset, 1)}); write all with an offset, or all without (the "
                          "data source's timezone then applies)")
    try:
        parsed = pd.to_datetime(text, utc=bool(offset.all()), format="ISO8601", errors="coerce")
    except (ValueError, TypeError, OverflowError) as exc:
        raise SeriesError(f"{where}: timestamps cannot be parsed ({exc}); use ISO 8601, e.g. "
                          "2024-06-12T18:00:00+02:00") from None
    index = pd.DatetimeIndex(parsed)
    bad = index.isna()
    if bad.any():
        raise SeriesError(f"{where}: not an ISO 8601 timestamp on {_lines(raw, bad)} (e.g. "
                          f"{text.to_numpy()[bad][0][:40]!r}); timestamps cannot be parsed: write e.g. "
                          "2024-06-12T18:00:00+02:00, or 2024-06-12 18:00 in the data source's timezone")
    aware = index if offset.all() else _localize(index, timezone, where)
    return _in_years(aware.tz_convert("UTC"), raw, where)


def _refuse_unparsed(raw: RawColumns, text: pd.Series, offset: np.ndarray, where: str) -> None:
    """With offsets on most rows, rows without one are often not timestamps at all: say that first."""
    for mask, utc in ((~offset, False), (offset, True)):
        parsed = pd.to_datetime(text[mask], utc=utc, format="ISO8601", errors="coerce")
        bad = np.zeros(len(text), dtype=bool)
        bad[np.flatnonzero(mask)[pd.isna(parsed).to_numpy()]] = True
        if bad.any():
            raise SeriesError(f"{where}: not an ISO 8601 timestamp on {_lines(raw, bad)} (e.g. "
                              f"{text.to_numpy()[bad][0][:40]!r}); write e.g. 2024-06-12T18:00:00+02:00")


def _localize(naive: pd.DatetimeIndex, timezone: str, where: str) -> pd.DatetimeIndex:
    if timezone == "UTC":
        return naive.tz_localize("UTC")
    try:
        return naive.tz_localize(timezone, ambiguous="infer", nonexistent="shift_forward")
    except Exception:
        pass
    try:
        return naive.tz_localize(timezone, ambiguous=_first_is_dst(naive), nonexistent="shift_forward")
    except Exception as exc:
        raise SeriesError(f"{where}: local times cannot be placed in {timezone} ({exc}); write timestamps with a "
                          "UTC offset") from None


def _first_is_dst(naive: pd.DatetimeIndex) -> list[bool]:
    """For a repeated wall-clock hour, the first occurrence is summer time (DST), the second is not."""
    seen: set[pd.Timestamp] = set()
    flags = []
    for ts in naive:
        flags.append(ts not in seen)
        seen.add(ts)
    return flags


def _in_years(index: pd.DatetimeIndex, raw: RawColumns, where: str) -> pd.DatetimeIndex:
    years = index.year
    bad = (years < FIRST_YEAR) | (years > LAST_YEAR)
    if bad.any():
        raise SeriesError(f"{where}: timestamps outside {FIRST_YEAR}-{LAST_YEAR} on {_lines(raw, bad)}; check "
                          "the dates")
    return index


def _lines(raw: RawColumns, mask: np.ndarray, shown: int = _SHOWN) -> str:
    hits = raw.lines[np.asarray(mask)]
    text = ", ".join(str(int(n)) for n in hits[:shown])
    more = f" and {len(hits) - shown} more" if len(hits) > shown else ""
    return f"{_plural(raw.line_word, len(hits))} {text}{more}"


def _plural(word: str, n: int) -> str:
    return word if n == 1 else f"{word}s"


def out_of_range(values: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Mask of finite values outside [lo, hi]."""
    with np.errstate(invalid="ignore"):
        return np.isfinite(values) & ((values < lo) | (values > hi))


def range_message(raw: RawColumns, mask: np.ndarray, path: Path, column: str, unit: str, canonical: str,
                  lo: float, hi: float) -> str:
    shown = ", ".join(f"{int(n)} ({v:g})" for n, v in zip(raw.lines[mask][:_SHOWN], raw.values[mask][:_SHOWN],
                                                          strict=True))
    more = f" and {int(mask.sum()) - _SHOWN} more" if mask.sum() > _SHOWN else ""
    return (f"{_where(path, column)}: values outside the physical range of {canonical} ({lo:g} to {hi:g}) on "
            f"{_plural(raw.line_word, int(mask.sum()))} {shown}{more}; check the unit (the data source says "
            f"{unit!r}) and the values")
