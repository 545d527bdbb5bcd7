"""The portfolio: sites, their grid connection, congestion points and every asset with its physics.

These pydantic models are the single source of truth for the configuration format; ``flexopt schema``
prints their JSON Schema. Unknown keys are errors (they are usually typos). Loading from YAML, includes
and readable error reports live in :mod:`flexopt.config.loader`.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from flexopt.config.asset_types import (
    ASSET_TYPES,  # noqa: F401 - the registry, re-exported
    SetpointKind,
    SetpointRange,
    StateNotMeasured,
    StateSpec,
    asset_union,
    measured_mean,
    on_asset_type_registered,
    register_asset_type,
)
from flexopt.config.endpoints import Endpoint, OcppCentralSystem
from flexopt.config.quantities import (
    CapacitanceKwhPerK,
    Cop,
    Count,
    CurrentA,
    DegradationEurPerKwh,
    Efficiency,
    EnergyKwh,
    FeeEurPerKwh,
    Latitude,
    LimitKw,
    LocalTime,
    Longitude,
    LossWPerK,
    PeakChargeEurPerKw,
    PenaltyEur,
    Percent,
    PowerKw,
    PriceEurPerKwh,
    Quantile,
    ResistanceKPerKw,
    Scale,
    SignedPowerKw,
    TemperatureC,
    VehicleEnergyKwh,
    VoltageV,
    VolumeL,
    WaterTemperatureC,
    integer,
)
from flexopt.config.uftp import UFTP_ZONE, Uftp

ResolutionMin = integer(1, 60)
Identifier = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")]
Archetype = Literal["Adopter", "Gadger", "Eco", "Comfy"]
UNITS = ("W", "kW", "MW", "EUR/MWh", "EUR/kWh", "ct/kWh", "degC", "W/m2", "%", "1")
Unit = Literal["W", "kW", "MW", "EUR/MWh", "EUR/kWh", "ct/kWh", "degC", "W/m2", "%", "1"]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def check_timezone(name: str) -> str:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(
            f"unknown timezone {name!r}; use an IANA name such as 'Europe/Madrid' or 'UTC'"
        ) from exc
    return name


TimezoneName = Annotated[str, AfterValidator(check_timezone)]


# --- time series -----------------------------------------------------------------------------


class DataSource(Strict):
    """A time series in a CSV or Parquet file. Relative paths are relative to the YAML file."""

    path: Path
    column: str = Field(description="column holding the values")
    time_column: str = Field(default="timestamp", description="column holding the interval starts")
    unit: Unit = Field(description="unit of the values in the file; converted on load")
    timezone: TimezoneName = Field(
        default="UTC",
        description="timezone of timestamps without an offset (local wall-clock time is allowed, DST included)",
    )
    kind: Literal["forecast", "history"] = Field(
        default="forecast",
        description="forecast: values for the scheduled day are in the file; history: flexopt forecasts them",
    )
    synthetic: bool = Field(default=False, description="true for generated (not measured) series")
    description: str = ""


class SeriesRef(Strict):
    """A reference to a data source, optionally scaled (e.g. a 3 kWp profile used for a 40 kWp array)."""

    source: str = Field(description="name of an entry in data_sources")
    scale: Scale = Field(default=1.0, description="multiplier applied after unit conversion")


PriceOrSeries = PriceEurPerKwh | SeriesRef
TemperatureOrSeries = TemperatureC | SeriesRef
PowerOrSeries = SignedPowerKw | SeriesRef


# --- tariffs, congestion points --------------------------------------------------------------


class Tariff(Strict):
    """Energy prices and grid fees in EUR; a number is a constant, ``{source: ...}`` a series."""

    import_price_eur_per_kwh: PriceOrSeries = Field(description="a number, or a series {source: name}")
    export_price_eur_per_kwh: PriceOrSeries = Field(default=0.0, description="a number, or a series {source: name}")
    grid_fee_import_eur_per_kwh: FeeEurPerKwh = 0.0
    grid_fee_export_eur_per_kwh: FeeEurPerKwh = 0.0
    peak_charge_eur_per_kw: PeakChargeEurPerKw = Field(
        default=0.0, description="charge on the highest import of the day at the site"
    )


class CongestionPoint(Strict):
    """A DSO congestion point: the sum of its sites' net power is kept within these limits."""

    id: Identifier
    name: str = ""
    import_limit_kw: PowerKw | None = None
    export_limit_kw: LimitKw | None = None


