"""The digits MLP on simulated 64 x 64 passive arrays with wires: programming, MVM, gains.

One chip = two `SimCrossbar` arrays (layer 1 fills a 64 x 64 array, layer 2 its 33 x 20
corner; see `xbarlab.nn.digits`), every operation through the run engine (bench limits,
compliance). Weights map to differential pairs in [g_min, g_max] (`xbarlab.nn.mapping`).

Programming: write-verify per cell (V/2 or V/3 pulses, grounded verify reads). With wire
resistance a grounded read of one cell does not measure that cell alone (the selected row
feeds every column through its wire; the sensed column collects a share of the others'
currents): on 64 x 64 at 1 ohm per segment and 100-500 uS devices reads are off by -60 % to
+50 %. So the verify reads aim at what a circuit model predicts the read of the target will
be, and pulse amplitudes are scaled by the share of a pulse the cell is predicted to receive
(`protocols.compensated.write_verify_compensated`); the model is the same wired circuit with
every device at its target (linear devices, no knowledge of which devices are stuck).

MVM: rows driven at ``v_in * x`` (bias row at ``v_b``, ``v_b / v_in`` = bias scale / weight
scale, the larger at `v_read`), columns held at 0 V by the sense amplifiers, solved exactly
with wires and the other cells' currents (sneak paths through the wire drops). Pre-activation
``z_j = s_w / v_in * (I_2j - I_2j+1)``; the sigmoid is computed digitally between arrays.

`gain_map`: the effective gain of each cell in an MVM (cell voltage / applied row voltage),
averaged over typical inputs, from the circuit model at given conductances: what
hardware-aware training multiplies each device's conductance by.
"""

from __future__ import annotations

import time
from collections.abc import Generator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from xbarlab.config import SimConfig, WriteVerifyParams
from xbarlab.crossbar import BiasScheme, Cell, FloatArray, MvmResult
from xbarlab.engine import RunEngine, RunResult
from xbarlab.limits import BenchLimits
from xbarlab.messages import Mvm
from xbarlab.nn.mapping import LayerPlacement, layout_network
from xbarlab.protocols.compensated import CircuitGains, scaled_params
from xbarlab.protocols.read_map import read_map
from xbarlab.protocols.write_verify import (
    ArrayOutcome,
    WriteVerifyOutcome,
    write_verify,
    write_verify_array,
)
from xbarlab.sim.crossbar import SimCrossbar
from xbarlab.sim.devices import FixedDevices
from xbarlab.sim.factory import build_sim_crossbar, make_circuit

Params = list[tuple[FloatArray, FloatArray]]


@dataclass(frozen=True)
class ChipConfig:
    """The simulated chip and how it is programmed."""

    size: int = 64
    passes: int = 2  # write-verify passes over the cells found off target
    r_wire: float = 1.0  # ohm per segment, rows and columns
    r_source: float = 0.0  # ohm, driver output
    r_sense: float = 0.0  # ohm, sense amplifier input
    device: str = "tio2-o921c"
    pulse_scheme: BiasScheme = BiasScheme.HALF
    tolerance: float = 0.02
    max_pulses: int = 200
    # 100 ns pulses, amplitudes 0.35 V above the preset's 1 us settings (the model's width law):
    # a half-select then moves a device about half as much relative to the selected one; on a
    # wire-free 64 x 64 layer 1 the mean tuning error falls from 30 % (1 us) to 14 %
    width: float = 100e-9
    set_start: float = 1.45
    set_max: float = 2.45
    reset_start: float = -1.45
    reset_min: float = -2.75
    g_min: float = 100e-6
    g_max: float = 500e-6
    v_read: float = 0.2  # largest MVM input (V)
    compensate_writes: bool = True
    seed: int = 0
    order: str = "column-major"

    def sim(self, index: int) -> SimConfig:
        s = int(np.random.SeedSequence([self.seed, index]).generate_state(1)[0]) % (2**31)
        wired = self.r_wire > 0 or self.r_source > 0 or self.r_sense > 0
        return SimConfig(rows=self.size, cols=self.size, device=self.device,
                         fidelity="wires" if wired else "ideal", r_wire_row=self.r_wire,
                         r_wire_col=self.r_wire, r_source=self.r_source, r_sense=self.r_sense,
                         seed=s)

    def write_verify(self) -> WriteVerifyParams:
        return WriteVerifyParams(tolerance=self.tolerance, pulse_scheme=self.pulse_scheme,
                                 max_pulses=self.max_pulses, width=self.width,
                                 set_start=self.set_start, set_max=self.set_max,
                                 reset_start=self.reset_start, reset_min=self.reset_min)


