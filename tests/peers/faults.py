"""Misbehaving TCP peers on 127.0.0.1 for the fault tests: a device that accepts a connection and closes it at
once, with a FIN (an orderly close) or an RST (SO_LINGER 0), as often as it is connected to; and a proxy in front of
a real device that delays, swallows, resets, accepts-and-closes, answers garbage or closes its port on demand."""

from __future__ import annotations

import asyncio
import socket
import struct
import threading
from typing import Literal


class AcceptAndClose:
    """Listens on ``port``; every connection is accepted and closed (``mode`` ``fin`` or ``rst``, switchable while
    it runs). ``accepted`` counts the connections. ``stop()`` frees the port for a real device."""

    def __init__(self, port: int, mode: Literal["fin", "rst"] = "fin", host: str = "127.0.0.1") -> None:
        self.host, self.port, self.mode = host, port, mode
        self.accepted = 0
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()

    def start(self) -> AcceptAndClose:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self.port))
        sock.listen(64)
        sock.settimeout(0.1)
        self._sock, self._stop = sock, threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        if self._sock is not None:
            self._sock.close()
        self._sock = self._thread = None

    def _serve(self) -> None:
        assert self._sock is not None
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            if self.mode == "rst":
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            conn.close()
            self.accepted += 1


Mode = Literal["pass", "delay", "blackhole", "reset", "close", "garbage", "refuse"]


class FaultProxy:
    """A TCP proxy on 127.0.0.1 in front of a real device (asyncio, in the test's event loop), whose ``mode`` can be
    switched while it runs: ``pass`` forwards; ``delay`` forwards each chunk ``delay_s`` late; ``blackhole`` accepts
    and swallows everything (a device that stops answering); ``reset`` and ``close`` accept and close at once with
    an RST or a FIN (existing connections too); ``garbage`` answers whatever arrives with bytes no protocol
    expects; ``refuse`` stops listening (the port is closed, as for a device that is switched off). ``accepted``
    counts the connections taken."""

    def __init__(self, target_port: int, port: int = 0, host: str = "127.0.0.1") -> None:
        self.host, self.port, self.target_port = host, port, target_port
        self.mode: Mode = "pass"
        self.delay_s = 0.5
        self.accepted = 0
        self._server: asyncio.Server | None = None
        self._conns: set[tuple[asyncio.StreamWriter, asyncio.StreamWriter | None]] = set()
        self._tasks: set[asyncio.Task] = set()

    async def start(self) -> FaultProxy:
        self._server = await asyncio.start_server(self._serve, self.host, self.port, reuse_address=True)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        self.cut("rst")
        for t in list(self._tasks):
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def set_mode(self, mode: Mode) -> None:
        """Switch; ``reset``/``close``/``refuse``/``garbage``/``blackhole`` also end the connections open now (the
        device's side of them is gone), ``refuse`` closes the port and ``pass`` opens it again."""
        self.mode = mode
        if mode in ("reset", "refuse"):
            self.cut("rst")
        elif mode in ("close", "garbage", "blackhole"):
            self.cut("fin")
        elif mode == "pass":  # connections that were swallowed or answered with garbage never reached the device
            self.cut("fin", only_unforwarded=True)
        if mode == "refuse" and self._server is not None:
            self._server.close()
            self._server = None
        elif mode != "refuse" and self._server is None:
            await self.start()

    def cut(self, how: str, only_unforwarded: bool = False) -> None:
        """End every connection open now (or only those never forwarded to the device): ``rst`` or ``fin`` to the
        client, FIN to the device."""
        for entry in list(self._conns):
            client, upstream = entry
            if only_unforwarded and upstream is not None:
                continue
            _abort(client, how)
            if upstream is not None:
                _abort(upstream, "fin")
            self._conns.discard(entry)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            if self.mode in ("reset", "close"):
                _abort(writer, "rst" if self.mode == "reset" else "fin")
                return
            if self.mode in ("blackhole", "garbage"):
                entry = (writer, None)
                self._conns.add(entry)
                while data := await reader.read(4096):
                    if self.mode == "garbage":
                        writer.write(bytes((7 * i + 0x5A) & 0xFF for i in range(max(8, len(data)))))
                        await writer.drain()
                return
            up_reader, up_writer = await asyncio.open_connection(self.host, self.target_port)
            entry = (writer, up_writer)
            self._conns.add(entry)
            await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))
        except (OSError, asyncio.IncompleteReadError):
            _abort(writer, "fin")
        except asyncio.CancelledError:  # stop(): end quietly (asyncio logs a handler task that ends cancelled)
            _abort(writer, "rst")
        finally:
            self._tasks.discard(task)

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                if self.mode == "delay":
                    await asyncio.sleep(self.delay_s)
                if self.mode == "blackhole":
                    continue
                writer.write(data)
                await writer.drain()
        except OSError:
            pass
        finally:
            _abort(writer, "fin")


def _abort(writer: asyncio.StreamWriter, how: str) -> None:
    """Close one side: ``rst`` (SO_LINGER 0) or ``fin``."""
    sock = writer.get_extra_info("socket")
    try:
        if how == "rst" and sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        writer.close()
    except (OSError, RuntimeError):
        pass
