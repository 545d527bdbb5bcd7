"""What the central system knows about its chargers, kept in a file of the store so that the next dispatch process
(cron's next ``dispatch --once``, a restarted service) starts where the last one stopped.

A charger does not send BootNotification again when it only reconnects, and it keeps its running transaction: a
central system that forgot both would mark it questionable every round, wait for a boot that never comes, hand out
1.6 transaction id 1 again and send TxProfiles to no transaction.

Several processes may share the file (two central systems of a store, a dispatch and the restart of a crashed one):
every read-modify-write holds a cross-process lock (``<file>.lock``, filelock), so neither loses the other's
updates nor hands out a 1.6 transaction id the other did. Written atomically (a temporary file renamed over the old
one), so a killed process leaves the previous state, never half of one. A damaged file (not JSON, not UTF-8, not the
shape below, a transaction id no charger could hold) never stops the central system: it is renamed aside with a
timestamp (``<file>.damaged-<UTC time>``, never deleted), the problem is reported naming both files, and the
central system starts without it.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import math
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

log = logging.getLogger("flexopt.adapters.ocpp")

STATE_FILE = "ocpp_central_state.json"
FORMAT = 1
LOCK_TIMEOUT_S = 10.0  # a read-modify-write takes milliseconds; longer is a process stuck holding the lock
MAX_BYTES = 32 << 20  # tens of thousands of chargers; more is not a state file
MAX_TRANSACTION_ID = 2**31 - 1  # OCPP 1.6 transactionId is an integer: what chargers store is 32 bits, signed
MAX_TEXT_ID = 36  # OCPP 2.0.1 transactionId: string[36]
VERSIONS = ("1.6", "2.0.1")
_CONNECTOR_FIELDS = ("status", "error_code", "transaction_id", "charging_state", "meter_start_wh",
                     "session_energy_wh", "readings")


def _time(value: dt.datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def dump_charger(s: Any) -> dict[str, Any]:
    """One charger's JSON-ready state: what it told us."""
    return {
        "version": s.version, "booted": s.booted, "vendor": s.vendor, "model": s.model,
        "last_seen": _time(s.last_seen), "max_periods": s.max_periods,
        "connectors": {str(k): {f: getattr(c, f) for f in _CONNECTOR_FIELDS} | {"updated_at": _time(c.updated_at)}
                       for k, c in s.connectors.items()},
    }


def dump(next_transaction_id: int, chargers: dict[str, Any]) -> dict[str, Any]:
    """The JSON-ready state: the next 1.6 transaction id and, per charger, what it told us."""
    return {"format": FORMAT, "next_transaction_id": next_transaction_id,
            "chargers": {cp_id: dump_charger(s) for cp_id, s in chargers.items()}}


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


def read(path: Path) -> tuple[dict[str, Any] | None, list[str]]:
    """(state, problems) under the lock: no file is (None, []); a damaged one is set aside and (None, [why]), and
    the central system starts empty rather than not at all."""
    problems: list[str] = []
    with _locked(path, problems):
        return _load(path, problems), problems


def update(path: Path, change: Callable[[dict[str, Any] | None], dict[str, Any]]) -> list[str]:
    """Read-modify-write under the lock: ``change`` gets the state in the file (None: none, or damaged and set
    aside) and returns the state to write. The problems, never raised."""
    problems: list[str] = []
    with _locked(path, problems):
        state = change(_load(path, problems))
        if (problem := write(path, state)) is not None:
            problems.append(problem)
    return problems


@contextlib.contextmanager
def _locked(path: Path, problems: list[str]) -> Iterator[None]:
    """Hold ``<file>.lock`` (flock, dropped by the kernel when a process dies). Not had within LOCK_TIMEOUT_S, or
    not creatable: go on without it and say so (a folder that cannot be made is reported by the read or write)."""
    from filelock import FileLock, Timeout

    lock = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        candidate = FileLock(str(path.with_name(path.name + ".lock")), timeout=LOCK_TIMEOUT_S)
        candidate.acquire()
        lock = candidate
    except Timeout:
        problems.append(f"the lock of the OCPP state file {path} was held for {LOCK_TIMEOUT_S:g} s by another "
                        "process; updating the file without it")
    except OSError as exc:
        if path.parent.is_dir():
            problems.append(f"cannot lock the OCPP state file {path} ({exc}); updating the file without it")
    try:
        yield
    finally:
        if lock is not None:
            lock.release()


def _load(path: Path, problems: list[str]) -> dict[str, Any] | None:
    try:
        with path.open("rb") as f:
            data = f.read(MAX_BYTES + 1)
    except FileNotFoundError:
        return None
    except OSError as exc:
        problems.append(f"cannot read the OCPP state file {path}: {exc}")
        return None
    try:
        if len(data) > MAX_BYTES:
            raise ValueError(f"larger than {MAX_BYTES >> 20} MiB")
        return check(json.loads(data.decode("utf-8")))
    except UnicodeDecodeError as exc:
        why = f"byte {exc.start} is not UTF-8"
    except RecursionError:
        why = "nested too deeply"
    except ValueError as exc:  # JSON syntax, and every check below
        why = str(exc)
    problems.append(f"OCPP state file {path} is damaged ({why}); {_set_aside(path)}; starting without it")
    return None


def _set_aside(path: Path) -> str:
    """Rename a damaged file next to itself with the UTC time (and a counter when that name is taken)."""
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S.%fZ")
    for k in range(100):
        aside = path.with_name(f"{path.name}.damaged-{stamp}" + (f"-{k}" if k else ""))
        if aside.exists():
            continue
        try:
            os.rename(path, aside)
        except OSError as exc:
            return f"it could not be renamed aside ({exc}) and is left as it is until the next write replaces it"
        return f"kept as {aside.name}"
    return "it is left as it is: 100 damaged files of this second are already kept"


