"""Bench configuration: instruments, addresses, roles, the pin map and the limits (YAML).

Load with ``load_config(path, BenchConfig)`` (`xbarlab.config.load_config`). Example:
examples/bench/two_smu_707b.yaml. Every field is validated strictly; unknown keys are errors.

Roles name an instrument and, for multi-channel SMUs, a channel: ``"smu.a"`` is channel ``a``
of instrument ``smu``. The pin map says which matrix column (device pin) each crossbar row and
column is wired to, and which matrix row (instrument bus) each SMU role is wired to.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from xbarlab.bench.kinds import channels_of, check_driver, role_of
from xbarlab.bench.lock import lock_key
from xbarlab.limits import BenchLimits

DriverName = Literal["keithley2450", "keithley2600", "keysight_b2900", "keithley707b",
                     "serial_board", "keysight33500"]
SMU_DRIVERS = {"keithley2450", "keithley2600", "keysight_b2900"}
CHANNELS: dict[str, tuple[str, ...]] = {
    "keithley2450": ("",), "keithley2600": ("a", "b"), "keysight_b2900": ("1", "2"),
}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class InstrumentConfig(_Strict):
    """One instrument: which driver, where, and the identity it must report."""

    driver: str = Field(..., description="a built-in driver (DriverName) or an installed "
                                         "plugin kind (entry-point group xbarlab.instruments)")
    address: str = Field(..., min_length=1, description="VISA resource or serial port")
    identity: str = Field(..., min_length=1,
                          description="substring the *IDN? reply must contain, e.g. 'MODEL 2450'")
    visa_library: str = Field("@py", description="pyvisa library: '@py', '@ivi', 'file.yaml@sim'")
    timeout: float = Field(2.0, gt=0, le=60, description="I/O timeout (s)")
    baudrate: int = Field(115200, gt=0, description="serial board only")

    @field_validator("driver")
    @classmethod
    def _known_driver(cls, name: str) -> str:
        return check_driver(name)


class RoleAssignment(_Strict):
    """Which instrument (channel) plays which role. Bias SMUs feed the unselected lines."""

    drive: str | None = Field(None, description="SMU on the selected row, e.g. 'smu.a'")
    sense: str | None = Field(None, description="SMU on the selected column (held at 0 V)")
    bias_row: str | None = Field(None, description="SMU for unselected rows (V/2, V/3, 0 V)")
    bias_col: str | None = Field(None, description="SMU for unselected columns (V/2, 2V/3, 0 V)")
    matrix: str | None = None
    board: str | None = None
    pulse: str | None = Field(None, description="pulse generator on the selected row for "
                                                "programming pulses (bench kind 'pulse')")

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
    row_slots: list[int] | None = Field(None, description="card slot of each row pin (for "
                                        "arrays wider than one 12-column card; default: slot)")
    col_slots: list[int] | None = Field(None, description="card slot of each column pin "
                                        "(default: col_slot)")
    drive: str = Field("A", pattern="^[A-H]$", description="matrix row of the drive SMU")
    sense: str = Field("B", pattern="^[A-H]$", description="matrix row of the sense SMU")
    bias_row: str | None = Field("C", pattern="^[A-H]$")
    bias_col: str | None = Field("D", pattern="^[A-H]$")
    pulse: str | None = Field(None, pattern="^[A-H]$", description="matrix row of the pulse "
                                                                    "generator")

    @model_validator(mode="after")
    def _distinct(self) -> PinMap:
        for what, slots, lines in (("row_slots", self.row_slots, self.rows),
                                   ("col_slots", self.col_slots, self.cols)):
            if slots is not None and (len(slots) != len(lines)
                                      or any(not 1 <= s <= 6 for s in slots)):
                raise ValueError(f"{what}: one slot (1..6) per line, {len(lines)} lines")
        pins = list(zip(self.line_slots("row"), self.rows, strict=True)) + list(
            zip(self.line_slots("col"), self.cols, strict=True))
        if len(set(pins)) != len(pins):
            raise ValueError(f"a matrix (slot, column) is wired to two crossbar lines: {pins}")
        if any(not 1 <= p <= 12 for _, p in pins):
            raise ValueError("matrix columns are 1..12 on a 707B/708B card")
        buses = [b for b in (self.drive, self.sense, self.bias_row, self.bias_col, self.pulse)
                 if b]
        if len(set(buses)) != len(buses):
            raise ValueError(f"two roles share a matrix row: {buses}")
        return self

    def line_slots(self, kind: str) -> list[int]:
        """The card slot of every row (`kind` "row") or column ("col") pin."""
        if kind == "row":
            return list(self.row_slots or [self.slot] * len(self.rows))
        return list(self.col_slots or [self.col_slot or self.slot] * len(self.cols))


class OperationTiming(_Strict):
    """How long one operation takes on this bench, for `xbarlab run --estimate` (s).

    Defaults are assumptions for an SMU + switch-matrix bench (relay settle, a read integrated
    over 1 power-line cycle, command round trips); measure yours and write them here."""

    read: float = Field(0.03, ge=0, description="one cell read, switching included (s)")
    pulse: float = Field(0.03, ge=0, description="one pulse, switching included, width "
                         "excluded (s)")
    mvm_row: float = Field(0.05, ge=0, description="one input row of an MVM (s)")


UNASSIGNED = "-"
"""The address of an instrument whose address is not known yet (`xbarlab emulate` gives it)."""


class BenchConfig(_Strict):
    """A whole bench."""

    kind: Literal["smu", "pulse"] = Field(
        "smu", description="smu: SMUs pulse; pulse: a pulse generator (roles.pulse) pulses")
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
    pulse_edge: float = Field(1e-8, gt=0, le=1e-3, description="pulse generator edge time "
                                                              "(10-90 %, s)")
    timing: OperationTiming = OperationTiming()

    @model_validator(mode="after")
    def _one_address_each(self) -> BenchConfig:
        """Two instruments of the config at one address would be one instrument driven as
        two (a copy-pasted address; two 2450s even pass the identity check): refused. The
        channels of one instrument are its own entry's (``smu.a``, ``smu.b``)."""
        seen: dict[str, str] = {}
        for name, inst in self.instruments.items():
            if inst.address == UNASSIGNED:
                continue
            other = seen.setdefault(lock_key(inst.address), name)
            if other != name:
                raise ValueError(f"instruments {other!r} and {name!r} have one address "
                                 f"({inst.address}): each instrument needs its own (the "
                                 "channels of one SMU are roles like smu.a, smu.b)")
        return self

    def look_alikes(self) -> list[list[str]]:
        """Groups of instruments whose expected identities are the same (two 2450s both
        "MODEL 2450"): the identity check cannot tell them apart, so swapped addresses (the
        row-bias SMU driving the columns) would go unnoticed. Naming each one's serial number
        in its identity ("MODEL 2450,04400002") separates them."""
        groups: dict[str, list[str]] = {}
        for name, inst in self.instruments.items():
            groups.setdefault(inst.identity.strip().lower(), []).append(name)
        return [sorted(names) for names in groups.values() if len(names) > 1]

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
            if role_of(cfg.driver) != "smu":
                raise ValueError(f"roles.{role}: {inst!r} ({cfg.driver}) is not an SMU")
            if ch not in channels_of(cfg.driver):
                raise ValueError(f"roles.{role}: channel {ch!r} of {cfg.driver} must be one of "
                                 f"{list(channels_of(cfg.driver))}")
        for role, ref, driver in (("matrix", r.matrix, "keithley707b"),
                                  ("board", r.board, "serial_board")):
            if ref is None:
                continue
            if ref not in self.instruments:
                raise ValueError(f"roles.{role}: no instrument named {ref!r}")
            if role_of(self.instruments[ref].driver) != role:
                raise ValueError(f"roles.{role}: {ref!r} must use driver {driver} (or a "
                                 f"plugin kind of role {role})")
        if (self.kind == "pulse") != (r.pulse is not None):
            raise ValueError("a bench of kind 'pulse' needs roles.pulse (and only it has one)")
        if r.pulse is not None:
            if self.instruments.get(r.pulse) is None:
                raise ValueError(f"roles.pulse: no instrument named {r.pulse!r}")
            if self.instruments[r.pulse].driver != "keysight33500":
                raise ValueError(f"roles.pulse: {r.pulse!r} must use driver keysight33500")
            if self.pins is None or self.pins.pulse is None:
                raise ValueError("pins.pulse: the matrix row of the pulse generator is needed")
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
