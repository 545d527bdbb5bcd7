"""The time dispatch, the adapters and the simulated devices read: the wall clock in operation, a compressed
simulated clock in ``flexopt replay``, so that a replayed day runs through the very code of a live one.

Adapters stamp telemetry and judge expired setpoints by :func:`current` (a context variable: asyncio tasks and
``to_thread`` inherit it); dispatch and the simulators are handed the clock object itself, since the simulators'
physics also run on threads of native libraries that see no context.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import time
from collections.abc import Iterator
from contextvars import ContextVar


class Clock:
    """The wall clock: UTC now, seconds for physics, real sleeps; ``work()`` changes nothing."""

    speed = 1.0

    def now(self) -> dt.datetime:
        return dt.datetime.now(dt.UTC)

    def monotonic(self) -> float:
        """Seconds that only go forward, for integrating device physics."""
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))

    async def sleep_until(self, when: dt.datetime, stop: asyncio.Event | None = None) -> bool:
        """Wait until ``when`` on this clock; False when ``stop`` was set first."""
        stop = stop or asyncio.Event()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), max(0.0, (when - self.now()).total_seconds()))
        return not stop.is_set()

    @contextlib.contextmanager
    def work(self) -> Iterator[None]:
        """A stretch of computing (a round's sends and reads, a schedule run)."""
        yield


class SimClock(Clock):
    """A day on fast-forward: ``speed`` simulated seconds pass per wall second, starting at ``start``. Time stands
    still during ``work()`` (a round's exchanges, a schedule run) so that a replayed day does not depend on how
    fast the machine is; a ``sleep`` inside ``work()`` still moves it on by exactly its length (a round's settle)."""

    def __init__(self, start: dt.datetime, speed: float, *, held: bool = False) -> None:
        """``held``: time stands still until :meth:`release` (setting up before the day starts)."""
        if start.tzinfo is None:
            raise ValueError("a simulated clock starts at an aware time")
        if not speed > 0:
            raise ValueError("speed must be positive")
        self.speed = float(speed)
        self._base = start.astimezone(dt.UTC)
        self._wall = time.monotonic()
        self._paused = 0
        self._held = held
        if held:
            self._paused = 1

    def release(self) -> None:
        """Let a held clock run."""
        if self._held:
            self._held = False
            self._paused -= 1
            if not self._paused:
                self._wall = time.monotonic()

    def now(self) -> dt.datetime:
        if self._paused:
            return self._base
        return self._base + dt.timedelta(seconds=(time.monotonic() - self._wall) * self.speed)

    def monotonic(self) -> float:
        return self.now().timestamp()

    async def sleep(self, seconds: float) -> None:
        seconds = max(0.0, seconds)
        if self._paused:
            await asyncio.sleep(seconds / self.speed)
            self._base += dt.timedelta(seconds=seconds)
        else:
            await self.sleep_until(self.now() + dt.timedelta(seconds=seconds))

    async def sleep_until(self, when: dt.datetime, stop: asyncio.Event | None = None) -> bool:
        while not (stop is not None and stop.is_set()):
            left = (when - self.now()).total_seconds()
            if left <= 0:
                return True
            wait = 0.01 if self._paused else min(left / self.speed, 0.25)
            if stop is None:
                await asyncio.sleep(wait)
            else:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), wait)
        return False

    @contextlib.contextmanager
    def work(self) -> Iterator[None]:
        if not self._paused:
            self._base = self.now()
        self._paused += 1
        try:
            yield
        finally:
            self._paused -= 1
            if not self._paused:
                self._wall = time.monotonic()


WALL = Clock()
_CURRENT: ContextVar[Clock] = ContextVar("flexopt_clock", default=WALL)


def current() -> Clock:
    """The clock of this task (the wall clock unless a replay set another)."""
    return _CURRENT.get()


@contextlib.contextmanager
def using(clock: Clock) -> Iterator[Clock]:
    """Run a block (and the tasks and threads it starts) on ``clock``."""
    token = _CURRENT.set(clock)
    try:
        yield clock
    finally:
        _CURRENT.reset(token)
