"""Configuration: pydantic v2 models loaded from YAML, with errors that name file and field."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from xbarlab.crossbar import BiasScheme
from xbarlab.limits import BenchLimits

M = TypeVar("M", bound=BaseModel)


class ConfigError(ValueError):
    """A configuration file or value that cannot be used. The message names file and field."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class SimConfig(_Strict):
    """The simulated crossbar: array size, device preset, circuit fidelity, noise."""

    rows: int = Field(16, ge=1, le=4096)
    cols: int = Field(16, ge=1, le=4096)
    device: str = Field("tio2-o921c", description="device preset name (see `xbarlab device list`)")
    fidelity: Literal["ideal", "wires", "nonlinear"] = "ideal"
    r_wire_row: float = Field(0.0, ge=0, description="row wire resistance per segment (ohm)")
    r_wire_col: float = Field(0.0, ge=0, description="column wire resistance per segment (ohm)")
    r_source: float = Field(0.0, ge=0, description="driver output resistance (ohm)")
    r_sense: float = Field(0.0, ge=0, description="sense (TIA/SMU) input resistance (ohm)")
    row_drive: Literal["start", "end", "both"] = Field(
        "start", description="end(s) of each row wire its driver connects to (wired fidelities)"
    )
    col_drive: Literal["start", "end", "both"] = Field(
        "end", description="end(s) of each column wire its terminal connects to"
    )
    g_init: float | None = Field(None, gt=0, description="initial G (S); None: preset's")
    noise: bool = Field(True, description="cycle-to-cycle and read noise on")
    disturb: Literal["physics", "empirical"] = Field(
        "physics", description="half-select disturb from the device physics, or the measured "
        "per-k statistics of tio2-sherbrooke-2023 (TiO2 presets only)"
    )
    seed: int = Field(0, ge=0)
    pristine: bool = Field(
        False, description="devices start unformed (needs a preset with a forming section)"
    )
    wear_acceleration: float = Field(
        1.0, ge=1, description="multiplies each pulse's wear (preset endurance), so that a "
        "short simulated endurance run shows the window closing"
    )


class WriteVerifyParams(_Strict):
    """Incremental step pulse programming to a target conductance (per polarity)."""

    v_read: float = Field(0.2, gt=0, description="read voltage (V)")
    read_scheme: BiasScheme = BiasScheme.GROUNDED
    pulse_scheme: BiasScheme = BiasScheme.HALF
    set_start: float = Field(1.1, gt=0, description="first SET amplitude (V)")
    set_max: float = Field(2.1, gt=0, description="largest SET amplitude (V)")
    reset_start: float = Field(-1.1, lt=0, description="first RESET amplitude (V)")
    reset_min: float = Field(-2.4, lt=0, description="most negative RESET amplitude (V)")
    step: float = Field(0.02, gt=0, description="amplitude increment per consecutive pulse (V)")
    width: float = Field(1e-6, gt=0, description="pulse width (s)")
    tolerance: float = Field(0.01, gt=0, lt=1, description="relative tolerance on G")
    max_pulses: int = Field(500, ge=1, description="pulse budget per cell")
    max_reversals: int = Field(40, ge=0, description="max SET<->RESET polarity changes per cell")
    n_verify: int = Field(1, ge=1, description="consecutive in-tolerance reads to finish")
    max_pulses_at_limit: int = Field(
        25, ge=1, description="give a cell up as stuck after this many pulses at the cap"
    )
    stall_pulses: int = Field(
        0, ge=0, description="give a cell up as stuck once this many consecutive pulses at "
                             "the cap moved its read by less than half the tolerance band "
                             "towards the target (a device at its bound, or a target the "
                             "read cannot show through the wires); 0: off")
    stop_on_pulse_compliance: bool = Field(
        False, description="also stop a cell (outcome 'compliance') when a pulse hits the "
                           "current compliance (a verify read in compliance always stops it); "
                           "off by default: a SET limited by compliance is often intended")

    @model_validator(mode="after")
    def _ordered(self) -> WriteVerifyParams:
        if self.set_start > self.set_max:
            raise ValueError("set_start must not exceed set_max")
        if self.reset_start < self.reset_min:
            raise ValueError("reset_start must not be below reset_min")
        return self


class ReadMapParams(_Strict):
    """Read every cell of the array."""

    v_read: float = Field(0.2, gt=0)
    scheme: BiasScheme = BiasScheme.GROUNDED


class PatternTarget(_Strict):
    """A target conductance map: a named built-in pattern or an explicit matrix (S)."""

    pattern: Literal["letter_x", "checkerboard", "gradient", "ring", "matrix"] = "letter_x"
    g_low: float = Field(150e-6, gt=0, description="low conductance of the pattern (S)")
    g_high: float = Field(400e-6, gt=0, description="high conductance of the pattern (S)")
    matrix: list[list[float]] | None = Field(None, description="explicit targets (S)")

    @model_validator(mode="after")
    def _matrix_when_asked(self) -> PatternTarget:
        if (self.pattern == "matrix") != (self.matrix is not None):
            raise ValueError("give `matrix` exactly when pattern is 'matrix'")
        if self.g_low >= self.g_high:
            raise ValueError("g_low must be below g_high")
        return self


