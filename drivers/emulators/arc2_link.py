"""The emulated ArC TWO behind a link, so the instrument outlives the process that drives it.

`Arc2Server` hosts an `EmulatedInstrument` on a loopback TCP port; `RemoteInstrument` is the
client side with pyarc2's calling conventions: queued methods are kept in a local command
buffer, and ``execute()`` (or any method that returns data) sends the whole buffer as one
frame. The server runs a frame only once it has received all of it, so a client killed in the
middle of sending leaves nothing half-applied; a frame once received runs to its end, like a
command buffer the real instrument has received. A dropped link changes nothing on the
emulated instrument (the real one keeps its state too): the safety of a killed session rests on
every operation's buffer ending in the idle mode (see `xbarlab.bench.arctwo`).

Frame: one JSON line ``[[method, args], ...]``; reply: one JSON line ``{"ok": value}`` or
``{"error": [kind, message]}`` (kind "panic" for `Arc2Panic`, "error" otherwise).
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
from typing import Any

import numpy as np

from xbarlab.drivers.emulators.arc2 import Arc2Error, Arc2Panic, EmulatedInstrument

QUEUED = {"config_channels", "ground_all", "ground_all_fast", "float_all", "open_channels",
          "connect_to_gnd", "delay", "pulse_one"}
DATA = {"read_one", "read_slice_open"}


def _plain(x: Any) -> Any:
    if isinstance(x, np.ndarray):
        return [None if np.isnan(v) else float(v) for v in x.tolist()]
    if isinstance(x, list | tuple):
        return [_plain(v) for v in x]
    if isinstance(x, np.integer):
        return int(x)
    if isinstance(x, np.floating):
        return float(x)
    if hasattr(x, "name") and not isinstance(x, str | int | float):
        return {"enum": x.name}
    if isinstance(x, range):
        return list(x)
    return x


class _Mode:
    def __init__(self, name: str) -> None:
        self.name = name


class Arc2Server:
    """Serve `instrument` on 127.0.0.1:`port` (0: any free port) from one thread."""

    def __init__(self, instrument: EmulatedInstrument, port: int = 0) -> None:
        self.instrument = instrument
        self._sock = socket.create_server(("127.0.0.1", port))
        self._sock.settimeout(0.1)
        self.port = int(self._sock.getsockname()[1])
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.errors: list[str] = []
        self.frames = 0
        self.dropped = 0  # connections that ended with a partial frame

    @property
    def address(self) -> str:
        return f"emulated://127.0.0.1:{self.port}"

    def start(self) -> Arc2Server:
        self._thread = threading.Thread(target=self._serve, name="arc2-emulator", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        self._sock.close()

    def __enter__(self) -> Arc2Server:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with conn:
                conn.settimeout(0.1)
                self._session(conn)

    def _session(self, conn: socket.socket) -> None:
        buf = b""
        while not self._stop.is_set():
            try:
                chunk = conn.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                chunk = b""
            if not chunk:
                if buf:
                    self.dropped += 1  # a partial frame: never run
                return
            buf += chunk
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                reply = self._run(line)
                with contextlib.suppress(OSError):
                    conn.sendall(json.dumps(reply).encode() + b"\n")

    def _run(self, line: bytes) -> dict[str, Any]:
        try:
            frame = json.loads(line)
        except ValueError as exc:
            return {"error": ["error", f"bad frame: {exc}"]}
        self.frames += 1
        inst = self.instrument
        value: Any = None
        try:
            with inst.lock:
                for name, args in frame:
                    args = [_Mode(a["enum"]) if isinstance(a, dict) else a for a in args]
                    if name == "config_channels":
                        args[0] = [tuple(p) for p in args[0]]
                    value = getattr(inst, name)(*args)
            if name in QUEUED or name in ("execute",):
                value = None
            return {"ok": _plain(value)}
        except Arc2Panic as exc:
            return {"error": ["panic", str(exc)]}
        except Exception as exc:
            self.errors.append(f"{type(exc).__name__}: {exc}")
            return {"error": ["error", f"{type(exc).__name__}: {exc}"]}


class RemoteInstrument:
    """pyarc2.Instrument's calling conventions over the link to an `Arc2Server`."""

    def __init__(self, address: str, timeout: float = 10.0) -> None:
        host, _, port = address.rpartition(":")
        self._sock = socket.create_connection((host or "127.0.0.1", int(port)), timeout)
        self._file = self._sock.makefile("rb")
        self._buffer: list[list[Any]] = []

    def _send(self, frame: list[list[Any]]) -> Any:
        self._sock.sendall(json.dumps(frame).encode() + b"\n")
        line = self._file.readline()
        if not line:
            raise ConnectionError("ArC TWO emulator closed the link")
        reply = json.loads(line)
        if "error" in reply:
            kind, msg = reply["error"]
            raise (Arc2Panic if kind == "panic" else Arc2Error)(msg)
        return reply["ok"]

    def _queue(self, name: str, *args: Any) -> RemoteInstrument:
        self._buffer.append([name, _plain(list(args))])
        return self

    def _flush_with(self, name: str, *args: Any) -> Any:
        frame, self._buffer = [*self._buffer, [name, _plain(list(args))]], []
        return self._send(frame)

    def config_channels(self, input: Any, base: float | None = None
                        ) -> RemoteInstrument:
        return self._queue("config_channels", [[int(c), float(v)] for c, v in input], base)

    def ground_all(self) -> RemoteInstrument:
        return self._queue("ground_all")

    def ground_all_fast(self) -> RemoteInstrument:
        return self._queue("ground_all_fast")

    def float_all(self) -> RemoteInstrument:
        return self._queue("float_all")

    def open_channels(self, channels: Any) -> RemoteInstrument:
        return self._queue("open_channels", [int(c) for c in channels])

    def connect_to_gnd(self, chans: Any) -> RemoteInstrument:
        return self._queue("connect_to_gnd", [int(c) for c in chans])

    def delay(self, nanos: int) -> RemoteInstrument:
        return self._queue("delay", int(nanos))

    def pulse_one(self, low: int, high: int, voltage: float, nanos: int) -> RemoteInstrument:
        return self._queue("pulse_one", int(low), int(high), float(voltage), int(nanos))

    def execute(self) -> RemoteInstrument:
        self._flush_with("execute")
        return self

    def wait(self) -> None:
        return None

    def finalise_operation(self, mode: Any = None, control: Any = None) -> None:
        self._flush_with("finalise_operation", mode)

    def read_one(self, low: int, high: int, vread: float) -> float:
        return float(self._flush_with("read_one", int(low), int(high), float(vread)))

    def read_slice_open(self, highs: Any, ground_after: bool) -> np.ndarray:
        got = self._flush_with("read_slice_open", [int(c) for c in highs], bool(ground_after))
        return np.array([np.nan if v is None else v for v in got], dtype=np.float32)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._file.close()
            self._sock.close()