# --------------------------------------------------------------------------- circuit model


def _solve(cfg: ChipConfig, g: FloatArray, row_v: FloatArray, col_v: FloatArray) -> Any:
    return make_circuit(cfg.sim(0)).solve(FixedDevices(g), row_v, col_v)


def model_reads(cfg: ChipConfig, g: FloatArray, v_read: float) -> FloatArray:
    """Grounded reads (S) of every cell of an array holding `g`, as the wired circuit gives."""
    m, n = g.shape
    rows = np.eye(m) * v_read
    sol = _solve(cfg, g, rows, np.zeros((m, n)))
    return np.asarray(sol.i_cols) / v_read  # batch r = row r driven: (m, n)


def model_pulse_share(cfg: ChipConfig, g: FloatArray, amplitude: float, grid: int = 8
                      ) -> FloatArray:
    """Share of a pulse of `amplitude` each cell receives under the pulse scheme (model at
    `g`), solved on a grid of cells and interpolated bilinearly (drops vary smoothly)."""
    from scipy.interpolate import RegularGridInterpolator

    from xbarlab.biasing import line_biases

    m, n = g.shape
    rs = np.unique(np.linspace(0, m - 1, min(m, grid)).round().astype(int))
    cs = np.unique(np.linspace(0, n - 1, min(n, grid)).round().astype(int))
    cells = [(int(r), int(c)) for r in rs for c in cs]
    rv = np.empty((len(cells), m))
    cv = np.empty((len(cells), n))
    for k, cell in enumerate(cells):
        rv[k], cv[k] = line_biases((m, n), cell, amplitude, cfg.pulse_scheme)
    sol = _solve(cfg, g, rv, cv)
    share = np.array([sol.v_dev[k][cell] for k, cell in enumerate(cells)]).reshape(
        len(rs), len(cs)) / amplitude
    if len(rs) < 2 or len(cs) < 2:
        return np.full((m, n), float(share.mean()))
    interp = RegularGridInterpolator((rs, cs), share)
    rr, cc = np.meshgrid(np.arange(m), np.arange(n), indexing="ij")
    return np.asarray(interp(np.stack([rr.ravel(), cc.ravel()], axis=1)).reshape(m, n))


def write_gains(cfg: ChipConfig, targets: FloatArray, limits: BenchLimits) -> CircuitGains:
    """Gains for a compensated write-verify of `targets` (the model holds the targets)."""
    p = cfg.write_verify()
    read = model_reads(cfg, targets, p.v_read) / targets
    share = model_pulse_share(cfg, targets, p.set_start)
    return CircuitGains(1.0 / np.clip(share, 1e-3, None), read, limits.pulse_v_max,
                        limits.pulse_v_min)


def mvm_voltages(h: FloatArray, n_rows: int, ratio: float, v_read: float
                 ) -> tuple[FloatArray, float]:
    """Row voltages (P, n_rows) of inputs `h` (P, n_in) + bias row, and v_in."""
    v_in = v_read * min(1.0, 1.0 / ratio)
    v = np.zeros((len(h), n_rows))
    v[:, : h.shape[1]] = v_in * h
    v[:, h.shape[1]] = v_in * ratio
    return v, v_in


