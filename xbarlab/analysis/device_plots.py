"""Figures of a device preset: pulse response and I-V of a compact model, or the transfer
statistics of a statistical preset. matplotlib is imported inside the plotting function."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from xbarlab.crossbar import FloatArray
from xbarlab.sim.presets import CompactPreset, StatisticalPreset, load_preset
from xbarlab.sim.tio2 import TiO2Devices
from xbarlab.units import MICRO


@dataclass(frozen=True)
class PulseTrain:
    """Read conductance (S, at the preset's v_read) before and after each pulse of a SET train
    at `v_set` followed by a RESET train at `v_reset`."""

    v_set: float
    v_reset: float
    g: FloatArray  # (1 + n_set + n_reset,)


def nominal_device(preset: CompactPreset, g_read: float) -> TiO2Devices:
    """One device with the preset's nominal parameters: no spread, noise or stuck state."""
    nominal = preset.model_copy(
        update={
            "variability": preset.variability.model_copy(update={"d2d_v": 0.0, "d2d_rate": 0.0}),
            "stuck": preset.stuck.model_copy(update={"lrs_rate": 0.0, "hrs_rate": 0.0}),
        }
    )
    return TiO2Devices((1, 1), nominal, np.random.default_rng(0), g_init=g_read, noise=False)


def pulse_response(
    preset: CompactPreset,
    amplitudes: tuple[tuple[float, float], ...] = ((1.1, -1.1), (1.3, -1.4), (1.5, -1.7)),
    n_pulses: int = 40,
    width: float = 1e-6,
    g_start: float | None = None,
) -> list[PulseTrain]:
    """G vs pulse number for SET then RESET trains of `n_pulses` each, per amplitude pair."""
    if n_pulses < 1:
        raise ValueError(f"n_pulses must be >= 1, got {n_pulses}")
    g0 = g_start if g_start is not None else (
        preset.window.g_min if preset.window is not None else preset.initial.g_low
    )
    rng = np.random.default_rng(0)
    out = []
    for v_set, v_reset in amplitudes:
        if not (v_set > 0 > v_reset):
            raise ValueError(f"amplitude pair ({v_set}, {v_reset}) must be (SET > 0, RESET < 0)")
        dev = nominal_device(preset, g0)
        trace = [float(dev.g[0, 0])]
        for v in [v_set] * n_pulses + [v_reset] * n_pulses:
            dev.apply_voltage(np.array([[v]]), width, rng)
            trace.append(float(dev.g[0, 0]))
        out.append(PulseTrain(v_set, v_reset, np.array(trace)))
    return out


def iv_curve(
    preset: CompactPreset, g_read: float, v_max: float = 1.0, n: int = 201
) -> tuple[FloatArray, FloatArray]:
    """(V, I) of the read law for a device reading `g_read` at v_read (no state change)."""
    dev = nominal_device(preset, g_read)
    v = np.linspace(-v_max, v_max, n)
    return v, dev.current(v[:, None, None] * np.ones((1, 1, 1)))[:, 0, 0]


def _simple_pulse_response(n_pulses: int = 40, width: float = 1e-6
                           ) -> tuple[Any, list[PulseTrain]]:
    """Pulse trains of one nominal device of the built-in 'simple' model."""
    from xbarlab.sim.devices import SimpleDeviceParams, SimpleDevices

    p = SimpleDeviceParams(d2d_threshold=0.0, d2d_rate=0.0, c2c=0.0, read_noise=0.0)
    out = []
    rng = np.random.default_rng(0)
    for v_set, v_reset in ((1.1, -1.1), (1.3, -1.3), (1.5, -1.5)):
        dev = SimpleDevices((1, 1), p, rng, g_init=p.g_init_low, noise=False)
        trace = [float(dev.g[0, 0])]
        for v in [v_set] * n_pulses + [v_reset] * n_pulses:
            dev.apply_voltage(np.array([[v]]), width, rng)
            trace.append(float(dev.g[0, 0]))
        out.append(PulseTrain(v_set, v_reset, np.array(trace)))
    return p, out


def plot_preset(name: str, out: str | Path) -> Path:
    """Save the figure of preset `name` at `out` (.png, .svg or .pdf); returns the path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(out)
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.4), constrained_layout=True)
    if name == "simple":
        params, trains = _simple_pulse_response()
        _plot_trains(ax1, trains, 40, 0.2)
        for g in (params.g_min, params.g_max):
            v = np.linspace(-1.0, 1.0, 201)
            ax2.plot(v, g * v * 1e3, label=f"G = {g * 1e6:.0f} {MICRO}S")
        ax2.set_xlabel("V (V)")
        ax2.set_ylabel("I (mA)")
        ax2.set_title("linear I-V (I = G V)")
        ax2.legend(fontsize=8)
        fig.suptitle("simple (built-in generic bipolar ReRAM)")
    else:
        preset: Any = load_preset(name)
        if isinstance(preset, CompactPreset):
            _plot_compact(preset, ax1, ax2)
        elif isinstance(preset, StatisticalPreset):
            _plot_statistical(preset, ax1, ax2)
        fig.suptitle(f"{preset.name} ({preset.kind})")
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def _plot_trains(ax1: Any, trains: list[PulseTrain], n: int, v_read: float) -> None:
    for train in trains:
        ax1.plot(np.arange(train.g.size), train.g * 1e6, ".-", ms=3,
                 label=f"SET {train.v_set:+.1f} V / RESET {train.v_reset:+.1f} V")
    ax1.axvline(n, color="0.6", lw=0.8)
    ax1.set_xlabel(f"pulse number (1 {MICRO}s pulses; SET train, then RESET train)")
    ax1.set_ylabel(f"G read at {v_read} V ({MICRO}S)")
    ax1.set_title("pulse response (nominal device)")
    ax1.xaxis.set_major_locator(_integer_locator())
    ax1.legend(fontsize=8)


def _integer_locator() -> Any:
    from matplotlib.ticker import MaxNLocator

    return MaxNLocator(integer=True)


def _plot_compact(p: CompactPreset, ax1: Any, ax2: Any) -> None:
    n = 40
    _plot_trains(ax1, pulse_response(p, n_pulses=n), n, p.v_read)
    lo = p.window.g_min if p.window else p.initial.g_low
    hi = p.window.g_max if p.window else p.initial.g_high
    for g in (lo, hi):
        v, i = iv_curve(p, g, v_max=1.0)
        ax2.plot(v, i * 1e3, label=f"G = {g * 1e6:.0f} {MICRO}S at {p.v_read} V")
        ax2.plot(v, g * v * 1e3, "--", color="0.6", lw=0.8)
    ax2.set_xlabel("V (V)")
    ax2.set_ylabel("I (mA)")
    ax2.set_title(f"I = a G sinh(b V), a = {p.iv.a:.4g}, b = {p.iv.b:.4g} /V (dashed: ohmic)")
    ax2.legend(fontsize=8)


def _plot_statistical(p: StatisticalPreset, ax1: Any, ax2: Any) -> None:
    g = np.linspace(p.window.g_min, p.window.g_max, 50)
    ax1.plot(g * 1e6, p.tuning.std_pct(g), label="tuning std (% of target)")
    ax1.axhline(p.offset.std_pct, ls="--", color="0.5", label="per-device offset std (%)")
    ax1.set_xlabel(f"target G ({MICRO}S)")
    ax1.set_ylabel("%")
    ax1.set_title(f"write-verify imprecision (offset mean {p.offset.mean_pct:+.3f} %)")
    ax1.legend(fontsize=8)
    k = np.asarray(p.disturb.k)
    ax2.plot(k, np.asarray(p.disturb.mean) * 1e6, label="mean")
    ax2.plot(k, np.asarray(p.disturb.std) * 1e6, label="std")
    q = np.asarray(p.disturb.quantiles) * 1e6
    levels = np.asarray(p.disturb.quantile_levels)
    lo, hi = int(np.searchsorted(levels, 0.1)), int(np.searchsorted(levels, 0.9))
    ax2.fill_between(k, q[:, lo], q[:, hi], alpha=0.2, label="10-90 % quantiles")
    ax2.set_xlabel("k (later programmings in the same array)")
    ax2.set_ylabel(f"disturb ΔG ({MICRO}S)")
    ax2.xaxis.set_major_locator(_integer_locator())
    ax2.set_title("biasing-scheme disturb (measured)")
    ax2.legend(fontsize=8)
