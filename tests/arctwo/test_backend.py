"""ArC TWO backend: the calls match the installed pyarc2, refusals come before any call, the idle
modes, the mapping file, and no level ever reaches the instrument's silent clamp."""

from __future__ import annotations

import inspect
from pathlib import Path

import numpy as np
import pyarc2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.arctwo.helpers import LIMITS, MAPPING_16, emulated
from xbarlab.bench.arctwo import ArcTwoCrossbar, width_nanos
from xbarlab.bench.arctwo_config import ArcTwoBenchConfig, ChannelMap, load_mapping
from xbarlab.config import ConfigError, SimConfig, validate_config
from xbarlab.crossbar import BiasScheme
from xbarlab.drivers.emulators.arc2 import Arc2Panic, EmulatedInstrument
from xbarlab.limits import BenchLimits, LimitViolation

SIM = SimConfig(rows=4, cols=4, noise=False, seed=1)
USED = ["read_one", "read_slice_open", "config_channels", "pulse_one", "ground_all",
        "ground_all_fast", "float_all", "open_channels", "connect_to_gnd", "delay", "execute",
        "wait", "finalise_operation"]


@pytest.mark.parametrize("name", USED)
def test_emulator_methods_have_pyarc2_signatures(name: str) -> None:
    """Same parameter names in the same order as the installed pyarc2 0.6 Instrument."""
    real = [p for p in inspect.signature(getattr(pyarc2.Instrument, name)).parameters
            if p != "self"]
    ours = [p for p in inspect.signature(getattr(EmulatedInstrument, name)).parameters
            if p != "self"]
    assert ours == real


def test_idle_mode_members_exist_in_pyarc2() -> None:
    assert {m.name for m in pyarc2.IdleMode} == {"Float", "SoftGnd", "HardGnd"}


@pytest.mark.parametrize(("width", "nanos"), [(4e-8, 40), (2e-7, 200), (1e-6, 1000),
                                               (1e-3, 1_000_000), (0.49, 490_000_000)])
def test_widths_in_10ns_steps(width: float, nanos: int) -> None:
    assert width_nanos(width) == nanos


@pytest.mark.parametrize("width", [1e-8, 3.5e-8, 1.005e-6, 0.5, 1.0])
def test_widths_the_instrument_cannot_make_are_refused(width: float) -> None:
    with pytest.raises(LimitViolation, match=r"ArC TWO|step"):
        width_nanos(width)


def test_refusals_happen_before_any_instrument_call() -> None:
    xbar, inst = emulated(SIM, limits=BenchLimits(pulse_width_min=1e-8, pulse_width_max=1.0))
    for bad in (lambda: xbar.pulse((0, 0), 1.0, 1e-6, BiasScheme.THIRD),
                lambda: xbar.pulse((0, 0), 1.0, 1e-6, BiasScheme.GROUNDED),
                lambda: xbar.pulse((0, 0), 1.0, 3.3e-8, BiasScheme.HALF),
                lambda: xbar.pulse((0, 0), 2.6, 1e-6, BiasScheme.HALF),
                lambda: xbar.read([(0, 0)], 0.6, BiasScheme.GROUNDED),
                lambda: xbar.read([(0, 0)], 0.2, BiasScheme.FLOATING),
                lambda: xbar.pulse((4, 0), 1.0, 1e-6, BiasScheme.HALF)):
        with pytest.raises((LimitViolation, IndexError)):
            bad()
    assert inst.calls == []


@pytest.mark.parametrize(("idle", "mode", "grounded"), [("float", {"open"}, 0),
                                                         ("soft_gnd", {"arb"}, 0),
                                                         ("hard_gnd", {"open"}, 64)])
def test_idle_mode_after_every_operation(idle: str, mode: set[str], grounded: int) -> None:
    xbar, inst = emulated(SIM, idle=idle)
    xbar.pulse((1, 2), 1.2, 1e-6, BiasScheme.HALF)
    assert set(inst.mode) == mode and len(inst.grounded) == grounded and inst.safe
    xbar.read(None, 0.2, BiasScheme.HALF)
    assert set(inst.mode) == mode and len(inst.grounded) == grounded and inst.safe


def test_pulse_is_v2_in_hardware_and_floating_leaves_lines_open() -> None:
    xbar, inst = emulated(SIM)
    xbar.pulse((1, 2), 1.6, 2e-7, BiasScheme.HALF)
    p = inst.pulses[-1]
    assert p.nanos == 200
    np.testing.assert_array_equal(p.row_v, [0, 0.8, 0, 0])
    np.testing.assert_array_equal(p.col_v, [0, 0, -0.8, 0])
    xbar.pulse((1, 2), -1.6, 4e-8, BiasScheme.FLOATING)
    p = inst.pulses[-1]
    assert p.nanos == 40 and p.row_v[1] == -0.8 and p.col_v[2] == 0.8
    assert np.isnan(np.delete(p.row_v, 1)).all() and np.isnan(np.delete(p.col_v, 2)).all()