class Penalties(Strict):
    """Prices of soft-constraint violations. Large, so they only bind when nothing else is possible."""

    limit_eur_per_kwh: PenaltyEur = Field(default=10.0, description="connection or congestion limit breach")
    comfort_eur_per_degc_h: PenaltyEur = Field(default=5.0, description="indoor/tank temperature outside band")
    ev_energy_eur_per_kwh: PenaltyEur = Field(default=5.0, description="EV energy missing at departure")
    terminal_soc_eur_per_kwh: PenaltyEur = Field(default=1.0, description="battery below terminal SoC")


# --- assets ----------------------------------------------------------------------------------


class AssetBase(Strict):
    """Fields every asset has, and what a type tells the rest of flexopt about itself (override per type)."""

    id: Identifier
    name: str = ""
    count: Count = Field(default=1, description="number of identical devices")
    endpoint: Endpoint | None = None
    notes: str = Field(default="", description="assumptions behind the parameters")

    # states carried between intervals: what --state files, run.json and states.parquet hold for this type
    states: ClassVar[tuple[StateSpec, ...]] = ()
    # how measured power compares with the setpoint (dispatch deviation alarms)
    setpoint_kind: ClassVar[SetpointKind] = "exact"
    # False for consumption flexopt does not control: left out of device counts and rated power
    flexible: ClassVar[bool] = True

    @property
    def rated_power_kw(self) -> float:
        """Rated electrical power of one device, the figure the seed's tables give."""
        return 0.0

    @property
    def storage_kwh(self) -> float:
        """Energy one device stores (the portfolio summary's kWh)."""
        return 0.0

    def setpoint_limits(self, unit: str) -> SetpointRange | None:
        """What one device accepts when its endpoint takes ``unit``; None: nothing to clamp."""
        return None

    def convert_setpoint(self, value: float, unit: str, to_unit: str) -> float | None:
        """``value`` (in ``unit``) in ``to_unit`` where the conversion is physical for this type; None otherwise
        (the adapter then reports the unit mismatch)."""
        return None

    def configured_state(self) -> dict[str, float]:
        """The states a run starts from when neither a measurement nor a stored run gives one."""
        return {}

    def needs_state(self, start_local: dt.datetime) -> bool:
        """Whether a run starting at ``start_local`` depends on where the asset stands then."""
        return bool(self.states)

    def state_bounds(self, spec: StateSpec) -> tuple[float, float]:
        """The range a value of state ``spec`` of this asset must lie in: the type's, for its ``count``."""
        return spec.bounds(self.count)

    def state_from_readings(self, readings: Sequence[Any]) -> dict[str, float]:
        """Its states from telemetry, for an intraday start: ``readings`` are the newest reading of each of its
        ``count`` devices (``flexopt.telemetry.Reading``; the caller has checked that every device answered, with
        good quality, recently enough). Raise :class:`StateNotMeasured` with the reason when they do not say.

        Default: each declared state from the reading's field of the same name (``soc_pct``, ``temp_c``) or its
        ``extra`` entry of that name, the mean over the devices (a group is one aggregate). The range of each value
        is checked by the caller against ``states``."""
        return {spec.key: measured_mean(readings, spec.key) for spec in self.states}


