"""Send many setpoints and read many devices at once, each device bounded by its own timeout."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Mapping

from flexopt.adapters.base import CommandResult, DeviceAdapter, Setpoint, Telemetry, utcnow


async def _send_in_order(
    adapter: DeviceAdapter | None, asset_id: str, setpoints: list[Setpoint], timeout_s: float
) -> list[CommandResult]:
    """One device's setpoints go out one after the other, so a later one always wins."""
    results = []
    for sp in setpoints:
        t0 = time.perf_counter()
        if adapter is None:
            status, reason = "error", "no adapter for this asset"
        else:
            try:
                results.append(await asyncio.wait_for(adapter.send_setpoint(sp), timeout_s))
                continue
            except TimeoutError:
                status, reason = "timeout", f"no result within {timeout_s:g} s"
            except Exception as exc:  # an adapter bug must not stop the others
                status, reason = "error", f"{type(exc).__name__}: {exc}"
        results.append(
            CommandResult(
                asset_id=asset_id,
                ok=False,
                status=status,
                requested=sp.value,
                sent=None,
                unit=sp.unit,
                reason=reason,
                latency_ms=(time.perf_counter() - t0) * 1000.0,
            )
        )
    return results


async def send_all(
    adapters: Mapping[str, DeviceAdapter], setpoints: Iterable[Setpoint], timeout_s: float = 10.0
) -> list[CommandResult]:
    """Send every setpoint concurrently across devices; results come back in the setpoints' order
    and this never raises."""
    setpoints = list(setpoints)
    by_asset: dict[str, list[int]] = {}
    for i, sp in enumerate(setpoints):
        by_asset.setdefault(sp.asset_id, []).append(i)
    outcomes = await asyncio.gather(
        *(
            _send_in_order(adapters.get(asset), asset, [setpoints[i] for i in idx], timeout_s)
            for asset, idx in by_asset.items()
        )
    )
    results: list[CommandResult | None] = [None] * len(setpoints)
    for idx, res in zip(by_asset.values(), outcomes, strict=True):
        for i, r in zip(idx, res, strict=True):
            results[i] = r
    return [r for r in results if r is not None]


async def _read_one(adapter: DeviceAdapter, timeout_s: float) -> Telemetry:
    try:
        return await asyncio.wait_for(adapter.read_telemetry(), timeout_s)
    except Exception as exc:
        status = "timeout" if isinstance(exc, TimeoutError) else "error"
        return Telemetry(
            asset_id=adapter.asset_id, at=utcnow(), connected=False, quality="unreachable", notes=status
        )


async def read_all(adapters: Mapping[str, DeviceAdapter], timeout_s: float = 10.0) -> dict[str, Telemetry]:
    """Read every device concurrently; a device that fails comes back as unreachable telemetry."""
    readings = await asyncio.gather(*(_read_one(a, timeout_s) for a in adapters.values()))
    return dict(zip(adapters.keys(), readings, strict=True))


async def connect_all(adapters: Mapping[str, DeviceAdapter]) -> dict[str, bool]:
    """Connect every adapter concurrently; False for those whose device is not reachable yet."""
    oks = await asyncio.gather(*(a.connect() for a in adapters.values()))
    return dict(zip(adapters.keys(), oks, strict=True))


async def close_all(adapters: Mapping[str, DeviceAdapter]) -> None:
    await asyncio.gather(*(a.close() for a in adapters.values()))
