"""When a continuous dispatch starts an intraday re-optimisation itself: the devices have strayed from the
schedule for several rounds in a row, or the DSO's limits file changed; never twice within a minimum interval.

The decision only; the re-run is the caller's (the same function as ``flexopt schedule intraday``), and its
outcome goes into the round's record under ``reoptimisation``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class TriggerOptions:
    deviation_kw: float | None = None  # a round deviates when its total deviation is above this (None: never)
    after_rounds: int = 3  # consecutive deviating rounds before a re-run
    min_interval_min: float = 60.0  # at least this long between two re-runs
    dso_limits_file: Path | None = None  # a change of its content is a trigger


def round_deviation_kw(record: dict[str, Any]) -> float:
    """The round's total deviation: the sum over assets of how far each is off its schedule, counted as the
    deviation alarms count it (a charger drawing less than its ceiling, or a PV array feeding in less, is no
    deviation)."""
    total = 0.0
    for entry in record.get("assets", {}).values():
        value = entry.get("deviation_kw")
        if not isinstance(value, int | float) or not math.isfinite(value):
            continue
        kind = entry.get("setpoint_kind", "exact")
        total += max(0.0, {"import_ceiling": value, "export_ceiling": -value}.get(kind, abs(value)))
    return total


def file_digest(path: Path | None) -> str | None:
    """The SHA-256 of a file's content; None when there is no file or it cannot be read (then no change is seen
    until it can)."""
    if path is None:
        return None
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None


@dataclass
class Decision:
    """What a round's observation concluded: ``fire`` re-runs now; otherwise ``reasons`` say what is held back
    by the minimum interval (and until when)."""

    fire: bool
    reasons: list[str]
    held_until: dt.datetime | None = None

    def record(self) -> dict[str, Any]:
        out: dict[str, Any] = {"reasons": list(self.reasons), "fired": self.fire}
        if self.held_until is not None:
            out["held_until"] = self.held_until
        return out


@dataclass
class ReoptimisationTrigger:
    """Watches the rounds of one dispatch. ``observe`` each round, ``ran`` after each re-run it asked for."""

    options: TriggerOptions
    streak: int = 0
    last_run: dt.datetime | None = None
    _digest: str | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        if self.options.after_rounds < 1:
            raise ValueError("after_rounds must be at least 1")
        self._digest = file_digest(self.options.dso_limits_file)

    def observe(self, record: dict[str, Any], at: dt.datetime) -> Decision | None:
        """The decision after a round at ``at``: None when nothing calls for a re-run."""
        reasons = []
        threshold = self.options.deviation_kw
        if threshold is not None:
            deviation = round_deviation_kw(record)
            self.streak = self.streak + 1 if deviation > threshold else 0
            if self.streak >= self.options.after_rounds:
                reasons.append(f"deviation {deviation:.2f} kW above {threshold:g} kW for {self.streak} consecutive "
                               "rounds")
        digest = file_digest(self.options.dso_limits_file)
        if digest is not None and digest != self._digest:
            reasons.append(f"the DSO limits file {self.options.dso_limits_file} changed")
        if not reasons:
            return None
        interval = dt.timedelta(minutes=self.options.min_interval_min)
        if self.last_run is not None and at < self.last_run + interval:
            return Decision(False, reasons, held_until=self.last_run + interval)
        return Decision(True, reasons)

    def ran(self, at: dt.datetime, ok: bool) -> None:
        """A re-run was made at ``at``: the deviation count starts again; a DSO change is taken in only by a run
        that succeeded (a failed one is tried again after the minimum interval)."""
        self.last_run = at
        self.streak = 0
        if ok:
            self._digest = file_digest(self.options.dso_limits_file)
