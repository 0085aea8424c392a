"""A custom crossbar board on a serial port: the XBL line protocol and its `Board` driver.

The XBL protocol (v1) -- what a lab's own multiplexer/driver board implements
=============================================================================

Transport: ASCII lines terminated by ``\\n`` (the board also accepts ``\\r\\n``), 115200 baud
8N1 by default. The host sends one command line and waits for exactly one reply line before
sending the next; the board never speaks unprompted. Numbers are decimal or exponent notation
(``0.2``, ``-1.5``, ``1e-06``); rows and columns are 0-based.

Every command gets exactly one reply: ``OK`` for an action, the value for a query, or
``ERR <code> <text>`` when it is refused (nothing was changed; the error is also queued for
``ERR?``). A board must refuse, never clamp, out-of-range values.

========================  =============================  =======================================
command                   reply                          meaning
========================  =============================  =======================================
``*IDN?``                 ``<maker>,<model>,<serial>,    identity
                          <firmware>``
``SHAPE?``                ``<rows>,<cols>``              array size the board is wired for
``ERR?``                  ``0,No error`` or              oldest queued error (one per query)
                          ``<code>,<text>``
``ILIM <A>``              ``OK``                         current limit of drivers and sense amp
``ROW <i> <V>``           ``OK``                         row i's line driver at V volts
``ROW <i> Z``             ``OK``                         row i floating (high impedance)
``COL <j> <V>`` / ``Z``   ``OK``                         same for column j
``SEL <i> <j>``           ``OK``                         row i to the read/pulse driver, column j
                                                         to the sense amplifier (virtual ground);
                                                         other lines keep their ROW/COL state
``SEL NONE``              ``OK``                         deselect
``READ <V>``              ``<I>,<C>``                    drive the selected row at V (DC), sense
                                                         the selected column: I = current into
                                                         the column (A), C = 1 if the limit hit
``PULSE <V> <W>``         ``<I>,<C>``                    square pulse V for W s on the selected
                                                         row, back to 0 V; I sampled at the end
                                                         of the pulse (``nan`` if not measured)
``ICOL?``                 ``<I0>,...,<In-1>;<C>``        every column at virtual ground, current
                                                         into each (MVM); C = 1 if any limit hit
``OFF``                   ``OK``                         safe state: every driver 0 V, every
                                                         line floating, nothing selected
========================  =============================  =======================================

Error codes: 1 unknown command, 2 bad argument, 3 out of range, 4 nothing selected,
5 hardware fault, 6 compliance (queued when a limit was hit).

Compliance is a measurement flag, not an instrument error
---------------------------------------------------------
A limit hit is reported twice by the board: ``C = 1`` in the reply of the ``READ``,
``PULSE`` or ``ICOL?`` that hit it, and error 6 queued for ``ERR?``. The protocol does not make
it a fault: the command was executed, the current was clipped at ``ILIM`` and the reply says
so. The driver therefore takes the ``C`` flag as the measurement's compliance flag (the bench
logs it with the reading, as on an SMU bench, where compliance is a logged flag too) and
`SerialBoard.errors` drains error-6 entries without reporting them, so a compliance trip does
not stop a run. Every other code is an instrument error (the run stops). A board whose error 6
means more than a clipped reading (e.g. a tripped hardware fuse) should report that as error 5.

The driver (`SerialBoard`) sends only the lines in `Cmd`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from xbarlab.bench.roles import Measurement
from xbarlab.drivers.base import (
    Instrument,
    InstrumentError,
    ReplyError,
    SettingError,
    fmt,
    in_range,
)
from xbarlab.drivers.transports import Transport

NO_ERROR = "No error"
"""The text of ``ERR?`` when the queue is empty (anything else with code 0 is a bad reply)."""
COMPLIANCE = 6
"""The error code a board queues when a limit was hit (also flagged in the reply)."""


class Cmd:
    IDN = "*IDN?"
    SHAPE = "SHAPE?"
    ERROR = "ERR?"
    ILIM = "ILIM {value}"
    ROW = "ROW {index} {value}"
    COL = "COL {index} {value}"
    SELECT = "SEL {row} {col}"
    DESELECT = "SEL NONE"
    READ = "READ {value}"
    PULSE = "PULSE {value} {width}"
    COLUMN_CURRENTS = "ICOL?"
    OFF = "OFF"


class SerialBoard(Instrument):
    """A board speaking XBL v1. Limits of the board's own drivers are constructor arguments."""

    def __init__(self, transport: Transport, shape: tuple[int, int], name: str = "board", *,
                 v_max: float = 5.0, pulse_width: tuple[float, float] = (1e-7, 1.0)) -> None:
        super().__init__(transport, name)
        self._shape = (int(shape[0]), int(shape[1]))
        self.v_max = float(v_max)
        self.pulse_width = pulse_width
        self._volts = in_range(-self.v_max, self.v_max, " V")
        self.compliance_reports = 0  # error-6 entries drained (see the module doc)

    @property
    def shape(self) -> tuple[int, int]:
        return self._shape

    def _ok(self, line: str) -> None:
        reply = self.query(line)
        if reply != "OK":
            self._raise(line, reply)

    def _raise(self, line: str, reply: str) -> None:
        if reply.startswith("ERR"):
            raise InstrumentError(f"{self.name}: {line!r} refused: {reply[3:].strip()}")
        raise ReplyError(f"{self.name}: reply to {line!r} is not 'OK': {reply!r}")

    def connect(self, expect: str | None = None) -> str:
        idn = super().connect(expect)
        reply = self.query(Cmd.SHAPE)
        parts = reply.split(",")
        if len(parts) != 2:
            raise ReplyError(f"{self.name}: reply to {Cmd.SHAPE!r} is not '<rows>,<cols>': "
                             f"{reply!r}")
        rows, cols = (self.parse_int(p, Cmd.SHAPE) for p in parts)
        if (rows, cols) != self._shape:
            raise InstrumentError(f"{self.name}: board is wired for {rows} x {cols}, the bench "
                                  f"config says {self._shape[0]} x {self._shape[1]}")
        return idn

    def configure(self, compliance: float) -> None:
        c = in_range(1e-9, 0.1, " A")(f"{self.name}.compliance", compliance)
        self._ok(Cmd.OFF)
        self._ok(Cmd.ILIM.format(value=fmt(c)))

    def _line_value(self, what: str, index: int, v: float) -> str:
        if math.isnan(v):
            return "Z"
        return fmt(self._volts(f"{self.name}.{what}[{index}]", v))

    def set_lines(self, row_v: Sequence[float], col_v: Sequence[float]) -> None:
        if len(row_v) != self._shape[0] or len(col_v) != self._shape[1]:
            raise SettingError(f"{self.name}: need {self._shape[0]} row and {self._shape[1]} "
                               f"column levels, got {len(row_v)} and {len(col_v)}")
        lines = [Cmd.ROW.format(index=i, value=self._line_value("row", i, float(v)))
                 for i, v in enumerate(row_v)]
        lines += [Cmd.COL.format(index=j, value=self._line_value("col", j, float(v)))
                  for j, v in enumerate(col_v)]
        for line in lines:  # every value validated before the first line goes out
            self._ok(line)

    def select(self, row: int, col: int) -> None:
        if not (0 <= row < self._shape[0] and 0 <= col < self._shape[1]):
            raise SettingError(f"{self.name}: cell ({row}, {col}) outside {self._shape}")
        self._ok(Cmd.SELECT.format(row=row, col=col))

    def deselect(self) -> None:
        self._ok(Cmd.DESELECT)

    def _measurement(self, line: str, v: float) -> Measurement:
        reply = self.query(line)
        if reply.startswith("ERR"):
            self._raise(line, reply)
        parts = reply.split(",")
        if len(parts) != 2:
            raise ReplyError(f"{self.name}: reply to {line!r} should be '<I>,<C>': {reply!r}")
        i = float("nan") if parts[0].strip().lower() == "nan" else self.parse_float(parts[0], line)
        return Measurement(v, i, self.parse_bool(parts[1], line))

    def read(self, volts: float) -> Measurement:
        v = self._volts(f"{self.name}.read voltage", volts)
        return self._measurement(Cmd.READ.format(value=fmt(v)), v)

    def pulse(self, volts: float, width: float) -> Measurement:
        v = self._volts(f"{self.name}.pulse voltage", volts)
        w = in_range(*self.pulse_width, " s")(f"{self.name}.pulse width", width)
        return self._measurement(Cmd.PULSE.format(value=fmt(v), width=fmt(w)), v)

    def column_currents(self) -> list[Measurement]:
        reply = self.query(Cmd.COLUMN_CURRENTS)
        if reply.startswith("ERR"):
            self._raise(Cmd.COLUMN_CURRENTS, reply)
        values, sep, flag = reply.partition(";")
        if not sep:
            raise ReplyError(f"{self.name}: reply to {Cmd.COLUMN_CURRENTS!r} has no ';<C>': "
                             f"{reply!r}")
        currents = self.parse_floats(values, self._shape[1], Cmd.COLUMN_CURRENTS)
        comp = self.parse_bool(flag, Cmd.COLUMN_CURRENTS)
        return [Measurement(0.0, i, comp) for i in currents]

    def errors(self) -> list[str]:
        """Drain ``ERR?``; compliance entries (code 6) are counted in `compliance_reports`
        but not returned: the measurements already carry them as their compliance flag."""
        out: list[str] = []
        for _ in range(64):
            reply = self.query(Cmd.ERROR)
            code_s, sep, text = reply.partition(",")
            code = self.parse_int(code_s, Cmd.ERROR) if sep else None
            if code is None:
                raise ReplyError(f"{self.name}: reply to {Cmd.ERROR!r} is not '<code>,<text>': "
                                 f"{reply!r}")
            if code == 0:
                if text.strip() != NO_ERROR:  # e.g. '0,No' cut short: not "no error"
                    raise ReplyError(f"{self.name}: reply to {Cmd.ERROR!r} is truncated or "
                                     f"garbled (expected '0,{NO_ERROR}'): {reply!r}")
                return out
            if code == COMPLIANCE:
                self.compliance_reports += 1
                continue
            out.append(f"{code}: {text.strip()}")
        return out

    def off(self) -> None:
        """``OFF``: every driver 0 V, every line floating, nothing selected."""
        self._ok(Cmd.OFF)

    def safe_state(self) -> None:
        """`off`, reopening the port once if it fails (a board that went silent stays so)."""
        self.recover("safe state", self.off)
