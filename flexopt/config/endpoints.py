"""Device endpoints of the built-in protocols (IEC 104, Modbus TCP, OCPP, HTTP clouds), each registered once as a
:class:`~flexopt.config.protocols.Protocol` with its adapter and simulator, and the rules every protocol shares:
the devices of a counted asset and the addresses two devices must not share.

Secrets never live in the portfolio: fields ending in ``_env`` name environment variables.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from flexopt.config.protocols import Endpoint, EndpointBase, Protocol, protocol_of, register
from flexopt.config.quantities import Yaml11Number, integer, number

__all__ = ["Endpoint", "HttpEndpoint", "HttpRequestSpec", "Iec104Endpoint", "Iec104Points", "ModbusEndpoint",
           "ModbusRegister", "OcppCentralSystem", "OcppEndpoint", "address_clashes", "address_problems",
           "device_address", "device_endpoints", "device_label", "endpoint_problems", "endpoint_warnings",
           "setpoint_unit"]

# Field types with their ranges (strict: never bool or text, always finite).
Ioa = integer(1, 16_777_215)
Port = integer(1, 65535)
CommonAddress = integer(1, 65534)
TimeoutMs = integer(100, 60_000)
RegisterAddress = integer(0, 65535)
UnitId = integer(0, 255)
ConnectorId = integer(0, 1000)
Retries = integer(0, 10)
RegisterScale = number(-1e6, 1e6, nonzero=True)
RegisterOffset = number(-1e9, 1e9)
ModbusTimeoutS = number(0, 60, "s", lo_open=True)
HttpTimeoutS = number(0, 120, "s", lo_open=True)
CentralTimeoutS = number(0, 300, "s", lo_open=True)
SecurityProfile = integer(0, 3)
RevertS = number(1, 86400, "s")
MeasuredScale = number(-1e6, 1e6, nonzero=True)
PercentOfKw = number(0, 1e6, "kW", lo_open=True)
ProfileValidityS = number(60, 7 * 86400, "s")
BackoffS = number(0, 60, "s")
RetryAfterS = number(0, 600, "s")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# --- IEC 60870-5-104 -------------------------------------------------------------------------


class Iec104Points(_Strict):
    """Information object addresses (IOA) of one asset at its RTU."""

    setpoint_ioa: Ioa = Field(description="C_SE_NC_1 active-power setpoint (kW)")
    active_power_ioa: Ioa = Field(description="M_ME_NC_1 active power P (kW)")
    reactive_power_ioa: Ioa | None = Field(default=None, description="Q (kvar)")
    voltage_ioa: Ioa | None = Field(default=None, description="V (V)")
    soc_ioa: Ioa | None = Field(default=None, description="state of charge (%)")
    availability_ioa: Ioa | None = Field(default=None, description="M_SP_NA_1, on = available")


MeasuredQuantity = Literal["active_power", "reactive_power", "voltage", "soc"]


class Iec104Endpoint(EndpointBase):
    protocol: Literal["iec104"]
    host: str
    port: Port = 2404
    common_address: CommonAddress = 1
    points: Iec104Points
    command_timeout_ms: TimeoutMs = 2000
    measured_type: Literal["short_float", "scaled"] = Field(
        default="short_float", description="how the RTU sends P, Q, V and SoC: short_float (M_ME_NC_1) or scaled "
        "(M_ME_NB_1, a 16-bit integer; physical = raw x measured_scale)")
    measured_scale: dict[MeasuredQuantity, MeasuredScale] = Field(
        default_factory=dict, description="scaled values: the physical value of one raw step per quantity, e.g. "
        "{active_power: 0.1} for P in 0.1 kW (default 1)")
    point_types: dict[MeasuredQuantity, Literal["short_float", "scaled"]] = Field(
        default_factory=dict, description="the type of single quantities where it differs from measured_type, e.g. "
        "{soc: short_float} for an RTU that sends P scaled and SoC as a float")

    @model_validator(mode="after")
    def _scale_only_for_scaled(self) -> Iec104Endpoint:
        floats = [q for q in self.measured_scale if self.type_of(q) != "scaled"]
        if floats:
            raise ValueError(f"measured_scale of {', '.join(floats)}: that quantity is a short float (M_ME_NC_1), "
                             "which carries its value; scale only scaled quantities (measured_type / point_types: "
                             "scaled)")
        return self

    def type_of(self, quantity: str) -> str:
        """short_float or scaled: how the RTU sends this quantity."""
        return self.point_types.get(quantity, self.measured_type)  # type: ignore[call-overload]

    def scale_of(self, quantity: str) -> float:
        """Physical value per raw step of a scaled quantity (1 when not given; 1 for short floats)."""
        if self.type_of(quantity) != "scaled":
            return 1.0
        return float(self.measured_scale.get(quantity, 1.0))  # type: ignore[call-overload]

    def device(self, k: int) -> Iec104Endpoint:
        """Station ``common_address + k - 1`` at the same RTU."""
        return self.model_copy(update={"common_address": self.common_address + k - 1})

    def address(self) -> tuple:
        return (self.host, self.port, self.common_address)

    def label(self) -> str:
        return f"CA {self.common_address}"

    def address_problem(self) -> str | None:
        return f"IEC 104 station {self.common_address} (max 65534)" if self.common_address > 65534 else None


# --- Modbus TCP ------------------------------------------------------------------------------

ModbusDataType = Literal["int16", "uint16", "int32", "uint32", "float32"]


class ModbusRegister(_Strict):
    """One value in a holding/input register map: physical = raw * scale + offset."""

    address: RegisterAddress
    data_type: ModbusDataType = "int16"
    scale: RegisterScale = 1.0
    offset: RegisterOffset = 0.0
    table: Literal["holding", "input", "coil", "discrete"] = "holding"
    word_order: Literal["big", "little"] = "big"
    unit: str = Field(default="", description="physical unit after scaling, e.g. kW, W, degC, %")
    percent_of_kw: PercentOfKw | None = Field(
        default=None, description="for a register in %: the kW that 100 % stands for (a PV inverter's rated "
        "power), so a kW schedule drives a % limit register")
    power_sign: Literal["load", "generator"] = Field(
        default="load", description="generator: the device counts power fed in as positive; flexopt negates this "
        "register's value both ways (flexopt's load convention: positive = drawn from the grid)")

    @model_validator(mode="after")
    def _percent_needs_its_base(self) -> ModbusRegister:
        if self.percent_of_kw is not None and self.unit != "%":
            raise ValueError(f"percent_of_kw is for a register in %, this one is in {self.unit or 'no unit'!r}: "
                             "set unit: \"%\" or remove percent_of_kw")
        return self


class ModbusEndpoint(EndpointBase):
    protocol: Literal["modbus"]
    host: str
    port: Port = 502
    device_id: UnitId = Field(default=1, description="Modbus unit id")
    timeout_s: ModbusTimeoutS = 1.0
    registers: dict[str, ModbusRegister] = Field(
        description="named points: setpoint, active_power, reactive_power, voltage, soc, temperature, "
        "availability, setpoint_revert, ...",
    )
    setpoint_revert_s: RevertS | None = Field(
        default=None, description="failsafe: written to the 'setpoint_revert' register with every setpoint (a "
        "revert timeout such as SunSpec WMaxLimPct_RvrtTms): the device returns to its own default when no new "
        "setpoint comes within it, e.g. when flexopt stops. Longer than the dispatch interval")

    @model_validator(mode="after")
    def _revert_register_and_time(self) -> ModbusEndpoint:
        has_register = "setpoint_revert" in self.registers
        if self.setpoint_revert_s is not None and not has_register:
            raise ValueError("setpoint_revert_s needs a register named setpoint_revert (where the device takes its "
                             "revert timeout)")
        if has_register and self.setpoint_revert_s is None:
            raise ValueError("registers.setpoint_revert needs setpoint_revert_s (the timeout to write to it)")
        if has_register and self.registers["setpoint_revert"].table not in ("holding", "coil"):
            raise ValueError("registers.setpoint_revert must be writable: a holding register")
        return self

    @model_validator(mode="after")
    def _setpoint_in_percent_has_a_base(self) -> ModbusEndpoint:
        reg = self.registers.get("setpoint")
        if reg is not None and reg.unit == "%" and reg.percent_of_kw is None:
            raise ValueError("registers.setpoint is in %: give percent_of_kw (the kW that 100 % stands for, e.g. the "
                             "inverter's rated power) so the kW schedule can be written to it")
        return self

    def device(self, k: int) -> ModbusEndpoint:
        """Unit ``device_id + k - 1`` behind the same gateway."""
        return self.model_copy(update={"device_id": self.device_id + k - 1})

    def address(self) -> tuple:
        return (self.host, self.port, self.device_id)

    def label(self) -> str:
        return f"unit {self.device_id}"

    def address_problem(self) -> str | None:
        return f"Modbus unit {self.device_id} (max 247)" if self.device_id > 247 else None

    def device_unit(self) -> str:
        """A coil is on/off; a register says its unit (degC thermostats, A chargers), else kW."""
        reg = self.registers.get("setpoint")
        if reg is None:
            return "kW"
        if reg.table == "coil":
            return "on_off"
        return reg.unit if reg.unit in ("degC", "on_off", "A") else "kW"


# --- OCPP ------------------------------------------------------------------------------------


class OcppEndpoint(EndpointBase):
    """A charge point connecting to flexopt's central system (flexopt is the CSMS). It must authenticate (an
    impostor claiming its id would get its charging profiles) unless ``security_profile: 0`` says otherwise."""

    protocol: Literal["ocpp"]
    charge_point_id: str = Field(min_length=1)
    version: Literal["1.6", "2.0.1"] = "1.6"
    connector_id: ConnectorId = Field(default=1, description="1.6 connector / 2.0.1 EVSE id")
    security_profile: SecurityProfile | None = Field(
        default=None, description="OCPP security profile: 0 none (any client claiming the id is accepted), 1 HTTP "
        "Basic, 2 TLS + HTTP Basic, 3 TLS client certificate; default 1 with password_env")
    password_env: str | None = Field(
        default=None, description="environment variable holding the HTTP Basic password (security profiles 1, 2)"
    )
    secret_encoding: Literal["utf-8", "hex"] = Field(
        default="utf-8", description="hex: the variable holds the password's bytes hex-encoded (an OCPP 1.6 "
        "AuthorizationKey of 20 raw bytes)")
    charging_rate_unit: Literal["W", "A"] = "W"
    profile_validity_s: ProfileValidityS | None = Field(
        default=None, description="failsafe: each charging profile is valid until this long after it is sent "
        "(validTo); when flexopt stops sending, the charger falls back to its own limits. Longer than the "
        "dispatch interval, e.g. 2 intervals")

    @field_validator("charge_point_id")
    @classmethod
    def _one_path_segment(cls, cp_id: str) -> str:
        if "/" in cp_id or not cp_id.isprintable():
            raise ValueError(f"{cp_id!r}: a charge point id is the last segment of its URL: no '/' or control "
                             "characters")
        return cp_id

    @model_validator(mode="after")
    def _authenticates(self) -> OcppEndpoint:
        profile, pw = self.security_profile, self.password_env
        if profile is None and not pw:
            raise ValueError(f"charge point {self.charge_point_id} would accept any client that claims its id: give "
                             "password_env (HTTP Basic, security profile 1 or 2), security_profile: 3 (a TLS client "
                             "certificate), or security_profile: 0 to accept it without authentication")
        if profile == 0 and pw:
            raise ValueError("security_profile 0 is no authentication: remove password_env, or use profile 1 or 2")
        if profile in (1, 2) and not pw:
            raise ValueError(f"security_profile {profile} is HTTP Basic: give password_env")
        return self

    @property
    def effective_security_profile(self) -> int:
        return 1 if self.security_profile is None else self.security_profile

    def secret_users(self) -> tuple[str, ...]:
        return (self.charge_point_id,)

    def secret_bytes(self, field: str, value: str) -> bytes | None:
        if field == "password_env" and self.secret_encoding == "hex":
            try:
                return bytes.fromhex(value)
            except ValueError:
                return None
        return None

    def secret_problem(self, field: str, value: str) -> str | None:
        if field == "password_env" and self.secret_encoding == "hex" and self.secret_bytes(field, value) is None:
            return "is not hex (secret_encoding: hex)"
        return None

    def device(self, k: int) -> OcppEndpoint:
        """Charge point ``<charge_point_id>-<k>``."""
        return self.model_copy(update={"charge_point_id": f"{self.charge_point_id}-{k}"})

    def address(self) -> tuple:
        return (self.charge_point_id, self.connector_id)

    def label(self) -> str:
        return self.charge_point_id


# --- HTTP device clouds ----------------------------------------------------------------------


class HttpRequestSpec(_Strict):
    """One call of a vendor API; ``{name}`` placeholders are filled from the setpoint and device."""

    method: Literal["GET", "POST", "PUT", "PATCH"] = "GET"
    path: str
    body: dict | None = Field(default=None, description="JSON body template, placeholders like {value}")
    fields: dict[str, str] = Field(
        default_factory=dict,
        description="telemetry name -> dotted path in the JSON response (e.g. power_kw: data.power)",
    )

    @field_validator("body")
    @classmethod
    def _string_keys(cls, body: dict | None) -> dict | None:
        def check(node: object) -> None:
            if isinstance(node, Yaml11Number):
                raise ValueError(f"{node.text} is read by YAML 1.1 as the number {node.value:g}; quote it "
                                 f"(\"{node.text}\") or write the number in decimal")
            if isinstance(node, dict):
                for key, value in node.items():
                    if not isinstance(key, str):
                        raise ValueError(
                            f"key {key!r} is not text: YAML reads unquoted on/off/yes/no as true/false; "
                            "quote the key, e.g. \"on\": ...")
                    check(value)
            elif isinstance(node, list):
                for value in node:
                    check(value)

        check(body)
        return body


class HttpEndpoint(EndpointBase):
    protocol: Literal["http"]
    base_url: str
    device_id: str = Field(min_length=1, description="the vendor's id of the device")
    token_env: str | None = Field(default=None, description="environment variable holding the bearer token")
    timeout_s: HttpTimeoutS = 5.0
    retries: Retries = 2
    backoff_s: BackoffS = Field(default=0.5, description="first retry delay; doubles each retry")
    max_retry_after_s: RetryAfterS = Field(
        default=30.0, description="longest 429 Retry-After wait honoured; longer waits fail"
    )
    setpoint: HttpRequestSpec
    telemetry: HttpRequestSpec
    setpoint_unit: Literal["kW", "W", "degC", "on_off", "A"] = "kW"

    def device(self, k: int) -> HttpEndpoint:
        """Cloud device ``<device_id>-<k>``."""
        return self.model_copy(update={"device_id": f"{self.device_id}-{k}"})

    def address(self) -> tuple:
        return (self.base_url.rstrip("/"), self.device_id)

    def label(self) -> str:
        return self.device_id

    def device_unit(self) -> str:
        return {"W": "kW"}.get(self.setpoint_unit, self.setpoint_unit)


class OcppCentralSystem(_Strict):
    """Where flexopt's OCPP central system listens; charge points connect here as ws://host:port<path><id>."""

    host: str = "127.0.0.1"
    port: Port = 9000
    path: str = Field(default="/", description="URL path before the charge point id, e.g. /ocpp/ (starts and ends "
                      "with /); a charger connecting at any other path is refused")
    tls_cert_file: str | None = Field(default=None, description="PEM certificate; with tls_key_file enables wss://")
    tls_key_file: str | None = None
    tls_client_ca_file: str | None = Field(
        default=None, description="PEM CA certificates that sign the chargers' client certificates (security "
        "profile 3); needs tls_cert_file")
    response_timeout_s: CentralTimeoutS = 10.0

    @field_validator("path")
    @classmethod
    def _slashes(cls, path: str) -> str:
        if not (path.startswith("/") and path.endswith("/")) or "?" in path or "#" in path:
            raise ValueError(f"{path!r}: a URL path that starts and ends with / (e.g. /ocpp/)")
        return path

    @model_validator(mode="after")
    def _client_ca_needs_tls(self) -> OcppCentralSystem:
        if self.tls_client_ca_file and not self.tls_cert_file:
            raise ValueError("tls_client_ca_file needs tls_cert_file (client certificates are part of TLS)")
        return self


