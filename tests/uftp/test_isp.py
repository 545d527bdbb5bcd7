"""UFTP numbers a local day's ISPs from 1: 92 on the day clocks go forward, 100 on the day they go back."""

from __future__ import annotations

import datetime as dt

import pytest

from flexopt.uftp.isp import isp_number, isp_start, isps_in_day


def test_isps_follow_the_local_day():
    assert isps_in_day(dt.date(2024, 6, 25), "Europe/Madrid") == 96
    assert isps_in_day(dt.date(2024, 3, 31), "Europe/Madrid") == 92
    assert isps_in_day(dt.date(2024, 10, 27), "Europe/Madrid") == 100
    first = isp_start(dt.date(2024, 6, 25), "Europe/Madrid", 1)
    assert first == dt.datetime(2024, 6, 24, 22, 0, tzinfo=dt.UTC)
    # after the autumn change, ISP 13 starts at 02:00 local the second time (01:00 UTC)
    assert isp_start(dt.date(2024, 10, 27), "Europe/Madrid", 13) == dt.datetime(2024, 10, 27, 1, 0, tzinfo=dt.UTC)
    assert isp_number(dt.date(2024, 10, 27), "Europe/Madrid", dt.datetime(2024, 10, 27, 1, 0, tzinfo=dt.UTC)) == 13
    with pytest.raises(ValueError, match="outside 2024-03-31"):
        isp_start(dt.date(2024, 3, 31), "Europe/Madrid", 93)
