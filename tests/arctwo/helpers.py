"""An ArC TWO backend on the emulated instrument (in-process or behind its link)."""

from __future__ import annotations

from pathlib import Path

from xbarlab.bench.arctwo import ArcTwoCrossbar
from xbarlab.bench.arctwo_config import ChannelMap, load_mapping
from xbarlab.config import SimConfig
from xbarlab.drivers.emulators.arc2 import EmulatedInstrument
from xbarlab.limits import BenchLimits
from xbarlab.sim.factory import build_sim_crossbar

ROOT = Path(__file__).resolve().parents[2]
MAPPING_16 = ROOT / "examples" / "bench" / "arc2-mapping-16x16.toml"
LIMITS = BenchLimits(v_max=3.0, pulse_v_max=2.5, pulse_v_min=-3.0, read_v_max=0.5,
                     pulse_width_min=4e-8, pulse_width_max=1e-3, compliance=1e-3)


def mapping(rows: int = 16, cols: int = 16) -> ChannelMap:
    m = load_mapping(MAPPING_16)
    return ChannelMap(m.name, m.words[:rows], m.bits[:cols])


def emulated(sim: SimConfig, limits: BenchLimits = LIMITS, idle: str = "float"
             ) -> tuple[ArcTwoCrossbar, EmulatedInstrument]:
    m = mapping(sim.rows, sim.cols)
    inst = EmulatedInstrument(build_sim_crossbar(sim, compliance=limits.compliance),
                              m.words, m.bits)
    return ArcTwoCrossbar(inst, m, (sim.rows, sim.cols), limits, idle=idle), inst
