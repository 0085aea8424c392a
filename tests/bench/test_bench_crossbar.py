"""BenchCrossbar on real drivers over a fake bench: routing, biasing, physics, refusals."""

from __future__ import annotations

import numpy as np
import pytest

from tests.bench.fake_world import World, bench_config
from xbarlab.bench.safety import BenchFault
from xbarlab.crossbar import BiasScheme, Crossbar
from xbarlab.drivers.base import IdentityMismatch, InstrumentError
from xbarlab.drivers.registry import open_bench
from xbarlab.limits import LimitViolation

G = np.array([[100e-6, 150e-6, 200e-6],
              [250e-6, 300e-6, 350e-6],
              [400e-6, 450e-6, 500e-6]])


@pytest.fixture
def world() -> World:
    return World(G)


def _open(world: World, **limits: float):
    return open_bench(bench_config(**limits), world.transport)


def test_is_a_crossbar(world: World) -> None:
    bench = _open(world)
    assert isinstance(bench.crossbar, Crossbar)
    assert bench.crossbar.shape == (3, 3)
    assert bench.identities["mtx"].startswith("Keithley Instruments Inc., Model 707B")


def test_constructor_and_open_send_only_identity_queries(world: World) -> None:
    """Opening reads identities, and the error queues an earlier session may have left
    (2600B, 707B, B2900): queries only, nothing is set."""
    _open(world)
    assert {line for _, line in world.lines} == {"*IDN?", "print(errorqueue.count)"}


def test_grounded_read_is_ohms_law(world: World) -> None:
    xbar = _open(world).crossbar
    r = xbar.read(None, 0.2, BiasScheme.GROUNDED)
    np.testing.assert_allclose(r.conductances.reshape(3, 3), G, rtol=1e-5)
    assert not r.compliance.any()
    assert all(not s.on for s in world.smus.values())
    assert not world.violations


def test_half_read_includes_the_sneak_current_of_half_biased_rows(world: World) -> None:
    # sensed column c at 0 V; row r at V; the other rows at V/2 push G[i, c] * V/2 into it
    xbar = _open(world).crossbar
    v = 0.2
    r = xbar.read([(0, 1)], v, BiasScheme.HALF)
    expected = G[0, 1] * v + (G[1, 1] + G[2, 1]) * v / 2
    assert r.currents[0] == pytest.approx(expected, rel=1e-5)


def test_third_read_uses_both_bias_smus(world: World) -> None:
    xbar = _open(world).crossbar
    v = 0.3
    r = xbar.read([(1, 2)], v, BiasScheme.THIRD)
    expected = G[1, 2] * v + (G[0, 2] + G[2, 2]) * v / 3
    assert r.currents[0] == pytest.approx(expected, rel=1e-5)
    closes = [line for inst, line in world.lines if line.startswith("channel.close")]
    assert closes[-1] == 'channel.close("1A02,1B06,1C01,1C03,1D04,1D05")'


def test_floating_read_routes_only_the_selected_lines(world: World) -> None:
    xbar = _open(world).crossbar
    xbar.read([(2, 0)], 0.2, BiasScheme.FLOATING)
    closes = [line for inst, line in world.lines if line.startswith("channel.close")]
    assert closes == ['channel.close("1A03,1B04")']


def test_compliance_is_flagged(world: World) -> None:
    world.g[:] = 1e-2  # 0.2 V * 10 mS = 2 mA > 1 mA compliance
    r = _open(world).crossbar.read([(0, 0)], 0.2, BiasScheme.GROUNDED)
    assert r.compliance.all()


def test_pulse_uses_the_drive_smu_pulse_with_half_bias(world: World) -> None:
    xbar = _open(world).crossbar
    p = xbar.pulse((1, 1), -1.5, 1e-3, BiasScheme.HALF)
    assert world.smus["k2600.a"].pulses == [(-1.5, 1e-3)]
    # during the pulse the other lines sat at V/2; current out of row 1 = sum_j G[1,j] (V - V_j)
    expected = G[1, 1] * -1.5 + (G[1, 0] + G[1, 2]) * (-1.5 + 0.75)
    assert p.current == pytest.approx(expected, rel=1e-5)
    assert all(not s.on for s in world.smus.values())


def test_mvm_by_superposition_is_g_transpose_v(world: World) -> None:
    xbar = _open(world).crossbar
    v = np.array([[0.1, -0.2, 0.05], [0.0, 0.3, 0.0]])
    m = xbar.mvm(v)
    np.testing.assert_allclose(m.currents, v @ G, rtol=1e-5)