@register_asset_type
class Battery(AssetBase):
    type: Literal["battery"]
    power_kw: PowerKw | None = Field(default=None, description="charge and discharge limit")
    charge_power_kw: PowerKw | None = None
    discharge_power_kw: PowerKw | None = None
    energy_kwh: EnergyKwh = Field(description="usable capacity per unit")
    soc_min_pct: Percent = 5.0
    soc_max_pct: Percent = 95.0
    initial_soc_pct: Percent = 50.0
    terminal_soc_pct: Percent | None = Field(default=None, description="default: the initial SoC")
    charge_efficiency: Efficiency = 0.95
    discharge_efficiency: Efficiency = 0.95
    degradation_cost_eur_per_kwh: DegradationEurPerKwh = Field(default=0.0, description="per kWh discharged")

    @field_validator("soc_max_pct")
    @classmethod
    def _max_above_min(cls, v: float, info: ValidationInfo) -> float:
        lo = info.data.get("soc_min_pct")
        if lo is not None and v <= lo:
            raise ValueError(f"must be above soc_min_pct ({lo:g}); lower soc_min_pct or raise soc_max_pct")
        return v

    @model_validator(mode="after")
    def _power_and_soc(self) -> Battery:
        if self.power_kw is None and (self.charge_power_kw is None or self.discharge_power_kw is None):
            raise ValueError("give power_kw, or both charge_power_kw and discharge_power_kw")
        for name in ("initial_soc_pct", "terminal_soc_pct"):
            v = getattr(self, name)
            if v is not None and not self.soc_min_pct <= v <= self.soc_max_pct:
                raise ValueError(
                    f"{name} ({v:g}) must lie between soc_min_pct ({self.soc_min_pct:g}) "
                    f"and soc_max_pct ({self.soc_max_pct:g})"
                )
        return self

    @property
    def max_charge_kw(self) -> float:
        return self.charge_power_kw or self.power_kw  # type: ignore[return-value]

    @property
    def max_discharge_kw(self) -> float:
        return self.discharge_power_kw or self.power_kw  # type: ignore[return-value]

    states = (StateSpec("soc_pct", "%", 0.0, 100.0, "state of charge"),)

    @property
    def rated_power_kw(self) -> float:
        return max(self.max_charge_kw, self.max_discharge_kw)

    @property
    def storage_kwh(self) -> float:
        return self.energy_kwh

    def setpoint_limits(self, unit: str) -> SetpointRange:
        return SetpointRange(-self.max_discharge_kw, self.max_charge_kw, "kW")  # load convention

    def configured_state(self) -> dict[str, float]:
        return {"soc_pct": self.initial_soc_pct}

    def state_from_readings(self, readings: Sequence[Any]) -> dict[str, float]:
        """The SoC the battery management reports; a group's mean (its devices are one aggregate)."""
        return {"soc_pct": measured_mean(readings, "soc_pct")}


SERIES_PEAK_HINT = ("series_peak_kw: the peak of the array the series was measured on; use peak_kw itself if the "
                    "series is this array's own output")


@register_asset_type
class PV(AssetBase):
    """Output = generation_kw * peak_kw / series_peak_kw (per device): both peaks are always stated, so a
    per-kWp series, a neighbour's array and the array's own output are never confused."""

    type: Literal["pv"]
    peak_kw: PowerKw = Field(description="peak (kWp) of this array, per device")
    curtailable: bool = False
    generation_kw: SeriesRef | None = Field(
        default=None, description="expected output (positive kW) of the array the series was measured on; "
        "default: none, the array produces nothing. Requires series_peak_kw"
    )
    series_peak_kw: PowerKw | None = Field(
        default=None, validate_default=True,
        description="required with generation_kw: the peak (kWp) of the array the series was measured on (peak_kw "
        "itself if the series is this array's own output); output is scaled by peak_kw / series_peak_kw"
    )

    @field_validator("series_peak_kw")
    @classmethod
    def _scaling_is_stated(cls, v: float | None, info: ValidationInfo) -> float | None:
        if "generation_kw" not in info.data:
            return v  # generation_kw itself is invalid and reported
        if info.data["generation_kw"] is not None and v is None:
            raise ValueError(f"required with generation_kw; {SERIES_PEAK_HINT}")
        if info.data["generation_kw"] is None and v is not None:
            raise ValueError("given without generation_kw: add the generation_kw series it describes, or remove "
                             "series_peak_kw")
        return v

    setpoint_kind = "export_ceiling"

    @property
    def rated_power_kw(self) -> float:
        return self.peak_kw

    def setpoint_limits(self, unit: str) -> SetpointRange:
        return SetpointRange(0.0, self.peak_kw, "kW")  # an export ceiling, positive kW


