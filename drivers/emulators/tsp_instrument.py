"""Shared part of emulated TSP instruments (2600B, 707B): the error queue, common commands.

``errorqueue.count``, ``errorqueue.next()`` (-> code, message, severity, node; empty:
``0, "Queue Is Empty"``), ``errorqueue.clear()``; common commands ``*IDN?``, ``*OPC?``,
``*CLS``, ``*RST``, ``*WAI``. Any other ``*`` command: -113 Undefined header.
"""

from __future__ import annotations

from typing import Any

from xbarlab.drivers.emulators.tsp import Function, Prop, Table, TspError, TspInterpreter

SEVERITY_RECOVERABLE = 20


class TspInstrument:
    """Base of TSP emulators. Subclasses fill `env` and implement `reset` and `identity`."""

    name = "tsp"
    identity = "TSP"
    queue_size = 100

    def __init__(self, precision: int = 16) -> None:
        self.errors: list[tuple[int, str]] = []
        self.received: list[str] = []
        self.env: dict[str, Any] = {
            "errorqueue": Table({
                "count": Prop(lambda: float(len(self.errors))),
                "next": Function(self._next_error),
                "clear": Function(lambda: self.errors.clear()),
            }, "errorqueue"),
        }
        self.tsp = TspInterpreter(self.env, precision)

    def _next_error(self) -> tuple[float, str, float, float]:
        if not self.errors:
            return 0.0, "Queue Is Empty", 0.0, 0.0
        code, text = self.errors.pop(0)
        return float(code), text, float(SEVERITY_RECOVERABLE), 0.0

    def error(self, code: int, text: str) -> None:
        if len(self.errors) >= self.queue_size:
            self.errors[-1] = (-350, "Queue overflow")
            return
        self.errors.append((code, text))

    def inject(self, kind: str, line: str = "") -> None:
        if kind == "error":
            self.error(-222, "Parameter data out of range (injected fault)")

    def reset(self) -> None:
        raise NotImplementedError

    def handle(self, line: str) -> str | None:
        self.received.append(line)
        s = line.strip()
        if not s:
            return None
        if s.startswith("*"):
            cmd = s.upper()
            if cmd == "*IDN?":
                return self.identity
            if cmd == "*OPC?":
                return "1"
            if cmd in ("*OPC", "*WAI"):
                return None
            if cmd == "*CLS":
                self.errors.clear()
                return None
            if cmd == "*RST":
                self.reset()
                return None
            self.error(-113, "Undefined header")
            return None
        try:
            return self.tsp.run(s)
        except TspError as err:
            self.error(err.code, err.text)
            return None