def gain_map(cfg: ChipConfig, g: FloatArray, v_rows: FloatArray) -> FloatArray:
    """Per-cell gain (M, N) of cell voltage on row voltage, the least-squares slope over the
    inputs `v_rows` (P, M) (sum v_dev v / sum v^2: weighted towards the large inputs that carry
    the current), from the wired circuit model holding `g`; 1 on rows never driven."""
    sol = _solve(cfg, g, v_rows, np.zeros((len(v_rows), g.shape[1])))
    v = np.asarray(v_rows)[:, :, None]
    num = (sol.v_dev * v).sum(axis=0)
    den = (v * v).sum(axis=0)
    return np.where(den > 0, num / np.where(den > 0, den, 1.0), 1.0)


# --------------------------------------------------------------------------- programming


@dataclass
class ArrayState:
    """One programmed array of the chip."""

    xbar: SimCrossbar
    engine: RunEngine
    placement: LayerPlacement
    targets: FloatArray  # (M, N) S, the whole array (unused cells: g_min, never programmed)
    scale_w: float
    scale_b: float
    estimate: FloatArray  # (M, N) S, final read / read gain: what the chip is believed to hold
    failed: np.ndarray  # (M, N) bool: given up as stuck or stopped by compliance
    n_pulses: int = 0
    n_ops: int = 0
    outcomes: list[ArrayOutcome] = field(default_factory=list)
    out_gain: FloatArray | None = None  # (n_out,) digital calibration of the outputs
    out_offset: FloatArray | None = None

    @property
    def rows(self) -> int:
        return self.placement.matrix_shape[0]

    @property
    def cols(self) -> int:
        return self.placement.matrix_shape[1]


def _run(engine: RunEngine, plan: Generator[Any, Any, Any], protocol: str) -> RunResult:
    res = engine.run(plan, protocol=protocol)
    if res.value is None:
        raise RuntimeError(f"{protocol} run {res.status.value}: {res.reason}")
    return res


def deconvolve(cfg: ChipConfig, reads: FloatArray, v_read: float, iterations: int = 4
               ) -> FloatArray:
    """Conductances (S) whose model reads match a measured grounded read map `reads`
    (fixed point g <- g * measured / model(g)): what each cell holds, wires taken out."""
    g = np.clip(np.asarray(reads, dtype=np.float64), 1e-6, None)
    for _ in range(iterations):
        g = np.clip(g * reads / np.clip(model_reads(cfg, g, v_read), 1e-9, None), 1e-6, 1e-2)
    return g


def _groups(cells: list[Cell]) -> list[list[Cell]]:
    """Consecutive cells of the same column (column-major order) or row."""
    out: list[list[Cell]] = []
    for cell in cells:
        if out and (out[-1][-1][1] == cell[1]):
            out[-1].append(cell)
        else:
            out.append([cell])
    return out


def _plan(targets: FloatArray, p: WriteVerifyParams, groups: list[list[Cell]],
          gains: list[CircuitGains]) -> Generator[Any, Any, ArrayOutcome]:
    """Compensated write-verify of `groups` of cells, each group with its own gains (the
    circuit model of the array as it is while that group is programmed), then a read map."""
    outcomes: list[WriteVerifyOutcome] = []
    for cells, gain in zip(groups, gains, strict=True):
        for cell in cells:
            pp = scaled_params(p, float(gain.pulse[cell]), gain.v_max, gain.v_min)
            o = yield from write_verify(cell, float(targets[cell] * gain.read[cell]), pp)
            outcomes.append(o)
    final = yield from read_map(targets.shape, p.v_read, p.read_scheme)
    return ArrayOutcome(targets, outcomes, final, p.tolerance, outcomes, 1)


