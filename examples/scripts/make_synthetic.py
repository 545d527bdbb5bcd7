"""Generate the synthetic series of the example portfolios (where no measured data exists).

Writes two CSV files into ``examples/data/`` (or ``--out DIR``):

* ``synthetic_outdoor_temp_hourly.csv``: hourly outdoor temperature (degC) per pilot city: ``bilbao_degc``,
  ``guadalix_degc``, ``madrid_degc``, ``benidorm_degc``, ``seville_degc``, ``mougins_degc``.
  Model: the daily mean follows the 1991-2020 monthly normals (interpolated between mid-month points), plus a
  day-to-day weather anomaly (AR(1), phi 0.7, sigma 1.5 K, smoothed linearly between days), plus a diurnal
  cosine of half the monthly mean daily range peaking at 15:00 local solar time.
* ``synthetic_building_load_30min.csv``: uncontrolled consumption (kW) of the buildings that have no measured
  series: ``guadalix_campus_kw`` (Iberdrola campus offices, labs, training), ``bilbao_city_hall_kw``,
  ``sap_mougins_campus_kw`` (SAP Labs France offices), ``seville_dwelling_kw`` and ``benidorm_apartment_kw``
  (one diversified dwelling, to be scaled by the number of dwellings).
  Model: a base load, an occupancy profile on working days (weekends and 2024 public holidays use the base),
  a cooling term above a balance temperature driven by the city temperature above, and 3 % multiplicative noise.

Timestamps are UTC interval starts (``timestamp``, ISO 8601 with ``+00:00``) from 2024-02-27 00:00 to
2024-12-31 23:00/23:30 UTC, which covers every local day from 2024-02-28 (first day of the measured household
series) to 2024-12-31. Deterministic: the noise comes from ``numpy.random.RandomState`` with fixed seeds (the
legacy generator, whose streams numpy keeps stable across versions); the output is byte-identical on every run.
Run: ``.venv/bin/python examples/scripts/make_synthetic.py [--out DIR]``.
"""

from __future__ import annotations

import argparse
import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd

START_UTC = "2024-02-27 00:00"
END_UTC = "2025-01-01 00:00"  # exclusive
TEMP_FILE = "synthetic_outdoor_temp_hourly.csv"
LOAD_FILE = "synthetic_building_load_30min.csv"

# City: (longitude for solar time, seed, monthly mean of the daily mean temperature Jan..Dec in degC,
# monthly mean daily range max-min Jan..Dec in K). Rounded 1991-2020 normals (AEMET stations Bilbao airport,
# Madrid Retiro, Alicante for Benidorm, Sevilla airport; Meteo-France Nice/Cannes inland for Mougins). Guadalix
# de la Sierra (850 m, foot of the Sierra de Guadarrama) is Madrid Retiro minus 2.5 K with a wider range.
CLIMATE: dict[str, tuple[float, int, list[float], list[float]]] = {
    "bilbao": (-2.93, 101,
               [9.3, 9.8, 11.9, 13.5, 16.4, 19.3, 21.2, 21.6, 19.6, 16.8, 12.4, 10.0],
               [8.0, 8.5, 9.0, 8.5, 8.5, 8.5, 8.5, 8.5, 9.0, 9.0, 8.0, 7.5]),
    "guadalix": (-3.70, 102,
                 [3.8, 5.4, 8.7, 10.8, 14.7, 20.2, 23.6, 23.1, 18.6, 12.6, 7.3, 4.4],
                 [10.0, 11.0, 12.5, 13.0, 14.0, 15.5, 16.5, 16.0, 14.5, 12.0, 10.0, 9.5]),
    "madrid": (-3.70, 103,
               [6.3, 7.9, 11.2, 13.3, 17.2, 22.7, 26.1, 25.6, 21.1, 15.1, 9.8, 6.9],
               [9.0, 10.0, 11.5, 11.5, 12.5, 14.0, 14.5, 14.0, 12.5, 10.5, 9.0, 8.5]),
    "benidorm": (-0.13, 104,
                 [11.7, 12.2, 14.0, 15.9, 18.9, 22.6, 25.4, 25.9, 23.4, 19.7, 15.4, 12.6],
                 [9.5, 9.5, 9.5, 9.0, 8.5, 8.5, 8.0, 8.0, 8.0, 8.5, 9.0, 9.5]),
    "seville": (-5.98, 105,
                [10.9, 12.5, 15.6, 17.6, 21.3, 25.8, 28.9, 28.6, 25.4, 20.7, 15.1, 12.0],
                [11.5, 12.5, 13.5, 13.5, 14.5, 16.0, 17.0, 16.5, 14.5, 12.5, 11.5, 11.0]),
    "mougins": (7.00, 106,
                [9.0, 9.5, 11.8, 14.0, 17.6, 21.6, 24.3, 24.5, 21.0, 17.1, 12.6, 9.7],
                [9.0, 9.0, 9.5, 9.5, 9.5, 10.0, 10.0, 10.0, 9.5, 9.0, 9.0, 9.0]),
}