class EvSession(Strict):
    """A daily charging session: the vehicle plugs in at arrival and must have its energy by departure."""

    arrival_local: LocalTime = Field(description='local time in quotes, e.g. "18:00"')
    departure_local: LocalTime = Field(description='local time in quotes, e.g. "07:30"')
    energy_kwh: VehicleEnergyKwh = Field(
        description="energy the vehicle battery needs by departure (after charging losses)")
    units: Count | None = Field(default=None, description="how many of the chargers see it (default: all)")
    vehicle_battery_kwh: VehicleEnergyKwh | None = Field(default=None, description="needed for V2G")
    arrival_soc_pct: Percent | None = None
    min_soc_pct: Percent = Field(default=20.0, description="V2G never discharges below this")

    @model_validator(mode="after")
    def _order(self) -> EvSession:
        if self.departure_local <= self.arrival_local:
            raise ValueError(
                f"departure_local ({self.departure_local}) must be after arrival_local ({self.arrival_local}) "
                "on the same day"
            )
        if self.vehicle_battery_kwh is not None:
            room = self.vehicle_battery_kwh * (1 - (self.arrival_soc_pct or 0.0) / 100)
            if self.energy_kwh > room + 1e-9:
                raise ValueError(f"energy_kwh ({self.energy_kwh:g}) does not fit into the vehicle: vehicle_battery_kwh "
                                 f"{self.vehicle_battery_kwh:g} arriving at {self.arrival_soc_pct or 0:g} % takes at "
                                 f"most {room:g} kWh; lower energy_kwh or check the battery size")
        return self


@register_asset_type
class EvCharger(AssetBase):
    type: Literal["ev_charger"]
    max_charge_kw: PowerKw
    max_discharge_kw: LimitKw = Field(default=0.0, description="> 0 for bidirectional (V2G) chargers")
    current_type: Literal["ac", "dc"] = "ac"
    phases: Literal[1, 3] = 3
    voltage_v: VoltageV = Field(default=230.0, description="phase voltage")
    min_current_a: CurrentA = Field(default=6.0, description="AC chargers cannot charge below this; 0 = no minimum")
    charge_efficiency: Efficiency = Field(
        default=0.95, description="share of the energy drawn from the grid that reaches the vehicle battery")
    discharge_efficiency: Efficiency = Field(
        default=0.95, description="V2G: share of the energy taken from the vehicle battery that reaches the grid")
    sessions: list[EvSession] = Field(default_factory=list)

    @property
    def min_charge_kw(self) -> float:
        if self.current_type == "dc":
            return 0.0
        return min(self.max_charge_kw, self.min_current_a * self.voltage_v * self.phases / 1000.0)

    @model_validator(mode="after")
    def _units(self) -> EvCharger:
        used = sum(s.units or self.count for s in self.sessions)
        if used > self.count:
            raise ValueError(f"sessions use {used} chargers but count is {self.count}")
        for s in self.sessions:
            if self.max_discharge_kw > 0 and s.vehicle_battery_kwh is None:
                raise ValueError("a bidirectional charger's sessions need vehicle_battery_kwh")
        return self

    states = (StateSpec("energy_delivered_kwh", "kWh", 0.0, 2000.0,
                        "energy put into the vehicle batteries in the running sessions (of the cars plugged in)"),
              StateSpec("vehicles_plugged", "1", 0.0, 1.0, "cars plugged in, at most one per charger",
                        per_device=True, whole=True))
    setpoint_kind = "import_ceiling"

    @property
    def rated_power_kw(self) -> float:
        return self.max_charge_kw

    @property
    def _kw_per_a(self) -> float:
        return self.voltage_v * self.phases / 1000.0

    def setpoint_limits(self, unit: str) -> SetpointRange:
        if unit == "A":
            return SetpointRange(0.0, self.max_charge_kw * 1000.0 / (self.voltage_v * self.phases), "A")
        return SetpointRange(-self.max_discharge_kw, self.max_charge_kw, "kW")

    def convert_setpoint(self, value: float, unit: str, to_unit: str) -> float | None:
        if (unit, to_unit) == ("kW", "A"):
            return value / self._kw_per_a
        if (unit, to_unit) == ("A", "kW"):
            return value * self._kw_per_a
        return None

    def configured_state(self) -> dict[str, float]:
        return {"energy_delivered_kwh": 0.0}  # no car plugged in before the run

    def state_bounds(self, spec: StateSpec) -> tuple[float, float]:
        """A V2G car may have given back more than it got since it arrived (net energy below zero), at most its
        battery per charger; a one-way charger's cars never go below zero."""
        low, high = spec.bounds(self.count)
        if spec.key == "energy_delivered_kwh" and self.max_discharge_kw > 0:
            low = -max((s.vehicle_battery_kwh or 0.0 for s in self.sessions), default=0.0) * self.count
        return low, high

    def needs_state(self, start_local: dt.datetime) -> bool:
        """Only while one of its cars is plugged in across ``start_local``."""
        now = start_local.time()
        return any(s.arrival_local < now < s.departure_local for s in self.sessions)

    def state_from_readings(self, readings: Sequence[Any]) -> dict[str, float]:
        """How many of its chargers have a car plugged in (``ev_plugged``) and the energy those cars got in their
        sessions: the chargers' session meters (``ev_energy_kwh``, energy drawn through the charger since the
        transaction started) times ``charge_efficiency`` (the model's state is energy in the vehicle batteries,
        after the charging losses)."""
        unknown = [r for r in readings if r.ev_plugged is None]
        if unknown:
            raise StateNotMeasured(f"{_device(unknown[0])} does not report whether a car is plugged in")
        plugged = [r for r in readings if r.ev_plugged]
        unmetered = [r for r in plugged if r.ev_energy_kwh is None or not math.isfinite(r.ev_energy_kwh)]
        if unmetered:
            raise StateNotMeasured(f"{_device(unmetered[0])} has a car plugged in but reports no session energy "
                                   "(ev_energy_kwh)")
        metered = math.fsum(r.ev_energy_kwh for r in plugged)
        return {"vehicles_plugged": float(len(plugged)), "energy_delivered_kwh": self.charge_efficiency * metered}


