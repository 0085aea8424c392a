"""Device parameter presets: data files in data/devices/, validated by pydantic, loaded by name.

Two kinds of preset live there:

- ``statistical`` (e.g. ``tio2-sherbrooke-2023``): the transfer statistics measured after
  write-verify on real arrays (window, tuning imprecision, per-device offset, disturb per
  number of later programmings k, stuck devices). Consumed by the statistical transfer model.
- ``compact`` (e.g. ``tio2-o921c``): parameters of the physical device model of
  `xbarlab.sim.tio2` (sinh I-V, pulse-driven switching dynamics, variability, stuck devices).

In the files every figure is written as ``{value: ..., unit: ..., source: "..."}``; the
loader checks the unit against the one the field expects and keeps the value (SI units).
Programmatic construction may pass bare numbers.
"""

from __future__ import annotations

import os
from functools import lru_cache
from itertools import pairwise
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from xbarlab.config import ConfigError, load_yaml

PRESET_DIR_ENV = "XBARLAB_DEVICE_PRESETS"


class PresetError(ConfigError):
    """A preset that cannot be found or used; the message names the preset, file and field."""


def preset_dir() -> Path:
    """Where the preset files live: $XBARLAB_DEVICE_PRESETS, else the checkout's
    data/devices, else the copy an installed wheel carries (data/devices ships as the data
    package xbarlab/presets, see pyproject.toml)."""
    env = os.environ.get(PRESET_DIR_ENV)
    if env:
        return Path(env)
    checkout = Path(__file__).resolve().parents[2] / "data" / "devices"
    if checkout.is_dir():
        return checkout
    return Path(__file__).resolve().parents[1] / "presets"


# --------------------------------------------------------------------------- figures with units


class _Section(BaseModel):
    """A group of figures; each field may declare its unit with ``json_schema_extra``."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    @model_validator(mode="before")
    @classmethod
    def _unwrap_quantities(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        out = dict(data)
        for name, field in cls.model_fields.items():
            raw = out.get(name)
            if not (isinstance(raw, dict) and "value" in raw):
                continue
            extra = field.json_schema_extra if isinstance(field.json_schema_extra, dict) else {}
            unit = extra.get("unit")
            if unit is None:
                continue
            unknown = set(raw) - {"value", "unit", "source", "note"}
            if unknown:
                raise ValueError(f"{name}: unexpected keys {sorted(unknown)}")
            if raw.get("unit") != unit:
                raise ValueError(f"{name}: unit {raw.get('unit')!r} given, expected {unit!r}")
            if not str(raw.get("source", "")).strip():
                raise ValueError(f"{name}: a source line is required")
            out[name] = raw["value"]
        return out


def _u(unit: str, **kw: Any) -> Any:
    """A pydantic Field carrying its unit."""
    return Field(json_schema_extra={"unit": unit}, **kw)


# --------------------------------------------------------------------------- statistical preset


class Window(_Section):
    g_min: float = _u("S", gt=0, description="lowest target conductance")
    g_max: float = _u("S", gt=0, description="highest target conductance")

    @model_validator(mode="after")
    def _ordered(self) -> Window:
        if self.g_min >= self.g_max:
            raise ValueError(f"g_min ({self.g_min}) must be below g_max ({self.g_max})")
        return self


class Tuning(_Section):
    """Write-verify imprecision: Gaussian, std in % of target = slope * G[uS] + intercept."""

    slope_pct_per_uS: float = _u("%/uS")  # noqa: N815 (unit in the name)
    intercept_pct: float = _u("%")

    def std_pct(self, g: Any) -> Any:
        """Std (% of target) at conductance `g` (S)."""
        return self.slope_pct_per_uS * np.asarray(g) * 1e6 + self.intercept_pct


class Offset(_Section):
    """Per-device systematic offset after write-verify, % of target."""

    mean_pct: float = _u("%")
    std_pct: float = _u("%", ge=0)


class DisturbStats(BaseModel):
    """Measured conductance change of a device per k = number of later programmings (S)."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    source: str = Field(min_length=1)
    unit: Literal["S"] = "S"
    clip: float = Field(gt=0, description="the data were clipped at +-clip (S)")
    k: list[int] = Field(min_length=1)
    n: list[int]
    mean: list[float]
    std: list[float]
    quantile_levels: list[float] = Field(min_length=2)
    quantiles: list[list[float]]

    @model_validator(mode="after")
    def _consistent(self) -> DisturbStats:
        nk = len(self.k)
        for name in ("n", "mean", "std", "quantiles"):
            if len(getattr(self, name)) != nk:
                raise ValueError(f"{name} has {len(getattr(self, name))} entries, k has {nk}")
        if any(k < 1 for k in self.k) or any(b <= a for a, b in pairwise(self.k)):
            raise ValueError("k must be strictly increasing integers >= 1")
        lv = self.quantile_levels
        if lv[0] != 0.0 or lv[-1] != 1.0 or any(b <= a for a, b in pairwise(lv)):
            raise ValueError("quantile_levels must increase strictly from 0 to 1")
        for k, q in zip(self.k, self.quantiles, strict=True):
            if len(q) != len(lv):
                raise ValueError(f"quantiles[k={k}] has {len(q)} entries, expected {len(lv)}")
            if any(b < a for a, b in pairwise(q)):
                raise ValueError(f"quantiles[k={k}] must be non-decreasing")
        if any(s < 0 for s in self.std):
            raise ValueError("std must be >= 0")
        return self

    def sample(self, k: Any, rng: np.random.Generator | int) -> np.ndarray:
        """Disturb deltas (S) for an array of k values, by inverse-CDF interpolation of the
        quantiles. k = 0 gives 0; k beyond the largest measured k uses the largest."""
        return sample_disturb(self, k, rng)


