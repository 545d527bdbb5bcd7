"""A native library in a child process, so that its crash is an alarm and not the end of dispatch.

c104 2.2.1 dies with SIGSEGV when an IEC 104 device accepts the TCP connection and closes it: in dispatch's own
process that killed every device's round and its record. The parent (:class:`WorkerProcess`) speaks to the child
(:func:`serve`) in JSON lines over the child's stdin and stdout. A child that dies fails the calls it had, is
remembered as a :class:`Death` until the adapter reports it, and is started again on the next call once a backoff
has passed (doubling while it keeps dying, back to the start once it has been healthy). A child that does not
answer in time is killed and treated the same way. The child ends when its stdin closes, so it never outlives
dispatch.

Messages: parent -> child ``{"id": n, "op": name, ...arguments}``; child -> parent ``{"id": n, "ok": true,
"result": ...}`` or ``{"id": n, "ok": false, "status": s, "reason": r}``, and unasked ``{"event": name, "value":
v}`` (the parent keeps the last value of each in :attr:`WorkerProcess.events`).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import datetime as dt
import faulthandler
import itertools
import json
import logging
import os
import signal
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

log = logging.getLogger("flexopt.adapters.worker")

STOP_WAIT_S = 2.0  # a child asked to stop (stdin closed) gets this long before it is killed


class WorkerDied(Exception):
    """The child is gone: it died during the call, or earlier and is not due to start again yet."""


class WorkerFailed(Exception):
    """The child answered the call with a failure: ``status`` and ``reason`` as the child gave them."""

    def __init__(self, status: str, reason: str) -> None:
        super().__init__(reason)
        self.status, self.reason = status, reason


@dataclass(frozen=True)
class Death:
    reason: str
    at: dt.datetime


def exit_reason(returncode: int | None) -> str:
    """``killed by signal 11 (SIGSEGV)``, ``exited with code 1``."""
    if returncode is None:
        return "still running"
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = "unknown signal"
        return f"killed by signal {-returncode} ({name})"
    return f"exited with code {returncode}"


class WorkerProcess:
    """The parent's side: ``python -m module *args`` as a supervised child. ``name`` says what it is in reasons
    and logs (``IEC 104 client for 10.0.0.5:2404 CA 1``). :meth:`call` never leaves a child that hangs."""

    def __init__(self, module: str, args: list[str], name: str, *, backoff_s: float = 0.5,
                 max_backoff_s: float = 5.0) -> None:
        self.module, self.args, self.name = module, list(args), name
        self.initial_backoff_s, self.max_backoff_s = backoff_s, max_backoff_s
        self.events: dict[str, Any] = {}
        self.deaths: list[Death] = []  # not reported yet: :meth:`take_deaths`
        self.starts = 0
        self._backoff_s = backoff_s
        self._next_start = 0.0
        self._proc: asyncio.subprocess.Process | None = None
        self._starting = asyncio.Lock()
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._ids = itertools.count(1)
        self._stderr: collections.deque[str] = collections.deque(maxlen=20)
        self._readers: list[asyncio.Task] = []
        self._killed_because = ""
        self._closing = False
        self._recorded: asyncio.subprocess.Process | None = None  # the last child whose end was handled
        self._last_death = ""

    @property
    def alive(self) -> bool:
        return self._proc is not None and self._proc.returncode is None

    def healthy(self) -> None:
        """The child did its job (its link is up): the next death starts the backoff from the beginning."""
        self._backoff_s = self.initial_backoff_s

    def take_deaths(self) -> list[Death]:
        deaths, self.deaths = self.deaths, []
        return deaths

    async def call(self, op: str, timeout_s: float, **args: Any) -> Any:
        """Ask the child; its result. Raises :class:`WorkerFailed` when it answered with a failure,
        :class:`WorkerDied` when it is gone (killed after ``timeout_s`` without an answer)."""
        async with self._starting:  # calls of several adapters sharing the child never start two
            proc = await self._ensure()
        assert proc.stdin is not None
        request_id = next(self._ids)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[request_id] = future
        try:
            try:
                proc.stdin.write(json.dumps({"id": request_id, "op": op, **args}).encode() + b"\n")
                await proc.stdin.drain()
            except (ConnectionError, RuntimeError) as exc:  # the pipe broke: the child is dying
                await self._wait_dead(proc)
                raise WorkerDied(self._died_text()) from exc
            try:
                answer = await asyncio.wait_for(asyncio.shield(future), timeout_s)
            except TimeoutError:
                await self._kill(proc, f"no answer to {op} within {timeout_s:g} s")
                raise WorkerDied(self._died_text()) from None
        finally:
            self._pending.pop(request_id, None)
        if answer.get("ok"):
            return answer.get("result")
        raise WorkerFailed(str(answer.get("status") or "error"), str(answer.get("reason") or ""))

    async def close(self) -> None:
        """Stop the child: close its stdin (it closes its connection and exits), kill it if it lingers."""
        self._closing = True
        proc, self._proc = self._proc, None
        if proc is not None and proc.returncode is None:
            if proc.stdin is not None:
                with contextlib.suppress(Exception):
                    proc.stdin.close()
            try:
                await asyncio.wait_for(proc.wait(), STOP_WAIT_S)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await proc.wait()
        for task in self._readers:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(task, STOP_WAIT_S)
        self._readers = []
        self._closing = False

    # --- the child's life ---------------------------------------------------------------------
    async def _ensure(self) -> asyncio.subprocess.Process:
        if self._proc is not None and self._proc.returncode is None:
            return self._proc
        if self._proc is not None:  # died since the last call; its reader records the death
            await self._wait_dead(self._proc)
        wait = self._next_start - time.monotonic()
        if wait > 0:
            raise WorkerDied(f"{self._died_text()}; not started again for {wait:.1f} s (backoff)")
        self.events = {}
        self._stderr.clear()
        self._killed_because = ""
        self._proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", self.module, *self.args,
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )
        self.starts += 1
        self._readers = [asyncio.create_task(self._read_answers(self._proc)),
                         asyncio.create_task(self._read_stderr(self._proc))]
        return self._proc

    async def _read_answers(self, proc: asyncio.subprocess.Process) -> None:
        assert proc.stdout is not None
        while line := await proc.stdout.readline():
            try:
                message = json.loads(line)
            except ValueError:
                log.warning("%s: not a message: %r", self.name, line[:200])
                continue
            if "event" in message:
                self.events[str(message["event"])] = message.get("value")
            elif (future := self._pending.get(message.get("id"))) is not None and not future.done():
                future.set_result(message)
        await proc.wait()
        self._died(proc)

    async def _read_stderr(self, proc: asyncio.subprocess.Process) -> None:
        assert proc.stderr is not None
        while line := await proc.stderr.readline():
            text = line.decode("utf-8", "replace").rstrip()
            if text:
                self._stderr.append(text)
                log.debug("%s: %s", self.name, text)

    def _died(self, proc: asyncio.subprocess.Process) -> None:
        """The child's stdout closed and it exited: fail its calls, remember the death, set the backoff."""
        if proc is self._recorded:
            return
        self._recorded = proc
        reason = self._killed_because or exit_reason(proc.returncode)
        if proc.returncode and proc.returncode > 0 and self._stderr:
            reason += f": {self._stderr[-1][:200]}"
        self._last_death = reason
        self.events = {}
        for future in self._pending.values():
            if not future.done():
                future.set_exception(WorkerDied(f"{self.name} died during the call: {reason}; started again on "
                                                "the next call"))
        if self._closing or (proc.returncode == 0 and not self._killed_because):
            return  # asked to stop, or stopped by itself cleanly
        self.deaths.append(Death(reason, dt.datetime.now(dt.UTC)))
        self._next_start = time.monotonic() + self._backoff_s
        log.warning("%s died: %s; started again on the next call, at the earliest in %.1f s", self.name, reason,
                    self._backoff_s)
        self._backoff_s = min(self.max_backoff_s, 2 * self._backoff_s)

    async def _wait_dead(self, proc: asyncio.subprocess.Process) -> None:
        for task in self._readers:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(asyncio.shield(task), STOP_WAIT_S)
        self._died(proc)

    async def _kill(self, proc: asyncio.subprocess.Process, why: str) -> None:
        self._killed_because = f"killed: {why}"
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()
        await self._wait_dead(proc)

    def _died_text(self) -> str:
        return f"{self.name} died: {self._last_death or 'not running'}"


