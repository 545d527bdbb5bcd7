"""One Modbus TCP connection per gateway (host:port), shared by the adapters of every unit id behind it.

Gateways and BMSs often allow one or a few TCP connections; an adapter per unit each opening its own would be
refused (or would push another client out). Requests over a shared link take turns (one lock), as most gateways
answer one request at a time anyway. The link is closed when its last adapter closes.
"""

from __future__ import annotations

import asyncio
import contextlib

from pymodbus.client import AsyncModbusTcpClient

from flexopt.adapters.base import AdapterError


class ModbusLink:
    """The shared client of one host:port; ``users`` are the adapters holding it."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.loop = asyncio.get_running_loop()  # its client lives in this loop
        self.timeout_s = 1.0
        self.lock = asyncio.Lock()
        self.users: set[int] = set()
        self.stale = False  # the timeout changed: make a new client before the next request
        self._client: AsyncModbusTcpClient | None = None

    @property
    def client(self) -> AsyncModbusTcpClient | None:
        return self._client

    async def ensure(self) -> AsyncModbusTcpClient:
        """Connect if needed (with ``lock`` held); this is also how every adapter on the link reconnects."""
        if self.stale:
            self.stale = False
            self.drop()
        if self._client is None:
            self._client = AsyncModbusTcpClient(
                self.host, port=self.port, timeout=self.timeout_s, retries=0,
                reconnect_delay=0,  # we reconnect on the next call, not in the background
            )
        if not self._client.connected and not await self._client.connect():
            raise AdapterError("unreachable", f"no Modbus server at {self.host}:{self.port}")
        return self._client

    def drop(self) -> None:
        """Forget the connection (after a lost one); the next call opens a new one."""
        client, self._client = self._client, None
        if client is not None:
            with contextlib.suppress(Exception):
                client.close()


_LINKS: dict[tuple[int, str, int], ModbusLink] = {}


def acquire(host: str, port: int, timeout_s: float, user: object) -> ModbusLink:
    """The link to host:port in this event loop (made on first use); its timeout is the longest of its users'."""
    loop = asyncio.get_running_loop()
    key = (id(loop), host, port)
    link = _LINKS.get(key)
    if link is None or link.loop is not loop:  # none yet, or one left by a loop that is gone (its id reused)
        link = _LINKS[key] = ModbusLink(host, port)
    longest = max(link.timeout_s if link.users else 0.0, timeout_s)
    if longest != link.timeout_s:
        link.timeout_s = longest
        link.stale = True  # the client takes its timeout when made: the next call makes one with this
    link.users.add(id(user))
    return link


def release(link: ModbusLink, user: object) -> None:
    """``user`` is done with the link; the last one closes it."""
    link.users.discard(id(user))
    if not link.users:
        link.drop()
        for key, value in list(_LINKS.items()):
            if value is link:
                del _LINKS[key]
