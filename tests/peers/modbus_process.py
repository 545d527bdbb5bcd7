"""flexopt's simulated BMS in a process of its own, so a test can kill it (SIGKILL: the kernel closes its sockets,
as when a gateway loses power or its service crashes) and start it again on the same port.

    python modbus_process.py PORT '{"unit": 1, "kind": "battery", "lo": -50, "hi": 50, "registers": {...}}'

prints ``ready`` once it serves."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path


async def _serve(port: int, spec: dict) -> None:
    from flexopt.adapters.sim.bms import BmsSimulator
    from flexopt.config.endpoints import ModbusEndpoint

    sim = BmsSimulator(port=port)
    endpoint = ModbusEndpoint.model_validate({"protocol": "modbus", "host": "127.0.0.1", "port": port,
                                              "device_id": spec["unit"], "registers": spec["registers"]})
    sim.add("dev", endpoint, spec["kind"], spec["lo"], spec["hi"])
    await sim.start()
    print("ready", flush=True)
    await asyncio.Event().wait()


class ModbusProcess:
    """The child process: ``start()`` waits until it serves, ``kill()`` is SIGKILL."""

    def __init__(self, port: int, spec: dict) -> None:
        self.port, self.spec = port, spec
        self.proc: subprocess.Popen | None = None

    def start(self) -> ModbusProcess:
        self.proc = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), str(self.port),
                                      json.dumps(self.spec)], stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if line.strip() != "ready":
            raise RuntimeError(f"the Modbus server process did not start: {line!r}")
        return self

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


if __name__ == "__main__":
    asyncio.run(_serve(int(sys.argv[1]), json.loads(sys.argv[2])))
