"""The AGR service and a DSO participant for the UFTP tests (helpers in uftp_peer.py)."""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path
from types import SimpleNamespace
from zoneinfo import ZoneInfo

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).parent))

from uftp_peer import KEY_ENV, TZ, Dso, portfolio_dict

from flexopt.adapters.sim.util import free_port
from flexopt.runs.runner import RunRequest, run_schedule
from flexopt.uftp.context import AgrContext
from flexopt.uftp.keys import new_key_pair
from flexopt.uftp.service import AgrService


@pytest.fixture
def agr(tmp_path, monkeypatch):
    """flexopt's AGR service on a free port, a DSO on another, a day-ahead run of today in force."""
    agr_private, agr_public = new_key_pair()
    dso_private, dso_public = new_key_pair()
    monkeypatch.setenv(KEY_ENV, agr_private)
    monkeypatch.delenv("FLEXOPT_DB", raising=False)
    dso = Dso(dso_private, dso_public, agr_public, free_port()).start()
    path = tmp_path / "pf.yaml"
    data = portfolio_dict(dso.agr_port, dso, free_port())
    path.write_text(yaml.safe_dump(data))
    store = tmp_path / "runs"
    today = dt.datetime.now(dt.UTC).astimezone(ZoneInfo(TZ)).date()
    run_schedule(RunRequest(portfolio_path=path, kind="day-ahead", day=today, store=store))
    ctx = AgrContext(path, store)
    service = AgrService(ctx)
    service.run_in_thread()
    yield SimpleNamespace(ctx=ctx, service=service, dso=dso, path=path, store=store, today=today, data=data,
                          agr_private=agr_private, agr_public=agr_public)
    service.stop()
    dso.stop()
    ctx.close()




