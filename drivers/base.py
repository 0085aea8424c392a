"""A small declarative driver base: typed settings with strict validators, no I/O at construction.

A driver subclasses `Instrument` and declares its settings::

    class Smu(Instrument):
        voltage = Setting(":SOUR:VOLT {value}", in_range(-21.0, 21.0), "source level (V)")

``smu.voltage = 0.2`` validates first (out of range raises `SettingError`, never clamps), then
sends ``:SOUR:VOLT 0.2``; reading ``smu.voltage`` returns the last value sent (``None`` before).
Templates may use ``{value}`` and any key of `Instrument.fields()` (e.g. ``{ch}``).

Replies are parsed with `parse_float` / `parse_floats` / `parse_bool` / `parse_int` (binary
block payloads with `parse_doubles`), which raise `ReplyError` naming the instrument and the
command for garbage or truncated replies.
"""

from __future__ import annotations

import itertools
import logging
import math
import os
import re
import struct
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar, Generic, Protocol, TypeVar, overload

from xbarlab.drivers.errors import (
    IdentityMismatch,
    InstrumentError,
    ReplyError,
    SafeStateFailed,
    SettingError,
)
from xbarlab.drivers.limits import SmuLimits, WireGuard
from xbarlab.drivers.transports import Transport, TransportError, TransportTimeout

if TYPE_CHECKING:
    from xbarlab.bench.roles import Measurement

T = TypeVar("T")
log = logging.getLogger(__name__)
_SYNC_TOKENS = itertools.count(1)

OVERFLOW = 9.9e37
"""Keithley/Keysight SCPI 'overflow' (9.91e37) and NaN (9.9e37) markers are at or above this."""


def fmt(x: float) -> str:
    """A number as sent to instruments: the shortest string that reads back as exactly the same
    float (``0.2``, ``1e-09``, ``3``), so a validated value is never rounded past a limit."""
    s = repr(float(x))
    return s[:-2] if s.endswith(".0") else s


Validator = Callable[[str, Any], Any]
"""(setting name, value) -> validated value; raises `SettingError`."""


