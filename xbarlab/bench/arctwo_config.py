"""ArC TWO bench config (``kind: arc2``) and its channel mapping file.

The mapping file is the TOML format of ArC Instruments' arc2control ("channel mapper"):

    [config]
    name = "my board"
    words = 16          # number of wordlines (crossbar rows here)
    bits = 16           # number of bitlines (crossbar columns here)

    [mapping]
    words = [16, 17, ...]   # ArC TWO channel of wordline i
    bits = [0, 1, ...]      # ArC TWO channel of bitline j

arc2control pairs (high, low) = (words[w], bits[b]) for crosspoint (w, b); xbarlab takes
crossbar row i = wordline i (the high channel) and column j = bitline j (the low channel).
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from xbarlab.config import ConfigError
from xbarlab.limits import BenchLimits

if TYPE_CHECKING:
    from xbarlab.bench.config import BenchConfig

N_CHANNELS = 64
V_RANGE_STD = 10.0  # V, ArC TWO standard output range (pyarc2 OutputRange.STD: +-10 V)
I_READ_MAX = 10.24 / 830.0  # A: largest current the read path converts (libarc2's ADC
# conversion: 18-bit signed counts, +-10.24 V full scale, 830 ohm on its lowest-gain range)


@dataclass(frozen=True, slots=True)
class ChannelMap:
    """Crossbar line -> ArC TWO channel."""

    name: str
    words: tuple[int, ...]  # channel of row i
    bits: tuple[int, ...]  # channel of column j

    def check(self, shape: tuple[int, int], source: str) -> None:
        rows, cols = shape
        if len(self.words) < rows or len(self.bits) < cols:
            raise ConfigError(f"{source}: mapping has {len(self.words)} words x "
                              f"{len(self.bits)} bits; the bench is {rows} x {cols}")
        used = [*self.words[:rows], *self.bits[:cols]]
        bad = [c for c in used if not 0 <= c < N_CHANNELS]
        if bad:
            raise ConfigError(f"{source}: channels {bad} are outside 0..63")
        if len(set(used)) != len(used):
            dup = sorted({c for c in used if used.count(c) > 1})
            raise ConfigError(f"{source}: channels {dup} are mapped to two lines")


def load_mapping(path: str | Path) -> ChannelMap:
    """Read an arc2control mapping file; `ConfigError` names the file and the problem."""
    p = Path(path)
    try:
        raw = tomllib.loads(p.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{p}: cannot read: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{p}: invalid TOML: {exc}") from None
    try:
        conf, mapping = raw["config"], raw["mapping"]
        words = [int(c) for c in mapping["words"]]
        bits = [int(c) for c in mapping["bits"]]
        n_words, n_bits = int(conf["words"]), int(conf["bits"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ConfigError(f"{p}: needs [config] words, bits and [mapping] words, bits "
                          f"(arc2control format): {exc}") from None
    if (len(words), len(bits)) != (n_words, n_bits):
        raise ConfigError(f"{p}: [config] says {n_words} x {n_bits}, [mapping] lists "
                          f"{len(words)} words and {len(bits)} bits")
    return ChannelMap(str(conf.get("name", p.stem)), tuple(words), tuple(bits))


class ArcTwoBenchConfig(BaseModel):
    """An ArC TWO bench. `address`: the instrument's EFM id (``find_ids()``) as a number, or
    ``emulated://HOST:PORT`` for an emulated instrument (`xbarlab.drivers.emulators.arc2_link`).
    """

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    kind: Literal["arc2"]
    name: str = "arc2"
    rows: int = Field(..., ge=1, le=32)
    cols: int = Field(..., ge=1, le=32)
    address: str = Field(..., min_length=1)
    firmware: Path | None = Field(None, description="FPGA bitstream shipped with the board "
                                                    "(real instrument only)")
    mapping: Path = Field(..., description="arc2control channel mapping file (TOML)")
    idle: Literal["float", "soft_gnd", "hard_gnd"] = Field(
        "float", description="IdleMode after every operation and for the safe state")
    limits: BenchLimits = BenchLimits(pulse_width_min=4e-8, pulse_width_max=1e-3)
    operation_timeout: float = Field(30.0, gt=0, description="max time of one operation (s)")

    @model_validator(mode="after")
    def _consistent(self) -> ArcTwoBenchConfig:
        if self.limits.v_max > V_RANGE_STD:
            raise ValueError(f"limits.v_max {self.limits.v_max:g} V is beyond the ArC TWO "
                             f"standard range +-{V_RANGE_STD:g} V (the backend never selects "
                             "the extended range)")
        if self.limits.compliance > I_READ_MAX:
            raise ValueError(f"limits.compliance {self.limits.compliance:g} A is beyond what "
                             f"the ArC TWO reads ({I_READ_MAX * 1e3:.1f} mA): a reading there "
                             "would saturate")
        if not self.address.startswith("emulated://"):
            if not self.address.isdigit():
                raise ValueError("address: an EFM id (a number, see pyarc2.find_ids()) or "
                                 "emulated://HOST:PORT")
            if self.firmware is None:
                raise ValueError("firmware: a real ArC TWO needs its FPGA bitstream file")
        return self

    def resolved(self, base: Path) -> ArcTwoBenchConfig:
        """Relative file paths taken relative to `base` (the config file's folder)."""
        upd = {}
        if not self.mapping.is_absolute():
            upd["mapping"] = base / self.mapping
        if self.firmware is not None and not self.firmware.is_absolute():
            upd["firmware"] = base / self.firmware
        return self.model_copy(update=upd)


def load_any_bench_config(path: str | Path) -> BenchConfig | ArcTwoBenchConfig:
    """A bench config file of any kind (``kind: smu`` (default), ``pulse`` or ``arc2``);
    relative file paths inside an ArC TWO config are taken relative to the file."""
    from xbarlab.bench.config import BenchConfig
    from xbarlab.config import load_yaml, validate_config

    data = load_yaml(path)
    if isinstance(data, dict) and data.get("kind") == "arc2":
        return validate_config(data, ArcTwoBenchConfig, str(path)).resolved(Path(path).parent)
    return validate_config(data if data is not None else {}, BenchConfig, str(path))