class Stuck(_Section):
    """Devices stuck at LRS (G ~ N(lrs_mean, lrs_std)) or HRS (G ~ U(hrs_low, hrs_high))."""

    lrs_rate: float = _u("1", ge=0, le=1)
    lrs_mean: float = _u("S", gt=0)
    lrs_std: float = _u("S", ge=0)
    hrs_rate: float = _u("1", ge=0, le=1)
    hrs_low: float = _u("S", gt=0)
    hrs_high: float = _u("S", gt=0)

    @model_validator(mode="after")
    def _valid(self) -> Stuck:
        if self.lrs_rate + self.hrs_rate > 1:
            raise ValueError("lrs_rate + hrs_rate must not exceed 1")
        if self.hrs_low >= self.hrs_high:
            raise ValueError("hrs_low must be below hrs_high")
        return self

    def draw(self, shape: tuple[int, ...], rng: np.random.Generator) -> tuple[Any, Any]:
        """(state, g): state 0 healthy, 1 stuck LRS, 2 stuck HRS; g the stuck conductance (S)
        where stuck (NaN elsewhere). LRS draws are kept above hrs_high."""
        u = rng.random(shape)
        state = np.zeros(shape, dtype=np.int8)
        state[u < self.lrs_rate] = 1
        state[(u >= self.lrs_rate) & (u < self.lrs_rate + self.hrs_rate)] = 2
        g_lrs = np.maximum(self.lrs_mean + self.lrs_std * rng.standard_normal(shape), self.hrs_high)
        g_hrs = rng.uniform(self.hrs_low, self.hrs_high, size=shape)
        g = np.where(state == 1, g_lrs, np.where(state == 2, g_hrs, np.nan))
        return state, g


class BenchSettings(_Section):
    """The write-verify settings the data were taken with (informative)."""

    v_read: float = _u("V", gt=0)
    set_start: float = _u("V", gt=0)
    set_max: float = _u("V", gt=0)
    reset_start: float = _u("V", lt=0)
    reset_min: float = _u("V", lt=0)
    step: float = _u("V", gt=0)
    width: float = _u("s", gt=0)
    edge: float = _u("s", ge=0)
    tolerance: float = _u("1", gt=0, lt=1)


