"""Simulated logs for the calibration tests (sim backend, noise on, seeded)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from xbarlab.config import (
    ReadMapProtocol,
    SessionConfig,
    SimConfig,
    WriteVerifyArrayProtocol,
    WriteVerifyParams,
    load_yaml,
)
from xbarlab.engine import RunEngine
from xbarlab.log.writer import HDF5Writer
from xbarlab.protocol_configs import (
    CurveTracerConfig,
    EnduranceConfig,
    ProtocolSession,
    RetentionConfig,
)
from xbarlab.protocols.registry import plan_for
from xbarlab.sessions import build_backend, build_plan
from xbarlab.sim.presets import preset_dir


@dataclass(frozen=True)
class SimLog:
    path: Path
    stuck: np.ndarray[Any, Any]  # the simulator's truth: 0 healthy, 1 stuck LRS, 2 stuck HRS


def _run(out: Path, cfg: SessionConfig) -> SimLog:
    backend = build_backend(cfg)
    stuck = backend.devices.stuck  # type: ignore[attr-defined]
    plan = (plan_for(cfg.protocol, backend.shape) if isinstance(cfg, ProtocolSession)
            else build_plan(cfg, backend.shape))
    with HDF5Writer(out) as writer:
        RunEngine(backend, cfg.limits, [writer]).run(
            plan, protocol=cfg.protocol.kind, config=cfg.model_dump(mode="json"), seed=cfg.seed)
    return SimLog(out, stuck)


def simulate_write_verify(
    out: Path, device: str, *, seed: int, shape: tuple[int, int] = (16, 16),
    n_verify: int = 2, noise: bool = True, pulse_scheme: str = "v/2",
) -> SimLog:
    """Program a gradient pattern with ISPP write-verify on a simulated array; log to `out`."""
    params = WriteVerifyParams.model_validate({"n_verify": n_verify,
                                               "pulse_scheme": pulse_scheme})
    proto = WriteVerifyArrayProtocol.model_validate({
        "target": {"pattern": "gradient"},
        "params": params.model_dump(),
    })
    sim = SimConfig(rows=shape[0], cols=shape[1], device=device, seed=seed, noise=noise)
    return _run(out, SessionConfig(seed=seed, sim=sim, protocol=proto))


def simulate_read_map(out: Path, *, seed: int, shape: tuple[int, int] = (8, 8)) -> SimLog:
    """Read every cell once (no pulses): a log without write-verify traces."""
    sim = SimConfig(rows=shape[0], cols=shape[1], seed=seed)
    return _run(out, SessionConfig(seed=seed, sim=sim, protocol=ReadMapProtocol()))


def perturbed_preset(out: Path, factors: dict[str, float], base: str = "tio2-o921c") -> Path:
    """A copy of preset `base` with `section.key` (or top-level) values multiplied by
    `factors`."""
    doc = load_yaml(preset_dir() / f"{base}.yaml")
    for name, f in factors.items():
        *sec, key = name.split(".")
        holder = doc[sec[0]] if sec else doc
        holder[key]["value"] = float(holder[key]["value"]) * f
    doc["name"] = out.stem
    out.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    return out


def simulate_protocol(out: Path, device: str, protocol: Any, *, seed: int,
                      shape: tuple[int, int] = (32, 32), noise: bool = True) -> SimLog:
    """Run any protocol config (`xbarlab.protocol_configs`) on a simulated array; log it."""
    sim = SimConfig(rows=shape[0], cols=shape[1], device=device, seed=seed, noise=noise)
    return _run(out, ProtocolSession(seed=seed, sim=sim, protocol=protocol))


def simulate_iv_sweeps(out: Path, device: str, *, seed: int, shape: tuple[int, int] = (32, 32),
                       cells: int = 4, scheme: str = "grounded") -> SimLog:
    """A few staircase I-V sweeps (current at bias and a read after every step)."""
    rng = np.random.default_rng(seed)
    chosen = [[int(rng.integers(shape[0])), int(rng.integers(shape[1]))] for _ in range(cells)]
    proto = CurveTracerConfig(cells=chosen, read_at="both", cycles=2, v_step=0.05, v_pos=1.2,
                              v_neg=-1.2, pulse_scheme=scheme)  # type: ignore[arg-type]
    return simulate_protocol(out, device, proto, seed=seed, shape=shape)


def simulate_retention(out: Path, device: str, *, seed: int, shape: tuple[int, int] = (32, 32),
                       duration: float = 1e5, points: int = 20) -> SimLog:
    """Every cell read on a log schedule over `duration` s (simulated time)."""
    proto = RetentionConfig(duration=duration, points=points)
    return simulate_protocol(out, device, proto, seed=seed, shape=shape)


def simulate_endurance(out: Path, device: str, *, seed: int, shape: tuple[int, int] = (32, 32),
                       cells: int = 8, cycles: int = 20) -> SimLog:
    """SET/RESET cycling of a few cells with a read after every pulse."""
    chosen = [[k % shape[0], (3 * k) % shape[1]] for k in range(cells)]
    proto = EnduranceConfig(cells=chosen, cycles=cycles, read_every=1)
    return simulate_protocol(out, device, proto, seed=seed, shape=shape)
