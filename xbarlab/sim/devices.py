"""Device arrays: the state and physics of every device of a simulated crossbar.

A `DeviceArray` owns the conductance state of an M x N array and each device's parameters
(drawn once per array, seeded: device-to-device variation). The circuit asks it for currents
at given device voltages; a pulse evolves every device under the voltage it actually sees, so
half-select disturb comes from the same physics as programming.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from xbarlab.crossbar import FloatArray
from xbarlab.sim.iv import IVLaw, LinearIV


@runtime_checkable
class DeviceArray(Protocol):
    """The devices of one simulated array."""

    @property
    def shape(self) -> tuple[int, int]: ...

    @property
    def g(self) -> FloatArray:
        """Conductance state (S), shape (M, N): the small-signal conductance at low bias."""
        ...

    @property
    def linear(self) -> bool:
        """True when I = G V exactly (lets the circuit take a linear fast path)."""
        ...

    def current(self, v: FloatArray) -> FloatArray:
        """Device currents (A) for device voltages `v` (V); `v` broadcasts as (..., M, N)."""
        ...

    def conductance(self, v: FloatArray) -> FloatArray:
        """dI/dV (S) at device voltages `v`, same broadcasting as `current`."""
        ...

    def apply_voltage(self, v: FloatArray, width: float, rng: np.random.Generator) -> None:
        """Evolve every device's state under voltage `v` (M, N) held for `width` seconds."""
        ...

    def read_noise(self, currents: FloatArray, rng: np.random.Generator) -> FloatArray:
        """`currents` with read noise added (identity when noise is off)."""
        ...

    def describe(self) -> dict[str, Any]: ...