@pytest.mark.parametrize("call", [
    lambda x: x.read([(0, 0)], 0.6, BiasScheme.GROUNDED),          # above read_v_max 0.5
    lambda x: x.pulse((0, 0), 2.6, 1e-3, BiasScheme.HALF),         # above pulse_v_max 2.5
    lambda x: x.pulse((0, 0), -1.0, 2e-3, BiasScheme.HALF),        # above pulse_width_max 1 ms
    lambda x: x.pulse((0, 0), 1.0, 10e-6, BiasScheme.HALF),        # shorter than the 2600B does
    lambda x: x.mvm(np.array([0.1, 0.7, 0.0])),
    lambda x: x.read([(0, 0)], float("nan"), BiasScheme.GROUNDED),
])
def test_refusals_send_nothing(world: World, call) -> None:
    xbar = _open(world).crossbar
    before = len(world.lines)
    with pytest.raises(LimitViolation):
        call(xbar)
    assert len(world.lines) == before


def test_missing_bias_smu_is_refused_before_any_command(world: World) -> None:
    cfg = bench_config()
    roles = cfg.roles.model_copy(update={"bias_row": None, "bias_col": None})
    cfg = cfg.model_copy(update={"roles": roles})
    bench = open_bench(cfg, world.transport)
    before = len(world.lines)
    with pytest.raises(BenchFault, match=r"no bias_row SMU"):
        bench.crossbar.read([(0, 0)], 0.2, BiasScheme.HALF)
    assert len(world.lines) == before


def test_identity_mismatch_is_refused_before_any_output(world: World) -> None:
    world.idn["bcol"] = "KEYSIGHT TECHNOLOGIES,B2902A,MY123,1.0"
    with pytest.raises(IdentityMismatch, match=r"bcol.*MODEL 2450"):
        _open(world)
    assert {line for _, line in world.lines} == {"*IDN?"}


def test_compliance_is_set_before_any_output_on(world: World) -> None:
    _open(world).crossbar.read([(0, 0)], 0.2, BiasScheme.HALF)
    for name, on_line, limit_prefix in [
        ("k2600", "smua.source.output = smua.OUTPUT_ON", "smua.source.limiti"),
        ("k2600", "smub.source.output = smub.OUTPUT_ON", "smub.source.limiti"),
        ("brow", ":OUTP ON", ":SOUR:VOLT:ILIM"),
    ]:
        lines = [line for inst, line in world.lines if inst == name]
        first_on = lines.index(on_line)
        assert any(line.startswith(limit_prefix) for line in lines[:first_on])


def test_instrument_error_stops_and_reaches_safe_state(world: World) -> None:
    xbar = _open(world).crossbar
    world.errors["brow"] = ["-222: Parameter data out of range"]
    with pytest.raises(BenchFault, match=r"brow.*-222"):
        xbar.read([(0, 0)], 0.2, BiasScheme.HALF)
    assert world.safe()


def test_describe_is_json_serialisable(world: World) -> None:
    import json

    d = _open(world).crossbar.describe()
    json.dumps(d)
    assert d["roles"]["drive"] == "k2600.a" and d["wiring"]["rows"] == [1, 2, 3]


def test_open_bench_crossbar_from_a_file_and_close(world: World, tmp_path) -> None:
    import yaml

    from xbarlab.drivers.registry import open_bench_crossbar

    path = tmp_path / "bench.yaml"
    path.write_text(yaml.safe_dump(bench_config().model_dump(mode="json")))
    xbar = open_bench_crossbar(path, world.transport)
    r = xbar.read([(2, 2)], 0.1, BiasScheme.GROUNDED)
    assert r.conductances[0] == pytest.approx(G[2, 2], rel=1e-5)
    world.closed.add("1A01")
    xbar.close()
    assert world.safe()


def test_one_bias_smu_feeds_rows_and_columns_at_v_half(world: World) -> None:
    cfg = bench_config()
    cfg = cfg.model_copy(update={"roles": cfg.roles.model_copy(update={"bias_col": None})})
    xbar = open_bench(cfg, world.transport).crossbar
    v = 0.2
    r = xbar.read([(0, 0)], v, BiasScheme.HALF)
    assert r.currents[0] == pytest.approx(G[0, 0] * v + (G[1, 0] + G[2, 0]) * v / 2, rel=1e-5)
    closes = [line for _, line in world.lines if line.startswith("channel.close")]
    assert closes[-1] == 'channel.close("1A01,1B04,1C02,1C03,1C05,1C06")'
    with pytest.raises(BenchFault, match="unselected columns"):
        xbar.read([(0, 0)], v, BiasScheme.THIRD)  # V/3 rows and 2V/3 columns need two SMUs


