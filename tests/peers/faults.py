"""Misbehaving TCP peers on 127.0.0.1 for the fault tests: a device that accepts a connection and closes it at
once, with a FIN (an orderly close) or an RST (SO_LINGER 0), as often as it is connected to."""

from __future__ import annotations

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
