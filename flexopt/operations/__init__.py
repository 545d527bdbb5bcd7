"""Operations: carry the stored schedule to the devices and keep the audit trail.

``schedules`` finds the run in force, ``units`` turns its rows into setpoints in each device's unit, ``round``
sends, settles, reads and compares, ``audit`` writes the round records, ``session`` holds what lives across
rounds (the OCPP central system, the adapters).
"""

from flexopt.operations.audit import append_summary, dispatch_folder, read_rounds, state_folder, write_round
from flexopt.operations.round import RoundOptions, deviation_alarm, run_round
from flexopt.operations.schedules import (
    ScheduleNotFound,
    ScheduleRun,
    find_schedule_run,
    load_schedule_run,
    parse_at,
    rows_at,
)
from flexopt.operations.session import DispatchSession, next_boundary
from flexopt.operations.units import build_setpoints, to_device_unit

__all__ = [
    "DispatchSession",
    "RoundOptions",
    "ScheduleNotFound",
    "ScheduleRun",
    "append_summary",
    "build_setpoints",
    "deviation_alarm",
    "dispatch_folder",
    "find_schedule_run",
    "load_schedule_run",
    "next_boundary",
    "parse_at",
    "read_rounds",
    "rows_at",
    "run_round",
    "state_folder",
    "to_device_unit",
    "write_round",
]
