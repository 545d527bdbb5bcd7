"""One EV charger connector behind flexopt's central system (see ocpp_central).

A setpoint is a charging ceiling; it goes out as a SetChargingProfile: TxProfile while a
transaction runs (it governs the session), TxDefaultProfile otherwise, or as ``Setpoint.profile``
says. Profiles carry the setpoint's periods. Charging only: negative limits are clamped to 0.

A TxProfile sent in the moment after a 1.6 transaction starts can reach a charger that has not yet read the
transaction id we assigned in our StartTransaction answer; it rejects it. Such a rejection within
``TX_START_GRACE_S`` of the start is sent once more when the grace has passed.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
import logging
import os
import time

from ocpp.exceptions import OCPPError

from flexopt.adapters.base import (
    AdapterContext,
    AdapterError,
    CommandResult,
    CommandStatus,
    DeviceAdapter,
    Setpoint,
    SetpointLimits,
    Telemetry,
    convert,
    utcnow,
)
from flexopt.adapters.ocpp_auth import auth_for
from flexopt.adapters.ocpp_central import CentralSystem, ConnectorState
from flexopt.adapters.ocpp_profiles import (
    ChargingProfileSpec,
    Purpose,
    clear_profile_call,
    fit_periods,
    limits_call,
    max_periods_of,
    set_profile_call,
)
from flexopt.config.endpoints import OcppEndpoint
from flexopt.config.redaction import register_secret

TX_START_GRACE_S = 2.0
log = logging.getLogger("flexopt.adapters.ocpp")


class OcppAdapter(DeviceAdapter):
    protocol = "ocpp"

    def __init__(
        self,
        asset_id: str,
        endpoint: OcppEndpoint,
        limits: SetpointLimits | None,
        central: CentralSystem,
        voltage_v: float = 230.0,
        phases: int = 3,
    ) -> None:
        # the limits query, the profile and its one repetition after the transaction's start
        super().__init__(asset_id, limits, call_timeout_s=3 * central.response_timeout_s + TX_START_GRACE_S + 2.0)
        self.endpoint = endpoint
        self.central = central
        self.voltage_v = voltage_v
        self.phases = phases
        self.register()

    @classmethod
    def for_endpoint(cls, asset_id: str, endpoint: OcppEndpoint, limits: SetpointLimits | None,
                     context: AdapterContext) -> OcppAdapter:
        """Chargers talk to the protocol's service, the central system; the asset's wiring turns kW into A."""
        if not isinstance(context.service, CentralSystem):
            raise ValueError(f"{asset_id}: an OCPP endpoint needs the CentralSystem (the ocpp service)")
        return cls(asset_id, endpoint, limits, context.service, voltage_v=getattr(context.asset, "voltage_v", 230.0),
                   phases=getattr(context.asset, "phases", 3))

    def register(self) -> None:
        """Tell the central system to expect this charger and how it authenticates. A password whose variable is
        not set refuses every client claiming the charger (never a placeholder anyone could send)."""
        e = self.endpoint
        auth = auth_for(e)
        self.auth_problem = auth.problem
        if auth.problem:
            self.last_error = f"charge point {e.charge_point_id} cannot connect: {auth.problem}"
        elif e.password_env:
            password = os.environ[e.password_env]
            register_secret(password, e.secret_bytes("password_env", password), (e.charge_point_id,))
        self.central.register(e.charge_point_id, auth)

    @property
    def cp_id(self) -> str:
        return self.endpoint.charge_point_id

    def _version(self) -> str:
        state = self.central.chargers.get(self.cp_id)
        return state.version if state is not None else self.endpoint.version

    def _require_connected(self) -> None:
        if not self.central.is_connected(self.cp_id):
            why = f" ({self.auth_problem})" if self.auth_problem else ""
            raise AdapterError("unreachable", f"charge point {self.cp_id} is not connected to the central system{why}")

    def _limit(self, value: float, unit: str) -> float:
        """A value in the limits' unit as a limit in the charger's rate unit (W or A)."""
        value = max(value, 0.0)
        rate = self.endpoint.charging_rate_unit
        if unit == "A":
            return value if rate == "A" else value * self.voltage_v * self.phases
        try:
            watts = convert(value, unit, "W")
        except ValueError as exc:
            raise AdapterError("invalid", f"a charging limit cannot be in {unit}") from exc
        return watts if rate == "W" else watts / (self.voltage_v * self.phases)

    def _connector(self) -> ConnectorState:
        return self.central.chargers[self.cp_id].connector(self.endpoint.connector_id)

    async def _max_periods(self) -> int | None:
        """How many periods the charger's schedules may have, asked once (GetConfiguration / GetVariables) and
        kept with its state; None when it cannot say (then profiles go out as they are)."""
        state = self.central.chargers[self.cp_id]
        if state.max_periods is not None or state.limits_asked:
            return state.max_periods
        state.limits_asked = True
        try:
            response = await self.central.call(self.cp_id, limits_call(self._version()))
        except (OCPPError, TimeoutError) as exc:
            log.info("%s: charger %s does not say how many profile periods it takes: %s", self.asset_id, self.cp_id,
                     getattr(exc, "code", type(exc).__name__))
            return None
        state.max_periods = max_periods_of(self._version(), response)
        self.central.save_state()
        return state.max_periods

    def _spec(self, command: Setpoint, max_periods: int | None = None) -> tuple[ChargingProfileSpec, str]:
        """The profile of a setpoint, fitted to the charger's period limit, and what the fitting did."""
        tx = self._connector().transaction_id
        purpose: Purpose
        if command.profile == "tx" or (command.profile == "auto" and tx is not None):
            if tx is None:
                raise AdapterError("invalid", "a TxProfile needs a running transaction")
            purpose = "TxProfile"
        else:
            purpose = "TxDefaultProfile"
        if command.periods:
            start = command.periods[0].start
            periods = tuple(
                (int((p.start - start).total_seconds()), self._limit(p.value, command.unit)) for p in command.periods
            )
        else:
            start = command.valid_from or utcnow()
            periods = ((0, self._limit(command.value, command.unit)),)
        if any(b[0] <= a[0] for a, b in itertools.pairwise(periods)):
            raise AdapterError("invalid", "profile periods must start in increasing order")
        duration = int((command.valid_until - start).total_seconds()) if command.valid_until else None
        periods, end_s, note = fit_periods(periods, max_periods)
        if end_s is not None:
            duration = end_s if duration is None else min(duration, end_s)
        validity = self.endpoint.profile_validity_s
        return ChargingProfileSpec(
            connector_id=self.endpoint.connector_id,
            purpose=purpose,
            start=start,
            periods=periods,
            rate_unit=self.endpoint.charging_rate_unit,
            duration_s=duration,
            transaction_id=tx if purpose == "TxProfile" else None,
            valid_to=utcnow() + dt.timedelta(seconds=validity) if validity else None,
        ), note

    async def _call(self, payload) -> str:
        try:
            response = await self.central.call(self.cp_id, payload)
        except OCPPError as exc:
            raise AdapterError("error", f"CallError {exc.code}: {exc.description}") from exc
        except TimeoutError as exc:
            waited = self.central.response_timeout_s
            raise AdapterError("timeout", f"no answer from {self.cp_id} in {waited:g} s") from exc
        return str(response.status)

    # --- DeviceAdapter --------------------------------------------------------------------------
    async def _connect(self) -> None:
        self.register()
        self._require_connected()

    async def _close(self) -> None:
        """Chargers connect to us; there is nothing to close per adapter."""

    async def _send(self, command: Setpoint) -> tuple[CommandStatus, str]:
        self._require_connected()
        spec, note = self._spec(command, await self._max_periods() if len(command.periods) > 1 else None)
        status = await self._call(set_profile_call(self._version(), spec))
        detail = f"{spec.purpose} {spec.periods[0][1]:g} {spec.rate_unit}" + (f" ({note})" if note else "")
        if status == "Rejected" and (wait_s := self._tx_grace_left(spec)) is not None:
            await asyncio.sleep(wait_s)
            status = await self._call(set_profile_call(self._version(), spec))
            detail += f" (sent again {wait_s:.1f} s later: rejected while the transaction was starting)"
        if status == "Accepted":
            return "confirmed", detail
        return "rejected", f"{detail}: charger answered {status}"

    def _tx_grace_left(self, spec: ChargingProfileSpec) -> float | None:
        """Seconds until the transaction of this TxProfile is TX_START_GRACE_S old; None when it already is."""
        if spec.purpose != "TxProfile":
            return None
        connector = self._connector()
        if connector.transaction_id != spec.transaction_id or connector.transaction_assigned_at is None:
            return None
        left = TX_START_GRACE_S - (time.monotonic() - connector.transaction_assigned_at)
        return left if left > 0 else None

    async def clear_profiles(self, purpose: Purpose | None = None) -> CommandResult:
        """ClearChargingProfile for this connector; the charger falls back to its own limits."""
        t0 = utcnow()
        try:
            self._require_connected()
            status = await self._call(clear_profile_call(self._version(), self.endpoint.connector_id, purpose))
            result: tuple[CommandStatus, str] = (
                ("confirmed", "") if status == "Accepted" else ("rejected", f"charger answered {status}")
            )
        except AdapterError as exc:
            result = (exc.status, exc.reason)
        except Exception as exc:
            result = ("error", f"{type(exc).__name__}: {exc}")
        return CommandResult(
            asset_id=self.asset_id,
            ok=result[0] == "confirmed",
            status=result[0],
            requested=float("nan"),
            sent=None,
            unit="",
            reason=result[1],
            latency_ms=(utcnow() - t0) / dt.timedelta(milliseconds=1),
        )

    async def _read(self) -> Telemetry:
        self._require_connected()
        state = self.central.chargers[self.cp_id]
        c = state.connector(self.endpoint.connector_id)
        r = c.readings
        power = r.get("power_w")
        if power is None and "current_a" in r and "voltage_v" in r:
            power = r["current_a"] * r["voltage_v"] * self.phases
        return Telemetry(
            asset_id=self.asset_id,
            at=utcnow(),
            connected=True,
            available=(c.status not in ("Unavailable", "Faulted")) if c.status else None,
            voltage_v=r.get("voltage_v"),
            active_power_kw=power / 1000.0 if power is not None else None,
            reactive_power_kvar=r["reactive_var"] / 1000.0 if "reactive_var" in r else None,
            soc_pct=r.get("soc_pct"),
            ev_plugged=c.plugged,
            ev_charging=c.charging,
            ev_energy_kwh=c.session_energy_wh / 1000.0 if c.session_energy_wh is not None else None,
            quality="good" if state.known else "questionable",
            notes="" if state.known else "connected but no BootNotification or other message yet",
            extra={"energy_register_kwh": r["energy_wh"] / 1000.0} if "energy_wh" in r else {},
        )
