"""Bench safety limits and the check every operation passes before it reaches a backend.

Out of range raises, never clamps: a protocol asking for more than the bench allows is refused
before anything is applied.
"""

from __future__ import annotations

import math

from pydantic import BaseModel, ConfigDict, Field, model_validator

from xbarlab.messages import Checkpoint, Message, Mvm, Pulse, Read, Wait


class LimitViolation(ValueError):
    """An operation that would exceed the bench limits. Nothing was applied."""


def exact(x: float, sign: bool = True) -> str:
    """`x` with every digit needed to tell it from its neighbours (2.500000000000001 stays
    2.500000000000001, 2.5 stays 2.5): a refusal must show its cause, not round it away."""
    return format(float(x), "+" if sign else "")


class BenchLimits(BaseModel):
    """What the bench may apply. Defaults suit the Sherbrooke 8x8 TiO2 arrays."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    v_max: float = Field(3.0, gt=0, le=210, description="max |V| on any terminal (V)")
    pulse_v_max: float = Field(2.5, gt=0, description="most positive (SET) pulse amplitude (V)")
    pulse_v_min: float = Field(-3.0, lt=0, description="most negative (RESET) pulse amplitude (V)")
    read_v_max: float = Field(0.5, gt=0, description="max |V| for reads and MVM inputs (V)")
    pulse_width_min: float = Field(1e-9, gt=0, description="shortest pulse (s)")
    pulse_width_max: float = Field(1e-3, gt=0, description="longest pulse (s)")
    compliance: float = Field(1e-2, gt=0, le=1.0, description="current compliance (A)")

    @model_validator(mode="after")
    def _consistent(self) -> BenchLimits:
        if self.pulse_v_max > self.v_max or -self.pulse_v_min > self.v_max:
            raise ValueError("pulse amplitudes must lie within +-v_max")
        if self.read_v_max > self.v_max:
            raise ValueError("read_v_max must not exceed v_max")
        if self.pulse_width_min > self.pulse_width_max:
            raise ValueError("pulse_width_min must not exceed pulse_width_max")
        return self

    def check(self, msg: Message) -> None:
        """Raise `LimitViolation` if `msg` would exceed these limits."""
        if isinstance(msg, Pulse):
            v, w = msg.voltage, msg.width
            if not (math.isfinite(v) and math.isfinite(w)):
                raise LimitViolation(f"pulse on {msg.cell}: non-finite voltage or width")
            if v > self.pulse_v_max or v < self.pulse_v_min:
                raise LimitViolation(
                    f"pulse of {exact(v)} V on {msg.cell} is outside the bench limits "
                    f"[{exact(self.pulse_v_min)}, {exact(self.pulse_v_max)}] V"
                )
            if not self.pulse_width_min <= w <= self.pulse_width_max:
                lo, hi = exact(self.pulse_width_min, False), exact(self.pulse_width_max, False)
                raise LimitViolation(
                    f"pulse width {exact(w, False)} s on {msg.cell} is outside the bench limits "
                    f"[{lo}, {hi}] s"
                )
        elif isinstance(msg, Read):
            if not math.isfinite(msg.v_read) or abs(msg.v_read) > self.read_v_max:
                raise LimitViolation(
                    f"read at {exact(msg.v_read)} V exceeds the bench read limit "
                    f"+-{exact(self.read_v_max, False)} V"
                )
            if msg.v_read == 0.0:
                raise LimitViolation("read at 0 V cannot measure a conductance")
        elif isinstance(msg, Mvm):
            peak = float(abs(msg.v_rows).max(initial=0.0))
            if not math.isfinite(peak) or peak > self.read_v_max:
                raise LimitViolation(
                    f"MVM input of {exact(peak, False)} V exceeds the bench read limit "
                    f"+-{exact(self.read_v_max, False)} V"
                )
        elif isinstance(msg, Checkpoint):
            return
        elif isinstance(msg, Wait):
            if not (math.isfinite(msg.seconds) and msg.seconds >= 0):
                raise LimitViolation(f"wait of {msg.seconds!r} s: must be finite and >= 0")
        else:
            raise LimitViolation(f"unknown operation {type(msg).__name__}: refused")


def strictest(first: BenchLimits, *others: BenchLimits) -> BenchLimits:
    """The limits every one of `first` and `others` allows (the tightest of each bound)."""
    if not others:
        return first
    every = (first, *others)
    return BenchLimits(
        v_max=min(x.v_max for x in every),
        pulse_v_max=min(x.pulse_v_max for x in every),
        pulse_v_min=max(x.pulse_v_min for x in every),
        read_v_max=min(x.read_v_max for x in every),
        pulse_width_min=max(x.pulse_width_min for x in every),
        pulse_width_max=min(x.pulse_width_max for x in every),
        compliance=min(x.compliance for x in every),
    )
