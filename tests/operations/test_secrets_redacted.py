"""A device cloud that echoes the Authorization header in its error bodies (401, 422 and 500; as is, URL-encoded
and in base64) never gets the bearer token into anything ``flexopt dispatch`` writes: stdout, stderr (where its log
goes), the round records, ``rounds.csv`` and the telemetry database. The cloud is a plain ``http.server`` on
127.0.0.1; dispatch runs in its own process."""

from __future__ import annotations

import base64
import datetime as dt
import http.server
import importlib.util
import json
import os
import secrets
import sqlite3
import subprocess
import sys
import threading
import urllib.parse
from pathlib import Path

import pandas as pd
import yaml

from flexopt.adapters.sim.util import free_port

HERE = Path(__file__).resolve().parent
_spec = importlib.util.spec_from_file_location("dispatch_cli_helpers", HERE / "test_dispatch_cli.py")
ops_kit = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(ops_kit)
FLEXOPT = str(Path(sys.executable).with_name("flexopt"))
TOKEN = f"Zq7/{secrets.token_urlsafe(24)}+x=y"  # characters that URL-encoding changes


class EchoCloud(http.server.BaseHTTPRequestHandler):
    """Every request fails, echoing its Authorization header: 500 on GET (as is and in base64), 422 on POST
    (URL-encoded), 401 on PUT."""

    def _answer(self, status: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        header = self.headers.get("Authorization", "")
        self._answer(500, {"error": "backend down", "echo": {"Authorization": header},
                           "trace": base64.b64encode(header.encode()).decode()})

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        header = self.headers.get("Authorization", "")
        self._answer(422, {"error": f"bad value; request was authorization={urllib.parse.quote(header, safe='')}"})

    def do_PUT(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self._answer(401, {"error": "token rejected", "got": self.headers.get("Authorization", "")})

    def log_message(self, *args) -> None:
        pass


def cloud_asset(asset_id: str, base_url: str, method: str) -> dict:
    return {"id": asset_id, "type": "battery", "power_kw": 10, "energy_kwh": 20,
            "endpoint": {"protocol": "http", "base_url": base_url, "device_id": asset_id, "token_env": "ECHO_TOKEN",
                         "timeout_s": 2, "retries": 1, "backoff_s": 0.01,
                         "setpoint": {"method": method, "path": "/d/{device_id}", "body": {"kw": "{value}"}},
                         "telemetry": {"path": "/d/{device_id}", "fields": {"power_kw": "p"}}}}


def forbidden(token: str) -> list[str]:
    """Pieces of the token that must not appear anywhere: 12-character windows of the token as is and URL-encoded,
    and of the base64 of 'Bearer <token>' away from the bytes of 'Bearer ' (any such window reveals the token)."""
    pieces = set()
    for form in (token, urllib.parse.quote(token, safe=""), urllib.parse.quote_plus(token),
                 urllib.parse.quote(f"Bearer {token}", safe="")[len("Bearer%20"):]):
        pieces |= {form[i:i + 12] for i in range(len(form) - 11)}
    for prefix in ("", "Bearer ", "x:"):
        encoded = base64.b64encode(f"{prefix}{token}".encode()).decode()
        inner = encoded[4 * ((len(prefix) + 2) // 3):-4]
        pieces |= {inner[i:i + 12] for i in range(len(inner) - 11)}
    return sorted(pieces)


def test_a_token_echoed_by_a_cloud_is_written_nowhere(tmp_path):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), EchoCloud)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    base_url = f"http://127.0.0.1:{server.server_address[1]}"
    doc = {"portfolio": {"name": "echo", "timezone": "UTC", "resolution_min": 15},
           "tariff": {"import_price_eur_per_kwh": 0.2},
           "sites": [{"id": "s", "assets": [cloud_asset("b500", base_url, "POST"),
                                            cloud_asset("b401", base_url, "PUT")]}]}
    path = tmp_path / "pf.yaml"
    path.write_text(yaml.safe_dump(doc))
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    first = now.replace(minute=now.minute - now.minute % 15, second=0)
    rows = [{"interval_start": first + i * ops_kit.STEP, "interval_end": first + (i + 1) * ops_kit.STEP,
             "site_id": "s", "asset_id": a, "asset_type": "battery", "power_kw": -5.0, "baseline_kw": 0.0,
             "setpoint": -5.0, "setpoint_unit": "kW", "state": float("nan"), "state_unit": ""}
            for i in range(4) for a in ("b500", "b401")]
    frame = pd.DataFrame(rows)
    store = tmp_path / "runs"
    for day in {now.date(), (now + dt.timedelta(minutes=30)).date()}:
        ops_kit.write_run(store / "echo" / day.isoformat() / "day-ahead" / "v001", frame, day)
    try:
        proc = subprocess.run([FLEXOPT, "dispatch", str(path), "--store", str(store), "--every", "0.2",
                               "--duration", "1", "--settle-s", "0"], capture_output=True, text=True,
                              env=os.environ | {"ECHO_TOKEN": TOKEN}, timeout=120)
    finally:
        server.shutdown()
        thread.join(5)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    records = [json.loads(p.read_text()) for p in sorted(store.glob("echo/*/dispatch/[!.]*.json"))]
    assert records
    commands = {a: records[0]["assets"][a]["command"] for a in ("b500", "b401")}
    assert commands["b500"]["status"] == "rejected" and "HTTP 422" in commands["b500"]["reason"]
    assert "***" in commands["b500"]["reason"]  # the echo is kept, the token in it is not
    assert records[0]["assets"]["b500"]["telemetry"]["notes"].startswith("error: HTTP 500")
    assert commands["b401"]["status"] == "error" and "ECHO_TOKEN" in commands["b401"]["reason"]
    assert "WARNING" in proc.stderr or "setpoint" in proc.stderr  # the log did go to stderr
    database = store / "telemetry.sqlite3"
    with sqlite3.connect(database) as db:
        stored = db.execute("SELECT count(*) FROM readings WHERE notes LIKE 'error: HTTP 500%'").fetchone()[0]
        alarms = db.execute("SELECT group_concat(reason, ' | ') FROM alarms").fetchone()[0]
    assert stored >= 2 and "HTTP 422" in alarms
    written = {"stdout": proc.stdout, "stderr": proc.stderr}
    for file in store.rglob("*"):
        if file.is_file():
            written[str(file)] = file.read_bytes().decode("latin-1")
    assert any(name.endswith("rounds.csv") for name in written)
    assert any(name.endswith("telemetry.sqlite3") for name in written)
    leaks = [(name, piece) for piece in forbidden(TOKEN) for name, text in written.items() if piece in text]
    assert not leaks, leaks[:5]


def test_a_record_written_before_redaction_is_imported_redacted(tmp_path):
    """A round record that holds the token (written by a flexopt that did not redact) reaches the telemetry database
    through ``flexopt telemetry import`` without it."""
    token = f"old/{secrets.token_urlsafe(18)}"
    doc = {"portfolio": {"name": "echo", "timezone": "UTC"}, "tariff": {"import_price_eur_per_kwh": 0.2},
           "sites": [{"id": "s", "assets": [cloud_asset("b500", "http://127.0.0.1:9", "POST")]}]}
    path = tmp_path / "pf.yaml"
    path.write_text(yaml.safe_dump(doc))
    store = tmp_path / "runs"
    folder = store / "echo" / "2024-06-25" / "dispatch"
    folder.mkdir(parents=True)
    at = "2024-06-25T12:00:00Z"
    reason = f'HTTP 500: {{"echo": "Bearer {token}"}}'
    telemetry = {"asset_id": "b500", "at": at, "connected": False, "quality": "unreachable",
                 "notes": f"error: {reason}", "extra": {}}
    record = {"at": at, "interval_start": at, "summary": {"assets": 1, "alarms_critical": 1},
              "assets": {"b500": {"asset_type": "battery", "site_id": "s", "telemetry": telemetry,
                                  "command": {"status": "error", "reason": reason}}},
              "alarms": [{"severity": "critical", "asset_id": "b500", "kind": "error", "reason": reason, "at": at}]}
    (folder / "20240625T120000Z-1.json").write_text(json.dumps(record))
    proc = subprocess.run([FLEXOPT, "telemetry", "import", str(path), "--store", str(store), "--date", "2024-06-25"],
                          capture_output=True, text=True, env=os.environ | {"ECHO_TOKEN": token}, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    with sqlite3.connect(store / "telemetry.sqlite3") as db:
        notes, alarm = db.execute("SELECT r.notes, a.reason FROM readings r, alarms a").fetchone()
    assert notes == 'error: HTTP 500: {"echo": "Bearer ***"}' and alarm == 'HTTP 500: {"echo": "Bearer ***"}'
    stored = b"".join(f.read_bytes() for f in store.glob("telemetry.sqlite3*"))
    assert token.encode() not in stored and token not in proc.stdout + proc.stderr
