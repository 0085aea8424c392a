"""Before a session starts: can this backend produce the pulses (and biasing) it asks for?

Each backend states what it can do as a `PulseCapability` (its ``pulse_capability``
attribute; for an SMU bench, the drive SMU's hardware-timed pulse range). `session_problems`
returns one line per mismatch, naming the setting to change, so a session is refused before
its first operation instead of failing at its first pulse.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from xbarlab.bench.crossbar import BenchCrossbar
from xbarlab.crossbar import BiasScheme, PulseCapability
from xbarlab.limits import BenchLimits

SHORT_PULSE_BENCHES = ("an ArC TWO (examples/bench/arc2.yaml) or a pulse-generator bench "
                       "(examples/bench/pulse_33500_707b.yaml)")
_PREFIXES = ((1e-9, "ns"), (1e-6, "µs"), (1e-3, "ms"), (1.0, "s"))


def seconds(x: float) -> str:
    """A duration with an SI prefix: 1e-06 -> '1 µs', 2e-07 -> '200 ns'."""
    if not math.isfinite(x) or x <= 0:
        return f"{x:g} s"
    scale, unit = next(((s, u) for s, u in reversed(_PREFIXES) if x >= s), _PREFIXES[0])
    return f"{x / scale:.4g} {unit}"


def capability_of(backend: Any) -> PulseCapability | None:
    """What `backend` states about its pulses (None: nothing stated, nothing to check)."""
    cap = getattr(backend, "pulse_capability", None)
    if isinstance(cap, PulseCapability):
        return cap
    if isinstance(backend, BenchCrossbar) and backend.board is None and backend.drive:
        lo, hi = backend.drive.pulse_width_range
        return PulseCapability(source=f"the SMU {backend.drive.name}'s hardware-timed pulses",
                               width_min=lo, width_max=hi)
    return None


def session_problems(widths: Sequence[float], pulse_scheme: BiasScheme,
                     read_scheme: BiasScheme | None, cap: PulseCapability | None,
                     limits: Sequence[tuple[str, BenchLimits]] = ()) -> list[str]:
    """One line per reason the session's pulses cannot run (empty: they can)."""
    out: list[str] = []
    for w in sorted(set(widths)):
        for where, lim in limits:
            if not lim.pulse_width_min <= w <= lim.pulse_width_max:
                out.append(f"pulse width {seconds(w)} (protocol.params.width) is outside the "
                           f"{where} limits [{seconds(lim.pulse_width_min)}, "
                           f"{seconds(lim.pulse_width_max)}]: change the width or "
                           f"{where} limits.pulse_width_min / pulse_width_max")
        if cap is None:
            continue
        if cap.width_problem(w) is None:
            continue
        span = f"[{seconds(cap.width_min)}, {seconds(cap.width_max)}]"
        if not cap.width_min <= w <= cap.width_max:
            line = (f"pulse width {seconds(w)} (protocol.params.width) is outside the range "
                    f"of {cap.source} {span}: set protocol.params.width within it")
            if w < cap.width_min:
                line += f", or run the session on {SHORT_PULSE_BENCHES}"
        else:
            line = (f"pulse width {seconds(w)} (protocol.params.width) is not a multiple of "
                    f"the {seconds(cap.step)} step of {cap.source}: round it")
        out.append(line)
    if cap is not None and pulse_scheme not in cap.pulse_schemes:
        allowed = ", ".join(s.value for s in cap.pulse_schemes)
        out.append(f"pulse scheme {pulse_scheme.value} (protocol.params.pulse_scheme): "
                   f"{cap.source} pulses with {allowed} only ({cap.note})")
    if cap is not None and read_scheme is not None and read_scheme not in cap.read_schemes:
        allowed = ", ".join(s.value for s in cap.read_schemes)
        out.append(f"read scheme {read_scheme.value} (protocol.params.read_scheme): "
                   f"this bench reads with {allowed} only")
    return out
