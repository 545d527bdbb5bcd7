"""Helpers for simulators and their tests: free loopback ports and waiting on conditions."""

from __future__ import annotations

import asyncio
import inspect
import socket
import time
from collections.abc import Awaitable, Callable


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now (for servers that cannot bind port 0 themselves)."""
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


async def wait_until(
    predicate: Callable[[], object | Awaitable[object]], timeout_s: float = 5.0, interval_s: float = 0.02
) -> object:
    """Poll until the predicate is truthy and return its value; TimeoutError after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"condition not met within {timeout_s:g} s")
        await asyncio.sleep(interval_s)