# --- the built-in protocols, registered like any plug-in ----------------------------------------

_ADAPTERS = "flexopt.adapters"
register(Protocol("iec104", Iec104Endpoint, adapter=f"{_ADAPTERS}.iec104_adapter:Iec104Adapter",
                  simulator=f"{_ADAPTERS}.sim.bess_rtu:Iec104Simulator"))
register(Protocol("modbus", ModbusEndpoint, adapter=f"{_ADAPTERS}.modbus_adapter:ModbusAdapter",
                  simulator=f"{_ADAPTERS}.sim.bms:ModbusSimulator"))
register(Protocol("ocpp", OcppEndpoint, adapter=f"{_ADAPTERS}.ocpp_adapter:OcppAdapter",
                  simulator=f"{_ADAPTERS}.sim.charge_point:OcppSimulator",
                  service=f"{_ADAPTERS}.ocpp_central:CentralSystem.for_portfolio", stores_profiles=True))
register(Protocol("http", HttpEndpoint, adapter=f"{_ADAPTERS}.http_adapter:HttpAdapter",
                  simulator=f"{_ADAPTERS}.sim.device_cloud:HttpSimulator"))


# --- rules every protocol shares ---------------------------------------------------------------


def device_endpoints(endpoint: Any, count: int) -> list[Any]:
    """The endpoint of each of an asset's ``count`` identical devices: the endpoint as written for one device,
    else each device at its own address (``EndpointBase.device``: charge point ``<id>-<k>``, cloud device
    ``<device_id>-<k>``, Modbus unit ``device_id + k - 1``, IEC 104 station ``common_address + k - 1``).
    Simulators and dispatch both use this rule."""
    protocol_of(endpoint)  # an unknown protocol is an error here, never another protocol's rule
    if count == 1:
        return [endpoint]
    return [endpoint.device(k) for k in range(1, count + 1)]