# --- the shape of the file ------------------------------------------------------------------


def check(state: object) -> dict[str, Any]:
    """The state if every field has the type and range the central system writes; ValueError naming the first
    field that does not."""
    if not isinstance(state, dict):
        raise ValueError(f"a JSON {_kind(state)}, not an object")
    if state.get("format") != FORMAT:
        raise ValueError(f"format {state.get('format')!r}, expected {FORMAT}")
    if not _whole(state.get("next_transaction_id"), 1, MAX_TRANSACTION_ID):
        raise ValueError(f"next_transaction_id {_short(state.get('next_transaction_id'))} is not a whole number from "
                         f"1 to {MAX_TRANSACTION_ID}")
    chargers = state.get("chargers")
    if not isinstance(chargers, dict):
        raise ValueError(f"chargers is a JSON {_kind(chargers)}, not an object")
    for cp_id, charger in chargers.items():
        _check_charger(f"chargers.{_short(cp_id)}", charger)
    return state


def _check_charger(where: str, s: object) -> None:
    if not isinstance(s, dict):
        raise ValueError(f"{where} is a JSON {_kind(s)}, not an object")
    version = s.get("version", "1.6")
    _need(where, "version", version in VERSIONS, version, f"one of {', '.join(VERSIONS)}")
    _need(where, "booted", isinstance(s.get("booted", False), bool), s.get("booted"), "true or false")
    for key in ("vendor", "model"):
        _need(where, key, _text(s.get(key)), s.get(key), "text")
    _need(where, "last_seen", _stamp(s.get("last_seen")), s.get("last_seen"), "an ISO 8601 time with its offset")
    periods = s.get("max_periods")
    _need(where, "max_periods", periods is None or _whole(periods, 1, 10_000), periods, "a whole number, 1-10000")
    connectors = s.get("connectors", {})
    _need(where, "connectors", isinstance(connectors, dict), connectors, "an object")
    for k, c in connectors.items():
        _need(where, "connectors", k.isascii() and k.isdigit() and len(k) <= 4, k, "keyed by connector numbers")
        _check_connector(f"{where}.connectors.{k}", c, version)


def _check_connector(where: str, c: object, version: str) -> None:
    if not isinstance(c, dict):
        raise ValueError(f"{where} is a JSON {_kind(c)}, not an object")
    for key in ("status", "error_code", "charging_state"):
        _need(where, key, _text(c.get(key)), c.get(key), "text")
    for key in ("meter_start_wh", "session_energy_wh"):
        _need(where, key, c.get(key) is None or _number(c.get(key)), c.get(key), "a finite number")
    readings = c.get("readings") or {}
    _need(where, "readings", isinstance(readings, dict) and all(_number(v) for v in readings.values()), readings,
          "an object of finite numbers")
    _need(where, "updated_at", _stamp(c.get("updated_at")), c.get("updated_at"), "an ISO 8601 time with its offset")
    tx = c.get("transaction_id")
    what = (f"an OCPP 1.6 transaction id, a whole number from 0 to {MAX_TRANSACTION_ID}" if version == "1.6" else
            f"an OCPP 2.0.1 transaction id, text of 1 to {MAX_TEXT_ID} characters")
    _need(where, "transaction_id", tx is None or valid_transaction_id(version, tx), tx, what)


def valid_transaction_id(version: str, tx: object) -> bool:
    """Whether a charger's transaction id can be kept (and read back by the next process): 1.6 a whole number
    from 0 to 2^31-1, 2.0.1 text of 1 to 36 characters. A charger that reports another is not believed."""
    if version == "1.6":
        return _whole(tx, 0, MAX_TRANSACTION_ID)
    return isinstance(tx, str) and 0 < len(tx) <= MAX_TEXT_ID


def next_after(tx: int) -> int:
    """The 1.6 transaction id after ``tx``: after 2^31-1 (what a charger stores in 32 signed bits) it starts at 1
    again, long after any charger forgot the old one."""
    return 1 if tx >= MAX_TRANSACTION_ID else tx + 1


def _need(where: str, key: str, ok: bool, value: object, what: str) -> None:
    if not ok:
        raise ValueError(f"{where}.{key} {_short(value)} is not {what}")


def _whole(v: object, lo: int, hi: int) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and lo <= v <= hi


def _number(v: object) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def _text(v: object) -> bool:
    return v is None or (isinstance(v, str) and len(v) <= 1000)


def _stamp(v: object) -> bool:
    if v is None:
        return True
    if not isinstance(v, str) or len(v) > 64:
        return False
    try:
        return dt.datetime.fromisoformat(v).tzinfo is not None
    except ValueError:
        return False


def _kind(v: object) -> str:
    return {dict: "object", list: "array", str: "string", bool: "boolean", type(None): "null"}.get(
        type(v), "number")


def _short(v: object) -> str:
    text = repr(v)
    return text if len(text) <= 60 else text[:57] + "..."


# --- back into the central system's state ---------------------------------------------------


def parse_time(value: str | None) -> dt.datetime | None:
    return dt.datetime.fromisoformat(value) if value else None


KEPT_READINGS = ("energy_wh",)  # a register; power, current and voltage of an earlier process are not now's


def connector_fields(saved: dict[str, Any]) -> dict[str, Any]:
    """The connector fields of a saved connector, times parsed; of its readings only the energy register."""
    fields = {f: saved.get(f) for f in _CONNECTOR_FIELDS}
    fields["readings"] = {k: float(v) for k, v in (fields["readings"] or {}).items() if k in KEPT_READINGS}
    fields["updated_at"] = parse_time(saved.get("updated_at"))
    return fields