# 2024 public holidays (national plus the region's) on which offices run at base load.
HOLIDAYS = {
    "ES-MD": ["2024-03-28", "2024-03-29", "2024-05-01", "2024-05-02", "2024-08-15", "2024-10-12", "2024-11-01",
              "2024-12-06", "2024-12-09", "2024-12-25"],
    "ES-PV": ["2024-03-28", "2024-03-29", "2024-04-01", "2024-05-01", "2024-07-25", "2024-07-31", "2024-08-15",
              "2024-10-12", "2024-11-01", "2024-12-06", "2024-12-25"],
    "FR": ["2024-04-01", "2024-05-01", "2024-05-08", "2024-05-09", "2024-05-20", "2024-07-14", "2024-08-15",
           "2024-11-01", "2024-11-11", "2024-12-25"],
}

# Office buildings: (temperature column, holiday calendar, seed, base kW, occupied extra kW, cooling kW per K
# above 22 degC daily-mean-weighted, lunch dip start/end local hour).
OFFICES: dict[str, tuple[str, str, int, float, float, float, tuple[float, float]]] = {
    "guadalix_campus_kw": ("guadalix", "ES-MD", 201, 70.0, 120.0, 4.0, (14.0, 15.5)),
    "bilbao_city_hall_kw": ("bilbao", "ES-PV", 202, 35.0, 75.0, 2.0, (14.0, 15.5)),
    "sap_mougins_campus_kw": ("mougins", "FR", 203, 150.0, 260.0, 9.0, (12.0, 13.5)),
}

# One diversified dwelling (after diversity over many homes, kW) by local hour 0..23: Spanish pattern with late
# lunch (14-15 h) and late evening peak (21-22 h); annual mean about 0.33 kW (2,900 kWh/year).
DWELLING_SHAPE_KW = [0.24, 0.20, 0.18, 0.17, 0.17, 0.18, 0.22, 0.32, 0.36, 0.32, 0.30, 0.30,
                     0.33, 0.40, 0.48, 0.44, 0.34, 0.31, 0.33, 0.38, 0.46, 0.55, 0.52, 0.38]
DWELLINGS: dict[str, tuple[str, int, float, float]] = {
    # column: (temperature column, seed, occupancy factor, air-conditioning kW per K above 25 degC)
    "seville_dwelling_kw": ("seville", 301, 1.0, 0.035),
    "benidorm_apartment_kw": ("benidorm", 302, 0.8, 0.0),  # its splits are modelled as climate assets
}


def _daily_normals(days: pd.DatetimeIndex, monthly: list[float]) -> np.ndarray:
    """Monthly values placed at mid-month and interpolated (cyclically) to every day."""
    mids = [dt.date(2024, m, 15).timetuple().tm_yday for m in range(1, 13)]
    x = np.array([mids[-1] - 366, *mids, mids[0] + 366], dtype=float)
    y = np.array([monthly[-1], *monthly, monthly[0]], dtype=float)
    return np.interp(days.day_of_year.to_numpy(dtype=float), x, y)


def _hours(naive: pd.DatetimeIndex) -> np.ndarray:
    """Hours since 2024-01-01 (unit-safe: pandas may store datetimes in s, ms, us or ns)."""
    return ((naive - pd.Timestamp("2024-01-01")) / pd.Timedelta(hours=1)).to_numpy(dtype=float)


