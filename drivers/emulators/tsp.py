"""A tiny interpreter for the Lua statements Keithley TSP instruments take one line at a time.

Supported: assignments ``a.b.c = <expr>``, calls ``f(<args>)`` and ``a.b:method()`` is not
needed, ``print(<args>)``, several statements on one line separated by spaces or ``;``.
Expressions: numbers, strings, ``true`` / ``false`` / ``nil``, unary minus, dotted names,
indexing ``x[1]``, calls. That is the subset instrument drivers send; anything else is a
syntax error, as it would be for a real instrument only where the real one would also refuse
(e.g. ``smua.source.levelv 1``).

Errors follow the 2600B / 707B error queue (Reference Manuals, "Error summary list"):
``-285 Program syntax`` (nothing of the line runs), ``-286 TSP runtime error`` (the line
stops at the failing statement: e.g. indexing a nil value), and ``TspError(code, text)``
raised by the instrument model for refused settings (e.g. ``-222 Parameter data out of
range``).

``print`` writes its arguments separated by tabs; numbers are formatted as the instrument does
in ``%e`` style with `precision` digits after the point (the instrument's
``format.asciiprecision`` minus one: ``1.23457e-05`` at the 2600B default of 6 digits).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


class TspError(Exception):
    def __init__(self, code: int, text: str) -> None:
        super().__init__(code, text)
        self.code = code
        self.text = text


class TspSyntaxError(TspError):
    def __init__(self, text: str) -> None:
        super().__init__(-285, f"TSP Syntax error at line 1: {text}")


class TspRuntimeError(TspError):
    def __init__(self, text: str) -> None:
        super().__init__(-286, f"TSP Runtime error at line 1: {text}")


@dataclass
class Prop:
    """An attribute of a TSP table backed by Python: getter and (optional) setter."""

    get: Callable[[], Any]
    set: Callable[[Any], None] | None = None


@dataclass
class Function:
    call: Callable[..., Any]  # returns one value or a tuple of values


@dataclass
class Table:
    """A TSP table: plain values, `Prop`s, `Function`s and nested tables."""

    fields: dict[str, Any] = field(default_factory=dict)
    name: str = "table"

    def get(self, key: str) -> Any:
        v = self.fields.get(key)
        return v.get() if isinstance(v, Prop) else v

    def set(self, key: str, value: Any) -> None:
        cur = self.fields.get(key)
        if isinstance(cur, Prop):
            if cur.set is None:
                raise TspRuntimeError(f"attribute {self.name}.{key} is read-only")
            cur.set(value)
        elif isinstance(cur, Function | Table):
            raise TspRuntimeError(f"cannot assign to {self.name}.{key}")
        elif key not in self.fields:
            raise TspRuntimeError(f"attempt to set unknown attribute {self.name}.{key}")
        else:
            self.fields[key] = value


_TOKEN = re.compile(r"""\s*(?:
    (?P<num>(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)
  | (?P<str>"[^"]*"|'[^']*')
  | (?P<name>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<op>==|[-=.,()\[\];])
)""", re.VERBOSE)


def tokenize(line: str) -> list[tuple[str, str]]:
    out, pos, line = [], 0, line.rstrip()
    while pos < len(line):
        m = _TOKEN.match(line, pos)
        if not m or m.end() == pos:
            raise TspSyntaxError(f"unexpected symbol near '{line[pos:].strip()[:10]}'")
        kind = m.lastgroup
        assert kind is not None
        out.append((kind, m[kind]))
        pos = m.end()
        while pos < len(line) and line[pos].isspace():
            pos += 1
    return out


# AST nodes: ("num", v) ("str", s) ("const", v) ("neg", e) ("name", n) ("field", e, n)
# ("index", e, e) ("call", e, [args]); statements ("assign", target, e) ("expr", call)
class _Parser:
    def __init__(self, tokens: list[tuple[str, str]]) -> None:
        self.t = tokens
        self.i = 0

    def peek(self) -> tuple[str, str]:
        return self.t[self.i] if self.i < len(self.t) else ("eof", "")

    def take(self, value: str | None = None) -> tuple[str, str]:
        tok = self.peek()
        if tok[0] == "eof" or (value is not None and tok[1] != value):
            near = tok[1] or "<eof>"
            raise TspSyntaxError(f"'{value or 'symbol'}' expected near '{near}'")
        self.i += 1
        return tok

    def statements(self) -> list[tuple[Any, ...]]:
        out = []
        while self.peek()[0] != "eof":
            if self.peek()[1] == ";":
                self.i += 1
                continue
            out.append(self.statement())
        return out

    def statement(self) -> tuple[Any, ...]:
        target = self.primary()
        if self.peek()[1] == "=":
            if target[0] not in ("name", "field", "index"):
                raise TspSyntaxError("cannot assign to a call")
            self.i += 1
            return ("assign", target, self.expr())
        if target[0] != "call":
            raise TspSyntaxError(f"syntax error near '{self.peek()[1] or '<eof>'}'")
        return ("expr", target)

    def expr(self) -> tuple[Any, ...]:
        kind, value = self.peek()
        if value == "-":
            self.i += 1
            return ("neg", self.expr())
        if kind == "num":
            self.i += 1
            return ("num", float(value))
        if kind == "str":
            self.i += 1
            return ("str", value[1:-1])
        if value in ("true", "false", "nil"):
            self.i += 1
            return ("const", {"true": True, "false": False, "nil": None}[value])
        return self.primary()

    def primary(self) -> tuple[Any, ...]:
        kind, value = self.take()
        if kind != "name" or value in ("true", "false", "nil"):
            raise TspSyntaxError(f"unexpected symbol near '{value}'")
        node: tuple[Any, ...] = ("name", value)
        while True:
            v = self.peek()[1]
            if v == ".":
                self.i += 1
                k, n = self.take()
                if k != "name":
                    raise TspSyntaxError(f"<name> expected near '{n}'")
                node = ("field", node, n)
            elif v == "[":
                self.i += 1
                node = ("index", node, self.expr())
                self.take("]")
            elif v == "(":
                self.i += 1
                args = []
                if self.peek()[1] != ")":
                    args.append(self.expr())
                    while self.peek()[1] == ",":
                        self.i += 1
                        args.append(self.expr())
                self.take(")")
                node = ("call", node, args)
            else:
                return node


def _first(v: Any) -> Any:
    """A Lua multiple result in a single-value position keeps its first value."""
    if isinstance(v, tuple):
        return v[0] if v else None
    return v


def fmt_value(v: Any, precision: int = 16) -> str:
    if v is None:
        return "nil"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return f"{float(v):.{precision}e}" if math.isfinite(v) else ("nan" if v != v else
                                                                       str(float(v)))
    if isinstance(v, Table):
        return f"{v.name}: table"
    if isinstance(v, Function):
        return "function"
    return str(v)


class TspInterpreter:
    """Runs lines against the global table `env`; `print` output is collected per line."""

    def __init__(self, env: dict[str, Any], precision: int = 5) -> None:
        self.env = Table(env, "_G")
        self.precision = precision
        self._out: list[str] = []
        env["print"] = Function(self._print)

    def _print(self, *args: Any) -> None:
        self._out.append("\t".join(fmt_value(a, self.precision) for a in args))

    def run(self, line: str) -> str | None:
        """Execute one line; returns what it printed (None if nothing). Raises `TspError`."""
        self._out = []
        stmts = _Parser(tokenize(line)).statements()  # syntax first: nothing runs on error
        for st in stmts:
            if st[0] == "assign":
                self._assign(st[1], _first(self._eval(st[2])))
            else:
                self._eval(st[1])
        return "\n".join(self._out) if self._out else None

    def _assign(self, target: tuple[Any, ...], value: Any) -> None:
        if target[0] == "name":
            self.env.fields[target[1]] = value  # a global variable
            return
        obj = self._eval(target[1])
        key = target[2] if target[0] == "field" else self._eval(target[2])
        if not isinstance(obj, Table):
            raise TspRuntimeError(f"attempt to index a {fmt_value(obj)} value")
        obj.set(str(key) if target[0] == "field" else key, value)

    def _eval(self, node: tuple[Any, ...]) -> Any:
        kind = node[0]
        if kind in ("num", "str", "const"):
            return node[1]
        if kind == "neg":
            v = _first(self._eval(node[1]))
            if not isinstance(v, float):
                raise TspRuntimeError("attempt to perform arithmetic on a non-number")
            return -v
        if kind == "name":
            return self.env.get(node[1])
        if kind in ("field", "index"):
            obj = _first(self._eval(node[1]))
            key = node[2] if kind == "field" else _first(self._eval(node[2]))
            if isinstance(obj, Table):
                return obj.get(key) if isinstance(key, str) else obj.get(f"[{fmt_value(key)}]")
            if isinstance(obj, list) and isinstance(key, float) and key == int(key):
                k = int(key)
                return obj[k - 1] if 1 <= k <= len(obj) else None
            raise TspRuntimeError(f"attempt to index a nil value (field '{key}')"
                                  if obj is None else f"attempt to index a {type(obj).__name__}")
        if kind == "call":
            fn = self._eval(node[1])
            if not isinstance(fn, Function):
                raise TspRuntimeError(f"attempt to call a {fmt_value(fn)} value")
            args: list[Any] = []
            for k, a in enumerate(node[2]):
                v = self._eval(a)
                if isinstance(v, tuple):  # Lua: only the last argument expands all values
                    args.extend(v if k == len(node[2]) - 1 else v[:1])
                else:
                    args.append(v)
            return fn.call(*args)
        raise TspSyntaxError(f"unsupported expression {kind}")  # pragma: no cover
