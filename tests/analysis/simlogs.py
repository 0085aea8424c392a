"""Simulated write-verify logs for the calibration tests (sim backend, noise on, seeded)."""

from __future__ import annotations

from pathlib import Path

from xbarlab.config import SessionConfig, SimConfig, WriteVerifyArrayProtocol, WriteVerifyParams
from xbarlab.engine import RunEngine
from xbarlab.log.writer import HDF5Writer
from xbarlab.sessions import build_backend, build_plan


def simulate_write_verify(
    out: Path, device: str, *, seed: int, shape: tuple[int, int] = (16, 16),
    n_verify: int = 2, noise: bool = True,
) -> Path:
    """Program a gradient pattern with ISPP write-verify on a simulated array; log to `out`."""
    proto = WriteVerifyArrayProtocol.model_validate({
        "target": {"pattern": "gradient"},
        "params": WriteVerifyParams(n_verify=n_verify).model_dump(),
    })
    cfg = SessionConfig(
        seed=seed, sim=SimConfig(rows=shape[0], cols=shape[1], device=device, seed=seed,
                      noise=noise),
        protocol=proto,
    )
    backend = build_backend(cfg)
    plan = build_plan(cfg, backend.shape)
    with HDF5Writer(out) as writer:
        RunEngine(backend, cfg.limits, [writer]).run(
            plan, protocol=cfg.protocol.kind, config=cfg.model_dump(mode="json"), seed=seed)
    return out


def perturbed_preset(out: Path, factors: dict[str, float], base: str = "tio2-o921c") -> Path:
    """A copy of preset `base` with `section.key` values multiplied by `factors`."""
    import yaml

    from xbarlab.config import load_yaml
    from xbarlab.sim.presets import preset_dir

    doc = load_yaml(preset_dir() / f"{base}.yaml")
    for name, f in factors.items():
        sec, key = name.split(".")
        doc[sec][key]["value"] = float(doc[sec][key]["value"]) * f
    doc["name"] = out.stem
    out.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    return out
