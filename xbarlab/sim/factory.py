"""Build a `SimCrossbar` from a `SimConfig`."""

from __future__ import annotations

import numpy as np

from xbarlab.config import SimConfig
from xbarlab.sim.circuit import Circuit, IdealCircuit
from xbarlab.sim.crossbar import SimCrossbar
from xbarlab.sim.devices import make_device_array
from xbarlab.sim.solver import WireCircuit


def make_circuit(cfg: SimConfig) -> Circuit:
    """The circuit model for `cfg.fidelity`."""
    if cfg.fidelity == "ideal":
        return IdealCircuit()
    return WireCircuit(
        r_wire_row=cfg.r_wire_row, r_wire_col=cfg.r_wire_col, r_source=cfg.r_source,
        r_sense=cfg.r_sense, row_drive=cfg.row_drive, col_drive=cfg.col_drive,
        nonlinear=cfg.fidelity == "nonlinear",
    )


def build_sim_crossbar(cfg: SimConfig, *, compliance: float = 1e-3) -> SimCrossbar:
    """A simulated crossbar as configured; devices drawn from `cfg.seed`."""
    rng = np.random.default_rng(cfg.seed)
    devices = make_device_array(
        cfg.device, (cfg.rows, cfg.cols), rng, g_init=cfg.g_init, noise=cfg.noise,
        disturb=cfg.disturb, pristine=cfg.pristine, wear_acceleration=cfg.wear_acceleration,
    )
    return SimCrossbar(
        devices, make_circuit(cfg), seed=cfg.seed + 1, compliance=compliance,
        description={"config": cfg.model_dump()},
    )
