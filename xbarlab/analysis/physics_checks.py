"""Checks a session against the physics of its array before it runs (used by `--estimate`).

- Verify reads: the apparent conductance a read measures under the session's read scheme,
  against the cells' own conductance, on a sample of cells. Under V/2 the sensed column also
  carries the half-selected cells' current (0.5 x sum of the column's other conductances);
  with wires a grounded read carries sneak and IR-drop errors. An error larger than the
  write-verify tolerance band means the loop cannot converge: blocking.
- Pulses: with line resistance the selected cell sees less than the applied amplitude. If the
  far cells never see the start amplitude even at the amplitude cap, programming there is
  pointless (blocking); a drop of more than 5 % is a warning.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import numpy as np

from xbarlab.biasing import line_biases
from xbarlab.config import SessionConfig, SimConfig, WriteVerifyArrayProtocol, WriteVerifyParams
from xbarlab.crossbar import BiasScheme, Cell, FloatArray
from xbarlab.limits import BenchLimits
from xbarlab.protocol_configs import ConvergeConfig
from xbarlab.protocols.compensated import CircuitGains
from xbarlab.protocols.patterns import target_map
from xbarlab.protocols.tracked import TrackedInputs
from xbarlab.protocols.write_verify import programming_order
from xbarlab.sim.crossbar import SimCrossbar
from xbarlab.sim.factory import build_sim_crossbar
from xbarlab.sim.solver import WireCircuit


def model_sim(cfg: SessionConfig) -> SimConfig:
    """The simulated model of the session's array: its `sim:` section, sized like the bench
    when the session names a bench config (the bench's array is what will be programmed)."""
    if cfg.bench is None:
        return cfg.sim
    from xbarlab.bench.arctwo_config import load_any_bench_config

    bench = load_any_bench_config(cfg.bench)
    return cfg.sim.model_copy(update={"rows": bench.rows, "cols": bench.cols})


def sample_cells(shape: tuple[int, int]) -> list[Cell]:
    """Corners and centre: where line resistance and sneak paths differ most."""
    m, n = shape
    cells = {(0, 0), (0, n - 1), (m - 1, 0), (m - 1, n - 1), (m // 2, n // 2)}
    return sorted(cells)


def read_error(xbar: SimCrossbar, v_read: float, scheme: BiasScheme) -> float:
    """Largest relative error of the apparent conductance read under `scheme` over the
    sample cells (noise-free: the circuit alone)."""
    worst = 0.0
    for cell in sample_cells(xbar.shape):
        rows, cols = line_biases(xbar.shape, cell, v_read, scheme)
        _, i_cols = xbar.circuit.sense(xbar.devices, rows[None], cols[None])
        g_read = float(i_cols[0, cell[1]]) / v_read
        g_true = float(xbar.g[cell])
        worst = max(worst, abs(g_read - g_true) / g_true)
    return worst


def pulse_delivery(xbar: SimCrossbar, voltage: float, scheme: BiasScheme) -> float:
    """Smallest share of a pulse's amplitude a sample cell sees across its own terminals."""
    share = 1.0
    for cell in sample_cells(xbar.shape):
        rows, cols = line_biases(xbar.shape, cell, voltage, scheme)
        sol = xbar.circuit.solve(xbar.devices, rows[None], cols[None])
        share = min(share, float(sol.v_dev[0][cell]) / voltage)
    return share


def both_ends_delivery(xbar: SimCrossbar, voltage: float, scheme: BiasScheme) -> float | None:
    """`pulse_delivery` with every row driven and every column terminated at both ends, on
    the same devices; None where the lines already are (or the circuit has no wires)."""
    circuit = xbar.circuit
    if not isinstance(circuit, WireCircuit) or (circuit.row_drive == "both"
                                                and circuit.col_drive == "both"):
        return None
    both = copy.copy(xbar)  # the same devices: only solved, never pulsed
    p = circuit.params
    both.circuit = WireCircuit(r_wire_row=p["r_wire_row"], r_wire_col=p["r_wire_col"],
                               r_source=p["r_source"], r_sense=p["r_sense"],
                               row_drive="both", col_drive="both",
                               nonlinear=circuit.nonlinear, engine=circuit.engine)
    return pulse_delivery(both, voltage, scheme)


def _both_ends_hint(xbar: SimCrossbar, scheme: BiasScheme, v_start: float, v_top: float,
                    compensated: bool) -> str:
    """What driving the lines from both ends would deliver, for a line-resistance refusal:
    the compensated start against the bench limit `v_top`, or the start amplitude against
    what the amplitude cap `v_top` delivers."""
    share = both_ends_delivery(xbar, v_start if compensated else v_top, scheme)
    if share is None:
        return ""
    hint = ("; with every line driven and sensed at both ends (sim: row_drive: both, "
            f"col_drive: both, where the bench's wiring allows) it would see {share:.0%}")
    if compensated:
        need = v_start / max(share, 1e-3)
        return hint + (f": a compensated start of {need:.2f} V, "
                       + ("within the limit" if need <= v_top else "still beyond the limit"))
    return hint + (f" ({v_top * share:.2f} V at the cap), "
                   + ("enough for the start amplitude" if v_top * share >= v_start
                      else "still below the start amplitude"))


def check_session(cfg: SessionConfig, xbar: SimCrossbar) -> tuple[list[str], list[str]]:
    """(warnings, blocking problems) of running `cfg` on an array like `xbar`."""
    warnings: list[str] = []
    blocking: list[str] = []
    proto = cfg.protocol
    if isinstance(proto, WriteVerifyArrayProtocol):
        p = proto.params
        v_read, scheme, tol = p.v_read, p.read_scheme, p.tolerance
        pulse_scheme, v_start, v_cap = p.pulse_scheme, p.set_start, p.set_max
    elif isinstance(proto, ConvergeConfig):
        v_read, scheme, tol = proto.v_read, proto.read_scheme, proto.tolerance
        pulse_scheme, v_start, v_cap = proto.pulse_scheme, proto.set_start, proto.set_max
    else:
        return warnings, blocking
    compensate = isinstance(proto, WriteVerifyArrayProtocol) and proto.compensate
    err = read_error(xbar, v_read, scheme)
    if compensate:
        share = pulse_delivery(xbar, v_start, pulse_scheme)
        need = v_start / max(share, 1e-3)
        if err > tol:
            warnings.append(f"verify reads are off by up to {err:.1%}; compensated by the "
                            "circuit model" + ("" if proto.compensate == "tracked"
                                               else "'s read gains"))
        if need > cfg.limits.pulse_v_max:
            blocking.append(f"line resistance: a sample cell sees only {share:.0%} of a pulse; "
                            f"the compensated start amplitude {need:.2f} V exceeds the bench "
                            f"limit {cfg.limits.pulse_v_max:.2f} V"
                            + _both_ends_hint(xbar, pulse_scheme, v_start,
                                              cfg.limits.pulse_v_max, compensated=True))
        return warnings, blocking
    if err > tol:
        why, fix = (("line and source resistance drop the read voltage", "lower the source and "
                     "line resistance or widen the band") if scheme is BiasScheme.GROUNDED else
                    ("the sensed column also carries the half-selected cells' current",
                     "read under 'grounded'"))
        blocking.append(
            f"verify reads under '{scheme.value}' are off by up to {err:.1%} on this "
            f"{xbar.shape[0]} x {xbar.shape[1]} array ({why}), beyond the ±{tol:.1%} band: "
            f"write-verify cannot converge; {fix}")
    elif err > tol / 3:
        warnings.append(f"verify reads under '{scheme.value}' are off by up to {err:.1%}, a "
                        f"large part of the ±{tol:.1%} band")
    share = pulse_delivery(xbar, v_cap, pulse_scheme)
    if share < 0.95:
        text = (f"line resistance: a sample cell sees only {share:.0%} of a pulse "
                f"({v_cap * share:.2f} V of {v_cap:.2f} V)")
        if v_cap * share < v_start:
            blocking.append(text + f", below the start amplitude {v_start:.2f} V even at the "
                            "cap: far cells cannot be programmed"
                            + _both_ends_hint(xbar, pulse_scheme, v_start, v_cap,
                                              compensated=False))
        else:
            warnings.append(text + "; expect more pulses per cell")
    return warnings, blocking


def _grid(n: int, k: int = 8) -> np.ndarray:
    return np.unique(np.linspace(0, n - 1, min(n, k)).round().astype(int))


def circuit_gains(cfg: SessionConfig, cells: Sequence[Cell] | None = None
                  ) -> CircuitGains | None:
    """The gains a compensated write-verify needs, predicted on the session's circuit model
    (its `sim:` section, noise off) for programming `cells` (default: every cell in the
    protocol's order); None if not asked for (see `predict_gains`)."""
    proto = cfg.protocol
    if not (isinstance(proto, WriteVerifyArrayProtocol) and proto.compensate is True):
        return None
    sim = model_sim(cfg)
    shape = (sim.rows, sim.cols)
    order = list(cells) if cells is not None else programming_order(shape, proto.order)
    return predict_gains(sim, target_map(proto.target, shape), proto.params, cfg.limits, order)


def circuit_tracking(cfg: SessionConfig) -> TrackedInputs | None:
    """The models a tracked write-verify (`compensate: tracked`) aims through: the session's
    circuit model (its `sim:` section; the simulated devices' state is never used), the
    switching law of its device preset (ISPP when the preset has none) and the bench's pulse
    limits; None if not asked for."""
    from xbarlab.analysis.array_model import CircuitArrayModel
    from xbarlab.protocols.pulse_law import PulseLaw
    from xbarlab.sim.presets import CompactPreset, load_preset

    proto = cfg.protocol
    if not (isinstance(proto, WriteVerifyArrayProtocol) and proto.compensate == "tracked"):
        return None
    sim = model_sim(cfg)
    preset = load_preset(sim.device) if sim.device != "simple" else None
    law = PulseLaw.of_preset(preset) if isinstance(preset, CompactPreset) else None
    model = CircuitArrayModel.of_sim(sim, proto.params.v_read,
                                     BiasScheme(proto.params.pulse_scheme))
    return TrackedInputs(model, law, cfg.limits.pulse_v_min, cfg.limits.pulse_v_max)


def predict_gains(sim: SimConfig, targets: FloatArray, p: WriteVerifyParams,
                  limits: BenchLimits, order: Sequence[Cell]) -> CircuitGains:
    """Gains of programming `order`'s cells to `targets` on the circuit model `sim` (noise
    off; its devices start where the model's draw puts them, which for a simulated session is
    the array itself).

    Verify gains: each cell's read under the verify scheme at its turn, with the cells before
    it in the order at their targets and the others as they are (a grounded read's gain
    follows the conductances of the selected row and column). Read gains: a whole-array read
    once every cell of the order is at its target. Pulse gains: the delivered share of a
    start-amplitude SET on an up-to-8 x 8 grid of cells with the cells at their targets,
    interpolated bilinearly in between (line drops vary smoothly along the lines)."""
    from scipy.interpolate import RegularGridInterpolator

    model = build_sim_crossbar(sim.model_copy(update={"noise": False}))
    shape = model.shape
    targets = np.asarray(targets, dtype=np.float64)
    set_g = getattr(model.devices, "set_g", None)
    set_one = getattr(model.devices, "set_g_cell", None)
    verify = None
    if callable(set_g):
        verify = np.ones(shape)
        one = np.zeros(shape, dtype=bool)
        for cell in order:  # one device changes per step: the solver's warm start holds
            if callable(set_one):
                set_one(cell, float(targets[cell]))
            else:
                one[cell] = True
                set_g(targets, one)
                one[cell] = False
            read = model.read([cell], p.v_read, p.read_scheme).conductances[0]
            verify[cell] = read / model.g[cell]
    g_read = model.read(None, p.v_read, p.read_scheme).conductances.reshape(shape)
    read = g_read / model.g  # against what the cells hold (stuck ones keep their own G)
    if callable(set_g):  # cells outside the order at their targets too, for the pulses
        set_g(targets, np.ones(shape, dtype=bool))
    rows, cols = _grid(shape[0]), _grid(shape[1])
    share = np.empty((len(rows), len(cols)))
    for i, r in enumerate(rows):
        for j, c in enumerate(cols):
            rv, cv = line_biases(shape, (int(r), int(c)), p.set_start, p.pulse_scheme)
            sol = model.circuit.solve(model.devices, rv[None], cv[None])
            share[i, j] = float(sol.v_dev[0][r, c]) / p.set_start
    if len(rows) > 1 and len(cols) > 1:
        interp = RegularGridInterpolator((rows, cols), share)
        rr, cc = np.meshgrid(np.arange(shape[0]), np.arange(shape[1]), indexing="ij")
        full = interp(np.stack([rr.ravel(), cc.ravel()], axis=1)).reshape(shape)
    else:
        full = np.broadcast_to(share.mean(), shape).copy()
    return CircuitGains(1.0 / np.clip(full, 1e-3, None), read, limits.pulse_v_max,
                        limits.pulse_v_min, verify)
