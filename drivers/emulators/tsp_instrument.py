"""Shared part of emulated TSP instruments (2600B, 707B): the error queue, common commands.

``errorqueue.count``, ``errorqueue.next()`` (-> code, message, severity, node; empty:
``0, "Queue Is Empty"``), ``errorqueue.clear()``; the queue outlives a client's connection (a
new session finds what an earlier one left, `error` puts entries there); common commands
``*IDN?``, ``*OPC?``, ``*CLS``, ``*RST``, ``*WAI``. Any other ``*`` command: -113 Undefined header.

``format.asciiprecision``: significant digits of the numbers ``print`` writes (``%e`` style,
``2.54000e+00`` at 6 digits), 1 .. 16 (Reference Manuals, "format.asciiprecision"); anything
else is refused with -222 and leaves it unchanged. The default (`ascii_digits`, per model) is
restored by an instrument reset (``reset()``, ``*RST``), not by ``smuX.reset()``.
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
    ascii_digits = 6  # default format.asciiprecision (2600B: 6; 707B: 10)
    ASCII_DIGITS_RANGE = (1, 16)

    def __init__(self) -> None:
        self.errors: list[tuple[int, str]] = []
        self.received: list[str] = []
        self.tsp: TspInterpreter
        self.env: dict[str, Any] = {
            "errorqueue": Table({
                "count": Prop(lambda: float(len(self.errors))),
                "next": Function(self._next_error),
                "clear": Function(lambda: self.errors.clear()),
            }, "errorqueue"),
            "format": Table({
                "asciiprecision": Prop(lambda: float(self.tsp.precision + 1),
                                       self._set_ascii_precision),
            }, "format"),
        }
        self.tsp = TspInterpreter(self.env, self.ascii_digits - 1)

    def _set_ascii_precision(self, v: Any) -> None:
        lo, hi = self.ASCII_DIGITS_RANGE
        if isinstance(v, bool) or not isinstance(v, float) or v != int(v) or not lo <= v <= hi:
            raise TspError(-222, f"Parameter data out of range: format.asciiprecision {v!r} "
                                 f"not an integer in {lo} .. {hi}")
        self.tsp.precision = int(v) - 1

    def instrument_reset(self) -> None:
        """``reset()`` / ``*RST``: the model's `reset` and the default print format."""
        self.reset()
        self.tsp.precision = self.ascii_digits - 1

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
                self.instrument_reset()
                return None
            self.error(-113, "Undefined header")
            return None
        try:
            return self.tsp.run(s)
        except TspError as err:
            self.error(err.code, err.text)
            return None
