"""A small SCPI parser and error queue for emulated instruments (IEEE 488.2 / SCPI-1999).

Commands are registered with their header in manual notation, e.g.
``:SOURce[1]:VOLTage[:LEVel][:IMMediate][:AMPLitude]``: upper case is the short form, the
whole word the long form (a header node must be one or the other, any case), ``[...]`` nodes
are optional, a trailing ``[1]`` is an optional suffix that may only be 1 (a one-channel
instrument: ``:SOUR2`` is -114), ``#`` any numeric suffix (captured, default 1: the handler
checks it). A query is
registered with a trailing ``?``.

A program message may hold several commands separated by ``;`` (each header absolute or
common; the relative-path rule of SCPI is not implemented). Replies of the queries of one
message are joined with ``;``. Errors go to the error queue, never raise out of `handle`:

- ``-102 Syntax error``, ``-104 Data type error``, ``-108 Parameter not allowed``,
  ``-109 Missing parameter``, ``-113 Undefined header``, ``-114 Header suffix out of range``,
  ``-222 Data out of range``,
  ``-224 Illegal parameter value``, ``-350 Queue overflow``.
"""

from __future__ import annotations

import math
import re
import struct
from collections.abc import Callable
from dataclasses import dataclass, field

ERROR_TEXT = {
    -100: "Command error", -102: "Syntax error", -104: "Data type error",
    -108: "Parameter not allowed", -109: "Missing parameter", -113: "Undefined header",
    -114: "Header suffix out of range",
    -221: "Settings conflict", -222: "Data out of range", -224: "Illegal parameter value",
    -350: "Queue overflow",
}


class ScpiError(Exception):
    """Raised by a handler; becomes an entry of the error queue."""

    def __init__(self, code: int, text: str = "") -> None:
        super().__init__(code, text)
        self.code = code
        self.text = text or ERROR_TEXT.get(code, "Error")


@dataclass
class ErrorQueue:
    """A FIFO of (code, message); full: the newest entry becomes -350 Queue overflow."""

    size: int = 20
    entries: list[tuple[int, str]] = field(default_factory=list)

    def push(self, code: int, text: str) -> None:
        if len(self.entries) >= self.size:
            self.entries[-1] = (-350, ERROR_TEXT[-350])
            return
        self.entries.append((code, text))

    def pop(self) -> tuple[int, str]:
        return self.entries.pop(0) if self.entries else (0, "No error")

    def clear(self) -> None:
        self.entries.clear()


@dataclass(frozen=True)
class _Node:
    short: str
    long: str
    optional: bool
    suffix: bool
    only_one: bool = False  # "[1]": the suffix, when given, must be 1


_NODE = re.compile(r"(\[)?:?([A-Za-z*]+)(\[1\]|#)?(\])?")


def _compile(pattern: str) -> tuple[list[_Node], bool]:
    query = pattern.endswith("?")
    body = pattern[:-1] if query else pattern
    nodes = []
    for part in re.findall(r"\[:[A-Za-z]+(?:\[1\]|#)?\]|:?[*A-Za-z]+(?:\[1\]|#)?", body):
        m = _NODE.fullmatch(part)
        assert m, f"bad pattern node {part!r} in {pattern!r}"
        word = m[2]
        short = "".join(ch for ch in word if ch.isupper() or ch == "*")
        nodes.append(_Node(short.upper(), word.upper(), bool(m[1]), bool(m[3]),
                           m[3] == "[1]"))
    return nodes, query


_HEADER_NODE = re.compile(r"([A-Za-z_*]+?)(\d*)$")


