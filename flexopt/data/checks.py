"""Every input file of a portfolio checked as fully as a schedule run will read it, for any date.

``flexopt validate`` and every schedule run call :func:`check_inputs` after the YAML is valid, so a portfolio
that validates does not fail later on its data: each data source is read whole (timestamps, values, units,
ranges), the DSO limits file row by row, and PV series are compared with the array they were measured on.
What depends on the date (the day inside the files, gaps on that day, enough history) is checked by the run.
"""

from __future__ import annotations

import numpy as np

from flexopt.config.loader import LoadedPortfolio, Problem, display_path
from flexopt.config.portfolio import PV, SERIES_PEAK_HINT

PV_PEAK_TOLERANCE = 1.5
"""A measured array can exceed its nameplate briefly (cloud edges), not by half: beyond that the peaks are wrong."""


def check_inputs(loaded: LoadedPortfolio) -> list[Problem]:
    """Problems of the data files and the DSO limits file (empty when everything can be read)."""
    from flexopt.data.dso_limits import DsoLimitsError, read_dso_limits
    from flexopt.data.timeseries import SeriesError, read_source, source_file_problem

    pf = loaded.portfolio
    problems: list[Problem] = []
    peaks: dict[str, float] = {}
    for name, src in pf.data_sources.items():
        missing = source_file_problem(src)
        if missing is not None:
            field, text = missing
            problems.append(Problem(loaded.file_of("data_sources", name), f"data_sources.{name}.{field}", text))
            continue
        try:
            series, _ = read_source(src, name)
        except SeriesError as exc:
            problems.append(Problem(loaded.file_of("data_sources", name), f"data_sources.{name}", str(exc)))
            continue
        peaks[name] = float(np.nanmax(series.to_numpy()))
    if pf.dso_limits_file is not None:
        try:
            read_dso_limits(pf.dso_limits_file, {cp.id for cp in pf.congestion_points})
        except DsoLimitsError as exc:
            problems.append(Problem(loaded.file_of("key", "dso_limits_file"), "dso_limits_file", str(exc)))
    problems += _pv_peaks(loaded, peaks)
    return problems


def _pv_peaks(loaded: LoadedPortfolio, peaks: dict[str, float]) -> list[Problem]:
    """A generation series far above series_peak_kw was measured on another array, or in another unit."""
    out = []
    for si, site in enumerate(loaded.portfolio.sites):
        file, local = loaded.origins.get(("sites", si), (display_path(loaded.path), si))
        for ai, asset in enumerate(site.assets):
            if not isinstance(asset, PV) or asset.generation_kw is None or asset.series_peak_kw is None:
                continue
            ref = asset.generation_kw
            if ref.source not in peaks:
                continue
            observed = peaks[ref.source] * ref.scale
            if observed > PV_PEAK_TOLERANCE * asset.series_peak_kw:
                out.append(Problem(file, f"sites[{local}].assets[{ai}].series_peak_kw",
                                   f"the generation_kw series {ref.source!r} peaks at {observed:g} kW, more than "
                                   f"{PV_PEAK_TOLERANCE:g} x series_peak_kw ({asset.series_peak_kw:g} kW); "
                                   f"{SERIES_PEAK_HINT} (or fix the unit of the data source)"))
    return out