class StatisticalPreset(BaseModel):
    """Transfer statistics of write-verify programming on real arrays."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)
    kind: Literal["statistical"] = "statistical"
    name: str
    description: str = ""
    window: Window
    tuning: Tuning
    offset: Offset
    disturb: DisturbStats
    stuck: Stuck
    bench: BenchSettings | None = None


# --------------------------------------------------------------------------- compact preset


class SinhParams(_Section):
    """I = a G sinh(b V)."""

    a: float = _u("1", gt=0)
    b: float = _u("1/V", gt=0)


class Polarity(_Section):
    """Switching of one polarity, magnitudes only (directions and conventions:
    `xbarlab.sim.tio2`): rate s(V) = a (exp(|V|/t) - 1), bound r(V) = r0 + r1 |V|."""

    a: float = _u("1/(ohm s)", gt=0)
    t: float = _u("V", gt=0)
    r0: float = _u("ohm")
    r1: float = _u("ohm/V")


class Variability(_Section):
    d2d_v: float = _u("V", ge=0, description="device-to-device std of the bound voltage shift")
    d2d_rate: float = _u("1", ge=0, description="device-to-device log-std of the rates")
    c2c_v: float = _u("V", ge=0, description="cycle-to-cycle std of the bound voltage shift")
    c2c_rel: float = _u("1", ge=0, description="cycle-to-cycle relative std of each change")


class ReadNoise(_Section):
    """Relative read-noise std in % = slope * R[ohm] + intercept."""

    slope_pct_per_ohm: float = _u("%/ohm", ge=0)
    intercept_pct: float = _u("%", ge=0)


class InitialState(_Section):
    """Initial read conductance of healthy devices ~ U(g_low, g_high)."""

    g_low: float = _u("S", gt=0)
    g_high: float = _u("S", gt=0)

    @model_validator(mode="after")
    def _ordered(self) -> InitialState:
        if self.g_low > self.g_high:
            raise ValueError(f"g_low ({self.g_low}) must not exceed g_high ({self.g_high})")
        return self


class Forming(_Section):
    """Pristine (unformed) devices and their forming: a device forms once its forming dose
    sum(width / tau * exp((V - v_form) / v_scale)) over positive pulses reaches 1."""

    g_pristine_low: float = _u("S", gt=0, description="pristine read conductance, low end")
    g_pristine_high: float = _u("S", gt=0, description="pristine read conductance, high end")
    v_form: float = _u("V", gt=0, description="median forming voltage at a pulse of width tau")
    v_form_std: float = _u("V", ge=0, description="device-to-device std of v_form")
    v_scale: float = _u("V", gt=0, description="forming time falls e-fold per v_scale volts")
    tau: float = _u("s", gt=0, description="forming time at v_form")
    g_formed_low: float = _u("S", gt=0, description="read conductance right after forming, low")
    g_formed_high: float = _u("S", gt=0, description="read conductance right after forming, high")


class Retention(_Section):
    """Drift of a programmed state: R grows by `drift_per_decade` (relative) per decade of
    time since the device was last programmed, counted from t0."""

    drift_per_decade: float = _u("1", ge=0)
    t0: float = _u("s", gt=0)
    d2d_log_std: float = _u("1", ge=0, description="device-to-device log-std of the drift")


class Volatility(_Section):
    """Short-term relaxation: a share of each pulse's change decays with time constant tau."""

    fraction: float = _u("1", ge=0, le=1)
    tau: float = _u("s", gt=0)


class Endurance(_Section):
    """Wear: the window [R_on, R_off] closes towards its geometric middle as cycles n grow,
    closed share = x / (1 + x) with x = (n / cycles_half) ** steepness; n counts full-window
    swings / 2 (one SET and one RESET over the whole window is one cycle)."""

    cycles_half: float = _u("1", gt=0, description="cycles at which half the window is gone")
    steepness: float = _u("1", gt=0)
    d2d_log_std: float = _u("1", ge=0, description="device-to-device log-std of cycles_half")


