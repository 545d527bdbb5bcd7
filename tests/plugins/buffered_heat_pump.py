"""A toy plug-in asset type, written as another distribution would write it: a heat pump that heats a buffer tank,
from which a pump carries heat into the room. Two states (room and tank temperature), its portfolio class, its
formulation and its independent physics check, each registered once when this module is imported. Nothing in the
flexopt package knows about it.

Per device, with ``p`` the electric power, ``q`` the heat carried from the tank to the room (kW) and explicit
Euler steps of ``dt`` hours:

    tank[t] = tank[t-1] + dt * (cop * p[t] - q[t]) / C_tank
    room[t] = room[t-1] + dt * (q[t] - (room[t-1] - T_out) / R) / C_room

``count`` devices are one aggregate (``p`` and ``q`` are totals, the temperatures shared).
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import Field

from flexopt.check.context import AssetCase
from flexopt.check.registry import register_check
from flexopt.config.asset_types import SetpointRange, StateSpec, register_asset_type
from flexopt.config.portfolio import AssetBase
from flexopt.config.quantities import (
    CapacitanceKwhPerK,
    Cop,
    PowerKw,
    ResistanceKPerKw,
    TemperatureC,
    VolumeL,
    WaterTemperatureC,
)
from flexopt.models.base import (
    AssetSchedule,
    CostTerms,
    Formulation,
    PowerTerms,
    ValueReader,
    add_rows,
    add_var,
    as_matrix,
    interval_violations,
)
from flexopt.models.registry import register

TYPE = "buffered_heat_pump"
WATER_KWH_PER_L_K = 4.186 / 3600


@register_asset_type
class BufferedHeatPump(AssetBase):
    """A heat pump charging a buffer tank; the room draws heat from the tank."""

    type: Literal["buffered_heat_pump"]
    compressor_kw: PowerKw = Field(description="electric power of the compressor, per device")
    cop: Cop = 3.0
    max_heat_to_room_kw: PowerKw = Field(description="what the tank's pump can carry into the room")
    tank_litres: VolumeL
    tank_min_temp_c: WaterTemperatureC = 30.0
    tank_max_temp_c: WaterTemperatureC = 60.0
    initial_tank_temp_c: WaterTemperatureC = 40.0
    room_resistance_k_per_kw: ResistanceKPerKw
    room_capacitance_kwh_per_k: CapacitanceKwhPerK
    initial_room_temp_c: TemperatureC = 21.0
    room_min_temp_c: TemperatureC = 20.0
    room_max_temp_c: TemperatureC = 23.0
    outdoor_temp_c: TemperatureC

    states = (StateSpec("room_temp_c", "degC", -60.0, 120.0, "room temperature"),
              StateSpec("tank_temp_c", "degC", 0.0, 100.0, "buffer tank temperature"))

    @property
    def tank_kwh_per_k(self) -> float:
        return self.tank_litres * WATER_KWH_PER_L_K

    @property
    def rated_power_kw(self) -> float:
        return self.compressor_kw

    @property
    def storage_kwh(self) -> float:
        return self.tank_kwh_per_k * (self.tank_max_temp_c - self.tank_min_temp_c)

    def setpoint_limits(self, unit: str) -> SetpointRange:
        return SetpointRange(0.0, self.compressor_kw, "kW")

    def convert_setpoint(self, value: float, unit: str, to_unit: str) -> float | None:
        """Behind a relay the compressor runs when the schedule asks for at least half its power."""
        if (unit, to_unit) == ("kW", "on_off"):
            return float(value >= 0.5 * self.compressor_kw)
        return None

    def configured_state(self) -> dict[str, float]:
        return {"room_temp_c": self.initial_room_temp_c, "tank_temp_c": self.initial_tank_temp_c}


@register
class BufferedHeatPumpFormulation(Formulation):
    asset_type = TYPE

    def build(self, block) -> None:
        J, T, dt = len(self.items), self.ctx.n, self.ctx.dt_h
        a = [it.asset for it in self.items]
        n = np.array([it.count for it in self.items], dtype=float)
        start = [{**it.asset.configured_state(), **it.initial_state} for it in self.items]
        self.room0 = np.array([s["room_temp_c"] for s in start])
        self.tank0 = np.array([s["tank_temp_c"] for s in start])
        tank_lo = np.minimum([x.tank_min_temp_c for x in a], self.tank0)
        tank_hi = np.maximum([x.tank_max_temp_c for x in a], self.tank0)
        self.p = add_var(block, "electric_kw", np.zeros(J * T), np.repeat([x.compressor_kw for x in a] * n, T))
        self.q = add_var(block, "heat_to_room_kw", np.zeros(J * T), np.repeat([x.max_heat_to_room_kw for x in a] * n,
                                                                              T))
        self.tank = add_var(block, "tank_c", np.repeat(tank_lo, T), np.repeat(tank_hi, T))
        self.room = add_var(block, "room_c", np.full(J * T, -np.inf), np.full(J * T, np.inf))
        self.under = add_var(block, "below_band_c", np.zeros(J * T), np.full(J * T, np.inf))
        self.over = add_var(block, "above_band_c", np.zeros(J * T), np.full(J * T, np.inf))
        tank_rows, tank_rhs, room_rows, room_rhs = [], [], [], []
        for j, x in enumerate(a):
            kt = dt / (x.tank_kwh_per_k * n[j])
            kr = dt / (x.room_capacitance_kwh_per_k * n[j])
            keep = 1 - dt / (x.room_resistance_k_per_kw * x.room_capacitance_kwh_per_k)
            for t in range(T):
                i = j * T + t
                prev_tank = [(-1.0, self.tank[i - 1])] if t else []
                prev_room = [(-keep, self.room[i - 1])] if t else []
                cols = [(1.0, self.tank[i]), (-kt * x.cop, self.p[i]), (kt, self.q[i]), *prev_tank]
                tank_rows.append(([c for c, _ in cols], [v for _, v in cols]))
                tank_rhs.append(0.0 if t else self.tank0[j])
                cols = [(1.0, self.room[i]), (-kr, self.q[i]), *prev_room]
                room_rows.append(([c for c, _ in cols], [v for _, v in cols]))
                loss = dt * x.outdoor_temp_c / (x.room_resistance_k_per_kw * x.room_capacitance_kwh_per_k)
                room_rhs.append(loss + (0.0 if t else keep * self.room0[j]))
        add_rows(block, "tank_balance", tank_rows, tank_rhs, tank_rhs)
        add_rows(block, "room_balance", room_rows, room_rhs, room_rhs)
        add_rows(block, "band_low", [([1.0, 1.0], [self.room[i], self.under[i]]) for i in range(J * T)],
                 np.repeat([x.room_min_temp_c for x in a], T), None)
        add_rows(block, "band_high", [([1.0, -1.0], [self.room[i], self.over[i]]) for i in range(J * T)],
                 None, np.repeat([x.room_max_temp_c for x in a], T))

    def power(self) -> PowerTerms:
        J, T = len(self.items), self.ctx.n
        terms = PowerTerms(np.zeros((J, T)))
        for j in range(J):
            for t in range(T):
                terms.add(j, t, 1.0, self.p[j * T + t])
        return terms

    def cost(self) -> CostTerms:
        c, T = CostTerms(), self.ctx.n
        for j, it in enumerate(self.items):
            price = self.ctx.penalties.comfort_eur_per_degc_h * self.ctx.dt_h * it.count
            for t in range(T):
                c.add(price, self.under[j * T + t])
                c.add(price, self.over[j * T + t])
        return c

    def extract(self, values: ValueReader) -> list[AssetSchedule]:
        J, T = len(self.items), self.ctx.n
        p = as_matrix(values(self.block.electric_kw), J, T)
        room = as_matrix(values(self.block.room_c), J, T)
        tank = as_matrix(values(self.block.tank_c), J, T)
        return [AssetSchedule(p[j], p[j] / it.count, "kW", room[j], "degC",
                              {"room_temp_c": room[j], "tank_temp_c": tank[j]}) for j, it in enumerate(self.items)]

    def baseline_kw(self) -> np.ndarray:
        """Without flexopt: the heat the room loses at the middle of its band, straight from the compressor."""
        out = []
        for it in self.items:
            x = it.asset
            loss_kw = ((x.room_min_temp_c + x.room_max_temp_c) / 2 - x.outdoor_temp_c) / x.room_resistance_k_per_kw
            out.append(np.full(self.ctx.n, np.clip(loss_kw / x.cop, 0.0, x.compressor_kw) * it.count))
        return np.array(out)

    def violations(self, values: ValueReader):
        J, T, h = len(self.items), self.ctx.n, self.ctx.horizon
        under = as_matrix(values(self.block.below_band_c), J, T)
        over = as_matrix(values(self.block.above_band_c), J, T)
        out = []
        for j, it in enumerate(self.items):
            out += interval_violations("comfort_low", it, h, under[j], "degC", lambda m, i: f"room {m:.2f} K cold")
            out += interval_violations("comfort_high", it, h, over[j], "degC", lambda m, i: f"room {m:.2f} K warm")
        return out


@register_check(TYPE, kinds={
    "buffer_flow": (None, "the tank temperature implies heat to the room outside what the pump can carry"),
    "buffer_room": (None, "the room temperature does not follow the heat the tank gave"),
    "buffer_tank_temp": (None, "buffer tank outside its temperature range"),
})
def check_buffered_heat_pump(case: AssetCase) -> list:
    """The physics again, from the definitions: the heat the tank gave follows from its temperature and the
    power; it must be what the pump can carry, and the room must follow it."""
    a, n, dt = case.asset, case.count, case.dt_h
    p = case.power_kw
    start = {**a.configured_state(), **case.initial}
    tank, room = case.state("tank_temp_c"), case.state("room_temp_c")
    tank_prev = np.concatenate(([start["tank_temp_c"]], tank[:-1]))
    room_prev = np.concatenate(([start["room_temp_c"]], room[:-1]))
    q = a.cop * p - n * a.tank_kwh_per_k * (tank - tank_prev) / dt
    out = case.power_limits(0.0, n * a.compressor_kw, f"0..{n} x {a.compressor_kw:g} kW")
    out += case.over("buffer_flow", np.maximum(-q, q - n * a.max_heat_to_room_kw), "kW", value=q,
                     note=f"heat to the room outside 0..{n * a.max_heat_to_room_kw:g} kW")
    loss = (room_prev - a.outdoor_temp_c) / a.room_resistance_k_per_kw
    expected = room_prev + dt * (q / n - loss) / a.room_capacitance_kwh_per_k
    out += case.over("buffer_room", np.abs(room - expected), "degC", value=room, limit=expected,
                     note="room vs the heat from the tank")
    out += case.over("buffer_tank_temp", np.maximum(a.tank_min_temp_c - tank, tank - a.tank_max_temp_c), "degC",
                     value=tank, note=f"tank outside {a.tank_min_temp_c:g}..{a.tank_max_temp_c:g} degC")
    out += case.over("comfort_low", a.room_min_temp_c - room, "degC", value=room, limit=a.room_min_temp_c)
    out += case.over("comfort_high", room - a.room_max_temp_c, "degC", value=room, limit=a.room_max_temp_c)
    return out