def test_bias_lines_are_raised_only_after_the_pulse_is_armed(world: World) -> None:
    xbar = _open(world).crossbar
    xbar.pulse((0, 0), 2.0, 5e-4, BiasScheme.THIRD)
    lines = [line for _, line in world.lines]
    armed = next(i for i, line in enumerate(lines) if "ConfigPulseVMeasureI" in line)
    fired = next(i for i, line in enumerate(lines) if "InitiatePulseTest" in line)
    raised = [i for i, line in enumerate(lines)
              if line.startswith(":SOUR:VOLT ") and line != ":SOUR:VOLT 0"]
    assert raised and all(armed < i < fired for i in raised)
    # between raising the biases and firing, nothing but the two bias levels is sent
    assert fired - armed - 1 == len(raised) == 2


OUTPUT_WRITES = {  # (instrument, line) -> SMU it switches and whether on
    **{("k2600", f"smu{c}.source.output = smu{c}.OUTPUT_{s}"): (f"k2600.{c}", s == "ON")
       for c in "ab" for s in ("ON", "OFF")},
    **{(n, f":OUTP {s}"): (n, s == "ON") for n in ("brow", "bcol") for s in ("ON", "OFF")},
}
OUTPUT_QUERIES = {("k2600", f"print(smu{c}.source.output, smu{c}.source.levelv)"): f"k2600.{c}"
                  for c in "ab"} | {(n, ":OUTP?"): n for n in ("brow", "bcol")}


def test_relays_switch_only_after_every_output_was_confirmed_off(world: World) -> None:
    """In the order the instruments received the lines: after an output was switched on (or
    told to go off), no relay command reaches the matrix before that SMU answered an
    output-state query."""
    xbar = _open(world).crossbar
    xbar.read(None, 0.2, BiasScheme.HALF)
    xbar.pulse((1, 2), 1.5, 1e-3, BiasScheme.THIRD)
    unconfirmed: set[str] = set(world.smus)  # nothing is known before the first query
    relay_commands = 0
    for inst, line in world.lines:
        if (inst, line) in OUTPUT_WRITES:
            unconfirmed.add(OUTPUT_WRITES[(inst, line)][0])
        elif (inst, line) in OUTPUT_QUERIES:
            unconfirmed.discard(OUTPUT_QUERIES[(inst, line)])
        elif inst == "mtx" and line.startswith(("channel.open", "channel.close")):
            relay_commands += 1
            assert not unconfirmed, f"{line!r} sent with {sorted(unconfirmed)} unconfirmed"
    assert relay_commands > 2 * 9


@pytest.mark.parametrize("smu", ["brow", "k2600.b"])
def test_an_output_that_does_not_go_off_stops_before_any_relay_moves(world: World,
                                                                     smu: str) -> None:
    """An off command the SMU has not executed when asked: the operation stops with an error
    naming it; no relay is switched while it is on; the safe state then turns it off."""
    xbar = _open(world).crossbar
    xbar.read([(0, 0)], 0.2, BiasScheme.HALF)
    world.stuck_on[smu] = 1
    name = "k2600.b" if smu == "k2600.b" else "brow"
    with pytest.raises(InstrumentError, match=rf"{name}.*output still on"):
        xbar.read([(1, 1)], 0.2, BiasScheme.HALF)
    assert world.violations == []
    assert world.safe()


def test_a_failing_cleanup_keeps_the_first_error_and_still_reaches_safe_state(
    world: World,
) -> None:
    """The measurement fails mid-operation, then an output refuses to go off during the
    cleanup: the measurement's error is the one raised, the cleanup failure is noted on it,
    and the safe state still turns everything off."""
    xbar = _open(world).crossbar
    xbar.read([(0, 0)], 0.2, BiasScheme.HALF)
    world.fail["smub.measure.i()"] = TimeoutError("sense channel did not answer")
    world.stuck_on["brow"] = 1
    with pytest.raises(Exception, match="sense channel did not answer") as info:
        xbar.read([(1, 1)], 0.2, BiasScheme.HALF)
    notes = getattr(info.value, "__notes__", [])
    assert any("brow" in note and "output still on" in note for note in notes)
    assert world.safe()