class SimpleDeviceParams(BaseModel):
    """A generic bipolar ReRAM with soft-bounded, threshold-type switching (preset "simple")."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    g_min: float = Field(50e-6, gt=0, description="lowest reachable conductance (S)")
    g_max: float = Field(600e-6, gt=0, description="highest reachable conductance (S)")
    v_set: float = Field(1.0, gt=0, description="SET threshold (V)")
    v_reset: float = Field(-1.0, lt=0, description="RESET threshold (V)")
    rate_set: float = Field(
        0.1, gt=0, description="share of remaining range per V over threshold per us"
    )
    rate_reset: float = Field(0.1, gt=0, description="same for RESET")
    d2d_threshold: float = Field(0.03, ge=0, description="device-to-device std of thresholds (V)")
    d2d_rate: float = Field(0.2, ge=0, description="device-to-device log-std of rates")
    c2c: float = Field(0.2, ge=0, description="cycle-to-cycle relative std of each change")
    read_noise: float = Field(1e-3, ge=0, description="relative std of each read")
    g_init_low: float = Field(100e-6, gt=0)
    g_init_high: float = Field(200e-6, gt=0)


class SimpleDevices:
    """Linear I-V, pulse response `dG = rate (|V|-Vth) (w/1us) x (remaining range)`, noise."""

    def __init__(
        self,
        shape: tuple[int, int],
        params: SimpleDeviceParams,
        rng: np.random.Generator,
        *,
        g_init: float | None = None,
        noise: bool = True,
    ) -> None:
        self._shape = shape
        self.params = p = params
        self.noise = noise
        if g_init is None:
            self._g = rng.uniform(p.g_init_low, p.g_init_high, size=shape)
        else:
            self._g = np.full(shape, float(g_init))
        self._v_set = p.v_set + p.d2d_threshold * rng.standard_normal(shape)
        self._v_reset = p.v_reset + p.d2d_threshold * rng.standard_normal(shape)
        self._k_set = p.rate_set * np.exp(p.d2d_rate * rng.standard_normal(shape))
        self._k_reset = p.rate_reset * np.exp(p.d2d_rate * rng.standard_normal(shape))

    @property
    def shape(self) -> tuple[int, int]:
        return self._shape

    @property
    def g(self) -> FloatArray:
        return self._g

    @property
    def linear(self) -> bool:
        return True

    @property
    def iv(self) -> LinearIV:
        """The I-V law (optional DeviceArray attribute, see `xbarlab.sim.iv.iv_law_of`)."""
        return LinearIV()

    def current(self, v: FloatArray) -> FloatArray:
        return np.asarray(self._g * v, dtype=np.float64)

    def conductance(self, v: FloatArray) -> FloatArray:
        return np.broadcast_to(self._g, np.shape(v)).astype(np.float64)

    def apply_voltage(self, v: FloatArray, width: float, rng: np.random.Generator) -> None:
        p = self.params
        t = width / 1e-6
        over_set = np.clip(v - self._v_set, 0.0, None)
        over_reset = np.clip(self._v_reset - v, 0.0, None)
        active = (over_set > 0) | (over_reset > 0)
        if not active.any():
            return
        frac_set = np.clip(self._k_set * over_set * t, 0.0, 1.0)
        frac_reset = np.clip(self._k_reset * over_reset * t, 0.0, 1.0)
        dg = frac_set * (p.g_max - self._g) - frac_reset * (self._g - p.g_min)
        if self.noise and p.c2c > 0:
            dg = dg * (1.0 + p.c2c * rng.standard_normal(self._shape))
        self._g = np.clip(self._g + np.where(active, dg, 0.0), p.g_min, p.g_max)

    def read_noise(self, currents: FloatArray, rng: np.random.Generator) -> FloatArray:
        if not self.noise or self.params.read_noise == 0:
            return currents
        noise = self.params.read_noise * rng.standard_normal(np.shape(currents))
        return np.asarray(currents * (1.0 + noise), dtype=np.float64)

    def describe(self) -> dict[str, Any]:
        return {"model": "simple", "params": self.params.model_dump(), "noise": self.noise}


def make_device_array(
    name: str,
    shape: tuple[int, int],
    rng: np.random.Generator,
    *,
    g_init: float | None = None,
    noise: bool = True,
    disturb: str = "physics",
    pristine: bool = False,
    wear_acceleration: float = 1.0,
) -> DeviceArray:
    """The device array of preset `name` (unknown names: the error lists the known ones).

    `disturb`: "physics" (half-selected devices follow the device dynamics) or "empirical"
    (the measured per-k statistics, `xbarlab.sim.disturb`; TiO2 presets only)."""
    if disturb not in ("physics", "empirical"):
        raise ValueError(f"disturb must be 'physics' or 'empirical', got {disturb!r}")
    if name == "simple":
        if pristine or wear_acceleration != 1.0:
            raise ValueError("preset 'simple' has no forming or wear: use a TiO2 preset")
        if disturb != "physics":
            raise ValueError("preset 'simple' supports only disturb='physics'")
        return SimpleDevices(shape, SimpleDeviceParams(), rng, g_init=g_init, noise=noise)
    from xbarlab.sim.presets import CompactPreset, PresetError, load_preset
    from xbarlab.sim.tio2 import TiO2Devices

    preset = load_preset(name)  # unknown names: PresetError listing the known ones
    if not isinstance(preset, CompactPreset):
        raise PresetError(
            f"preset {name!r} is {preset.kind!r} (statistics for the transfer model), not a "
            "device model for SimCrossbar"
        )
    devices = TiO2Devices(shape, preset, rng, g_init=g_init, noise=noise, pristine=pristine,
                          wear_acceleration=wear_acceleration)
    if disturb == "empirical":
        from xbarlab.sim.disturb import EmpiricalDisturbDevices, empirical_stats

        return EmpiricalDisturbDevices(devices, empirical_stats(), rng)
    return devices


class FixedDevices:
    """Devices of given conductances under an I-V law (default linear) that never switch: a
    circuit model's stand-in for an array (the conductances are a read-only copy, so a solver
    may keep its factors while the same state is solved again)."""

    def __init__(self, g: FloatArray, iv: IVLaw | None = None) -> None:
        self._g = np.array(g, dtype=np.float64)
        self._g.flags.writeable = False
        self.iv: IVLaw = LinearIV() if iv is None else iv

    @property
    def shape(self) -> tuple[int, int]:
        return (int(self._g.shape[0]), int(self._g.shape[1]))

    @property
    def g(self) -> FloatArray:
        return self._g

    @property
    def linear(self) -> bool:
        return bool(self.iv.linear)

    def current(self, v: FloatArray) -> FloatArray:
        return self.iv.current(self._g, v)

    def conductance(self, v: FloatArray) -> FloatArray:
        return self.iv.didv(self._g, v)

    def apply_voltage(self, v: FloatArray, width: float, rng: np.random.Generator) -> None:
        raise NotImplementedError("a circuit model does not switch")

    def read_noise(self, currents: FloatArray, rng: np.random.Generator) -> FloatArray:
        return currents

    def describe(self) -> dict[str, Any]:
        return {"kind": "fixed", **self.iv.describe()}