def _match(pattern: list[_Node], tokens: list[str]) -> list[int] | None:
    """Numeric suffixes of each suffixed node if `tokens` match `pattern`, else None."""
    if not pattern:
        return [] if not tokens else None
    node, rest = pattern[0], pattern[1:]
    if tokens:
        m = _HEADER_NODE.match(tokens[0])
        if m:
            word, digits = m[1].upper(), m[2]
            if word in (node.short, node.long) and (not digits or node.suffix):
                if node.only_one and digits and int(digits) != 1:
                    raise ScpiError(-114, f"Header suffix out of range; {tokens[0]}")
                tail = _match(rest, tokens[1:])
                if tail is not None:
                    return ([int(digits) if digits else 1] if node.suffix else []) + tail
    if node.optional:
        tail = _match(rest, tokens)
        if tail is not None:
            return ([1] if node.suffix else []) + tail
    return None


def split_outside_quotes(text: str, sep: str) -> list[str]:
    out, cur, quote, depth = [], [], "", 0
    for ch in text:
        if quote:
            cur.append(ch)
            if ch == quote:
                quote = ""
            continue
        if ch in "\"'":
            quote = ch
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == sep and depth == 0:
            out.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    if quote:
        raise ScpiError(-102, "Syntax error; unterminated string")
    out.append("".join(cur))
    return out


# -- parameter parsing (handlers call these) -----------------------------------------------------
_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


def number(arg: str, lo: float, hi: float, *, default: float | None = None) -> float:
    """A decimal numeric parameter in [lo, hi]; MINimum / MAXimum / DEFault accepted."""
    a = arg.strip().upper()
    if a in ("MIN", "MINIMUM"):
        return lo
    if a in ("MAX", "MAXIMUM"):
        return hi
    if a in ("DEF", "DEFAULT") and default is not None:
        return default
    if not _NUMBER.fullmatch(a):
        raise ScpiError(-104, f"Data type error; numeric parameter expected, got {arg.strip()!r}")
    v = float(a)
    if not math.isfinite(v) or not lo <= v <= hi:
        raise ScpiError(-222, f"Data out of range; {v:g} not in [{lo:g}, {hi:g}]")
    return v


def boolean(arg: str) -> bool:
    a = arg.strip().upper()
    if a in ("ON", "1"):
        return True
    if a in ("OFF", "0"):
        return False
    raise ScpiError(-224, f"Illegal parameter value; ON|OFF|1|0 expected, got {arg.strip()!r}")


def choice(arg: str, *options: str) -> str:
    """Character data: one of `options` given in manual notation (short/long forms)."""
    a = arg.strip().upper()
    for opt in options:
        short = "".join(ch for ch in opt if ch.isupper() or ch.isdigit())
        if a in (short, opt.upper()):
            return opt.upper()
    raise ScpiError(-224, f"Illegal parameter value; {arg.strip()!r} not in {list(options)}")


def string(arg: str) -> str:
    a = arg.strip()
    if len(a) >= 2 and a[0] == a[-1] and a[0] in "\"'":
        return a[1:-1]
    raise ScpiError(-104, f"Data type error; quoted string expected, got {a!r}")


def channel_list(arg: str, allowed: tuple[int, ...]) -> list[int]:
    """``(@1)``, ``(@1,2)`` or ``(@1:2)``."""
    m = re.fullmatch(r"\(@([\d,: ]+)\)", arg.strip())
    if not m:
        raise ScpiError(-104, f"Data type error; channel list expected, got {arg.strip()!r}")
    out: list[int] = []
    for part in m[1].split(","):
        lo, _, hi = part.strip().partition(":")
        out.extend(range(int(lo), int(hi or lo) + 1))
    if not out or any(c not in allowed for c in out):
        raise ScpiError(-224, f"Illegal parameter value; channels {out} not in {list(allowed)}")
    return out


def fmt_ascii(x: float, digits: int) -> str:
    """A number in the SCPI ASCII reply format of Keithley's 2450 family: `digits` significant
    digits, one before the point, ``E`` and a signed two-digit exponent (``-6.999999881E-01``
    at 10 digits, 2450 Reference Manual, ``:FORMat:ASCii:PRECision``)."""
    return f"{float(x):.{digits - 1}E}"