def program_cells(state: ArrayState, cfg: ChipConfig, cells: list[Cell]) -> ArrayOutcome:
    """Write-verify `cells` of `state` to `state.targets`. Compensated: cells are programmed
    column by column, each column with the gains of a circuit model holding the targets on
    the columns programmed so far and the current estimate elsewhere; the final read map is
    deconvolved through the model into `state.estimate`."""
    p = cfg.write_verify()
    before = state.xbar.n_pulses
    limits = state.engine.limits
    if cfg.compensate_writes:
        groups = _groups(cells)
        gains = []
        model = np.where(np.isnan(state.estimate), state.targets, state.estimate)
        for group in groups:
            idx = tuple(np.array(group).T)
            model[idx] = state.targets[idx]
            col = group[0][1]
            g_now = model.copy()
            g_now[:, : col + 1] = np.where(np.isnan(state.estimate[:, : col + 1]),
                                           state.targets[:, : col + 1], g_now[:, : col + 1])
            gains.append(write_gains(cfg, g_now, limits))
        plan = _plan(state.targets, p, groups, gains)
    else:
        plan = write_verify_array(state.targets, p, cells=cells)
    out: ArrayOutcome = _run(state.engine, plan, "digits_program").value
    state.n_pulses += state.xbar.n_pulses - before
    state.n_ops += sum(2 * o.n_pulses + 1 for o in out.cells) + 1
    state.estimate = (deconvolve(cfg, np.asarray(out.final), p.v_read)
                      if cfg.compensate_writes else np.asarray(out.final))
    for o in out.cells:
        state.failed[o.cell] = o.reason.startswith("stuck") or o.compliance
    state.outcomes.append(out)
    return out


def initial_estimate(state: ArrayState, cfg: ChipConfig) -> None:
    """Read the fresh array and deconvolve it: the model's starting point."""
    p = cfg.write_verify()
    res: Any = _run(state.engine, read_map(state.targets.shape, p.v_read, p.read_scheme),
                    "digits_read").value
    state.estimate = deconvolve(cfg, np.asarray(res), p.v_read)


def off_target(state: ArrayState, cfg: ChipConfig) -> list[Cell]:
    """Programmed cells whose estimate is outside the tolerance (not given up ones)."""
    off = np.abs(state.estimate - state.targets) > cfg.tolerance * state.targets
    off[state.rows :, :] = False
    off[:, state.cols :] = False
    off &= ~state.failed
    return [(int(i), int(j)) for i, j in sorted(zip(*np.nonzero(off), strict=True),
                                                key=lambda rc: (rc[1], rc[0]))]


def layer_targets(placement: LayerPlacement, w: FloatArray, b: FloatArray, cfg: ChipConfig
                  ) -> tuple[FloatArray, float, float]:
    g, sw, sb = placement.matrix(w, b, cfg.g_min, cfg.g_max)
    full = np.full((cfg.size, cfg.size), cfg.g_min)
    full[: g.shape[0], : g.shape[1]] = g
    return full, sw, sb


def new_array(cfg: ChipConfig, index: int, placement: LayerPlacement, w: FloatArray,
              b: FloatArray, limits: BenchLimits) -> ArrayState:
    xbar = build_sim_crossbar(cfg.sim(index + 1), compliance=limits.compliance)
    t, sw, sb = layer_targets(placement, w, b, cfg)
    shape = (cfg.size, cfg.size)
    return ArrayState(xbar, RunEngine(xbar, limits), placement, t, sw, sb,
                      np.full(shape, np.nan), np.zeros(shape, dtype=bool))


def tile_cells(state: ArrayState, cfg: ChipConfig) -> list[Cell]:
    r, c = np.indices((state.rows, state.cols))
    if cfg.order == "column-major":
        r, c = r.T, c.T
    return [(int(i), int(j)) for i, j in zip(r.ravel(), c.ravel(), strict=True)]