def device_label(endpoint: Any) -> str:
    """How an operator finds one device: charge point id, cloud device id, Modbus unit or IEC 104 station."""
    protocol_of(endpoint)
    return endpoint.label()


def device_address(endpoint: Any) -> tuple:
    """What must be unique per device across a portfolio (two devices at one address get each other's commands):
    the protocol's name and the endpoint's own address."""
    return (protocol_of(endpoint).name, *endpoint.address())


def address_clashes(portfolio: Any) -> list[tuple[str, str]]:
    """(asset id, problem) for devices of different assets (after expanding ``count``) at one address, and
    expanded addresses out of the protocol's range: two devices at one address get each other's commands."""
    seen: dict[tuple, str] = {}
    problems = []
    for _site, asset in portfolio.assets():
        if asset.endpoint is None:
            continue
        for k, e in enumerate(device_endpoints(asset.endpoint, asset.count), start=1):
            if (out_of_range := e.address_problem()) is not None:
                problems.append((asset.id, f"device {k} would be {out_of_range}"))
            key = device_address(e)
            other = seen.setdefault(key, f"{asset.id} device {k}")
            if other != f"{asset.id} device {k}":
                problems.append((asset.id, f"device {k} ({device_label(e)}) has the address of {other}: "
                                           f"{' '.join(map(str, key))}; give each device its own address "
                                           "(counted devices take consecutive ids)"))
    return problems


