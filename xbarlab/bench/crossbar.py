"""`BenchCrossbar`: the `Crossbar` interface on bench roles (SMUs + switch matrix, or a board).

It knows roles only (`xbarlab.bench.roles`), never an instrument's language; drivers are built
from a bench config by `xbarlab.drivers.registry.open_bench`.

Matrix bench (drive, sense, optional bias_row / bias_col SMUs, one switch matrix):

- A read or pulse of cell (r, c) routes the drive SMU to row r, the sense SMU to column c, the
  row-bias SMU to every unselected row and the column-bias SMU to every unselected column
  (`xbarlab.biasing.line_biases` gives the levels: V/2, V/3 and 2V/3, 0 V; floating lines are
  left unconnected). Where rows and columns share one level and there is no column-bias SMU,
  the row-bias SMU feeds both.
- Sequence per cell: all outputs off -> break-before-make switching -> every used SMU on at 0 V
  (compliance was set at configuration) -> [pulse: the drive SMU arms its own pulse] -> bias
  levels -> drive level and measure [pulse: fire] -> 0 V -> outputs off. "Off" is confirmed:
  each SMU's off command is followed by a query of its output state, and relays switch only
  once every SMU has answered "off" (an SMU not confirmed off since its last output-on is
  switched off and confirmed first).
- Read current = current into the sense SMU (the selected column); compliance is flagged when
  the drive or the sense SMU reached its limit.
- MVM is done by superposition: each row with a non-zero input is driven alone (every other
  line at 0 V through the bias SMUs), each column current is measured, and the column currents
  are summed over rows. Exact for linear cells with ideal wires; an approximation otherwise.
- Pulse current = current out of the drive SMU (the selected cell plus the half-selected cells
  of its row); NaN where the drive instrument cannot measure during its pulse (2450).
- Bias lines are raised only once the pulse is armed, but they still stay up for a few command
  round trips (milliseconds) around the pulse, not only during it. Meanwhile the selected row
  sits at 0 V and the unselected columns at V/2 (or 2V/3), so cells of the selected row see
  -V/2 (-2V/3 under V/3: 1.7 V for a 2.5 V pulse) and cells of the selected column +V/2 (+V/3)
  for that time. SMUs without synchronised outputs cannot do better; prefer V/2 for
  programming on a matrix bench and keep this in mind for disturb studies.

Board bench: the board drives and senses the lines itself (see
`xbarlab.drivers.serial_board`), MVM drives all rows at once.

Limits: the tightest of the limits given to the constructor and those of the bench config
every role's driver was opened with (`bench_limits`, set by `open_bench`): a `BenchCrossbar`
built in code with looser limits still cannot exceed its bench config's.

Every operation checks the limits before building any command, runs inside
`xbarlab.bench.safety.guarded` (safe state on any exception, Ctrl-C, SIGTERM or timeout) and
drains every error queue at its end (an instrument error stops the run).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np

from xbarlab.bench.roles import Board, Crosspoint, Instrumented, SourceMeter, SwitchMatrix
from xbarlab.bench.safety import (
    BenchFault,
    SafeStateError,
    all_safe,
    check_array_levels,
    check_levels,
    check_mvm,
    check_pulse,
    check_read,
    drain_errors,
    guarded,
    switch,
)
from xbarlab.biasing import line_biases
from xbarlab.crossbar import (
    BiasScheme,
    Cell,
    CellSink,
    FloatArray,
    IntArray,
    MvmResult,
    PulseResult,
    ReadResult,
    all_cells,
    as_cells,
    check_cells,
)
from xbarlab.limits import BenchLimits, LimitViolation, exact, strictest

DRIVER_LOGGER = "xbarlab.drivers"
"""Warnings of the drivers (a link reopened during a safe state) become notices of the run."""


class _Notices(logging.Handler):
    """Collects the drivers' warnings while a bench operation or safe state runs."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.items: list[tuple[str, str]] = []

    def emit(self, record: logging.LogRecord) -> None:
        msg = record.getMessage()
        link = "reopen" in msg or "resynchronised" in msg
        self.items.append(("reconnect" if link else "fault", msg))


@dataclass(frozen=True, slots=True)
class Wiring:
    """The matrix side of a pin map (mirrors `xbarlab.bench.config.PinMap`)."""

    slot: int
    rows: Sequence[int]
    cols: Sequence[int]
    drive: str
    sense: str
    bias_row: str | None
    bias_col: str | None
    col_slot: int | None = None  # card of the column pins; None: same as `slot`

    @property
    def cslot(self) -> int:
        return self.slot if self.col_slot is None else self.col_slot


@dataclass(frozen=True, slots=True)
class Setup:
    """Who is connected where, at which level, for one selected cell."""

    points: frozenset[Crosspoint]
    levels: dict[str, float]  # role -> V for every SMU that is used (NaN never appears)


