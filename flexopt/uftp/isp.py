"""Imbalance settlement periods (ISPs): UFTP numbers the 15-minute periods of a local day from 1, so a day with a
DST change has 92 or 100 of them. Times are kept in UTC; the period and its number are what the messages carry."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

ISP_MIN = 15
ISP_DURATION = "PT15M"
ISP = dt.timedelta(minutes=ISP_MIN)


def day_start_utc(day: dt.date, tz: str) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(), tzinfo=ZoneInfo(tz)).astimezone(dt.UTC)


def isps_in_day(day: dt.date, tz: str) -> int:
    return int((day_start_utc(day + dt.timedelta(days=1), tz) - day_start_utc(day, tz)) / ISP)


def isp_start(day: dt.date, tz: str, number: int) -> dt.datetime:
    """UTC start of ISP ``number`` (1-based) of the local day; ValueError outside the day."""
    count = isps_in_day(day, tz)
    if not 1 <= number <= count:
        raise ValueError(f"ISP {number} is outside {day.isoformat()} ({count} ISPs in {tz})")
    return day_start_utc(day, tz) + (number - 1) * ISP


def isp_number(day: dt.date, tz: str, start_utc: dt.datetime) -> int:
    return int((start_utc.astimezone(dt.UTC) - day_start_utc(day, tz)) / ISP) + 1


def expand(isps, day: dt.date, tz: str) -> list[tuple[int, object]]:
    """Each ISP element (start, duration) as (number, element) for every ISP it covers."""
    out = []
    for element in isps:
        for k in range(int(element.duration or 1)):
            number = int(element.start) + k
            isp_start(day, tz, number)  # raises outside the day
            out.append((number, element))
    return out
