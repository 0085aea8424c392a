"""Checks of a whole session before anything runs: settings that are each valid on their own but
physically absurd together (targets the device cannot reach, protocol amplitudes beyond the
limits, session limits beyond what the bench config allows).

`session_problems` returns one line per problem; the CLI prints them and exits 2 (nothing is
connected, nothing is applied). The engine's per-operation limit check stays the last guard.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from xbarlab.config import (
    ConfigError,
    SessionConfig,
    WriteVerifyArrayProtocol,
    load_config,
)
from xbarlab.limits import BenchLimits
from xbarlab.units import si


def device_names() -> list[str]:
    """Device presets a simulated crossbar can use (compact models and 'simple')."""
    from xbarlab.sim.presets import CompactPreset, PresetError, list_presets, load_preset

    names = []
    for name in list_presets():
        try:
            if name == "simple" or isinstance(load_preset(name), CompactPreset):
                names.append(name)
        except PresetError:
            continue
    return names


def device_range(device: str) -> tuple[float, float] | None:
    """The conductance range (S) the device preset can reach at its read voltage, or None if
    the preset is unknown (the simulator's own error names the known ones)."""
    if device == "simple":
        from xbarlab.sim.devices import SimpleDeviceParams

        p = SimpleDeviceParams()
        return p.g_min, p.g_max
    from xbarlab.sim.presets import CompactPreset, PresetError, load_preset

    try:
        preset = load_preset(device)
    except (PresetError, ConfigError):
        return None
    if not isinstance(preset, CompactPreset):
        return None
    return 1.0 / preset.r_off, 1.0 / preset.r_on


def _targets(proto: WriteVerifyArrayProtocol, shape: tuple[int, int]) -> np.ndarray:
    from xbarlab.protocols.patterns import target_map

    return np.asarray(target_map(proto.target, shape), dtype=np.float64)


def _limits_problems(session: BenchLimits, bench: BenchLimits, where: str) -> list[str]:
    """Session limits set explicitly beyond the bench config's (defaults left alone: the
    bench backend enforces its own limits anyway)."""
    out = []
    for name, unit, higher_is_more in (
        ("v_max", "V", True), ("pulse_v_max", "V", True), ("pulse_v_min", "V", False),
        ("read_v_max", "V", True), ("compliance", "A", True), ("pulse_width_max", "s", True),
        ("pulse_width_min", "s", False),
    ):
        if name not in session.model_fields_set:
            continue
        mine, allowed = getattr(session, name), getattr(bench, name)
        if (mine > allowed) if higher_is_more else (mine < allowed):
            out.append(f"limits.{name}: {si(mine, unit)} is beyond what the bench config "
                       f"{where} allows ({si(allowed, unit)})")
    return out


def _params_problems(cfg: SessionConfig, lim: BenchLimits | None = None,
                     where: str = "") -> list[str]:
    """Protocol amplitudes, widths and read voltage beyond `lim` (default: the session's)."""
    lim = cfg.limits if lim is None else lim
    proto = cfg.protocol
    out = []
    if isinstance(proto, WriteVerifyArrayProtocol):
        p = proto.params
        pre = "protocol.params"
        if p.set_max > lim.pulse_v_max:
            out.append(f"{pre}.set_max: {si(p.set_max, 'V')} is above limits.pulse_v_max{where} "
                       f"({si(lim.pulse_v_max, 'V')})")
        if p.reset_min < lim.pulse_v_min:
            out.append(f"{pre}.reset_min: {si(p.reset_min, 'V')} is below "
                       f"limits.pulse_v_min{where} ({si(lim.pulse_v_min, 'V')})")
        if not lim.pulse_width_min <= p.width <= lim.pulse_width_max:
            out.append(f"{pre}.width: {si(p.width, 's')} is outside the limits{where} "
                       f"[{si(lim.pulse_width_min, 's')}, {si(lim.pulse_width_max, 's')}]")
        v_read = p.v_read
    else:
        pre, v_read = "protocol.params", proto.params.v_read
    if v_read > lim.read_v_max:
        out.append(f"{pre}.v_read: {si(v_read, 'V')} is above limits.read_v_max{where} "
                   f"({si(lim.read_v_max, 'V')})")
    return out


def _target_problems(cfg: SessionConfig, shape: tuple[int, int]) -> list[str]:
    proto = cfg.protocol
    if not isinstance(proto, WriteVerifyArrayProtocol) or cfg.backend != "sim":
        return []
    reach = device_range(cfg.sim.device)
    if reach is None:
        return []
    lo, hi = reach
    try:
        targets = _targets(proto, shape)
    except ValueError as exc:
        return [f"protocol.target: {exc}"]
    t_lo, t_hi = float(targets.min()), float(targets.max())
    if t_lo < lo * 0.999 or t_hi > hi * 1.001:
        return [f"protocol.target: targets {si(t_lo, 'S')} .. {si(t_hi, 'S')} leave the range "
                f"device '{cfg.sim.device}' can reach ({si(lo, 'S')} .. {si(hi, 'S')})"]
    return []


def session_problems(cfg: SessionConfig, source: str = "session") -> list[str]:
    """Every physically absurd setting of `cfg`, one line each (empty: fine to run)."""
    out = [f"{source}: {p}" for p in _params_problems(cfg)]
    shape = (cfg.sim.rows, cfg.sim.cols)
    if cfg.backend == "bench" and cfg.bench is not None:
        from xbarlab.bench.config import BenchConfig

        bench_path = Path(cfg.bench)
        try:
            bench = load_config(bench_path, BenchConfig)
        except ConfigError as exc:
            return [*out, str(exc)]
        out += [f"{source}: {p}" for p in _limits_problems(cfg.limits, bench.limits,
                                                           str(bench_path))]
        flagged = {p.split(":")[0] for p in _params_problems(cfg)}
        out += [f"{source}: {p}" for p in _params_problems(
            cfg, bench.limits, f" of the bench config {bench_path}")
            if p.split(":")[0] not in flagged]
        shape = (bench.rows, bench.cols)
    out += [f"{source}: {p}" for p in _target_problems(cfg, shape)]
    return out