class BenchCrossbar:
    """A passive crossbar on the bench, driven through roles only. No I/O in the constructor."""

    def __init__(
        self,
        shape: tuple[int, int],
        limits: BenchLimits,
        *,
        drive: SourceMeter | None = None,
        sense: SourceMeter | None = None,
        bias_row: SourceMeter | None = None,
        bias_col: SourceMeter | None = None,
        matrix: SwitchMatrix | None = None,
        wiring: Wiring | None = None,
        board: Board | None = None,
        nplc: float = 1.0,
        settle: float = 1e-3,
        operation_timeout: float | None = 30.0,
        description: dict[str, Any] | None = None,
    ) -> None:
        if board is None and (drive is None or sense is None or matrix is None
                              or wiring is None):
            raise ValueError("a matrix bench needs drive, sense, matrix and wiring")
        if wiring is not None and (len(wiring.rows), len(wiring.cols)) != tuple(shape):
            raise ValueError(f"wiring has {len(wiring.rows)} x {len(wiring.cols)} lines, "
                             f"shape is {shape}")
        self._shape = (int(shape[0]), int(shape[1]))
        self.drive, self.sense, self.bias_row, self.bias_col = drive, sense, bias_row, bias_col
        self.matrix, self.wiring, self.board = matrix, wiring, board
        held = [getattr(i, "bench_limits", None) for i in self.instruments]
        self.limits = strictest(limits, *[h for h in held if isinstance(h, BenchLimits)])
        self.nplc = nplc
        self.settle = settle
        self.operation_timeout = operation_timeout
        self._description = dict(description or {})
        self._prepared = False
        self.closer: Callable[[], None] | None = None  # set by whoever opened the links
        self.guardian: Callable[[], None] | None = None  # raises if the bench is unguarded
        self.supervisor: Any = None  # the safety supervisor (`xbarlab.bench.watchdog`)
        self._safe_failure: SafeStateError | None = None
        self._notices = _Notices()
        # called after each cell of a read or MVM, outputs off (the run engine logs it at once)
        self.on_cell: CellSink | None = None

    # -- Crossbar interface -------------------------------------------------------------------
    @property
    def shape(self) -> tuple[int, int]:
        return self._shape

    @property
    def sources(self) -> list[SourceMeter]:
        return [s for s in (self.drive, self.sense, self.bias_row, self.bias_col) if s]

    @property
    def instruments(self) -> list[Instrumented]:
        return [*self.sources, *([self.matrix] if self.matrix else []),
                *([self.board] if self.board else [])]

    def read(self, cells: Sequence[Cell] | IntArray | None, v_read: float,
             scheme: BiasScheme) -> ReadResult:
        check_read(self.limits, v_read)
        idx = all_cells(self._shape) if cells is None else as_cells(cells)
        check_cells(idx, self._shape)
        scheme = BiasScheme(scheme)
        setups = [self._plan((int(rc[0]), int(rc[1])), float(v_read), scheme) for rc in idx]
        currents = np.empty(len(idx))
        comp = np.zeros(len(idx), dtype=bool)
        with self._operation():
            for k, ((r, c), setup) in enumerate(zip(idx, setups, strict=True)):
                if self.board is not None:
                    m = self._board_op(int(r), int(c), float(v_read), scheme, None)
                    currents[k], comp[k] = m
                else:
                    with self._applied(setup):
                        d = self._src("drive").measure()
                        s = self._src("sense").measure()
                    currents[k] = -s.current  # current flowing into the sense SMU
                    comp[k] = d.compliance or s.compliance
                if self.on_cell is not None:
                    self.on_cell((int(r), int(c)), float(v_read), float(currents[k]),
                                 bool(comp[k]))
        return ReadResult(idx, float(v_read), currents, comp)

    def pulse(self, cell: Cell, voltage: float, width: float, scheme: BiasScheme) -> PulseResult:
        check_pulse(self.limits, cell, voltage, width)
        check_cells(as_cells([cell]), self._shape)
        r, c = int(cell[0]), int(cell[1])
        scheme = BiasScheme(scheme)
        if self.board is None:
            lo, hi = self._src("drive").pulse_width_range
            if not lo <= width <= hi:
                raise LimitViolation(f"pulse width {exact(width, False)} s is outside what "
                                     f"{self._src('drive').name} produces "
                                     f"[{exact(lo, False)}, {exact(hi, False)}] s")
        setup = self._plan((r, c), float(voltage), scheme)
        with self._operation():
            if self.board is not None:
                i, comp = self._board_op(r, c, float(voltage), scheme, float(width))
                return PulseResult((r, c), float(voltage), float(width), i, comp)
            drive = self._src("drive")
            with self._applied(setup, before_bias=lambda: drive.arm_pulse(voltage, width)):
                m = drive.fire_pulse()
        return PulseResult((r, c), float(voltage), float(width), m.current, m.compliance)

    def mvm(self, v_rows: FloatArray) -> MvmResult:
        v = np.atleast_2d(np.asarray(v_rows, dtype=np.float64))
        if v.shape[1] != self._shape[0]:
            raise ValueError(f"v_rows has {v.shape[1]} entries per vector, the array has "
                             f"{self._shape[0]} rows")
        check_mvm(self.limits, v)
        n_cols = self._shape[1]
        out = np.zeros((v.shape[0], n_cols))
        comp = np.zeros((v.shape[0], n_cols), dtype=bool)
        if self.board is None:
            # plan every (row, column) setup first: all checks before any command
            plans = {(i, float(x)): [self._plan((i, j), float(x), BiasScheme.GROUNDED)
                                     for j in range(n_cols)]
                     for vec in v for i, x in enumerate(vec) if x != 0.0}
        with self._operation():
            for b, vec in enumerate(v):
                if self.board is not None:
                    out[b], comp[b] = self._board_mvm(vec)
                    continue
                for i, x in enumerate(vec):
                    if x == 0.0:
                        continue
                    for j, setup in enumerate(plans[(i, float(x))]):
                        with self._applied(setup):
                            s = self._src("sense").measure()
                            d = self._src("drive").measure()
                        out[b, j] += -s.current
                        comp[b, j] |= s.compliance or d.compliance
                        if self.on_cell is not None:  # this row's share of column j
                            self.on_cell((i, j), float(x), float(-s.current),
                                         bool(s.compliance or d.compliance))
        return MvmResult(v, out, comp.ravel())

    def describe(self) -> dict[str, Any]:
        roles = {k: getattr(getattr(self, k), "name", None)
                 for k in ("drive", "sense", "bias_row", "bias_col", "matrix", "board")}
        ids = {inst.name: getattr(inst, "identity", None) for inst in self.instruments}
        out: dict[str, Any] = {"backend": "bench", "shape": list(self._shape), "roles": roles,
                               "identities": ids, "limits": self.limits.model_dump(),
                               "nplc": self.nplc, "settle": self.settle,
                               "mvm": "parallel" if self.board else "superposition"}
        if self.wiring is not None:
            w = self.wiring
            out["wiring"] = {"slot": w.slot, "col_slot": w.cslot, "rows": list(w.rows),
                             "cols": list(w.cols), "drive": w.drive, "sense": w.sense,
                             "bias_row": w.bias_row, "bias_col": w.bias_col}
        out.update(self._description)
        return out

    def close(self) -> None:
        """Safe state, then close the links (when the opener registered a `closer`)."""
        if self.closer is not None:
            self.closer()
        else:
            self.safe_state()

    def safe_state(self) -> None:
        """The safe state, tried once: after a failure it is not tried again in this process
        (the same `SafeStateError` is raised again at once; the supervisor tries on fresh
        links when the session ends)."""
        if self._safe_failure is not None:
            raise self._safe_failure
        try:
            with self._collect():
                all_safe(self.sources, [self.matrix] if self.matrix else [],
                         [self.board] if self.board else [])
        except SafeStateError as exc:
            self._safe_failure = exc
            raise

    def drain_notices(self) -> list[tuple[str, str]]:
        """Reopened links and driver warnings since the last call, as (kind, message)."""
        out, self._notices.items = self._notices.items, []
        return out

    @contextmanager
    def _collect(self) -> Iterator[None]:
        logger = logging.getLogger(DRIVER_LOGGER)
        if self._notices in logger.handlers:
            yield
            return
        logger.addHandler(self._notices)
        try:
            yield
        finally:
            logger.removeHandler(self._notices)

    # -- preparation and planning ---------------------------------------------------------------
    def prepare(self) -> None:
        """Configure every instrument (compliance, protection, break-before-make) and check
        the error queues. Done once, before the first operation."""
        lim = self.limits
        for s in self.sources:
            s.configure(compliance=lim.compliance, v_protect=lim.v_max, nplc=self.nplc)
        if self.matrix is not None:
            self.matrix.configure()
        if self.board is not None:
            self.board.configure(compliance=lim.compliance)
        drain_errors(self.instruments)
        self._prepared = True

    @contextmanager
    def _operation(self) -> Iterator[None]:
        if self._safe_failure is not None:
            raise BenchFault(f"the bench could not be made safe earlier: {self._safe_failure}")
        if self.guardian is not None:
            self.guardian()
        with self._collect(), guarded(self.safe_state, self.operation_timeout):
            if not self._prepared:
                self.prepare()
            yield
            drain_errors(self.instruments)

    def _src(self, role: str) -> SourceMeter:
        s = getattr(self, role)
        if s is None:
            raise BenchFault(f"no SMU plays the {role} role")
        return s

    def _plan(self, cell: Cell, volts: float, scheme: BiasScheme) -> Setup:
        """Crosspoints and SMU levels for `cell` at `volts`; raises before anything is sent."""
        rows, cols = self._shape
        r, c = cell
        row_v, col_v = line_biases(self._shape, cell, volts, scheme)
        check_array_levels(self.limits, "row line", row_v)
        check_array_levels(self.limits, "column line", col_v)
        if self.board is not None:
            return Setup(frozenset(), {})
        w = self.wiring
        assert w is not None
        others_r = [i for i in range(rows) if i != r]
        others_c = [j for j in range(cols) if j != c]
        v_r = float(row_v[others_r[0]]) if others_r else math.nan
        v_c = float(col_v[others_c[0]]) if others_c else math.nan
        points = {Crosspoint(w.slot, w.drive, w.rows[r]), Crosspoint(w.cslot, w.sense, w.cols[c])}
        levels = {"drive": volts, "sense": 0.0}
        if not math.isnan(v_r):
            if self.bias_row is None or w.bias_row is None:
                raise BenchFault(f"scheme {scheme.value} needs unselected rows at {v_r:+.4g} V "
                                 "but the bench has no bias_row SMU")
            levels["bias_row"] = v_r
            points |= {Crosspoint(w.slot, w.bias_row, w.rows[i]) for i in others_r}
        if not math.isnan(v_c):
            if self.bias_col is not None and w.bias_col is not None:
                levels["bias_col"] = v_c
                points |= {Crosspoint(w.cslot, w.bias_col, w.cols[j]) for j in others_c}
            elif (self.bias_row is not None and w.bias_row is not None
                  and levels.get("bias_row", v_c) == v_c):
                levels["bias_row"] = v_c
                points |= {Crosspoint(w.cslot, w.bias_row, w.cols[j]) for j in others_c}
            else:
                raise BenchFault(f"scheme {scheme.value} needs unselected columns at "
                                 f"{v_c:+.4g} V but the bench has no SMU for that level")
        check_levels(self.limits, levels)
        return Setup(frozenset(points), levels)

    @contextmanager
    def _applied(self, setup: Setup,
                 before_bias: Callable[[], None] | None = None) -> Iterator[None]:
        """Route, bring every used SMU up at 0 V, (arm the drive's pulse,) set the levels;
        always back to off. With `before_bias` the drive stays at 0 V: the body pulses it."""
        assert self.matrix is not None
        used = [self._src(role) for role in setup.levels]
        for s in self.sources:
            if s.output_on:  # not confirmed off since it was last switched on
                s.disable()
        switch(self.matrix, self.sources, setup.points, self.settle)
        try:
            for s in used:
                s.set_voltage(0.0)
                s.enable()
            if before_bias is not None:
                before_bias()
            for role, v in setup.levels.items():
                if role == "drive" and before_bias is not None:
                    continue
                if v != 0.0:
                    self._src(role).set_voltage(v)
            yield
        except BaseException as exc:
            for failure in _disable_each(used):  # the first error stays the one raised
                exc.add_note(f"turning the outputs off afterwards also failed: {failure}")
            raise
        failures = _disable_each(used)
        if failures:
            for other in failures[1:]:
                failures[0].add_note(f"turning another output off also failed: {other}")
            raise failures[0]

    # -- board bench ---------------------------------------------------------------------------
    def _board_op(self, r: int, c: int, volts: float, scheme: BiasScheme,
                  width: float | None) -> tuple[float, bool]:
        board = self.board
        assert board is not None
        row_v, col_v = line_biases(self._shape, (r, c), volts, scheme)
        row_v[r] = 0.0  # the selected lines are driven by the board's read/pulse path
        col_v[c] = 0.0
        board.set_lines(list(row_v), list(col_v))
        board.select(r, c)
        m = board.read(volts) if width is None else board.pulse(volts, width)
        board.off()
        return m.current, m.compliance

    def _board_mvm(self, vec: FloatArray) -> tuple[FloatArray, FloatArray]:
        board = self.board
        assert board is not None
        board.set_lines(list(vec), [0.0] * self._shape[1])
        ms = board.column_currents()
        board.off()
        if len(ms) != self._shape[1]:
            raise BenchFault(f"{board.name}: {len(ms)} column currents for "
                             f"{self._shape[1]} columns")
        return (np.array([m.current for m in ms]), np.array([m.compliance for m in ms]))


def _disable_each(sources: Sequence[SourceMeter]) -> list[Exception]:
    """Turn every source off, each tried even if another fails; the failures."""
    failures: list[Exception] = []
    for s in sources:
        try:
            s.disable()
        except Exception as exc:  # collected; the caller raises or notes them
            failures.append(exc)
    return failures