def ieee_block(values: list[float], kind: str, big_endian: bool) -> bytes:
    """``:FORM:DATA REAL,32|REAL,64`` replies: an IEEE 488.2 definite-length block
    ``#<n><length><bytes>`` of IEEE-754 singles (`kind` ``"f"``) or doubles (``"d"``)."""
    payload = struct.pack(f"{'>' if big_endian else '<'}{len(values)}{kind}", *values)
    length = str(len(payload)).encode("ascii")
    return b"#" + str(len(length)).encode("ascii") + length + payload


Reply = str | bytes | None
"""A reply without its termination: text, a binary block, or nothing."""

Handler = Callable[[list[int], list[str]], Reply]


@dataclass
class _Command:
    nodes: list[_Node]
    query: bool
    handler: Handler
    nargs: tuple[int, int]


class ScpiInstrument:
    """Base of SCPI emulators: a command table, an error queue and ``*CLS`` / ``SYST:ERR?``.
    The queue outlives a client's connection: a new session finds what an earlier one left."""

    name = "scpi"
    error_format = '{code},"{text}"'

    def __init__(self) -> None:
        self.queue = ErrorQueue()
        self._commands: list[_Command] = []
        self.received: list[str] = []
        self.add("*CLS", lambda s, a: self.queue.clear())
        self.add(":SYSTem:ERRor[:NEXT]?", self._error)

    def add(self, pattern: str, handler: Handler, nargs: tuple[int, int] | None = None) -> None:
        """Register `pattern`; `nargs` is the (min, max) number of parameters (default: none
        for queries and common commands, exactly one for other writes)."""
        nodes, query = _compile(pattern)
        if nargs is None:
            nargs = (0, 0) if query or pattern.startswith("*") else (1, 1)
        self._commands.append(_Command(nodes, query, handler, nargs))

    def _error(self, suffixes: list[int], args: list[str]) -> str:
        code, text = self.queue.pop()
        return self.error_format.format(code=code, text=text, scode=f"{code:+d}")

    def error(self, code: int, text: str = "") -> None:
        self.queue.push(code, text or ERROR_TEXT.get(code, "Error"))

    def inject(self, kind: str, line: str = "") -> None:
        if kind == "error":
            self.error(-222, "Data out of range; injected fault")

    def handle(self, line: str) -> Reply:
        self.received.append(line)
        replies: list[str | bytes] = []
        try:
            parts = split_outside_quotes(line, ";")
        except ScpiError as err:
            self.error(err.code, err.text)
            return None
        for part in parts:
            part = part.strip()
            if not part:
                continue
            try:
                reply = self._one(part)
            except ScpiError as err:
                self.error(err.code, err.text)
                continue
            if reply is not None:
                replies.append(reply)
        if not replies:
            return None
        if all(isinstance(r, str) for r in replies):
            return ";".join(r for r in replies if isinstance(r, str))
        return b";".join(r.encode("ascii") if isinstance(r, str) else r for r in replies)

    def _one(self, text: str) -> Reply:
        m = re.match(r"(\S+?)(\?)?(?:\s+(.*))?$", text)
        if not m or not re.fullmatch(r":?[A-Za-z_*][A-Za-z0-9_]*(:[A-Za-z_][A-Za-z0-9_]*)*",
                                     m[1]):
            raise ScpiError(-102, f"Syntax error; {text!r}")
        header, query, rest = m[1], bool(m[2]), (m[3] or "").strip()
        tokens = header.lstrip(":").split(":")
        args = [a.strip() for a in split_outside_quotes(rest, ",")] if rest else []
        if any(not a for a in args):
            raise ScpiError(-102, f"Syntax error; empty parameter in {text!r}")
        for cmd in self._commands:
            if cmd.query != query:
                continue
            suffixes = _match(cmd.nodes, tokens)
            if suffixes is None:
                continue
            lo, hi = cmd.nargs
            if len(args) < lo:
                raise ScpiError(-109, f"Missing parameter; {header}")
            if len(args) > hi:
                raise ScpiError(-108, f"Parameter not allowed; {header}")
            return cmd.handler(suffixes, args)
        raise ScpiError(-113, f"Undefined header; {header}{'?' if query else ''}")
