"""Bench configuration: instruments, addresses, roles, the pin map and the limits (YAML).

Load with ``load_config(path, BenchConfig)`` (`xbarlab.config.load_config`). Example:
examples/bench/two_smu_707b.yaml. Every field is validated strictly; unknown keys are errors.

Roles name an instrument and, for multi-channel SMUs, a channel: ``"smu.a"`` is channel ``a``
of instrument ``smu``. The pin map says which matrix column (device pin) each crossbar row and
column is wired to, and which matrix row (instrument bus) each SMU role is wired to.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from xbarlab.limits import BenchLimits

DriverName = Literal["keithley2450", "keithley2600", "keysight_b2900", "keithley707b",
                     "serial_board"]
SMU_DRIVERS = {"keithley2450", "keithley2600", "keysight_b2900"}
CHANNELS: dict[str, tuple[str, ...]] = {
    "keithley2450": ("",), "keithley2600": ("a", "b"), "keysight_b2900": ("1", "2"),
}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class InstrumentConfig(_Strict):
    """One instrument: which driver, where, and the identity it must report."""

    driver: DriverName
    address: str = Field(..., min_length=1, description="VISA resource or serial port")
    identity: str = Field(..., min_length=1,
                          description="substring the *IDN? reply must contain, e.g. 'MODEL 2450'")
    visa_library: str = Field("@py", description="pyvisa library: '@py', '@ivi', 'file.yaml@sim'")
    timeout: float = Field(2.0, gt=0, le=60, description="I/O timeout (s)")
    baudrate: int = Field(115200, gt=0, description="serial board only")


class RoleAssignment(_Strict):
    """Which instrument (channel) plays which role. Bias SMUs feed the unselected lines."""

    drive: str | None = Field(None, description="SMU on the selected row, e.g. 'smu.a'")
    sense: str | None = Field(None, description="SMU on the selected column (held at 0 V)")
    bias_row: str | None = Field(None, description="SMU for unselected rows (V/2, V/3, 0 V)")
    bias_col: str | None = Field(None, description="SMU for unselected columns (V/2, 2V/3, 0 V)")
    matrix: str | None = None
    board: str | None = None

    @model_validator(mode="after")
    def _topology(self) -> RoleAssignment:
        if self.board is None and (self.drive is None or self.sense is None
                                   or self.matrix is None):
            raise ValueError("without a board, roles drive, sense and matrix are required")
        if self.board is not None and any((self.drive, self.sense, self.bias_row,
                                           self.bias_col, self.matrix)):
            raise ValueError("a board bench uses only the 'board' role")
        smus = [r for r in (self.drive, self.sense, self.bias_row, self.bias_col) if r]
        if len(set(smus)) != len(smus):
            raise ValueError(f"one SMU channel cannot play two roles: {smus}")
        return self


class PinMap(_Strict):
    """Wiring: crossbar lines to matrix columns, SMU roles to matrix rows (buses)."""

    slot: int = Field(1, ge=1, le=6, description="matrix card slot of the row pins")
    col_slot: int | None = Field(None, ge=1, le=6,
                                 description="card slot of the column pins (default: slot); "
                                             "matrix rows are shared across slots")
    rows: list[int] = Field(..., min_length=1, description="matrix column of crossbar row i")
    cols: list[int] = Field(..., min_length=1, description="matrix column of crossbar column j")
    drive: str = Field("A", pattern="^[A-H]$", description="matrix row of the drive SMU")
    sense: str = Field("B", pattern="^[A-H]$", description="matrix row of the sense SMU")
    bias_row: str | None = Field("C", pattern="^[A-H]$")
    bias_col: str | None = Field("D", pattern="^[A-H]$")

    @model_validator(mode="after")
    def _distinct(self) -> PinMap:
        col_slot = self.col_slot or self.slot
        pins = [(self.slot, p) for p in self.rows] + [(col_slot, p) for p in self.cols]
        if len(set(pins)) != len(pins):
            raise ValueError(f"a matrix (slot, column) is wired to two crossbar lines: {pins}")
        if any(not 1 <= p <= 12 for _, p in pins):
            raise ValueError("matrix columns are 1..12 on a 707B/708B card")
        buses = [b for b in (self.drive, self.sense, self.bias_row, self.bias_col) if b]
        if len(set(buses)) != len(buses):
            raise ValueError(f"two roles share a matrix row: {buses}")
        return self


class OperationTiming(_Strict):
    """How long one operation takes on this bench, for `xbarlab run --estimate` (s).

    Defaults are assumptions for an SMU + switch-matrix bench (relay settle, a read integrated
    over 1 power-line cycle, command round trips); measure yours and write them here."""

    read: float = Field(0.03, ge=0, description="one cell read, switching included (s)")
    pulse: float = Field(0.03, ge=0, description="one pulse, switching included, width "
                         "excluded (s)")
    mvm_row: float = Field(0.05, ge=0, description="one input row of an MVM (s)")


class BenchConfig(_Strict):
    """A whole bench."""

    name: str = "bench"
    rows: int = Field(..., ge=1, le=1024)
    cols: int = Field(..., ge=1, le=1024)
    instruments: dict[str, InstrumentConfig]
    roles: RoleAssignment
    pins: PinMap | None = None
    limits: BenchLimits = BenchLimits()
    nplc: float = Field(1.0, gt=0, le=25, description="integration time of reads (power cycles)")
    settle: float = Field(1e-3, ge=0, le=10, description="wait after switching relays (s)")
    operation_timeout: float = Field(30.0, gt=0, description="max time of one operation (s)")
    timing: OperationTiming = OperationTiming()

    @model_validator(mode="after")
    def _consistent(self) -> BenchConfig:
        r = self.roles
        for role, ref in (("drive", r.drive), ("sense", r.sense), ("bias_row", r.bias_row),
                          ("bias_col", r.bias_col)):
            if ref is None:
                continue
            inst, _, ch = ref.partition(".")
            cfg = self.instruments.get(inst)
            if cfg is None:
                raise ValueError(f"roles.{role}: no instrument named {inst!r}")
            if cfg.driver not in SMU_DRIVERS:
                raise ValueError(f"roles.{role}: {inst!r} ({cfg.driver}) is not an SMU")
            if ch not in CHANNELS[cfg.driver]:
                raise ValueError(f"roles.{role}: channel {ch!r} of {cfg.driver} must be one of "
                                 f"{list(CHANNELS[cfg.driver])}")
        for role, ref, driver in (("matrix", r.matrix, "keithley707b"),
                                  ("board", r.board, "serial_board")):
            if ref is None:
                continue
            if ref not in self.instruments:
                raise ValueError(f"roles.{role}: no instrument named {ref!r}")
            if self.instruments[ref].driver != driver:
                raise ValueError(f"roles.{role}: {ref!r} must use driver {driver}")
        if r.matrix is not None:
            if self.pins is None:
                raise ValueError("a matrix bench needs a pin map ('pins')")
            if len(self.pins.rows) != self.rows or len(self.pins.cols) != self.cols:
                raise ValueError(f"pins: {len(self.pins.rows)} rows x {len(self.pins.cols)} "
                                 f"cols wired, array is {self.rows} x {self.cols}")
            for role in ("bias_row", "bias_col"):
                if getattr(r, role) is not None and getattr(self.pins, role) is None:
                    raise ValueError(f"pins.{role}: role {role} has an SMU but no matrix row")
        return self