def _ocpp_security(portfolio: Any) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """(problems, warnings) of the chargers' security profiles against the central system's TLS."""
    central = getattr(portfolio, "ocpp_central_system", None)
    tls = central is not None and bool(central.tls_cert_file)
    client_ca = central is not None and bool(central.tls_client_ca_file)
    problems, warnings = [], []
    for _site, asset in portfolio.assets():
        e = asset.endpoint
        if not isinstance(e, OcppEndpoint):
            continue
        profile = e.effective_security_profile
        if profile >= 2 and not tls:
            problems.append((asset.id, f"security_profile {profile} needs TLS: set ocpp_central_system.tls_cert_file "
                                       "and tls_key_file"))
        if profile == 3 and not client_ca:
            problems.append((asset.id, "security_profile 3 needs ocpp_central_system.tls_client_ca_file (the CA "
                                       "that signs the chargers' certificates)"))
        if profile == 0:
            warnings.append((asset.id, f"charge point {e.charge_point_id} is not authenticated (security_profile "
                                       "0): any client claiming its id gets its charging profiles"))
    return problems, warnings


def endpoint_problems(portfolio: Any) -> list[tuple[str, str]]:
    """(asset id, problem) for every device that cannot be served as configured: address clashes and ranges
    (:func:`address_clashes`), chargers whose security profile the central system cannot honour."""
    return address_clashes(portfolio) + _ocpp_security(portfolio)[0]


def endpoint_warnings(portfolio: Any) -> list[str]:
    """What ``validate`` and ``dispatch`` warn about without refusing: chargers accepted without authentication."""
    return [f"{asset_id}: {text}" for asset_id, text in _ocpp_security(portfolio)[1]]


def address_problems(portfolio: Any) -> list[str]:
    """The clashes of :func:`address_clashes` as lines naming the asset."""
    return [f"{asset_id} {text}" for asset_id, text in address_clashes(portfolio)]


def setpoint_unit(endpoint: Any) -> str:
    """The unit the device takes: degC for thermostats, on_off for relays, else kW (``EndpointBase.device_unit``;
    kW without an endpoint)."""
    if endpoint is None:
        return "kW"
    protocol_of(endpoint)
    return endpoint.device_unit()