def test_third_read_levels_reach_the_channels() -> None:
    """A V/3 read: selected row +V, column 0 V, other rows V/3, other columns 2V/3."""
    xbar, inst = emulated(SIM)
    seen: list[list[float]] = []
    original = inst.read_slice_open

    def spy(highs, ground_after):  # type: ignore[no-untyped-def]
        inst.execute()
        seen.append([inst.potential(c) for c in range(64)])
        return original(highs, ground_after)
    inst.read_slice_open = spy  # type: ignore[method-assign]
    xbar.read([(1, 2)], 0.3, BiasScheme.THIRD)
    pot = seen[0]
    words, bits = [16, 17, 18, 19], [0, 1, 2, 3]
    assert [pot[c] for c in words] == pytest.approx([0.1, 0.3, 0.1, 0.1])
    assert [pot[c] for c in bits] == pytest.approx([0.2, 0.2, 0.0, 0.2])


@settings(deadline=None, max_examples=60)
@given(v=st.floats(-0.5, 0.5).filter(lambda x: abs(x) > 1e-3),
       p=st.floats(-3.0, 2.5).filter(lambda x: abs(x) > 0.05),
       r=st.integers(0, 3), c=st.integers(0, 3),
       scheme=st.sampled_from([BiasScheme.GROUNDED, BiasScheme.HALF, BiasScheme.THIRD]))
def test_no_level_ever_reaches_the_clamp(v: float, p: float, r: int, c: int,
                                         scheme: BiasScheme) -> None:
    """Whatever the protocol asks within the limits, every level sent is within +-v_max; the
    emulator records any level pyarc2 would silently clamp: none."""
    xbar, inst = emulated(SIM)
    xbar.read([(r, c)], v, scheme)
    xbar.pulse((r, c), p, 1e-6, BiasScheme.HALF if scheme is not BiasScheme.THIRD
               else BiasScheme.FLOATING)
    xbar.mvm(np.full(4, v))
    assert inst.clamped == [] and inst.safe


def test_the_emulator_clamps_like_pyarc2_and_panics_on_bad_channels() -> None:
    """What the backend protects against: pyarc2 takes 12 V and NaN without a word."""
    _, inst = emulated(SIM)
    inst.config_channels([(16, 12.0), (17, float("nan"))], None).execute()
    assert inst.level[16] == 10.0 and inst.level[17] == -10.0 and len(inst.clamped) == 2
    with pytest.raises(Arc2Panic):
        inst.read_one(0, 64, 0.2)


def test_bench_v_max_beyond_the_standard_range_is_refused() -> None:
    lim = BenchLimits(v_max=12.0, pulse_v_max=2.5, pulse_v_min=-3.0)
    _, inst = emulated(SIM)
    with pytest.raises(ValueError, match="standard range"):
        ArcTwoCrossbar(inst, ChannelMap("m", (16, 17, 18, 19), (0, 1, 2, 3)), (4, 4), lim)


def test_compliance_beyond_the_read_range_is_refused() -> None:
    _, inst = emulated(SIM)
    with pytest.raises(ValueError, match="ArC TWO reads"):
        ArcTwoCrossbar(inst, ChannelMap("m", (16, 17, 18, 19), (0, 1, 2, 3)), (4, 4),
                       BenchLimits(compliance=0.02))


def test_mapping_file(tmp_path: Path) -> None:
    m = load_mapping(MAPPING_16)
    assert m.words[:3] == (16, 17, 18) and m.bits[:3] == (0, 1, 2) and len(m.words) == 16
    bad = tmp_path / "bad.toml"
    bad.write_text("[config]\nwords = 2\nbits = 2\n[mapping]\nwords = [1, 2]\nbits = [2, 3]\n")
    with pytest.raises(ConfigError, match="mapped to two lines"):
        load_mapping(bad).check((2, 2), str(bad))
    bad.write_text("[config]\nwords = 3\nbits = 2\n[mapping]\nwords = [1, 2]\nbits = [4, 3]\n")
    with pytest.raises(ConfigError, match="says 3 x 2"):
        load_mapping(bad)
    bad.write_text("[mapping]\nwords = [1]\n")
    with pytest.raises(ConfigError, match="arc2control format"):
        load_mapping(bad)


def test_config_refuses_a_real_instrument_without_firmware() -> None:
    data = {"kind": "arc2", "rows": 4, "cols": 4, "address": "0", "mapping": "m.toml"}
    with pytest.raises(ConfigError, match="firmware"):
        validate_config(data, ArcTwoBenchConfig)
    with pytest.raises(ConfigError, match="address"):
        validate_config({**data, "address": "usb"}, ArcTwoBenchConfig)
    cfg = validate_config({**data, "address": "emulated://127.0.0.1:1"}, ArcTwoBenchConfig)
    assert cfg.limits.pulse_width_min == 4e-8 and LIMITS.v_max == 3.0