class ComfortWindow(Strict):
    """Allowed temperature band from start to end (local time) every day."""

    start_local: LocalTime = Field(description='local time in quotes, e.g. "08:00"')
    end_local: LocalTime = Field(description='local time in quotes, e.g. "20:00"')
    min_temp_c: TemperatureC
    max_temp_c: TemperatureC

    @model_validator(mode="after")
    def _band(self) -> ComfortWindow:
        if self.max_temp_c <= self.min_temp_c:
            raise ValueError(f"max_temp_c ({self.max_temp_c}) must be above min_temp_c ({self.min_temp_c})")
        return self


class Thermal(AssetBase):
    """A building zone or heat pump: 1R1C, C dT/dt = (T_out - T_in)/R + COP * P_el (minus when cooling)."""

    max_electric_kw: PowerKw
    min_electric_kw: LimitKw = Field(default=0.0, description="> 0: compressor runs at least this when on")
    mode: Literal["heating", "cooling", "both"] = "heating"
    cop_heating: Cop = 3.0
    cop_cooling: Cop = 3.0
    thermal_resistance_k_per_kw: ResistanceKPerKw = Field(description="R between indoor and outdoor")
    thermal_capacitance_kwh_per_k: CapacitanceKwhPerK = Field(description="C of the zone")
    initial_temp_c: TemperatureC
    outdoor_temp_c: TemperatureOrSeries = Field(description="a number, or a series {source: name}")
    default_min_temp_c: TemperatureC = Field(description="band outside the comfort windows")
    default_max_temp_c: TemperatureC
    comfort: list[ComfortWindow] = Field(default_factory=list)

    @model_validator(mode="after")
    def _band(self) -> Thermal:
        if self.default_max_temp_c <= self.default_min_temp_c:
            raise ValueError("default_max_temp_c must be above default_min_temp_c")
        if self.min_electric_kw > self.max_electric_kw:
            raise ValueError("min_electric_kw must not exceed max_electric_kw")
        return self

    states = (StateSpec("temp_c", "degC", -60.0, 120.0, "indoor temperature"),)

    @property
    def rated_power_kw(self) -> float:
        return self.max_electric_kw

    def setpoint_limits(self, unit: str) -> SetpointRange:
        if unit == "degC":
            return SetpointRange(self.default_min_temp_c, self.default_max_temp_c, "degC")
        return SetpointRange(0.0, self.max_electric_kw, "kW")

    def configured_state(self) -> dict[str, float]:
        return {"temp_c": self.initial_temp_c}

    def state_from_readings(self, readings: Sequence[Any]) -> dict[str, float]:
        """The indoor temperature the zone's sensor or thermostat reports; a group's mean (one shared zone
        temperature in the model)."""
        return {"temp_c": measured_mean(readings, "temp_c")}


