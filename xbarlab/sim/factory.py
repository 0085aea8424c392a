"""Build a `SimCrossbar` from a `SimConfig`."""

from __future__ import annotations

import numpy as np

from xbarlab.config import SimConfig
from xbarlab.sim.circuit import Circuit, IdealCircuit
from xbarlab.sim.crossbar import SimCrossbar
from xbarlab.sim.devices import make_device_array


def make_circuit(cfg: SimConfig) -> Circuit:
    """The circuit model for `cfg.fidelity`."""
    if cfg.fidelity == "ideal":
        return IdealCircuit()
    raise NotImplementedError(f"fidelity {cfg.fidelity!r} needs the wire-resistance solver")


def build_sim_crossbar(cfg: SimConfig, *, compliance: float = 1e-3) -> SimCrossbar:
    """A simulated crossbar as configured; devices drawn from `cfg.seed`."""
    rng = np.random.default_rng(cfg.seed)
    devices = make_device_array(
        cfg.device, (cfg.rows, cfg.cols), rng, g_init=cfg.g_init, noise=cfg.noise
    )
    return SimCrossbar(
        devices, make_circuit(cfg), seed=cfg.seed + 1, compliance=compliance,
        description={"config": cfg.model_dump()},
    )
