"""A portfolio in figures: what operators check before they schedule anything."""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field

from flexopt.config.loader import LoadedPortfolio
from flexopt.data.timeseries import SeriesError, read_source


@dataclass
class PortfolioSummary:
    name: str
    sites: int
    devices_by_type: Counter = field(default_factory=Counter)
    power_kw_by_type: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    storage_kwh: float = 0.0
    protocols: Counter = field(default_factory=Counter)
    data_sources: dict[str, str] = field(default_factory=dict)
    per_site: list[tuple[str, str, int, float]] = field(default_factory=list)


def summarise(loaded: LoadedPortfolio, read_data: bool = True) -> PortfolioSummary:
    pf = loaded.portfolio
    out = PortfolioSummary(name=pf.portfolio.name, sites=len(pf.sites))
    for site in pf.sites:
        site_kw = 0.0
        site_devices = 0
        for asset in site.assets:
            if not asset.flexible:
                continue
            out.devices_by_type[asset.type] += asset.count
            kw = asset.rated_power_kw * asset.count
            out.power_kw_by_type[asset.type] += kw
            site_kw += kw
            site_devices += asset.count
            out.storage_kwh += asset.storage_kwh * asset.count
            if asset.endpoint is not None:
                out.protocols[asset.endpoint.protocol] += asset.count
        out.per_site.append((site.id, site.name, site_devices, site_kw))
    for name, src in pf.data_sources.items():
        if not read_data:
            out.data_sources[name] = str(src.path)
            continue
        try:
            series, report = read_source(src, name)
            series = series.dropna()
            span = f"{series.index.min():%Y-%m-%d} to {series.index.max():%Y-%m-%d}"
            tag = " (synthetic)" if src.synthetic else ""
            fixes = ([f"{report.duplicates} duplicate timestamps averaged"] if report.duplicates else []) + report.notes
            fixed = f"; {', '.join(fixes)}" if fixes else ""
            out.data_sources[name] = f"{len(series)} values in {report.unit}, {span}{tag}{fixed}"
        except SeriesError as exc:
            out.data_sources[name] = f"UNREADABLE: {exc}"
    return out
