"""`MatrixWiring`: line potentials from relays and SMU outputs through the pin map, currents
against Ohm's and Kirchhoff's laws on a linear 2 x 2 array, compliance clipping, pulses on the
devices, and the safety watch (hot switching, shorts)."""

from __future__ import annotations

import numpy as np
import pytest

from xbarlab.bench.config import PinMap
from xbarlab.config import SimConfig
from xbarlab.drivers.emulators.state import SmuChannel
from xbarlab.drivers.emulators.wiring import MatrixWiring
from xbarlab.sim.factory import build_sim_crossbar

V = 0.2
PINS = PinMap(slot=1, rows=[1, 2], cols=[3, 4], drive="A", sense="B", bias_row="C",
              bias_col="D")
BUSES = {"A": "d", "B": "s", "C": "br", "D": "bc"}


def _bench() -> tuple[MatrixWiring, dict[str, SmuChannel], np.ndarray]:
    sim = build_sim_crossbar(SimConfig(rows=2, cols=2, device="simple", noise=False, seed=4),
                             compliance=1.0)
    w = MatrixWiring(sim, PINS, BUSES)
    chans = {k: SmuChannel(k, limit=1.0) for k in BUSES.values()}
    for ch in chans.values():
        w.register(ch)
    return w, chans, sim.g.copy()


def _on(ch: SmuChannel, level: float) -> None:
    ch.level, ch.output = level, True


def test_floating_lines_give_the_sneak_path() -> None:
    w, ch, g = _bench()
    w.relays_changed(frozenset(), frozenset({"1A01", "1B03"}))  # row 0 -> drive, col 0 -> sense
    _on(ch["d"], V)
    _on(ch["s"], 0.0)
    sneak = 1.0 / (1.0 / g[0, 1] + 1.0 / g[1, 1] + 1.0 / g[1, 0])
    expected = V * (g[0, 0] + sneak)
    i_drive, _ = w.measure(ch["d"])
    i_sense, _ = w.measure(ch["s"])
    assert i_drive == pytest.approx(expected, rel=1e-12)
    assert i_sense == pytest.approx(-expected, rel=1e-12)  # flows into the sense SMU's HI


def test_grounded_unselected_lines_and_the_pin_map() -> None:
    w, ch, g = _bench()
    # crossbar row 1 is matrix column 2: the drive reaches cell (1, 0)
    w.relays_changed(frozenset(), frozenset({"1A02", "1B03", "1C01", "1D04"}))
    for name, level in (("d", V), ("s", 0.0), ("br", 0.0), ("bc", 0.0)):
        _on(ch[name], level)
    assert w.measure(ch["s"])[0] == pytest.approx(-V * g[1, 0], rel=1e-12)
    assert w.measure(ch["d"])[0] == pytest.approx(V * (g[1, 0] + g[1, 1]), rel=1e-12)
    assert w.measure(ch["br"])[0] == pytest.approx(0.0, abs=1e-18)
    assert w.violations == []


def test_output_off_leaves_the_line_floating_and_limit_clips() -> None:
    w, ch, _ = _bench()
    w.relays_changed(frozenset(), frozenset({"1A01", "1B03"}))
    _on(ch["d"], V)
    assert w.measure(ch["s"]) == (0.0, False)  # sense output off: nothing measured, no path
    _on(ch["s"], 0.0)
    ch["s"].limit = 1e-9
    assert w.measure(ch["s"]) == (-1e-9, True)


def test_hot_switching_and_shorts_are_recorded() -> None:
    w, ch, _ = _bench()
    _on(ch["d"], V)
    w.relays_changed(frozenset(), frozenset({"1A01"}))
    assert w.violations == ["relay 1A01 switched with d output on"]
    _on(ch["br"], 0.1)
    w.relays_changed(frozenset({"1A01"}), frozenset({"1A01", "1C01"}))
    w.potentials()
    assert any(v.startswith("short: ") for v in w.violations)


def test_pulse_applies_the_line_potentials_to_the_devices() -> None:
    w, ch, g0 = _bench()
    _on(ch["d"], 0.0)
    _on(ch["s"], 0.0)
    _on(ch["br"], 0.75)
    _on(ch["bc"], 0.75)
    w.closed = frozenset({"1A01", "1B03", "1C02", "1D04"})
    w.pulse(ch["d"], 1.5, 1e-4)
    # the same device voltages applied directly: row - column potentials under V/2
    ref = build_sim_crossbar(SimConfig(rows=2, cols=2, device="simple", noise=False, seed=4),
                             compliance=1.0)
    ref.devices.apply_voltage(np.array([[1.5, 0.75], [0.0, -0.75]]), 1e-4, ref.rng)
    np.testing.assert_allclose(w.sim.g, ref.g, rtol=1e-12)
    assert not np.allclose(w.sim.g, g0)  # the pulse did switch the selected cell
    assert ch["d"].level == 0.0  # the pulse level does not stay