def retarget(state: ArrayState, w: FloatArray, b: FloatArray, cfg: ChipConfig) -> list[Cell]:
    """New targets for new weights (same scales as far as they fit); the cells whose target
    moved by more than the tolerance from what the chip is believed to hold."""
    t, sw, sb = layer_targets(state.placement, w, b, cfg)
    moved = np.abs(t - state.estimate) > cfg.tolerance * t
    moved[state.rows :, :] = False
    moved[:, state.cols :] = False
    moved &= ~state.failed
    state.targets, state.scale_w, state.scale_b = t, sw, sb
    return [(int(i), int(j)) for i, j in sorted(zip(*np.nonzero(moved), strict=True),
                                                key=lambda rc: (rc[1], rc[0]))]


def fix_pairs(state: ArrayState, cfg: ChipConfig) -> list[Cell]:
    """Pair compensation: where one device of a pair is off its target by more than 3 x the
    tolerance (stuck, or out of reach) and its partner is healthy, the partner is re-targeted
    so that the pair's difference is the intended one, within the window. Returns the cells
    to reprogram (targets updated in place)."""
    est, t = state.estimate, state.targets
    lo, hi = 0.8 * cfg.g_min, 1.2 * cfg.g_max
    cells: list[Cell] = []
    for r in range(state.rows):
        for j in range(0, state.cols, 2):
            want = t[r, j] - t[r, j + 1]
            off = [abs(est[r, c] - t[r, c]) > 3 * cfg.tolerance * t[r, c] or state.failed[r, c]
                   for c in (j, j + 1)]
            if off[0] == off[1]:
                continue
            bad, good, sign = (j, j + 1, -1.0) if off[0] else (j + 1, j, 1.0)
            new = float(np.clip(est[r, bad] + sign * want, lo, hi))
            if abs(new - est[r, good]) > cfg.tolerance * new:
                state.targets[r, good] = new
                cells.append((r, good))
    return cells


def mvm(state: ArrayState, h: FloatArray, cfg: ChipConfig) -> FloatArray:
    """Pre-activations (P, n_out) of inputs `h` (P, n_in) through the array's MVM."""
    v, v_in = mvm_voltages(h, cfg.size, state.scale_b / state.scale_w, cfg.v_read)

    def plan() -> Generator[Any, Any, MvmResult]:
        res: MvmResult = yield Mvm(v, tag="inference")
        return res

    res: MvmResult = _run(state.engine, plan(), "digits_inference").value
    if res.compliance.size and res.compliance.any():
        raise RuntimeError("an MVM hit the current compliance; lower v_read")
    cur = np.asarray(res.currents)[:, : state.cols]
    z = state.scale_w / v_in * (cur[:, 0::2] - cur[:, 1::2])
    if state.out_gain is not None and state.out_offset is not None:
        z = z * state.out_gain + state.out_offset
    return np.asarray(z)


def calibrate_outputs(state: ArrayState, z_chip: FloatArray, z_ref: FloatArray) -> None:
    """Per-output gain and offset (least squares over calibration inputs) that bring the
    array's raw pre-activations `z_chip` (P, n_out) onto the reference `z_ref`: the digital
    periphery's calibration (applied by `mvm` from now on)."""
    n = z_chip.shape[1]
    gain, offset = np.ones(n), np.zeros(n)
    for j in range(n):
        a = np.stack([z_chip[:, j], np.ones(len(z_chip))], axis=1)
        (gain[j], offset[j]), *_ = np.linalg.lstsq(a, z_ref[:, j], rcond=None)
    state.out_gain, state.out_offset = gain, offset


def chip_layout(sizes: tuple[int, ...], cfg: ChipConfig) -> list[LayerPlacement]:
    layout = layout_network(sizes, (cfg.size, cfg.size), "column-major")
    for p in layout.layers:
        if len(p.tiles) != 1:
            raise ValueError(f"a layer of {p.n_in} inputs and {p.n_out} outputs needs "
                             f"{len(p.tiles)} arrays of {cfg.size} x {cfg.size}; this chip "
                             "holds one array per layer")
    return list(layout.layers)


def timed(f: Any, *args: Any) -> tuple[Any, float]:
    t0 = time.perf_counter()
    return f(*args), time.perf_counter() - t0
