"""The schedule's ``setpoint`` column holds what each device will be sent, in the unit its endpoint takes.

The formulations express setpoints as power; a thermostat behind a BMS or a vendor cloud takes a temperature.
For those, the setpoint is the indoor (or tank) temperature the schedule expects at the interval's end, which the
device's own controller then reaches with the power the schedule planned.
"""

from __future__ import annotations

from dataclasses import replace

from flexopt.config.endpoints import setpoint_unit
from flexopt.models.base import AssetSchedule


def device_setpoint(asset, schedule: AssetSchedule) -> AssetSchedule:
    if asset.endpoint is None:
        return schedule
    if setpoint_unit(asset.endpoint) == "degC" and schedule.state_unit == "degC":
        return replace(schedule, setpoint=schedule.state.copy(), setpoint_unit="degC")
    return schedule
