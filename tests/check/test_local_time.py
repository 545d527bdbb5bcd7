"""Daily local-time patterns on DST days, written from their definitions (flexopt/check/local_time.py)."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from flexopt.check.local_time import LocalClock, instant_intervals, local_instant, session_visits, window_mask

TZ = "Europe/Madrid"


def clock(day: str) -> LocalClock:
    """The quarter-hours of one local day (23, 24 or 25 h) between its two local midnights."""
    start = pd.Timestamp(day).tz_localize(TZ).tz_convert("UTC")
    end = (pd.Timestamp(day) + pd.Timedelta(days=1)).tz_localize(TZ).tz_convert("UTC")
    index = pd.date_range(start, end, freq="15min", inclusive="left")
    return LocalClock.of(index, index + pd.Timedelta(minutes=15), TZ)


@pytest.mark.parametrize(("day", "intervals", "night"), [("2024-03-31", 92, 24), ("2024-06-25", 96, 28),
                                                         ("2024-10-27", 100, 32)])
def test_a_night_session_covers_the_hours_the_clock_shows(day, intervals, night):
    """00:00-07:00 is 6 h on the spring-forward day and 8 h on the fall-back day."""
    c = clock(day)
    assert c.index.size == intervals
    (visit_day, idx), = session_visits(c, dt.time(0), dt.time(7))
    assert visit_day == dt.date.fromisoformat(day)
    assert idx.size == night and idx[0] == 0
    assert c.ends[idx[-1]] == local_instant(visit_day, dt.time(7), TZ)


def test_the_last_interval_of_a_day_ends_at_24_00():
    c = clock("2024-10-27")
    (_, idx), = session_visits(c, dt.time(22), dt.time(23, 59))
    assert idx.size == 7  # 22:00-23:45; the interval ending at midnight does not end before 23:59
    assert c.end_min[-1] == 1440


def test_a_draw_in_the_repeated_hour_happens_once_and_in_the_skipped_hour_after_the_jump():
    fall = clock("2024-10-27")
    (t,) = instant_intervals(fall, dt.time(2, 30))
    assert fall.index[t] == pd.Timestamp("2024-10-27T00:30Z")  # 02:30 CEST, the first of the two 02:30s
    spring = clock("2024-03-31")
    (t,) = instant_intervals(spring, dt.time(2, 30))
    assert spring.index[t].tz_convert(TZ).strftime("%H:%M") == "03:00"


def test_a_comfort_window_over_midnight_and_windows_by_interval_start():
    c = clock("2024-06-25")
    night = window_mask(c, dt.time(22), dt.time(6))
    assert night.sum() == 32 and night[0] and night[-1] and not night[24]
    morning = window_mask(c, dt.time(7, 10), dt.time(8))
    assert morning.sum() == 3  # 07:15, 07:30, 07:45 start inside; 07:00 starts before 07:10
