"""What the central system knows about its chargers, kept in a file of the store so that the next dispatch process
(cron's next ``dispatch --once``, a restarted service) starts where the last one stopped.

A charger does not send BootNotification again when it only reconnects, and it keeps its running transaction: a
central system that forgot both would mark it questionable every round, wait for a boot that never comes, hand out
1.6 transaction id 1 again and send TxProfiles to no transaction. Written atomically (a temporary file renamed over
the old one), so a killed process leaves the previous state, never half of one.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Any

log = logging.getLogger("flexopt.adapters.ocpp")

STATE_FILE = "ocpp_central_state.json"
FORMAT = 1
_CONNECTOR_FIELDS = ("status", "error_code", "transaction_id", "charging_state", "meter_start_wh",
                     "session_energy_wh", "readings")


def _time(value: dt.datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def dump(next_transaction_id: int, chargers: dict[str, Any]) -> dict[str, Any]:
    """The JSON-ready state: the next 1.6 transaction id and, per charger, what it told us."""
    return {
        "format": FORMAT,
        "next_transaction_id": next_transaction_id,
        "chargers": {
            cp_id: {
                "version": s.version, "booted": s.booted, "vendor": s.vendor, "model": s.model,
                "last_seen": _time(s.last_seen), "max_periods": s.max_periods,
                "connectors": {str(k): {f: getattr(c, f) for f in _CONNECTOR_FIELDS} | {"updated_at": _time(
                    c.updated_at)} for k, c in s.connectors.items()},
            }
            for cp_id, s in chargers.items()
        },
    }


def write(path: Path, state: dict[str, Any]) -> str | None:
    """Replace the file atomically; the problem as text (never raising: a full disk is an alarm, not a crash)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(state, f, indent=1, sort_keys=True)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
    except OSError as exc:
        return f"cannot write the OCPP state file {path}: {exc}"
    return None


def read(path: Path) -> tuple[dict[str, Any] | None, str | None]:
    """(state, problem): no file is (None, None); an unreadable one is (None, why), and the central system starts
    empty rather than not at all."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None, None
    except OSError as exc:
        return None, f"cannot read the OCPP state file {path}: {exc}"
    try:
        state = json.loads(text)
        if not isinstance(state, dict) or state.get("format") != FORMAT:
            raise ValueError(f"format {state.get('format') if isinstance(state, dict) else '?'}, expected {FORMAT}")
        int(state["next_transaction_id"])
        if not isinstance(state["chargers"], dict):
            raise ValueError("'chargers' is not a mapping")
    except (ValueError, KeyError, TypeError) as exc:
        return None, f"OCPP state file {path} is unusable ({exc}); starting without it: delete or fix it"
    return state, None


def parse_time(value: str | None) -> dt.datetime | None:
    return dt.datetime.fromisoformat(value) if value else None


KEPT_READINGS = ("energy_wh",)  # a register; power, current and voltage of an earlier process are not now's


def connector_fields(saved: dict[str, Any]) -> dict[str, Any]:
    """The connector fields of a saved connector, times parsed; of its readings only the energy register."""
    fields = {f: saved.get(f) for f in _CONNECTOR_FIELDS}
    fields["readings"] = {k: float(v) for k, v in (fields["readings"] or {}).items() if k in KEPT_READINGS}
    fields["updated_at"] = parse_time(saved.get("updated_at"))
    return fields