# --- the child's side ----------------------------------------------------------------------------

Handler = Callable[[str, dict[str, Any]], Awaitable[Any]]


def serve(make_handler: Callable[[Callable[[str, Any], None]], Handler],
          close: Callable[[], Awaitable[None]] | None = None) -> None:
    """Run in the child: answer requests from stdin on stdout until stdin closes. ``make_handler(emit)`` returns
    the coroutine function that handles ``(op, arguments)``; ``emit(event, value)`` sends an unasked event (safe
    from any thread). A handler raising an exception with ``status`` and ``reason`` (the adapters' AdapterError)
    answers with those, any other exception with status ``error``. Anything the library prints goes to stderr,
    never into the answers."""
    protocol = os.fdopen(os.dup(1), "wb", buffering=0)
    os.dup2(2, 1)
    faulthandler.enable()  # a native crash leaves its stack on stderr, which the parent keeps
    asyncio.run(_serve(make_handler, close, protocol))


async def _serve(make_handler: Callable[[Callable[[str, Any], None]], Handler],
                 close: Callable[[], Awaitable[None]] | None, protocol: Any) -> None:
    loop = asyncio.get_running_loop()

    def send(message: dict[str, Any]) -> None:
        protocol.write(json.dumps(message).encode() + b"\n")

    def emit(event: str, value: Any) -> None:
        with contextlib.suppress(RuntimeError):  # the loop has closed: the parent is gone anyway
            loop.call_soon_threadsafe(send, {"event": event, "value": value})

    handler = make_handler(emit)
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    tasks: set[asyncio.Task] = set()

    async def answer(request: dict[str, Any]) -> None:
        args = {k: v for k, v in request.items() if k not in ("id", "op")}
        try:
            result = await handler(str(request.get("op")), args)
            send({"id": request.get("id"), "ok": True, "result": result})
        except Exception as exc:
            status, reason = getattr(exc, "status", "error"), getattr(exc, "reason", f"{type(exc).__name__}: {exc}")
            send({"id": request.get("id"), "ok": False, "status": status, "reason": reason})

    while line := await reader.readline():
        task = asyncio.create_task(answer(json.loads(line)))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    if close is not None:
        await close()
    for task in list(tasks):
        task.cancel()
