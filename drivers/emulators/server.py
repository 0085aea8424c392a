"""Transports of emulated instruments: a loopback TCP server and a pseudo-terminal server.

An emulated instrument is any object with a `name`, ``handle(line) -> reply | None`` (one
received line in, the reply out: a text line, or bytes such as an IEEE 488.2 binary block, sent
as they are; ``None`` for no reply) and ``inject(kind)`` (instrument faults). The termination
follows every reply. A server gives it a real link:

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
_QUICKACK = getattr(socket, "TCP_QUICKACK", None)  # Linux


class LineInstrument(Protocol):
    name: str

    def handle(self, line: str) -> str | bytes | None:
        """Process one line; return the reply (text, or a binary block, without termination)
        or None."""
        ...

    def inject(self, kind: str, line: str = "") -> None:
        """Apply an instrument-level fault ("error", "trip") arriving with `line`."""
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
                self.instrument.inject(r.kind, line)
        try:
            reply = self.instrument.handle(line)
        except Exception as exc:  # an emulator bug: record it, keep serving
            self.errors.append(f"{line!r}: {type(exc).__name__}: {exc}")
            reply = None
        if reply is None or "no_reply" in kinds:
            return b""
        if "garbage" in kinds:
            reply = next(r.text for r in rules if r.kind == "garbage")
        out = reply if isinstance(reply, bytes) else reply.encode("ascii", errors="replace")
        if "truncate" in kinds:
            out = out[: len(out) // 2]
        for r in rules:
            if r.kind == "late":  # processed already; the reply leaves after the delay
                time.sleep(r.delay)
        return out + self.termination

    def _split(self, buf: bytearray) -> list[bytes]:
        """Pop every complete line off `buf` (``\\r\\n`` and ``\\n`` both end a line)."""
        out: list[bytes] = []
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
    """One emulated instrument on a loopback TCP port.

    Alone it runs its own thread. Several servers joined in a `TcpHub` share one thread, and
    the hub processes their lines in the order the client sent them wherever it matters (see
    `TcpHub.sync`)."""

    def __init__(self, instrument: LineInstrument, port: int = 0, *,
                 host: str = "127.0.0.1", faults: FaultPlan | None = None,
                 termination: str = "\n") -> None:
        super().__init__(instrument, faults, termination)
        self.host = host
        self.requested_port = int(port)
        self.port = 0
        self.listener: socket.socket | None = None
        self.clients: dict[socket.socket, bytearray] = {}
        self.busy = False
        self.hub: TcpHub | None = None
        self._own_hub: TcpHub | None = None

    @property
    def address(self) -> str:
        """The VISA resource name pyvisa-py opens."""
        return f"TCPIP::{self.host}::{self.port}::SOCKET"

    def bind(self) -> None:
        """Listen (no thread yet); `PortInUse` names the alternative."""
        if self.listener is not None:
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
        self.listener = lst
        self.port = lst.getsockname()[1]

    def start(self) -> None:
        if self.running or self.hub is not None:
            return
        hub = TcpHub([self])
        hub.start()
        self._thread = hub._thread
        self._own_hub = hub

    def stop(self) -> None:
        hub = self._own_hub
        if hub is not None:
            hub.stop()
            self._own_hub = None
        self._thread = None

    def accept(self) -> socket.socket | None:
        assert self.listener is not None
        try:
            conn, _ = self.listener.accept()
        except (BlockingIOError, OSError):
            return None
        conn.setblocking(False)
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.clients[conn] = bytearray()
        return conn

    def pump(self, conn: socket.socket) -> bool:
        """Read what arrived on `conn` and serve every complete line; False: link closed."""
        buf = self.clients[conn]
        closed = False  # the client went away: what it sent before still takes effect, as on
        try:  # an instrument that received it (a killed host's last commands are executed)
            while True:
                try:
                    data = conn.recv(65536)
                except BlockingIOError:
                    break
                if not data:
                    closed = True
                    break
                if _QUICKACK is not None:  # ack at once: a client's Nagle wait (write then
                    conn.setsockopt(socket.IPPROTO_TCP, _QUICKACK, 1)  # query) costs 40 ms
                buf.extend(data)
        except OSError:
            closed = True
        if closed and not buf.count(b"\n"):
            return False
        self.busy = True
        try:
            for raw in self._split(buf):
                out = self.respond(raw)
                if out is None:
                    with contextlib.suppress(OSError):
                        conn.shutdown(socket.SHUT_RDWR)
                    return False
                if out and not closed:
                    try:
                        conn.setblocking(True)
                        conn.sendall(out)
                        conn.setblocking(False)
                    except OSError:
                        closed = True  # nobody reads the replies; the lines still count
        finally:
            self.busy = False
        return not closed

    def close_all(self) -> None:
        for conn in self.clients:
            with contextlib.suppress(OSError):
                conn.close()
        self.clients.clear()
        if self.listener is not None:
            self.listener.close()
            self.listener = None


class TcpHub:
    """One thread serving several `TcpServer`s.

    Instruments of one bench change each other's physics (an SMU's output and a relay decide
    a line's potential). A client writes to one instrument and goes on to the next without
    waiting, so separate threads could apply a relay change before an output-off written
    earlier. `sync` (called by the emulated wiring before it looks at the bench state:
    measurements, pulses, relay changes) first serves every line already received by the other
    instruments: loopback delivery is immediate, so those lines were sent earlier."""

    def __init__(self, servers: list[TcpServer]) -> None:
        self.servers = list(servers)
        self._sel: selectors.BaseSelector | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()

    def start(self) -> None:
        try:
            for srv in self.servers:
                srv.bind()
        except BaseException:
            for srv in self.servers:
                srv.close_all()
            raise
        sel = selectors.DefaultSelector()
        for srv in self.servers:
            srv.hub = self
            assert srv.listener is not None
            sel.register(srv.listener, selectors.EVENT_READ, (srv, None))
        self._sel = sel
        self._stop.clear()
        names = ",".join(s.instrument.name for s in self.servers)
        self._thread = threading.Thread(target=self._serve, name=f"emulators {names}",
                                        daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5.0)
            self._thread = None

    def _serve(self) -> None:
        sel = self._sel
        assert sel is not None
        try:
            while not self._stop.is_set():
                for key, _ in sel.select(POLL):
                    srv, conn = key.data
                    if conn is None:
                        new = srv.accept()
                        if new is not None:
                            sel.register(new, selectors.EVENT_READ, (srv, new))
                    elif conn in srv.clients and not srv.pump(conn):
                        self._drop(srv, conn)
        finally:
            for srv in self.servers:
                srv.close_all()
                srv.hub = None
            sel.close()
            self._sel = None

    def _drop(self, srv: TcpServer, conn: socket.socket) -> None:
        assert self._sel is not None
        with contextlib.suppress(KeyError, ValueError):
            self._sel.unregister(conn)
        srv.clients.pop(conn, None)
        with contextlib.suppress(OSError):
            conn.close()

    def sync(self) -> None:
        """Serve the lines already received by every instrument not busy right now."""
        if threading.current_thread() is not self._thread:
            return
        for srv in self.servers:
            if srv.busy:
                continue
            for conn in list(srv.clients):
                if not srv.pump(conn):
                    self._drop(srv, conn)


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