@register_asset_type
class Climate(Thermal):
    type: Literal["climate"]


@register_asset_type
class HeatPump(Thermal):
    type: Literal["heat_pump"]


class HotWaterDraw(Strict):
    at_local: LocalTime = Field(description='local time in quotes, e.g. "07:00"')
    litres: VolumeL = Field(description="litres of mixed water at draw_temp_c")


@register_asset_type
class WaterHeater(AssetBase):
    """A one-node tank with a resistive element that is either on or off."""

    type: Literal["water_heater"]
    volume_l: VolumeL
    element_kw: PowerKw
    min_temp_c: WaterTemperatureC = Field(default=45.0, description="comfort and hygiene minimum")
    max_temp_c: WaterTemperatureC = 75.0
    initial_temp_c: WaterTemperatureC = 60.0
    thermostat_c: WaterTemperatureC = Field(default=60.0, description="set temperature of the unmanaged thermostat")
    cold_water_temp_c: WaterTemperatureC = 15.0
    ambient_temp_c: TemperatureC = 20.0
    draw_temp_c: WaterTemperatureC = Field(default=40.0, description="temperature of the mixed water at the tap")
    standby_loss_w_per_k: LossWPerK = Field(default=1.5, description="tank UA value")
    draws: list[HotWaterDraw] = Field(default_factory=list)

    @model_validator(mode="after")
    def _temps(self) -> WaterHeater:
        if self.max_temp_c <= self.min_temp_c:
            raise ValueError(f"max_temp_c ({self.max_temp_c}) must be above min_temp_c ({self.min_temp_c})")
        if not self.min_temp_c <= self.thermostat_c <= self.max_temp_c:
            raise ValueError("thermostat_c must lie between min_temp_c and max_temp_c")
        if self.draws and self.draw_temp_c <= self.cold_water_temp_c:
            raise ValueError(f"draw_temp_c ({self.draw_temp_c:g}) must be above cold_water_temp_c "
                             f"({self.cold_water_temp_c:g}): mixed water colder than the mains would heat the tank")
        return self

    states = (StateSpec("temp_c", "degC", -60.0, 120.0, "mean tank temperature"),)

    @property
    def rated_power_kw(self) -> float:
        return self.element_kw

    def setpoint_limits(self, unit: str) -> SetpointRange:
        if unit == "degC":
            return SetpointRange(self.min_temp_c, self.max_temp_c, "degC")
        return SetpointRange(0.0, self.element_kw, "kW")

    def convert_setpoint(self, value: float, unit: str, to_unit: str) -> float | None:
        """The element is on or off: on for at least half its power."""
        if (unit, to_unit) == ("kW", "on_off"):
            return float(value >= 0.5 * self.element_kw)
        if (unit, to_unit) == ("on_off", "kW"):
            return value * self.element_kw
        return None

    def configured_state(self) -> dict[str, float]:
        return {"temp_c": self.initial_temp_c}

    def state_from_readings(self, readings: Sequence[Any]) -> dict[str, float]:
        """The tank temperature each device reports; a group's mean over its tanks (the model's state is the
        mean tank temperature)."""
        return {"temp_c": measured_mean(readings, "temp_c")}


@register_asset_type
class Load(AssetBase):
    """Consumption flexopt does not control (positive kW)."""

    type: Literal["load"]
    power_kw: PowerOrSeries = Field(description="a number, or a series {source: name}")
    meter: Literal["load", "site"] = Field(
        default="load",
        description="what its endpoint measures, if it has one: load, this consumption itself (a sub-meter); site, "
                    "the site's grid connection (net, import positive), from which flexopt subtracts every other "
                    "asset of the site as measured in the same round. Intraday corrects the forecast from it",
    )

    flexible = False

    @model_validator(mode="after")
    def _site_meter_is_read(self) -> Load:
        if self.meter == "site" and self.endpoint is None:
            raise ValueError("meter: site needs the endpoint of the site's meter; add endpoint, or remove meter")
        if self.meter == "site" and self.count != 1:
            raise ValueError("meter: site reads one meter: count must be 1")
        return self


