"""Transports of emulated instruments: a loopback TCP server and a pseudo-terminal server.

An emulated instrument is any object with a `name`, ``handle(line) -> reply | None`` (one
received line in, the reply line out, ``None`` for no reply) and ``inject(kind)`` (instrument
faults). A server gives it a real link:

- `TcpServer`: listens on 127.0.0.1 (port 0: the OS picks a free one), one thread serving
  every client of the instrument; pyvisa-py opens it as ``TCPIP::127.0.0.1::PORT::SOCKET``.
- `PtyServer`: a pseudo-terminal (``os.openpty``); pyserial opens the slave path like a real
  serial port.

Both apply a `FaultPlan` line by line, stop cleanly (`stop` joins the thread and closes every
socket or descriptor) and work as context managers.
"""

from __future__ import annotations

import contextlib
import errno
import os
import selectors
import socket
import threading
import time
import tty
from typing import Protocol

from xbarlab.drivers.emulators.faults import INSTRUMENT_FAULTS, FaultPlan

POLL = 0.05  # s, how often a server thread checks for stop


class LineInstrument(Protocol):
    name: str

    def handle(self, line: str) -> str | None:
        """Process one line; return the reply line (without termination) or None."""
        ...

    def inject(self, kind: str) -> None:
        """Apply an instrument-level fault ('error', 'trip')."""
        ...


class PortInUse(OSError):
    """The requested TCP port is taken. The message says what to do instead."""


class _LineServer:
    """Shared line handling: termination, faults, the instrument's reply."""

    def __init__(self, instrument: LineInstrument, faults: FaultPlan | None,
                 termination: str) -> None:
        self.instrument = instrument
        self.faults = faults if faults is not None else FaultPlan()
        self.termination = termination.encode("ascii")
        self.lines_served = 0
        self.errors: list[str] = []  # exceptions raised by the instrument (a bug, never hidden)
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()

    def respond(self, raw: bytes) -> bytes | None:
        """Bytes to send back for one received line; `None` means close the link."""
        line = raw.decode("ascii", errors="replace").strip("\r\n")
        self.lines_served += 1
        rules = self.faults.fire(self.instrument.name, line)
        kinds = {r.kind for r in rules}
        if "drop" in kinds:
            return None
        for r in rules:
            if r.kind == "latency":
                time.sleep(r.delay)
            elif r.kind in INSTRUMENT_FAULTS:
                self.instrument.inject(r.kind)
        try:
            reply = self.instrument.handle(line)
        except Exception as exc:  # an emulator bug: record it, keep serving
            self.errors.append(f"{line!r}: {type(exc).__name__}: {exc}")
            reply = None
        if reply is None or "no_reply" in kinds:
            return b""
        if "garbage" in kinds:
            reply = next(r.text for r in rules if r.kind == "garbage")
        if "truncate" in kinds:
            reply = reply[: len(reply) // 2]
        return reply.encode("ascii", errors="replace") + self.termination

    def _split(self, buf: bytearray) -> list[bytes]:
        """Pop every complete line off `buf` (``\\r\\n`` and ``\\n`` both end a line)."""
        out = []
        while True:
            k = buf.find(b"\n")
            if k < 0:
                return out
            out.append(bytes(buf[:k]).rstrip(b"\r"))
            del buf[: k + 1]

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5.0)
            self._thread = None

    def __enter__(self) -> _LineServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        raise NotImplementedError


class TcpServer(_LineServer):
    """One emulated instrument on a loopback TCP port."""

    def __init__(self, instrument: LineInstrument, port: int = 0, *,
                 host: str = "127.0.0.1", faults: FaultPlan | None = None,
                 termination: str = "\n") -> None:
        super().__init__(instrument, faults, termination)
        self.host = host
        self.requested_port = int(port)
        self.port = 0
        self._listener: socket.socket | None = None

    @property
    def address(self) -> str:
        """The VISA resource name pyvisa-py opens."""
        return f"TCPIP::{self.host}::{self.port}::SOCKET"

    def start(self) -> None:
        if self.running:
            return
        lst = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            lst.bind((self.host, self.requested_port))
        except OSError as exc:
            lst.close()
            if exc.errno == errno.EADDRINUSE:
                raise PortInUse(
                    f"{self.instrument.name}: port {self.requested_port} on {self.host} is "
                    "already in use; choose another port, or port 0 to let the system pick "
                    "a free one") from None
            raise
        lst.listen(4)
        lst.setblocking(False)
        self._listener = lst
        self.port = lst.getsockname()[1]
        self._stop.clear()
        self._thread = threading.Thread(target=self._serve, name=f"emulator {self.address}",
                                        daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        assert self._listener is not None
        sel = selectors.DefaultSelector()
        sel.register(self._listener, selectors.EVENT_READ, None)
        buffers: dict[socket.socket, bytearray] = {}
        try:
            while not self._stop.is_set():
                for key, _ in sel.select(POLL):
                    if key.data is None:
                        with contextlib.suppress(BlockingIOError):
                            conn, _ = self._listener.accept()
                            conn.setblocking(True)
                            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                            buffers[conn] = bytearray()
                            sel.register(conn, selectors.EVENT_READ, "client")
                        continue
                    conn = key.fileobj  # type: ignore[assignment]
                    if not self._client(conn, buffers[conn]):
                        sel.unregister(conn)
                        del buffers[conn]
                        conn.close()
        finally:
            for conn in buffers:
                with contextlib.suppress(OSError):
                    conn.close()
            sel.close()
            self._listener.close()
            self._listener = None

    def _client(self, conn: socket.socket, buf: bytearray) -> bool:
        """Serve what arrived; False when the link is (to be) closed."""
        try:
            data = conn.recv(65536)
        except OSError:
            return False
        if not data:
            return False
        buf.extend(data)
        for raw in self._split(buf):
            out = self.respond(raw)
            if out is None:
                with contextlib.suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)
                return False
            if out:
                try:
                    conn.sendall(out)
                except OSError:
                    return False
        return True


class PtyServer(_LineServer):
    """One emulated instrument behind a pseudo-terminal; clients open `address` (the slave)."""

    def __init__(self, instrument: LineInstrument, *, faults: FaultPlan | None = None,
                 termination: str = "\n") -> None:
        super().__init__(instrument, faults, termination)
        self._master: int | None = None
        self._slave: int | None = None
        self.address = ""

    def start(self) -> None:
        if self.running:
            return
        master, slave = os.openpty()
        tty.setraw(slave)  # no echo, no newline translation: bytes pass as on a real UART
        self._master, self._slave = master, slave
        self.address = os.ttyname(slave)
        self._stop.clear()
        self._thread = threading.Thread(target=self._serve, name=f"emulator {self.address}",
                                        daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        master = self._master
        assert master is not None
        sel = selectors.DefaultSelector()
        sel.register(master, selectors.EVENT_READ)
        buf = bytearray()
        try:
            while not self._stop.is_set():
                if not sel.select(POLL):
                    continue
                try:
                    data = os.read(master, 65536)
                except OSError:
                    time.sleep(POLL)
                    continue
                buf.extend(data)
                for raw in self._split(buf):
                    out = self.respond(raw)
                    if out is None:  # a serial line cannot be 'closed': drop means go silent
                        buf.clear()
                        break
                    if out:
                        os.write(master, out)
        finally:
            sel.close()
            for fd in (self._master, self._slave):
                if fd is not None:
                    with contextlib.suppress(OSError):
                        os.close(fd)
            self._master = self._slave = None
