"""Pydantic configs of the characterisation protocols (forming, switch seeker, converge-to-state,
multi-state seeker, retention, endurance, curve tracer, volatility read, sequence).

Every model forbids unknown keys and checks ranges, so a bad value fails with one line naming
the field (`xbarlab.config.format_validation_error`). Voltages in V, widths and times in s,
conductances in S, resistances in ohm.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from xbarlab.config import (
    ConfigError,
    ReadMapProtocol,
    SessionConfig,
    WriteVerifyArrayProtocol,
    format_validation_error,
)
from xbarlab.crossbar import BiasScheme, Cell


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


CellList = list[tuple[Annotated[int, Field(ge=0)], Annotated[int, Field(ge=0)]]]
Cells = Literal["all"] | CellList
"""Which cells: "all" (row-major) or a list of [row, col] pairs."""


def resolve_cells(cells: Cells, shape: tuple[int, int]) -> list[Cell]:
    """The cells a config names, checked against an array of `shape`."""
    if cells == "all":
        return [(r, c) for r in range(shape[0]) for c in range(shape[1])]
    out = [(int(r), int(c)) for r, c in cells]
    for r, c in out:
        if r >= shape[0] or c >= shape[1]:
            raise ValueError(f"cell ({r}, {c}) is outside the {shape[0]} x {shape[1]} array")
    return out


def _cells_field(default: Any = "all") -> Any:
    return Field(default, description='"all" or a list of [row, col] cells')


class ReadSettings(_Strict):
    v_read: float = Field(0.2, gt=0, description="read voltage (V)")
    read_scheme: BiasScheme = BiasScheme.GROUNDED
    pulse_scheme: BiasScheme = BiasScheme.HALF


# --------------------------------------------------------------------------- forming


class FormingConfig(ReadSettings):
    """Voltage and/or pulse-width ramps with a read after every pulse, until the cell conducts."""

    kind: Literal["forming"] = "forming"
    cells: Cells = _cells_field()
    ramp: Literal["voltage", "width", "both"] = Field(
        "voltage", description="step the amplitude, the width, or every width at each amplitude")
    v_start: float = Field(1.0, gt=0, description="first amplitude (V)")
    v_step: float = Field(0.1, gt=0, description="amplitude step (V)")
    v_max: float = Field(2.5, gt=0, description="largest amplitude (V)")
    width_min: float = Field(1e-4, gt=0, description="shortest (first) pulse width (s)")
    width_max: float = Field(1e-3, gt=0, description="longest pulse width (s)")
    width_factor: float = Field(2.0, gt=1, description="width multiplier per width step")
    pulses_per_step: int = Field(1, ge=1, le=100)
    interpulse: float = Field(0.0, ge=0, description="wait between pulses (s)")
    g_threshold: float | None = Field(None, gt=0, description="formed at or above this G (S)")
    r_threshold: float | None = Field(None, gt=0, description="formed at or below this R (ohm)")
    r_series: float = Field(0.0, ge=0, description="series resistance to report device V (ohm)")
    stop_on_compliance: bool = Field(
        True, description="a pulse that hits the current compliance ends the cell's ramp")

    @model_validator(mode="after")
    def _check(self) -> FormingConfig:
        if self.v_start > self.v_max:
            raise ValueError("v_start must not exceed v_max")
        if self.width_min > self.width_max:
            raise ValueError("width_min must not exceed width_max")
        if self.g_threshold is not None and self.r_threshold is not None:
            raise ValueError("give g_threshold or r_threshold, not both")
        return self

    @property
    def g_formed(self) -> float:
        """The conductance threshold (S); 50 uS unless set."""
        if self.r_threshold is not None:
            return 1.0 / self.r_threshold
        return self.g_threshold if self.g_threshold is not None else 50e-6


# --------------------------------------------------------------------------- switch seeker


class SwitchSeekerConfig(ReadSettings):
    """Ramp positive, then negative pulses until the read conductance leaves a tolerance band."""

    kind: Literal["switch_seeker"] = "switch_seeker"
    cells: Cells = _cells_field()
    v_start: float = Field(0.5, gt=0, description="first |amplitude| (V)")
    v_step: float = Field(0.1, gt=0)
    v_max: float = Field(2.0, gt=0, description="largest |amplitude| (V)")
    width: float = Field(1e-4, gt=0)
    trailer_reads: int = Field(3, ge=1, le=50, description="reads after each pulse (averaged)")
    tolerance: float = Field(0.05, gt=0, lt=1, description="relative change that counts as a "
                             "switch")

    @model_validator(mode="after")
    def _check(self) -> SwitchSeekerConfig:
        if self.v_start > self.v_max:
            raise ValueError("v_start must not exceed v_max")
        return self


# --------------------------------------------------------------------------- converge to state


class ConvergeConfig(ReadSettings):
    """Write-verify to a target (G or R) per cell, by amplitude ramps (ISPP) or width ramps."""

    kind: Literal["converge"] = "converge"
    cells: Cells = _cells_field()
    target_g: float | None = Field(None, gt=0, description="target conductance (S)")
    target_r: float | None = Field(None, gt=0, description="target resistance (ohm)")
    ramp: Literal["amplitude", "width"] = "amplitude"
    tolerance: float = Field(0.01, gt=0, lt=1)
    set_start: float = Field(1.1, gt=0)
    set_max: float = Field(2.1, gt=0)
    reset_start: float = Field(-1.1, lt=0)
    reset_min: float = Field(-2.4, lt=0)
    step: float = Field(0.02, gt=0, description="amplitude step of the amplitude ramp (V)")
    width: float = Field(1e-6, gt=0, description="pulse width, first width of a width ramp (s)")
    width_max: float = Field(1e-3, gt=0, description="longest width of a width ramp (s)")
    width_factor: float = Field(1.5, gt=1, description="width multiplier per consecutive pulse")
    max_pulses: int = Field(200, ge=1)
    max_reversals: int = Field(5, ge=0, description="give up after this many polarity reversals")
    max_pulses_at_limit: int = Field(25, ge=1)

    @model_validator(mode="after")
    def _check(self) -> ConvergeConfig:
        if (self.target_g is None) == (self.target_r is None):
            raise ValueError("give exactly one of target_g (S) and target_r (ohm)")
        if self.set_start > self.set_max or self.reset_start < self.reset_min:
            raise ValueError("start amplitudes must lie within set_max / reset_min")
        if self.width > self.width_max:
            raise ValueError("width must not exceed width_max")
        return self

    @property
    def target(self) -> float:
        """Target conductance (S)."""
        return self.target_g if self.target_g is not None else 1.0 / float(self.target_r or 1)


# --------------------------------------------------------------------------- multi-state seeker


class MultiStateConfig(ReadSettings):
    """RESET to the bottom, then SET in amplitude steps; count the distinguishable levels."""

    kind: Literal["multistate"] = "multistate"
    cells: Cells = _cells_field()
    reset_voltage: float = Field(-2.0, lt=0, description="RESET amplitude to start from (V)")
    reset_pulses: int = Field(10, ge=1, le=1000)
    v_start: float = Field(0.9, gt=0)
    v_step: float = Field(0.05, gt=0)
    v_max: float = Field(2.0, gt=0)
    width: float = Field(1e-4, gt=0)
    pulses_per_level: int = Field(3, ge=1, le=100, description="programming pulses per step")
    trailer_reads: int = Field(5, ge=2, le=100)
    n_sigma: float = Field(4.0, gt=0, description="levels differ by > n_sigma read stds")
    tolerance: float = Field(0.02, ge=0, lt=1, description="and by > this relative difference")

    @model_validator(mode="after")
    def _check(self) -> MultiStateConfig:
        if self.v_start > self.v_max:
            raise ValueError("v_start must not exceed v_max")
        return self


# --------------------------------------------------------------------------- retention


class RetentionConfig(_Strict):
    """Reads over time on a linear or log-spaced schedule."""

    kind: Literal["retention"] = "retention"
    cells: Cells = _cells_field()
    v_read: float = Field(0.2, gt=0)
    read_scheme: BiasScheme = BiasScheme.GROUNDED
    duration: float = Field(3600.0, gt=0, description="total time (s)")
    schedule: Literal["linear", "log"] = "log"
    interval: float = Field(60.0, gt=0, description="linear: time between reads (s)")
    first: float = Field(1.0, gt=0, description="log: time of the first read after t = 0 (s)")
    points: int = Field(20, ge=2, le=100000, description="log: reads after t = 0")

    @model_validator(mode="after")
    def _check(self) -> RetentionConfig:
        if self.schedule == "log" and self.first >= self.duration:
            raise ValueError("first must be shorter than duration")
        if self.schedule == "linear" and self.interval > self.duration:
            raise ValueError("interval must not exceed duration")
        return self


# --------------------------------------------------------------------------- endurance


class EnduranceConfig(ReadSettings):
    """SET/RESET cycling with reads every `read_every` cycles and failure criteria."""

    kind: Literal["endurance"] = "endurance"
    cells: Cells = _cells_field([[0, 0]])
    cycles: int = Field(1000, ge=1, le=10**9)
    set_voltage: float = Field(1.6, gt=0)
    reset_voltage: float = Field(-1.8, lt=0)
    width: float = Field(1e-4, gt=0)
    read_every: int = Field(10, ge=1, description="read LRS and HRS every k cycles")
    min_ratio: float = Field(1.5, gt=1, description="window collapse: G_on / G_off below this")
    stuck_tolerance: float = Field(0.02, gt=0, lt=1, description="stuck: G_on and G_off within "
                                   "this relative difference")
    fail_after: int = Field(3, ge=1, description="consecutive failing checks that end the test")


# --------------------------------------------------------------------------- curve tracer


class CurveTracerConfig(ReadSettings):
    """I-V loops: staircase (current at bias) or pulsed (read at v_read after each pulse)."""

    kind: Literal["curve_tracer"] = "curve_tracer"
    cells: Cells = _cells_field([[0, 0]])
    mode: Literal["staircase", "pulsed"] = "staircase"
    read_at: Literal["bias", "v_read", "both"] = Field(
        "bias", description="current during each step, a read at v_read after it, or both")
    v_pos: float = Field(1.5, ge=0, description="positive turning point (V)")
    v_neg: float = Field(-1.5, le=0, description="negative turning point (V)")
    v_step: float = Field(0.05, gt=0)
    order: Literal["pos_first", "neg_first"] = "pos_first"
    width: float = Field(1e-4, gt=0, description="dwell (staircase) or pulse width (s)")
    interpulse: float = Field(0.0, ge=0, description="pulsed: wait at 0 V after each pulse (s)")
    cycles: int = Field(3, ge=1, le=10000)

    @model_validator(mode="after")
    def _check(self) -> CurveTracerConfig:
        if self.v_pos == 0 and self.v_neg == 0:
            raise ValueError("v_pos and v_neg cannot both be 0")
        return self


# --------------------------------------------------------------------------- volatility read


class VolatilityConfig(ReadSettings):
    """A pulse, then reads over time: how much of the change relaxes, and how fast."""

    kind: Literal["volatility"] = "volatility"
    cells: Cells = _cells_field([[0, 0]])
    voltage: float = Field(1.5, description="pulse amplitude (V), signed")
    width: float = Field(1e-4, gt=0)
    duration: float = Field(1.0, gt=0, description="time over which to read (s)")
    points: int = Field(20, ge=2, le=10000, description="reads after the pulse (log-spaced)")
    first: float = Field(1e-3, gt=0, description="time of the first read after the pulse (s)")
    repeats: int = Field(1, ge=1, le=1000)

    @model_validator(mode="after")
    def _check(self) -> VolatilityConfig:
        if self.voltage == 0:
            raise ValueError("voltage must not be 0")
        if self.first >= self.duration:
            raise ValueError("first must be shorter than duration")
        return self


# --------------------------------------------------------------------------- sequence


class PulseStep(_Strict):
    cell: tuple[Annotated[int, Field(ge=0)], Annotated[int, Field(ge=0)]]
    voltage: float
    width: float = Field(1e-4, gt=0)
    scheme: BiasScheme = BiasScheme.HALF


class ReadStep(_Strict):
    cells: Cells = _cells_field()
    v_read: float = Field(0.2, gt=0)
    scheme: BiasScheme = BiasScheme.GROUNDED


class LoopStep(_Strict):
    times: int = Field(..., ge=1, le=10**6)
    steps: list[Step] = Field(..., min_length=1)


class Step(_Strict):
    """One block of a sequence: exactly one of pulse, read, delay (s), loop or protocol."""

    pulse: PulseStep | None = None
    read: ReadStep | None = None
    delay: float | None = Field(None, ge=0)
    loop: LoopStep | None = None
    protocol: Annotated[
        FormingConfig | SwitchSeekerConfig | ConvergeConfig | MultiStateConfig | RetentionConfig
        | EnduranceConfig | CurveTracerConfig | VolatilityConfig,
        Field(discriminator="kind"),
    ] | None = None

    @model_validator(mode="after")
    def _one(self) -> Step:
        given = [k for k in ("pulse", "read", "delay", "loop", "protocol")
                 if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError("each step needs exactly one of pulse, read, delay, loop, protocol; "
                             f"got {', '.join(given) or 'none'}")
        return self


LoopStep.model_rebuild()


class SequenceConfig(_Strict):
    """Elementary steps and whole protocols, in order."""

    kind: Literal["sequence"] = "sequence"
    steps: list[Step] = Field(..., min_length=1)


AnyProtocol = Annotated[
    WriteVerifyArrayProtocol | ReadMapProtocol | FormingConfig | SwitchSeekerConfig
    | ConvergeConfig | MultiStateConfig | RetentionConfig | EnduranceConfig | CurveTracerConfig
    | VolatilityConfig | SequenceConfig,
    Field(discriminator="kind"),
]


class ProtocolSession(SessionConfig):
    """A session config whose protocol may be any protocol xbarlab runs."""

    protocol: AnyProtocol = WriteVerifyArrayProtocol()  # type: ignore[assignment]


def protocol_kinds() -> list[str]:
    """The `kind` of every protocol a session may name."""
    from typing import get_args

    union = get_args(AnyProtocol)[0]
    return [m.model_fields["kind"].default for m in get_args(union)]


def session_from_data(name: str, data: Any, source: str) -> ProtocolSession:
    """Validate a session mapping for protocol `name` (its protocol section defaults to
    ``{kind: name}``; a different kind is an error)."""
    kinds = protocol_kinds()
    if name not in kinds:
        raise ConfigError(f"unknown protocol '{name}'; known: {', '.join(kinds)}")
    data = dict(data or {})
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a mapping at the top level")
    proto = dict(data.get("protocol") or {})
    kind = proto.setdefault("kind", name)
    if kind != name:
        raise ConfigError(f"{source}: protocol.kind is '{kind}' but the command asks for "
                          f"'{name}'")
    data["protocol"] = proto
    try:
        return ProtocolSession.model_validate(data)
    except ValidationError as err:
        raise ConfigError(format_validation_error(err, source)) from None
