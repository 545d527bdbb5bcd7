"""`flexopt uftp serve` as the operator runs it: a process listening on 127.0.0.1 that answers a DSO, refuses a
stranger, keeps the signing key out of its output, stops cleanly on SIGTERM, and says when its port is taken."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from shapeshifter_uftp.exceptions import ClientTransportException
from shapeshifter_uftp.uftp import TestMessage
from typer.testing import CliRunner
from uftp_peer import KEY_ENV, Dso, eventually, portfolio_dict

from flexopt.adapters.sim.util import free_port
from flexopt.cli import app
from flexopt.uftp.keys import new_key_pair
from flexopt.uftp.log import MessageLog


def _wait_listening(port: int, proc, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()[0]
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise AssertionError("flexopt uftp serve did not listen")


def test_serve_answers_refuses_and_stops(tmp_path):
    agr_private, agr_public = new_key_pair()
    dso_private, dso_public = new_key_pair()
    dso = Dso(dso_private, dso_public, agr_public, free_port()).start()
    path = tmp_path / "pf.yaml"
    path.write_text(yaml.safe_dump(portfolio_dict(dso.agr_port, dso, free_port())))
    store = tmp_path / "runs"
    env = {**os.environ, KEY_ENV: agr_private}
    flexopt = str(Path(sys.executable).parent / "flexopt")
    proc = subprocess.Popen([flexopt, "uftp", "serve", str(path), "--store", str(store)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        _wait_listening(dso.agr_port, proc)
        dso.client().send_test_message(TestMessage())
        dso.wait_for("TestMessageResponse", timeout_s=20)
        stranger, _ = new_key_pair()
        with pytest.raises(ClientTransportException, match="401"):
            dso.client(signing_key=stranger, domain="stranger.grid.test").send_test_message(TestMessage())
        res = CliRunner().invoke(app, ["uftp", "serve", str(path), "--store", str(store)], env=env)
        assert res.exit_code == 5 and "uftp.listen" in res.output  # the port is taken: by the service itself
    finally:
        proc.send_signal(signal.SIGTERM)
        output = proc.communicate(timeout=30)[0]
        dso.stop()
    assert proc.returncode == 0, output
    assert "listening on http://127.0.0.1" in output and "refused: unknown sender" in output
    assert agr_private not in output
    log = MessageLog(next(store.glob("*/uftp/messages.sqlite3")))
    try:
        statuses = eventually(lambda: sorted((e.direction, e.status) for e in log.entries()))
        assert ("in", "accepted") in statuses and ("in", "rejected") in statuses and ("out", "sent") in statuses
        assert all(agr_private not in e.signed_xml + e.payload_xml for e in log.entries())
    finally:
        log.close()