def temperatures(index: pd.DatetimeIndex) -> pd.DataFrame:
    days = pd.date_range(index[0].normalize(), index[-1].normalize(), freq="D")
    out = {}
    for city, (lon, seed, means, ranges) in CLIMATE.items():
        rng = np.random.RandomState(seed)
        anomaly = np.zeros(len(days))
        for i in range(1, len(days)):
            anomaly[i] = 0.7 * anomaly[i - 1] + rng.normal(0.0, 1.5 * np.sqrt(1 - 0.7**2))
        day_mean = _daily_normals(days, means) + anomaly
        day_range = _daily_normals(days, ranges)
        # daily values apply at local solar noon; interpolate to every hour
        solar = index + pd.to_timedelta(lon / 15.0, unit="h")
        t_days = _hours(days.tz_localize(None) + pd.Timedelta(hours=12))
        t = _hours(solar.tz_localize(None))
        mean_h = np.interp(t, t_days, day_mean)
        range_h = np.interp(t, t_days, day_range)
        hour = solar.hour.to_numpy() + solar.minute.to_numpy() / 60.0
        out[f"{city}_degc"] = mean_h + 0.5 * range_h * np.cos(2 * np.pi * (hour - 15.0) / 24.0)
    return pd.DataFrame(out, index=index)


def _occupancy(hour: np.ndarray, lunch: tuple[float, float]) -> np.ndarray:
    """0..1 office occupancy: ramp 07:00-09:00, lunch dip to 0.8, ramp down 17:30-20:00."""
    up = np.clip((hour - 7.0) / 2.0, 0.0, 1.0)
    down = np.clip((20.0 - hour) / 2.5, 0.0, 1.0)
    dip = np.where((hour >= lunch[0]) & (hour < lunch[1]), 0.8, 1.0)
    return np.minimum(up, down) * dip


def loads(index: pd.DatetimeIndex, temps: pd.DataFrame) -> pd.DataFrame:
    local = index.tz_convert("Europe/Madrid")  # Europe/Paris has the same offsets
    hour = local.hour.to_numpy() + local.minute.to_numpy() / 60.0
    dates = local.strftime("%Y-%m-%d")
    weekday = local.day_of_week.to_numpy() < 5
    out = {}
    for col, (city, cal, seed, base, extra, k_cool, lunch) in OFFICES.items():
        rng = np.random.RandomState(seed)
        temp = temps[f"{city}_degc"].to_numpy()
        working = weekday & ~np.isin(dates, HOLIDAYS[cal])
        occ = _occupancy(hour, lunch) * working
        cooling = k_cool * np.clip(temp - 22.0, 0.0, None) * (0.25 + 0.75 * occ)
        value = (base + extra * occ + cooling) * (1.0 + 0.03 * rng.standard_normal(len(index)))
        out[col] = value
    for col, (city, seed, factor, k_ac) in DWELLINGS.items():
        rng = np.random.RandomState(seed)
        temp = temps[f"{city}_degc"].to_numpy()
        shape = np.interp(hour, np.arange(25), [*DWELLING_SHAPE_KW, DWELLING_SHAPE_KW[0]])
        ac = k_ac * np.clip(temp - 25.0, 0.0, None)
        value = (shape * factor + ac) * (1.0 + 0.03 * rng.standard_normal(len(index)))
        out[col] = value
    return pd.DataFrame(out, index=index)


def _write(df: pd.DataFrame, path: Path, decimals: dict[str, int]) -> None:
    """Fixed decimals per column (small files, identical text on every run)."""
    text = pd.DataFrame({col: [f"{v:.{decimals[col]}f}" for v in df[col]] for col in df.columns})
    text.insert(0, "timestamp", df.index.strftime("%Y-%m-%d %H:%M:%S+00:00"))
    text.to_csv(path, index=False, lineterminator="\n")


def main(out_dir: Path) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    hourly = pd.date_range(START_UTC, END_UTC, freq="1h", inclusive="left", tz="UTC")
    half_hourly = pd.date_range(START_UTC, END_UTC, freq="30min", inclusive="left", tz="UTC")
    temps_h = temperatures(hourly)
    temps_30 = temperatures(half_hourly)
    paths = [out_dir / TEMP_FILE, out_dir / LOAD_FILE]
    _write(temps_h, paths[0], dict.fromkeys(temps_h.columns, 1))
    # building loads use their own city temperature at 30-min resolution
    load = loads(half_hourly, temps_30)
    _write(load, paths[1], {c: 1 if c in OFFICES else 3 for c in load.columns})
    return paths


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "data",
                        help="output directory (default: examples/data)")
    for written in main(parser.parse_args().out):
        print(f"wrote {written}")