class CompactPreset(BaseModel):
    """Physical TiO2 device model (data-driven switching dynamics, calibrated)."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)
    kind: Literal["compact"] = "compact"
    name: str
    description: str = ""
    iv: SinhParams
    r_on: float = Field(gt=0, description="lowest resistance (ohm)")
    r_off: float = Field(gt=0, description="highest resistance (ohm)")
    v_read: float = Field(gt=0, description="read voltage the conductance figures refer to (V)")
    set: Polarity
    reset: Polarity
    variability: Variability
    read_noise: ReadNoise
    stuck: Stuck
    initial: InitialState
    window: Window | None = None
    forming: Forming | None = None
    retention: Retention | None = None
    volatility: Volatility | None = None
    endurance: Endurance | None = None
    calibration: dict[str, Any] | None = Field(None, description="provenance of a fitted preset")

    _units: ClassVar[dict[str, str]] = {"r_on": "ohm", "r_off": "ohm", "v_read": "V"}

    @model_validator(mode="before")
    @classmethod
    def _unwrap_top(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        out = dict(data)
        for name, unit in cls._units.items():
            raw = out.get(name)
            if isinstance(raw, dict) and "value" in raw:
                if raw.get("unit") != unit:
                    raise ValueError(f"{name}: unit {raw.get('unit')!r} given, expected {unit!r}")
                if not str(raw.get("source", "")).strip():
                    raise ValueError(f"{name}: a source line is required")
                out[name] = raw["value"]
        return out

    @model_validator(mode="after")
    def _ordered(self) -> CompactPreset:
        if self.r_on >= self.r_off:
            raise ValueError(f"r_on ({self.r_on}) must be below r_off ({self.r_off})")
        return self


Preset = Annotated[StatisticalPreset | CompactPreset, Field(discriminator="kind")]


class _PresetFile(BaseModel):
    preset: Preset


# --------------------------------------------------------------------------- loading


def list_presets() -> list[str]:
    """Names of the presets in the preset folder (plus the built-in "simple")."""
    d = preset_dir()
    names = sorted(p.stem for p in d.glob("*.yaml") if not p.stem.endswith("-disturb"))
    return ["simple", *names]


def _resolve_includes(data: Any, base: Path) -> Any:
    """Replace ``{file: NAME}`` sections by the content of NAME (same folder)."""
    if isinstance(data, dict):
        if set(data) == {"file"} and isinstance(data["file"], str):
            return load_yaml(base / data["file"])
        return {k: _resolve_includes(v, base) for k, v in data.items()}
    return data


@lru_cache(maxsize=16)
def _load_cached(path: str) -> StatisticalPreset | CompactPreset:
    p = Path(path)
    data = load_yaml(p)
    if not isinstance(data, dict):
        raise PresetError(f"{p}: expected a mapping at the top level")
    data = _resolve_includes(data, p.parent)
    try:
        return _PresetFile.model_validate({"preset": data}).preset
    except ValidationError as err:
        lines = []
        for e in err.errors():
            loc = [str(x) for x in e["loc"]]
            if loc[:1] == ["preset"]:
                loc = loc[1:]
            if loc[:1] in (["statistical"], ["compact"]):
                loc = loc[1:]
            lines.append(f"{p}: {'.'.join(loc) or '(top level)'}: {e['msg']}")
        raise PresetError("\n".join(lines)) from None


def load_preset_file(path: str | Path) -> StatisticalPreset | CompactPreset:
    """Load and validate one preset file; `PresetError` names the file and the field."""
    return _load_cached(str(Path(path).resolve()))


def load_preset(name: str) -> Any:
    """The preset called `name` (a `StatisticalPreset` or a `CompactPreset`).

    Unknown names raise `PresetError` listing the known ones. A path to a preset file
    (``*.yaml``, e.g. one `xbarlab calibrate` wrote) is loaded as that file."""
    if name.endswith((".yaml", ".yml")) and Path(name).is_file():
        return load_preset_file(name)
    if name == "simple":
        raise PresetError("preset 'simple' is built into xbarlab.sim.devices and has no file")
    path = preset_dir() / f"{name}.yaml"
    if not path.is_file() or name.endswith("-disturb") or "/" in name or "\\" in name:
        known = ", ".join(list_presets())
        raise PresetError(f"unknown device preset {name!r}; known presets: {known}")
    return load_preset_file(path)


def load_statistical_preset(name: str) -> StatisticalPreset:
    """`load_preset` for a statistical preset (error if it is another kind)."""
    p = load_preset(name)
    if not isinstance(p, StatisticalPreset):
        raise PresetError(f"preset {name!r} is {p.kind!r}, not 'statistical'")
    return p


def load_compact_preset(name: str) -> CompactPreset:
    """`load_preset` for a compact-model preset (error if it is another kind)."""
    p = load_preset(name)
    if not isinstance(p, CompactPreset):
        raise PresetError(f"preset {name!r} is {p.kind!r}, not 'compact'")
    return p


# --------------------------------------------------------------------------- disturb sampling


def sample_disturb(
    stats: DisturbStats, k: Any, rng: np.random.Generator | int
) -> np.ndarray:
    """Disturb deltas (S), shape of `k`, drawn by inverse-CDF from the per-k quantiles;
    `rng` is a numpy Generator or an integer seed.

    k = 0 (no later programming) gives exactly 0; k larger than the largest tabulated k uses
    the largest; k between tabulated values uses the nearest tabulated k below. Negative k is
    an error."""
    if not isinstance(rng, np.random.Generator):
        rng = np.random.default_rng(rng)
    karr = np.asarray(k)
    if karr.size and (not np.issubdtype(karr.dtype, np.integer) and np.any(karr != np.round(karr))):
        raise ValueError("k must be integers")
    karr = karr.astype(np.int64)
    if np.any(karr < 0):
        raise ValueError(f"k must be >= 0, got min {int(karr.min())}")
    table_k = np.asarray(stats.k, dtype=np.int64)
    q = np.asarray(stats.quantiles, dtype=np.float64)
    levels = np.asarray(stats.quantile_levels, dtype=np.float64)  # 0 .. 1 (validated)
    row = np.clip(np.searchsorted(table_k, karr, side="right") - 1, 0, len(table_k) - 1)
    u = rng.random(karr.shape)
    out = np.zeros(karr.shape)
    same_rows = karr.ndim == 2 and karr.shape[0] > 1 and bool((karr == karr[0]).all())
    if same_rows:
        # n draws of the same devices (a batch of transfers): select columns, not elements
        for r in np.unique(row[0][karr[0] > 0]):
            cols = np.flatnonzero((row[0] == r) & (karr[0] > 0))
            out[:, cols] = np.interp(u[:, cols], levels, q[r])
        return out
    for r in np.unique(row[karr > 0]):  # piecewise-linear inverse CDF, one table row at a time
        sel = (row == r) & (karr > 0)
        out[sel] = np.interp(u[sel], levels, q[r])
    return out