def _device(reading: Any) -> str:
    return f"device {reading.device}" if getattr(reading, "device", None) else "the charger"


# the built-in types; Site.assets is rebuilt with every type registered later (see _rebuild_with_new_types)
Asset = asset_union()


# --- sites and portfolio ---------------------------------------------------------------------


class Location(Strict):
    city: str = ""
    region: str = ""
    country: str = Field(default="", description="ISO 3166 alpha-2, e.g. ES, FR")
    latitude: Latitude | None = None
    longitude: Longitude | None = None


class Connection(Strict):
    """Grid connection limits at the meter (load convention: import positive)."""

    import_limit_kw: PowerKw | None = None
    export_limit_kw: LimitKw | None = None


class Weather(Strict):
    """Weather data sources of a site, the regressors of its load and PV forecasts. Each holds the past (as
    measured, or better as it was forecast) and the forecast for the scheduled day: ``kind: forecast``."""

    temperature_c: SeriesRef | None = Field(default=None, description="outdoor temperature, unit degC")
    irradiance_w_per_m2: SeriesRef | None = Field(default=None, description="global horizontal irradiance, W/m2")
    cloud_cover_pct: SeriesRef | None = Field(default=None, description="total cloud cover, %")

    UNITS: ClassVar[dict[str, str]] = {"temperature_c": "degC", "irradiance_w_per_m2": "W/m2",
                                       "cloud_cover_pct": "%"}

    def refs(self) -> dict[str, SeriesRef]:
        """{regressor name: its data source} for the regressors given."""
        return {name: getattr(self, name) for name in self.UNITS if getattr(self, name) is not None}


class Site(Strict):
    id: Identifier
    name: str = ""
    location: Location = Location()
    weather: Weather = Field(default_factory=Weather, description="weather data sources for the forecasts")
    timezone: TimezoneName | None = Field(default=None, description="default: the portfolio's")
    archetype: Archetype | None = Field(default=None, description="customer archetype of the seed (WP2 D2.1)")
    user_type: str = ""
    connection: Connection = Connection()
    congestion_point: str | None = None
    tariff: Tariff | None = Field(default=None, description="default: the portfolio's tariff")
    assets: list[Asset] = Field(default_factory=list)

    @model_validator(mode="after")
    def _site_meter_sees_the_rest(self) -> Site:
        """A site meter measures everything; what flexopt does not control is what is left once every other asset
        is subtracted, so every other asset must be measured on its own."""
        meters = [a.id for a in self.site_meter_loads()]
        if len(meters) > 1:
            raise ValueError(f"site {self.id!r}: {', '.join(meters)} all have meter: site; a site has one grid "
                             "meter: keep it on one load and give the others meter: load")
        unmeasured = [a.id for a in self.assets if meters and a.id != meters[0] and a.endpoint is None]
        if unmeasured:
            raise ValueError(f"site {self.id!r}: {meters[0]} reads the site meter, but {', '.join(unmeasured)} "
                             "have no endpoint, so their power cannot be subtracted from it; give them endpoints, "
                             "or use meter: load on a sub-meter of the uncontrolled load")
        return self

    def site_meter_loads(self) -> list[Load]:
        """The load whose endpoint is the site's grid meter (``meter: site``): none or one."""
        return [a for a in self.assets if isinstance(a, Load) and a.meter == "site"]


class PortfolioInfo(Strict):
    name: str = Field(min_length=1)
    timezone: TimezoneName = "Europe/Madrid"
    resolution_min: ResolutionMin = Field(default=15, description="interval length; must divide 60")
    currency: Literal["EUR"] = "EUR"
    description: str = ""

    @field_validator("resolution_min")
    @classmethod
    def _divides_hour(cls, v: int) -> int:
        if v <= 0 or 60 % v:
            raise ValueError("must divide 60 (5, 10, 15, 20, 30 or 60)")
        return v