def _real(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise SettingError(f"{name}: expected a number, got {value!r}")
    v = float(value)
    if not math.isfinite(v):
        raise SettingError(f"{name}: {v} is not a finite number")
    return v


def in_range(lo: float, hi: float, unit: str = "") -> Validator:
    """A number in [lo, hi]; anything else raises (never clamps)."""

    def check(name: str, value: Any) -> float:
        v = _real(name, value)
        if not lo <= v <= hi:
            raise SettingError(f"{name}: {v:g}{unit} is outside the allowed range "
                               f"[{lo:g}, {hi:g}]{unit}")
        return v

    return check


def one_of(*choices: Any) -> Validator:
    """One of `choices` exactly."""

    def check(name: str, value: Any) -> Any:
        if value not in choices or isinstance(value, bool) != isinstance(choices[0], bool):
            raise SettingError(f"{name}: {value!r} is not one of {list(choices)}")
        return value

    return check


def boolean(name: str, value: Any) -> bool:
    """A real bool (not 0/1, not a string)."""
    if not isinstance(value, bool):
        raise SettingError(f"{name}: expected True or False, got {value!r}")
    return value


class Setting(Generic[T]):
    """A write-only instrument setting: validated, formatted into `command`, cached."""

    def __init__(self, command: str, validator: Validator, doc: str = "",
                 render: Callable[[Any], str] | None = None) -> None:
        self.command = command
        self.validator = validator
        self.render = render or (lambda v: fmt(v) if isinstance(v, float) else str(v))
        self.__doc__ = doc
        self.name = ""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    @overload
    def __get__(self, obj: None, owner: type) -> Setting[T]: ...
    @overload
    def __get__(self, obj: Instrument, owner: type) -> T | None: ...

    def __get__(self, obj: Instrument | None, owner: type) -> Any:
        if obj is None:
            return self
        return obj._cache.get(self.name)

    def __set__(self, obj: Instrument, value: T) -> None:
        label = f"{obj.name}.{self.name}"
        v = self.validator(label, value)
        obj.write(self.command.format(value=self.render(v), **obj.fields()))
        obj._cache[self.name] = v

    def line(self, obj: Instrument, value: Any) -> str:
        """The exact line setting `value` would send (validated; nothing is sent)."""
        v = self.validator(f"{obj.name}.{self.name}", value)
        return self.command.format(value=self.render(v), **obj.fields())


class Instrument:
    """Base of every driver: a name, a transport, and checked write/query helpers.

    The constructor does no I/O. `connect()` opens the transport and checks the identity.
    """

    IDN_QUERY = "*IDN?"

    def __init__(self, transport: Transport, name: str = "") -> None:
        self.transport = transport
        self.name = name or type(self).__name__
        self._cache: dict[str, Any] = {}
        self.identity: str | None = None

    def fields(self) -> dict[str, Any]:
        """Extra template fields for `Setting` commands (e.g. the channel)."""
        return {}

    # -- I/O ---------------------------------------------------------------------------------
    SYNC = "*IDN?"
    """A query that proves the link is in step after a timeout: a template with ``{token}``
    (answered ``xbl-sync-<token>``, unique per use: TSP ``print("xbl-sync-{token}")``), or a
    query answered with the identity (SCPI ``*IDN?``)."""

    def guard(self, line: str) -> None:
        """Raise `SettingError` if `line` must not be sent (see `SourceMeterBase.guard`)."""

    def _link(self, op: Callable[[str], T], line: str) -> T:
        """`op(line)` on the transport; a `TransportError` is raised again naming the
        instrument."""
        self.guard(line)
        try:
            return op(line)
        except TransportError as exc:
            raise type(exc)(f"{self.name}: {exc}") from exc

    def write(self, line: str) -> None:
        self._link(self.transport.write, line)

    def _answered(self, op: Callable[[str], T], line: str) -> T:
        """A query; on a timeout the link is cleared and resynchronised (`resync`) before the
        timeout is raised, so a reply arriving late is never read as the answer to a later
        query."""
        try:
            return self._link(op, line)
        except TransportTimeout as exc:
            note = self.resync(line)
            raise TransportTimeout(f"{exc}; {note}") from exc

    def query(self, line: str) -> str:
        return self._answered(self.transport.query, line)

    def query_block(self, line: str) -> bytes:
        """The payload of the definite-length block answering `line` (see
        `Transport.query_block`)."""
        return self._answered(self.transport.query_block, line)

    def resync(self, after: str) -> str:
        """Clear the link after a query to `after` timed out (device clear and a fresh
        connection where the transport has `clear()`, else `reopen()`), then check with `SYNC`
        that the next reply answers the next query. If another reply answers it, a second
        attempt waits one timeout (every pending reply has arrived) and clears again. Returns
        what was done (for the error message); raises `TransportTimeout` (silent) or
        `TransportError` when the link stays out of step."""
        t = self.transport
        last: BaseException | None = None
        for attempt in range(2):
            token = f"{os.getpid()}-{next(_SYNC_TOKENS)}"  # unique, even across channels
            expect: str | None = self.identity
            line = self.SYNC
            if "{token}" in self.SYNC:
                line, expect = self.SYNC.format(token=token), f"xbl-sync-{token}"
            try:
                if attempt:  # out of step: let every pending reply arrive, then drop it
                    time.sleep(t.timeout)
                clear = getattr(t, "clear", None)
                if callable(clear):
                    clear()
                else:
                    t.reopen()
                reply = t.query(line).strip()
            except TransportError as exc:
                last = exc
                break  # silent or gone: another attempt would only wait again
            if expect is None or reply == expect:
                log.warning("%s: no reply to %r in time; link cleared and resynchronised",
                            self.name, after)
                return "link cleared and resynchronised (no late reply will be read)"
            last = ReplyError(f"sync query {line!r} answered {reply!r}, expected {expect!r}")
        kind = TransportTimeout if isinstance(last, TransportTimeout) else TransportError
        raise kind(f"{self.name} at {t.address}: no reply to {after!r} in time, and the link "
                   f"could not be resynchronised: {last}")

    def connect(self, expect: str | None = None) -> str:
        """Open the transport, read the identity and check it contains `expect`.

        A mismatch raises `IdentityMismatch` before any other command is sent.
        """
        self.transport.open()
        idn = self.query(self.IDN_QUERY)
        if not idn or not idn.isprintable():
            raise ReplyError(f"{self.name}: reply to {self.IDN_QUERY!r} is not an identity: "
                             f"{idn!r}")
        if expect is not None and expect.lower() not in idn.lower():
            raise IdentityMismatch(f"{self.name} at {self.transport.address}: identity {idn!r} "
                                   f"does not contain {expect!r}; refusing to use it")
        self.identity = idn
        return idn

    def close(self) -> None:
        self.transport.close()

    def recover(self, what: str, attempt: Callable[[], None]) -> None:
        """Run `attempt` (a safe-state step); if it fails, reopen the link once (bounded by the
        transport's timeout) and run it again. A second failure raises `SafeStateFailed` with
        both causes; a recovery that worked is logged (the run stops on the first error anyway,
        wherever it was raised)."""
        try:
            attempt()
            return
        except Exception as exc:
            first = exc
        where = f"{self.name} at {self.transport.address}"
        try:
            self.transport.reopen()
        except Exception as exc:
            raise SafeStateFailed(f"{where}: {what} failed ({type(first).__name__}: {first}); "
                                  f"reopening the link failed too: {exc}") from exc
        try:
            attempt()
        except Exception as exc:
            raise SafeStateFailed(f"{where}: {what} failed ({type(first).__name__}: {first}); "
                                  f"after reopening the link it failed again: "
                                  f"{type(exc).__name__}: {exc}") from exc
        log.warning("%s: %s failed (%s); reached after reopening the link", where, what, first)

    # -- reply parsing -----------------------------------------------------------------------
    def parse_float(self, reply: str, command: str) -> float:
        try:
            v = float(reply.strip())
        except ValueError:
            raise ReplyError(f"{self.name}: reply to {command!r} is not a number: "
                             f"{reply!r}") from None
        if not math.isfinite(v):
            raise ReplyError(f"{self.name}: reply to {command!r} is not finite: {reply!r}")
        return v

    def parse_floats(self, reply: str, n: int, command: str, sep: str = ",",
                     form: re.Pattern[str] | None = None) -> list[float]:
        parts = [p for p in reply.strip().split(sep)]
        if len(parts) != n:
            raise ReplyError(f"{self.name}: reply to {command!r} should have {n} values, "
                             f"got {len(parts)}: {reply!r}")
        if form is None:
            return [self.parse_float(p, command) for p in parts]
        return [self.parse_fixed(p, command, form) for p in parts]

    def parse_fixed(self, reply: str, command: str, form: re.Pattern[str]) -> float:
        """A number the instrument writes in a fixed format (`form`, e.g. `SCPI_ASCII_NUMBER`):
        a reply cut short (``1.2345`` for ``1.2345E-05``) is refused, not read as a plausible
        value."""
        if not form.fullmatch(reply.strip()):
            raise ReplyError(f"{self.name}: reply to {command!r} is not a complete number "
                             f"(expected {form.pattern}): {reply!r}")
        return self.parse_float(reply, command)

    def parse_doubles(self, payload: bytes, n: int, command: str,
                      big_endian: bool = True) -> list[float]:
        """`n` IEEE-754 doubles from a binary block payload (SCPI ``:FORM:DATA REAL,64``):
        exactly 8n bytes, every value finite and below the overflow marker (NaN is the SCPI
        binary "no data"), else `ReplyError`."""
        if len(payload) != 8 * n:
            raise ReplyError(f"{self.name}: reply to {command!r} should be {n} IEEE-754 "
                             f"double(s) ({8 * n} bytes), got {len(payload)} bytes: "
                             f"{payload!r}")
        values = list(struct.unpack(f"{'>' if big_endian else '<'}{n}d", payload))
        for v in values:
            if not math.isfinite(v) or abs(v) >= OVERFLOW:
                raise ReplyError(f"{self.name}: reply to {command!r} holds {v!r} (no data or "
                                 f"overflow): {payload!r}")
        return values

    def parse_int(self, reply: str, command: str) -> int:
        v = self.parse_float(reply, command)
        if v != int(v):
            raise ReplyError(f"{self.name}: reply to {command!r} is not an integer: {reply!r}")
        return int(v)

    def parse_flag(self, reply: str, command: str, on: str = "1", off: str = "0") -> bool:
        """Exactly `on` or `off` (the instrument's own spelling), nothing else."""
        r = reply.strip()
        if r == on:
            return True
        if r == off:
            return False
        raise ReplyError(f"{self.name}: reply to {command!r} should be {on!r} or {off!r}, "
                         f"got {reply!r}")

    def parse_bool(self, reply: str, command: str) -> bool:
        r = reply.strip().lower()
        if r in ("1", "true", "on"):
            return True
        if r in ("0", "false", "off"):
            return False
        raise ReplyError(f"{self.name}: reply to {command!r} is not a boolean: {reply!r}")


class SourceCommands(Protocol):
    """The lines of a driver's `Cmd` table that `SourceMeterBase` sends (templates may use
    ``{ch}`` and the other keys of `Instrument.fields()`; `LEVEL` takes ``{value}``)."""

    LEVEL: str  # source level
    OUTPUT_ON: str
    OUTPUT_OFF: str
    OUTPUT_STATE: str  # query: the output state (parsed by `parse_output`)
    ABORT: str


class SourceMeterBase(Instrument):
    """Shared bookkeeping and commands of SMU drivers: output state, pulse range, output on and
    off, the safe state.

    A subclass names its command table in `CMD` (a `SourceCommands`), declares the `voltage`
    setting and implements `configure`, `measure`, `arm_pulse`, `fire_pulse` and `errors`.
    The lines sent here are the table's: on ``OUTPUT_ON``; off ``LEVEL 0``, ``OUTPUT_OFF``,
    ``OUTPUT_STATE``; safe state ``ABORT``, ``LEVEL 0``, ``OUTPUT_OFF``, ``OUTPUT_STATE``.

    `output_on` is what the bench's break-before-make relies on, so it is False only once the
    instrument itself has answered that its output is off (`confirm_off`: a query sent after
    the output-off command, so it is answered only once that command has been executed), and
    True after anything that may switch the output on, and before the first confirmation.
    """

    PULSE_WIDTH_RANGE: tuple[float, float] = (1e-3, 1.0)
    V_MAX: float = 21.0
    CMD: ClassVar[SourceCommands]
    LIMITED: ClassVar[dict[str, dict[str, str]]] = {}
    """Per `CMD` entry, the kind of each numeric field (`xbarlab.drivers.limits.Kind`):
    checked against `limits` by `guard` before the line is sent."""
    READ_ONLY: ClassVar[re.Pattern[str]] = re.compile(r'[*:A-Za-z0-9]+\?(?: [\w"(@),.:+-]+)?')
    """Lines that only read (a single SCPI query: it sets nothing); `guard` lets them pass."""
    voltage: Setting[float]  # declared by each driver (its range and command)

    def __init__(self, transport: Transport, name: str = "",
                 limits: SmuLimits | None = None) -> None:
        super().__init__(transport, name)
        self.limits = limits if limits is not None else SmuLimits()
        self._output_on = True  # not known to be off until the instrument says so
        self.compliance: float | None = None
        self._read_nplc = 1.0  # the integration time of reads, restored after a pulse
        self._wire_guard: WireGuard | None = None
        guards = getattr(transport, "guards", None)
        if isinstance(guards, list):  # lines written straight to the transport are held too
            guards.append(self.guard)

    # -- limits ------------------------------------------------------------------------------
    def backstop_range(self) -> float:
        """The fixed source range (V) covering `limits.v_max` (instruments with source ranges
        override it; the guard allows no range setting above it)."""
        return self.limits.v_max

    def protection_level(self) -> float:
        """The overvoltage protection level (V) the driver sets (instruments with one)."""
        return self.limits.v_max

    def guard(self, line: str) -> None:
        """Refuse (`SettingError`, nothing sent) any line that is not one of `CMD`'s commands
        or holds a number beyond `limits` (see `xbarlab.drivers.limits.WireGuard`); lines that
        only read (`READ_ONLY`) pass."""
        if self.READ_ONLY.fullmatch(line):
            return
        if self._wire_guard is None:
            lim = self.limits

            def volts(x: float) -> str | None:
                return None if abs(x) <= lim.v_max else (
                    f"would apply {x:g} V, beyond the bench limit +-{lim.v_max:g} V")

            def pulse(x: float) -> str | None:
                lo, hi = lim.pulse_window
                return None if lo <= x <= hi else (
                    f"would pulse at {x:g} V, outside the bench pulse window [{lo:g}, {hi:g}] V")

            def amps(x: float) -> str | None:
                return None if 0 < abs(x) <= lim.i_max else (
                    f"sets a current limit of {x:g} A, outside (0, {lim.i_max:g}] A (bench "
                    "compliance)")

            def width(x: float) -> str | None:
                lo, hi = self.pulse_width_range
                return None if lo <= x <= hi else (
                    f"sets a pulse width of {x:g} s, outside [{lo:g}, {hi:g}] s")

            def source_range(x: float) -> str | None:
                top = self.backstop_range()
                return None if abs(x) <= top else (
                    f"selects a source range for {x:g} V, above the {top:g} V range covering "
                    f"the bench limit {lim.v_max:g} V")

            def dwell(x: float) -> str | None:
                hi = self.pulse_width_range[1]
                return None if 0 <= x <= hi else (
                    f"holds a level for {x:g} s inside a pulse, outside [0, {hi:g}] s")

            def protect(x: float) -> str | None:
                top = self.protection_level()
                return None if 0 < x <= top else (
                    f"sets the overvoltage protection to {x:g} V, above {top:g} V")

            templates = {k: v for k, v in vars(type(self).CMD).items()
                         if k.isupper() and isinstance(v, str)}
            self._wire_guard = WireGuard(
                self.name, templates, self.LIMITED, self.fields(),
                {"volts": volts, "pulse": pulse, "amps": amps, "width": width,
                 "range": source_range, "protect": protect, "dwell": dwell})
        self._wire_guard.check(line)

    def check_setup(self, compliance: float, v_protect: float) -> None:
        """Refuse a configuration beyond the driver's limits (a second backend built with
        looser limits cannot widen them)."""
        c = _real(f"{self.name}.compliance", compliance)
        v = _real(f"{self.name}.v_protect", v_protect)
        if not 0 < c <= self.limits.i_max:
            raise SettingError(f"{self.name}: compliance {c:g} A is outside (0, "
                               f"{self.limits.i_max:g}] A, this driver's bench limit")
        if not 0 < v <= self.limits.v_max:
            raise SettingError(f"{self.name}: protection at {v:g} V is outside (0, "
                               f"{self.limits.v_max:g}] V, this driver's bench limit")

    def line(self, template: str, **values: object) -> str:
        """A command template filled with the driver's `fields()` (the channel) and `values`."""
        return template.format(**self.fields(), **values)

    @property
    def output_on(self) -> bool:
        """False only when the instrument confirmed its output off (see the class doc)."""
        return self._output_on

    def output_query(self) -> str:
        """The query reading the output state back (reply parsed by `parse_output`)."""
        return self.line(self.CMD.OUTPUT_STATE)

    def parse_output(self, reply: str, command: str) -> bool:
        """True if the reply to `output_query` says the output is on."""
        return self.parse_bool(reply, command)

    def confirm_off(self) -> None:
        """Ask the instrument for its output state; raise unless it is off."""
        cmd = self.output_query()
        reply = self.query(cmd)
        if self.parse_output(reply, cmd):
            self._output_on = True
            raise InstrumentError(f"{self.name}: output still on after the output-off command "
                                  f"({cmd!r} -> {reply!r})")
        self._output_on = False

    def set_voltage(self, volts: float) -> None:
        self.voltage = volts

    def enable(self) -> None:
        """Output on; refused before `configure` has set the compliance."""
        self.require_configured("output on")
        self.write(self.line(self.CMD.OUTPUT_ON))
        self._output_on = True

    def disable(self) -> None:
        """0 V, output off, confirmed off by the instrument."""
        self.voltage = 0.0
        self.write(self.line(self.CMD.OUTPUT_OFF))
        self.confirm_off()

    @property
    def pulse_width_range(self) -> tuple[float, float]:
        """The widths this instrument produces honestly, within the bench limits (empty, lo >
        hi, when they do not overlap: every pulse is then refused)."""
        lo, hi = self.PULSE_WIDTH_RANGE
        return max(lo, self.limits.width_min), min(hi, self.limits.width_max)

    def check_pulse(self, volts: float, width: float) -> tuple[float, float]:
        lo_v, hi_v = self.limits.pulse_window
        v = in_range(max(lo_v, -self.V_MAX), min(hi_v, self.V_MAX), " V")(
            f"{self.name}.pulse voltage", volts)
        lo, hi = self.pulse_width_range
        if lo > hi:
            raise SettingError(f"{self.name}: no pulse width is possible: the instrument makes "
                               f"{self.PULSE_WIDTH_RANGE[0]:g} .. {self.PULSE_WIDTH_RANGE[1]:g} "
                               f"s, the bench allows {self.limits.width_min:g} .. "
                               f"{self.limits.width_max:g} s")
        w = in_range(lo, hi, " s")(f"{self.name}.pulse width", width)
        if self.compliance is None:
            raise InstrumentError(f"{self.name}: configure() (compliance) before any pulse")
        return v, w

    def pulse(self, volts: float, width: float) -> Measurement:
        """One pulse: `arm_pulse` then `fire_pulse`."""
        self.arm_pulse(volts, width)
        return self.fire_pulse()

    def arm_pulse(self, volts: float, width: float) -> None:
        raise NotImplementedError

    def fire_pulse(self) -> Measurement:
        raise NotImplementedError

    def _armed(self) -> tuple[float, float]:
        armed = self._cache.pop("armed", None)
        if armed is None:
            raise InstrumentError(f"{self.name}: fire_pulse() without arm_pulse()")
        return armed

    def require_configured(self, what: str) -> None:
        if self.compliance is None:
            raise InstrumentError(f"{self.name}: configure() (compliance) before {what}")

    def safe_lines(self) -> list[str]:
        """The lines of the safe state, in order (abort, 0 V, output off)."""
        return [self.line(self.CMD.ABORT), self.line(self.CMD.LEVEL, value="0"),
                self.line(self.CMD.OUTPUT_OFF)]

    def _send_safe_lines(self) -> None:
        """Every safe-state line even if one fails (the first failure raised after), then the
        output confirmed off."""
        first: BaseException | None = None
        for line in self.safe_lines():
            try:
                self.write(line)
            except BaseException as exc:
                first = first or exc
        if first is not None:
            raise first
        self.confirm_off()
        self._cache.pop("voltage", None)

    def safe_state(self) -> None:
        """Abort, 0 V, output off, confirmed by the instrument; on failure the link is reopened
        once and everything sent again (`Instrument.recover`). A pulse armed but never fired
        then has its settings put back to the read set-up (the output stays off)."""
        self._output_on = True  # until confirmed off
        self.recover("safe state", self._send_safe_lines)
        if "before" in self._cache:
            self._cache.pop("armed", None)
            self._cache["before"] = (False, 0.0)  # restore, but never switch the output on
            try:
                self._restore()
            except Exception as exc:  # the output is off: report, do not fail the safe state
                log.warning("%s: output off, but the pulse settings were not restored: %s",
                            self.name, exc)

    def _restore(self) -> None:
        """Put back what `arm_pulse` changed (drivers that pulse override it)."""
        self._cache.pop("before", None)

    def _restore_after_failure(self) -> None:
        """`_restore` while an error is on its way: a failure to restore is logged, and the
        original error (the cause) is the one raised."""
        try:
            self._restore()
        except Exception as exc:
            log.warning("%s: the pulse failed and its settings were not restored: %s",
                        self.name, exc)


SCPI_ASCII_NUMBER = re.compile(r"[+-]?\d(\.\d*)?E[+-]\d\d\d?")
"""A number in the ASCII reply format of SCPI SMUs (2450 ``-6.999999881E-01``, B2900
``+1.000001E-06``): mantissa, ``E``, signed exponent of two (or three) digits."""

SCPI_ERROR_REPLY = re.compile(r'^([+-]?\d+),"(.*)"$', re.DOTALL)
"""A complete SCPI error-queue reply: ``<code>,"<message>"`` (the closing quote included)."""


def scpi_errors(inst: Instrument, query: str = ":SYST:ERR?", limit: int = 64) -> list[str]:
    """Drain a SCPI error queue (``<code>,"<message>"`` replies, code 0 = empty).

    Only a complete reply counts: a truncated one (``0,"No``: no closing quote) or any other
    shape raises `ReplyError` naming the instrument and the query, never "no error"."""
    out: list[str] = []
    for _ in range(limit):
        reply = inst.query(query).strip()
        m = SCPI_ERROR_REPLY.match(reply)
        if m is None:
            what = ("truncated (no closing quote)" if re.match(r'^[+-]?\d+,"', reply)
                    else "not '<code>,\"<message>\"'")
            raise ReplyError(f"{inst.name}: reply to {query!r} is {what}: {reply!r}")
        code = int(m[1])
        if code == 0:
            return out
        out.append(f"{code}: {m[2]}")
    out.append(f"(error queue not empty after {limit} reads)")
    return out


__all__ = [
    "OVERFLOW", "SCPI_ASCII_NUMBER", "SCPI_ERROR_REPLY", "IdentityMismatch", "Instrument",
    "InstrumentError", "ReplyError", "SafeStateFailed", "Setting", "SettingError", "SmuLimits",
    "SourceCommands", "SourceMeterBase", "TransportTimeout", "boolean", "fmt", "in_range",
    "one_of", "scpi_errors",
]
