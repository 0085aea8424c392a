"""The bench limits an SMU driver holds, and the guard that checks every line before it is sent.

A driver is built with `SmuLimits` (from the bench config's `BenchLimits`, see
`xbarlab.drivers.registry`) and never lets a line reach the wire that would exceed them,
whoever asks: its public methods, a descriptor (``drive.voltage = 5.5``) or a raw
``write("smua.source.levelv = 9")``. `WireGuard` is an allow-list built from the driver's own
command table: a line is sent only if it is one of the driver's commands, and every number in
it is checked against the limits by kind (voltage, current, pulse width, source range,
protection level). Anything else raises `SettingError` before any byte is written.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from xbarlab.drivers.errors import SettingError

NUMBER = r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?"


@dataclass(frozen=True)
class SmuLimits:
    """What one SMU channel may ever apply: |V| <= `v_max` (V), compliance <= `i_max` (A),
    pulse widths in [`width_min`, `width_max`] (s), pulse amplitudes in [`pulse_v_min`,
    `pulse_v_max`] (V, within +-v_max; None: +-v_max). The defaults are `BenchLimits`'
    defaults, so a driver built without limits is as tight as the default bench, never the
    instrument's full range."""

    v_max: float = 3.0
    i_max: float = 1e-2
    width_min: float = 1e-9
    width_max: float = 1e-3
    pulse_v_min: float | None = -3.0
    pulse_v_max: float | None = 2.5

    @property
    def pulse_window(self) -> tuple[float, float]:
        """(most negative, most positive) pulse amplitude (V)."""
        lo = -self.v_max if self.pulse_v_min is None else max(-self.v_max, self.pulse_v_min)
        hi = self.v_max if self.pulse_v_max is None else min(self.v_max, self.pulse_v_max)
        return lo, hi

    def __post_init__(self) -> None:
        for name in ("pulse_v_min", "pulse_v_max"):
            v = getattr(self, name)
            if v is not None and (isinstance(v, bool) or not isinstance(v, int | float)
                                  or not math.isfinite(v)):
                raise SettingError(f"SMU limit {name} must be a finite number, got {v!r}")
        for name in ("v_max", "i_max", "width_min", "width_max"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v) \
                    or v <= 0:
                raise SettingError(f"SMU limit {name} must be a finite number > 0, got {v!r}")
        if self.width_min > self.width_max:
            raise SettingError(f"SMU limits: width_min {self.width_min:g} s > width_max "
                               f"{self.width_max:g} s")

    @classmethod
    def from_bench(cls, limits: Any) -> SmuLimits:
        """From a `xbarlab.limits.BenchLimits` (max |V| per terminal, compliance, pulse width
        range)."""
        return cls(float(limits.v_max), float(limits.compliance),
                   float(limits.pulse_width_min), float(limits.pulse_width_max),
                   float(limits.pulse_v_min), float(limits.pulse_v_max))


Kind = str
"""What a number in a command is: ``volts`` (|x| <= v_max), ``amps`` (0 < |x| <= i_max),
``pulse`` (a pulse amplitude: within the pulse window), ``width`` (within the pulse widths
the driver allows), ``dwell`` (0 <= x <= the longest pulse: a delay or window inside a
pulse), ``range`` (|x| <= the source range covering v_max),
``protect`` (x <= the driver's protection level), ``any`` (not a source quantity: integration
time, tags...)."""


class WireGuard:
    """Allow-list of a driver's command lines with the numbers in them checked by kind.

    `templates` maps a name to a command template (``str.format`` fields; ``fields`` fills the
    fixed ones such as the channel); `kinds` gives, per template name, the kind of each of its
    numeric fields (a field not listed is ``any``). `check(line)` raises `SettingError` unless
    the line is one of these commands within the limits.
    """

    def __init__(self, owner: str, templates: Mapping[str, str],
                 kinds: Mapping[str, Mapping[str, Kind]], fields: Mapping[str, object],
                 checks: Mapping[Kind, Callable[[float], str | None]]) -> None:
        self.owner = owner
        self.checks = checks
        self._patterns: list[tuple[str, re.Pattern[str], Mapping[str, Kind]]] = []
        for name, template in templates.items():
            self._patterns.append((name, self._compile(template, fields), kinds.get(name, {})))

    @staticmethod
    def _compile(template: str, fields: Mapping[str, object]) -> re.Pattern[str]:
        out, pos = [], 0
        for m in re.finditer(r"\{(\w+)\}", template):
            out.append(re.escape(template[pos:m.start()]))
            key = m[1]
            if key in fields:
                out.append(re.escape(str(fields[key])))
            elif key == "token":  # a sync token: letters, digits, '-', no number to check
                out.append(r"[\w-]+")
            else:
                out.append(f"(?P<{key}>{NUMBER})")
            pos = m.end()
        out.append(re.escape(template[pos:]))
        return re.compile("".join(out))

    def check(self, line: str) -> None:
        for _name, pattern, kinds in self._patterns:
            m = pattern.fullmatch(line)
            if m is None:
                continue
            for key, text in m.groupdict().items():
                kind = kinds.get(key, "any")
                value = float(text)
                if not math.isfinite(value):
                    raise SettingError(f"{self.owner}: {line!r} holds a non-finite number; "
                                       "refused, nothing sent")
                why = self.checks[kind](value) if kind != "any" else None
                if why:
                    raise SettingError(f"{self.owner}: {line!r} {why}; refused, nothing sent")
            return
        raise SettingError(f"{self.owner}: {line!r} is not one of this driver's commands; "
                           "refused, nothing sent (only the driver's own commands, within the "
                           "bench limits, reach an SMU)")
