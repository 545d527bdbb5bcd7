"""The child process of one IEC 104 connection: ``python -m flexopt.adapters.iec104_worker ENDPOINT_JSON LINK_WAIT_S``.

It holds the c104 client (:class:`~flexopt.adapters.iec104_link.Iec104Link`) and answers the adapters' calls over
its stdin and stdout (:func:`flexopt.adapters.worker.serve`), and tells them every link state change (event
``state``). One connection serves every station (common address) behind its host:port: each call carries its
station's ``endpoint`` (added on first sight) and ``ca``. If c104 crashes, only this process dies; the
adapters report it and start another.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

from flexopt.adapters.iec104_link import Iec104Link
from flexopt.adapters.worker import Handler, serve
from flexopt.config.endpoints import Iec104Endpoint


def main(argv: list[str]) -> None:
    endpoint = Iec104Endpoint.model_validate_json(argv[0])
    link_wait_s = float(argv[1])
    link: Iec104Link | None = None

    def make_handler(emit: Callable[[str, Any], None]) -> Handler:
        nonlocal link
        link = Iec104Link(endpoint, link_wait_s, on_state=lambda state: emit("state", state))

        async def handle(op: str, args: dict[str, Any]) -> Any:
            assert link is not None
            if "endpoint" in args:  # the station the call is for (added once; a restarted child learns it again)
                link.add(Iec104Endpoint.model_validate_json(args["endpoint"]))
            if op == "connect":
                await link.connect()
                return {"open": link.is_open}
            if op == "send":
                status, reason = await link.send(float(args["value_kw"]), args.get("ca"))
                return {"status": status, "reason": reason, "open": link.is_open}
            if op == "read":
                return await link.read(args.get("ca")) | {"open": link.is_open}
            if op == "close":
                await link.close()
                return {}
            raise ValueError(f"unknown op {op!r}")

        return handle

    async def close() -> None:
        if link is not None:
            await link.close()

    serve(make_handler, close)


if __name__ == "__main__":
    main(sys.argv[1:])