class Risk(Strict):
    """How much forecast error the schedule guards against."""

    congestion_quantile: Quantile | None = Field(
        default=None,
        description="hold congestion-point limits against this quantile of forecast uncontrolled load (e.g. 0.9); "
                    "energy is still priced at the point forecast. Default: the point forecast",
    )
    congestion_errors: Literal["independent", "comonotone"] = Field(
        default="independent",
        description="how the loads' forecast errors add up at a congestion point: independent (the margin is the "
                    "root sum of squares of the loads' margins) or comonotone (their plain sum: safe whatever the "
                    "correlation, and much larger for many loads)",
    )


class Portfolio(Strict):
    portfolio: PortfolioInfo
    data_sources: dict[str, DataSource] = Field(default_factory=dict)
    tariff: Tariff
    penalties: Penalties = Penalties()
    congestion_points: list[CongestionPoint] = Field(default_factory=list)
    dso_limits_file: Path | None = Field(
        default=None,
        description="CSV of DSO limit windows: congestion_point,start,end,max_import_kw,max_export_kw",
    )
    ocpp_central_system: OcppCentralSystem | None = Field(
        default=None, description="needed when any asset has an ocpp endpoint"
    )
    sites: list[Site] = Field(min_length=1)
    risk: Risk = Field(default_factory=Risk, description="forecast risk the schedule guards against")
    uftp: Uftp | None = Field(default=None, description="flexopt as the UFTP aggregator of DSOs (docs/uftp.md)")

    @model_validator(mode="after")
    def _uftp_points(self) -> Portfolio:
        """Every congestion point UFTP trades is one of the portfolio's."""
        if self.uftp is None:
            return self
        known = {cp.id for cp in self.congestion_points}
        unknown = sorted({cp for cp in self.uftp.congestion_points.values() if cp not in known})
        if unknown:
            raise ValueError(f"uftp.congestion_points: {', '.join(map(repr, unknown))} is not a congestion point of "
                             f"the portfolio (defined: {', '.join(sorted(known)) or 'none'}); map each entity address "
                             "to one of congestion_points[].id")
        if self.portfolio.resolution_min != 15:
            raise ValueError(f"uftp: UFTP trades 15-minute ISPs; set portfolio.resolution_min to 15 (is "
                             f"{self.portfolio.resolution_min})")
        if not re.fullmatch(UFTP_ZONE, self.portfolio.timezone):
            raise ValueError(f"uftp: messages name the time zone as Region/City; portfolio.timezone "
                             f"{self.portfolio.timezone!r} is not one (e.g. Europe/Madrid)")
        return self

    @model_validator(mode="after")
    def _weather_sources(self) -> Portfolio:
        """A weather regressor names a forecast-kind source in its own unit (flexopt does not forecast weather)."""
        problems = []
        for site in self.sites:
            for name, ref in site.weather.refs().items():
                src = self.data_sources.get(ref.source)
                if src is None:
                    continue  # reported by the cross-check with the other unknown sources
                if src.unit != Weather.UNITS[name]:
                    problems.append(f"site {site.id!r}: weather.{name} names {ref.source!r} in {src.unit}; "
                                    f"it must be in {Weather.UNITS[name]}")
                if src.kind != "forecast":
                    problems.append(f"site {site.id!r}: weather.{name} names {ref.source!r} of kind history; "
                                    "weather sources must be kind: forecast (the file holds the day's forecast)")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    # convenience ---------------------------------------------------------------------------
    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.portfolio.timezone)

    def site_tariff(self, site: Site) -> Tariff:
        return site.tariff or self.tariff

    def assets(self) -> list[tuple[Site, AssetBase]]:
        return [(site, asset) for site in self.sites for asset in site.assets]


@on_asset_type_registered
def _rebuild_with_new_types() -> None:
    """A type registered after import (a plug-in) joins Site.assets; Portfolio embeds Site's schema, so both are
    rebuilt."""
    Site.model_fields["assets"].annotation = list[asset_union()]
    Site.model_rebuild(force=True)
    Portfolio.model_rebuild(force=True)
