"""A wall-clock time of a time zone as one instant: the night the clocks go back a time happens twice and the night
they go forward some times never happen; a time typed by an operator is then refused with the forms that say
which instant is meant, never taken as one of them silently."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo


def wall_clock_instant(naive: dt.datetime, zone: ZoneInfo, text: str) -> dt.datetime:
    """A wall-clock time in ``zone`` that happens exactly once; ValueError asking for the offset on the night the
    clocks go back (it happens twice) and for another time on the night they go forward (it never happens)."""
    first, second = naive.replace(tzinfo=zone, fold=0), naive.replace(tzinfo=zone, fold=1)
    if first.utcoffset() == second.utcoffset():
        return first
    plain = naive.isoformat(timespec="minutes")
    if _exists(naive, zone):  # the clocks go back: it happens twice
        raise ValueError(f"{text!r} happens twice in {zone.key} (the clocks go back that night): add the UTC offset, "
                         f"{plain}{_offset(first)} for the first ({first.tzname()}) or {plain}{_offset(second)} for "
                         f"the second ({second.tzname()})")
    gap_start = naive
    while not _exists(gap_start - dt.timedelta(minutes=1), zone):
        gap_start -= dt.timedelta(minutes=1)
    gap_end = gap_start + abs(second.utcoffset() - first.utcoffset())  # type: ignore[operator]
    meant = first.astimezone(dt.UTC).astimezone(zone)
    raise ValueError(f"{text!r} does not exist in {zone.key} (the clocks go forward that night from "
                     f"{gap_start:%H:%M} to {gap_end:%H:%M}): give a time that exists, e.g. "
                     f"{gap_end.isoformat(timespec='minutes')}, or the UTC offset you mean, e.g. "
                     f"{plain}{_offset(first)} (= {meant:%H:%M} {meant.tzname()})")


def _exists(naive: dt.datetime, zone: ZoneInfo) -> bool:
    """Whether the wall clock in ``zone`` shows ``naive`` at some instant (not in a forward jump's gap)."""
    return naive.replace(tzinfo=zone).astimezone(dt.UTC).astimezone(zone).replace(tzinfo=None) == naive


def _offset(t: dt.datetime) -> str:
    return t.isoformat()[-6:]
