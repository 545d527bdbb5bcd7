"""The ocpp-rpc charge point (``ocpp_rpc_charge_point.js``, Node) from Python: installs its npm packages from
``package-lock.json`` on first use (``npm ci``), runs one charger per process and reads its events."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent


def install() -> None:
    """``npm ci`` in tests/peers unless ocpp-rpc is already there at the locked version."""
    lock = json.loads((HERE / "package-lock.json").read_text())
    want = lock["packages"]["node_modules/ocpp-rpc"]["version"]
    installed = HERE / "node_modules" / "ocpp-rpc" / "package.json"
    if installed.is_file() and json.loads(installed.read_text()).get("version") == want:
        return
    npm = shutil.which("npm")
    if npm is None or shutil.which("node") is None:
        raise RuntimeError("the independent OCPP peer needs Node.js and npm on PATH")
    subprocess.run([npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=HERE, check=True, timeout=600)


class RpcChargePoint:
    """One ocpp-rpc charge point process; ``events`` holds what it printed so far."""

    def __init__(self, **options: Any) -> None:
        self.options = options
        self.events: list[dict[str, Any]] = []
        self._proc: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task | None = None
        self._changed = asyncio.Event()

    async def start(self) -> RpcChargePoint:
        self._proc = await asyncio.create_subprocess_exec(
            shutil.which("node") or "node", str(HERE / "ocpp_rpc_charge_point.js"), json.dumps(self.options),
            cwd=HERE, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)
        self._reader = asyncio.create_task(self._read())
        return self

    async def _read(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        while line := await self._proc.stdout.readline():
            self.events.append(json.loads(line))
            self._changed.set()
        self._changed.set()

    async def wait_for(self, *kinds: str, timeout_s: float = 30.0) -> dict[str, Any]:
        """The first event of one of ``kinds`` (waiting for it); AssertionError with every event if none comes."""
        async def first() -> dict[str, Any]:
            while True:
                for event in self.events:
                    if event["event"] in kinds:
                        return event
                if self._reader is not None and self._reader.done():
                    raise AssertionError(f"the peer ended without {kinds}: {self.events}")
                self._changed.clear()
                await self._changed.wait()
        try:
            return await asyncio.wait_for(first(), timeout_s)
        except TimeoutError:
            raise AssertionError(f"no {kinds} from the peer within {timeout_s:g} s: {self.events}") from None

    def calls(self, method: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e["event"] == "call" and e.get("method") == method]

    async def stop(self) -> None:
        if self._proc is not None and self._proc.returncode is None:
            assert self._proc.stdin is not None
            self._proc.stdin.close()
            try:
                await asyncio.wait_for(self._proc.wait(), 10)
            except TimeoutError:
                self._proc.kill()
                await self._proc.wait()
        if self._reader is not None:
            await self._reader