class WriteVerifyArrayProtocol(_Strict):
    kind: Literal["write_verify_array"] = "write_verify_array"
    target: PatternTarget = PatternTarget()
    params: WriteVerifyParams = WriteVerifyParams()
    order: Literal["row-major", "column-major"] = "row-major"
    passes: int = Field(
        1, ge=1, le=20, description="re-program cells found out of tolerance after a pass"
    )
    compensate: bool | Literal["tracked"] = Field(
        False, description="true: scale pulse amplitudes and verify targets by what the "
        "circuit model (the sim section: wires, source resistance) predicts for each cell (one "
        "pass); 'tracked': also de-embed the array's read maps through the model, predict the "
        "half-select disturb and re-program cells it drove out of band "
        "(`xbarlab.protocols.tracked`)"
    )

    @model_validator(mode="after")
    def _tracked_reads_rows(self) -> WriteVerifyArrayProtocol:
        if self.compensate == "tracked" and self.params.read_scheme is not BiasScheme.GROUNDED:
            raise ValueError("compensate: tracked reads the array row by row and needs "
                             "params.read_scheme: grounded")
        return self


class ReadMapProtocol(_Strict):
    kind: Literal["read_map"] = "read_map"
    params: ReadMapParams = ReadMapParams()


ProtocolConfig = Annotated[
    WriteVerifyArrayProtocol | ReadMapProtocol, Field(discriminator="kind")
]


class LogSettings(_Strict):
    """How the session's HDF5 log is written (`xbarlab.log.writer.HDF5Writer`)."""

    durable: bool | None = Field(
        None, description="fsync the log at every flush (survives a power cut); None: on for "
        "the bench backend, off for sim (reproducible from its seed)")
    flush_interval: float = Field(1.0, gt=0, le=60, description="longest wait of a measured "
                                  "row before it is flushed to the file (s)")
    min_free_mib: float = Field(64.0, ge=0, description="free space kept on the log's disk "
                                "(MiB): a flush that leaves less stops the run, the bench is "
                                "made safe and the log ends sound (0: no check)")

    def writer_options(self, backend: str) -> dict[str, Any]:
        """`HDF5Writer` keyword arguments of these settings for a session on `backend`."""
        return {"flush_interval": self.flush_interval, "durable": self.durable_for(backend),
                "min_free": int(self.min_free_mib * (1 << 20))}

    def durable_for(self, backend: str) -> bool:
        """`durable`, with None resolved for `backend`."""
        return self.durable if self.durable is not None else backend == "bench"


class SessionConfig(_Strict):
    """One session: which backend, its settings, the bench limits and the protocol to run."""

    backend: Literal["sim", "bench"] = "sim"
    seed: int = Field(0, ge=0)
    sim: SimConfig = SimConfig()
    bench: Path | None = Field(None, description="bench config file, for backend 'bench'")
    limits: BenchLimits = BenchLimits()
    protocol: ProtocolConfig = WriteVerifyArrayProtocol()
    log: LogSettings = LogSettings()
    sample: str = Field("", max_length=200, description="sample / die measured (run metadata)")
    operator: str = Field("", max_length=200, description="who ran the session (run metadata)")
    notes: str = Field("", max_length=10_000, description="free-text notes (run metadata)")


def format_validation_error(err: ValidationError, source: str) -> str:
    """One readable line per problem: file, dotted field, message."""
    lines = []
    for e in err.errors():
        msg = e["msg"]
        if e["type"] == "value_error":  # our own validators' words, without pydantic's prefix
            msg = msg.removeprefix("Value error, ")
        where = ".".join(str(p) for p in e["loc"])
        lines.append(f"{source}: {where}: {msg}" if where else f"{source}: {msg}")
    return "\n".join(lines)


def load_yaml(path: str | Path) -> Any:
    """Parse a YAML file, raising `ConfigError` naming the file on any problem."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{p}: cannot read: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{p}: not a text (UTF-8) file; give a YAML config") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        raise ConfigError(f"{p}: invalid YAML{where}: {getattr(exc, 'problem', exc)}") from None


def load_config(path: str | Path, model: type[M]) -> M:
    """Load and validate a YAML file as `model`; `ConfigError` names file, field and range."""
    data = load_yaml(path)
    return validate_config(data if data is not None else {}, model, str(path))


def validate_config(data: Any, model: type[M], source: str = "<config>") -> M:
    """Validate plain data as `model`, raising `ConfigError` with one line per problem."""
    try:
        return model.model_validate(data)
    except ValidationError as err:
        raise ConfigError(format_validation_error(err, source)) from None
