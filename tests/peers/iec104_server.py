"""A small IEC 60870-5-104 server written from the standard, not from c104 or lib60870 (which flexopt's simulated
RTU and client both use): STARTDT/STOPDT/TESTFR, I-frame sequence numbers, station interrogation (C_IC_NA_1) answered
with measured values as short floats (M_ME_NC_1) or scaled values (M_ME_NB_1), and the active-power setpoint
(C_SE_NC_1), confirmed or refused the way an RTU refuses: one mirror with the P/N bit and cause 46 (unknown common
address) or 47 (unknown IOA), no ACTCON before it. Asyncio, on 127.0.0.1, for the interoperability tests."""

from __future__ import annotations

import asyncio
import struct
from dataclasses import dataclass, field

M_SP_NA_1, M_ME_NB_1, M_ME_NC_1, C_SE_NC_1, C_IC_NA_1 = 1, 11, 13, 50, 100
COT_SPONT, COT_ACT, COT_ACTCON, COT_ACTTERM, COT_INROGEN = 3, 6, 7, 10, 20
COT_UNKNOWN_CA, COT_UNKNOWN_IOA = 46, 47
NEGATIVE = 0x40


@dataclass
class Station:
    """One common address: measured points (IOA -> physical value), the setpoint's IOA and what P follows."""

    common_address: int
    setpoint_ioa: int
    power_ioa: int
    measured: dict[int, float] = field(default_factory=dict)
    scaled: dict[int, float] = field(default_factory=dict)  # IOA -> physical value of one raw step (M_ME_NB_1)
    commands: list[float] = field(default_factory=list)


class Iec104Server:
    """Serves ``stations`` (by common address) at ``port``; ``frames`` logs (direction, type, cause, CA, IOA)."""

    def __init__(self, stations: list[Station], port: int = 0, host: str = "127.0.0.1") -> None:
        self.stations = {s.common_address: s for s in stations}
        self.host, self.port = host, port
        self.frames: list[tuple[str, int, int, int, int]] = []
        self._server: asyncio.Server | None = None

    async def start(self) -> Iec104Server:
        self._server = await asyncio.start_server(self._serve, self.host, self.port, reuse_address=True)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        link = _Link(writer, self.frames)
        try:
            while True:
                start, length = await reader.readexactly(2)
                if start != 0x68:
                    break
                apdu = await reader.readexactly(length)
                control = apdu[:4]
                if control[0] & 0x03 == 0x03:  # U-frame: answer STARTDT, STOPDT, TESTFR
                    reply = {0x07: 0x0B, 0x13: 0x23, 0x43: 0x83}.get(control[0])
                    if reply is not None:
                        writer.write(bytes([0x68, 4, reply, 0, 0, 0]))
                elif control[0] & 0x01 == 0:  # I-frame
                    link.received += 1
                    self._asdu(link, apdu[4:])
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    def _asdu(self, link: _Link, asdu: bytes) -> None:
        kind, cot, ca = asdu[0], asdu[2] & 0x3F, asdu[4] | asdu[5] << 8
        ioa = asdu[6] | asdu[7] << 8 | asdu[8] << 16
        self.frames.append(("in", kind, cot, ca, ioa))
        station = self.stations.get(ca)
        if station is None:
            link.send(kind, COT_UNKNOWN_CA | NEGATIVE, ca, ioa, asdu[9:])
            return
        if kind == C_IC_NA_1:
            link.send(kind, COT_ACTCON, ca, ioa, asdu[9:])
            for point, value in station.measured.items():
                link.send_measured(station, point, value, COT_INROGEN)
            link.send(kind, COT_ACTTERM, ca, ioa, asdu[9:])
        elif kind == C_SE_NC_1:
            if ioa != station.setpoint_ioa:
                link.send(kind, COT_UNKNOWN_IOA | NEGATIVE, ca, ioa, asdu[9:])
                return
            (value,) = struct.unpack("<f", asdu[9:13])
            station.commands.append(value)
            station.measured[station.power_ioa] = value
            link.send(kind, COT_ACTCON, ca, ioa, asdu[9:])
            link.send_measured(station, station.power_ioa, value, COT_SPONT)


class _Link:
    """One connection's send and receive sequence numbers."""

    def __init__(self, writer: asyncio.StreamWriter, log: list) -> None:
        self.writer, self.log = writer, log
        self.sent = self.received = 0

    def send(self, kind: int, cot: int, ca: int, ioa: int, element: bytes) -> None:
        asdu = bytes([kind, 1, cot, 0]) + struct.pack("<H", ca) + struct.pack("<I", ioa)[:3] + element
        control = struct.pack("<HH", (self.sent << 1) & 0xFFFF, (self.received << 1) & 0xFFFF)
        self.writer.write(bytes([0x68, len(asdu) + 4]) + control + asdu)
        self.log.append(("out", kind, cot & 0x3F, ca, ioa))
        self.sent += 1

    def send_measured(self, station: Station, ioa: int, value: float, cot: int) -> None:
        step = station.scaled.get(ioa)
        if step is None:
            self.send(M_ME_NC_1, cot, station.common_address, ioa, struct.pack("<f", value) + b"\x00")
        else:
            raw = max(-32768, min(32767, round(value / step)))
            self.send(M_ME_NB_1, cot, station.common_address, ioa, struct.pack("<h", raw) + b"\x00")
