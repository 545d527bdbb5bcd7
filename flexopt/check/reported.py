"""Which breaches the run reported: kpis.json lists a violation of the matching kind (breaches.KINDS) for the same
asset, site or congestion point, whose [start, end) covers the interval, with an amount at least the breach's
(less the tolerance). Breaches of physics have no matching kind and are never reported."""

from __future__ import annotations

import dataclasses

import pandas as pd

from flexopt.check import tolerances
from flexopt.check.breaches import Breach
from flexopt.check.horizon import RunHorizon
from flexopt.check.run_folder import CheckInputError


def parse_violations(items: list[dict], where: str) -> pd.DataFrame:
    rows = []
    for k, v in enumerate(items):
        try:
            rows.append({"kind": str(v["kind"]), "site_id": v.get("site_id"), "asset_id": v.get("asset_id"),
                         "congestion_point": v.get("congestion_point"),
                         "start": pd.Timestamp(v["start"]).tz_convert("UTC"),
                         "end": pd.Timestamp(v["end"]).tz_convert("UTC"), "amount": float(v["amount"])})
        except (KeyError, TypeError, ValueError) as exc:
            raise CheckInputError(f"{where}: violation {k} unreadable ({type(exc).__name__}: {exc}); "
                                  "each needs kind, start, end (ISO 8601 with offset) and amount") from None
    return pd.DataFrame(rows, columns=["kind", "site_id", "asset_id", "congestion_point", "start", "end", "amount"])


def mark_reported(breaches: list[Breach], violations: pd.DataFrame, horizon: RunHorizon) -> list[Breach]:
    by_kind = dict(tuple(violations.groupby("kind"))) if len(violations) else {}
    out = []
    for b in breaches:
        vk = b.reported_by
        found = vk is not None and b.t is not None and vk in by_kind and _covered(b, by_kind[vk], horizon)
        out.append(dataclasses.replace(b, reported=bool(found)))
    return out


def _covered(b: Breach, vs: pd.DataFrame, horizon: RunHorizon) -> bool:
    field = b.subject_field
    start, end = horizon.index[b.t], horizon.ends[b.t]
    hit = ((vs[field] == getattr(b, field)) & (vs["start"] <= start) & (vs["end"] >= end)
           & (vs["amount"] >= b.amount - tolerances.for_unit(b.unit)))
    return bool(hit.any())
