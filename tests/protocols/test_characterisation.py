"""Characterisation plans on their message streams (a scripted crossbar, no engine)."""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import pytest

from tests.fakes import RecordingCrossbar
from xbarlab.config import ConfigError, validate_config
from xbarlab.messages import Checkpoint, Message, Plan, Pulse, Read, Wait, WaitResult
from xbarlab.protocol_configs import (
    ConvergeConfig,
    CurveTracerConfig,
    EnduranceConfig,
    FormingConfig,
    MultiStateConfig,
    ProtocolSession,
    RetentionConfig,
    SequenceConfig,
    SwitchSeekerConfig,
    VolatilityConfig,
)
from xbarlab.protocols.converge import converge_cells
from xbarlab.protocols.curve_tracer import curve_tracer, loop_voltages
from xbarlab.protocols.endurance import endurance
from xbarlab.protocols.forming import form_cell, ramp_steps
from xbarlab.protocols.multistate import multistate
from xbarlab.protocols.registry import plan_for
from xbarlab.protocols.retention import retention, schedule
from xbarlab.protocols.switch_seeker import switch_seeker
from xbarlab.protocols.volatility import volatility


class Clocked(RecordingCrossbar):
    """The scripted crossbar with a clock that waits advance (and, optionally, a compliance
    flag on pulses above a voltage)."""

    def __init__(self, *a: Any, comply_above: float = np.inf, **k: Any) -> None:
        super().__init__(*a, **k)
        self.clock = 0.0
        self.comply_above = comply_above

    def wait(self, seconds: float) -> float:
        self.clock += seconds
        return self.clock

    def pulse(self, cell: Any, voltage: float, width: float, scheme: Any) -> Any:
        p = super().pulse(cell, voltage, width, scheme)
        if abs(voltage) > self.comply_above:
            return type(p)(p.cell, p.voltage, p.width, 1e-3, True)
        return p


def drive(plan: Plan, xbar: Clocked) -> tuple[list[Message], Any]:
    msgs: list[Message] = []
    result: Any = None
    try:
        while True:
            msg = plan.send(result)
            msgs.append(msg)
            if isinstance(msg, Read):
                result = xbar.read(msg.cells, msg.v_read, msg.scheme)
            elif isinstance(msg, Pulse):
                result = xbar.pulse(msg.cell, msg.voltage, msg.width, msg.scheme)
            elif isinstance(msg, Wait):
                result = WaitResult(msg.seconds, xbar.wait(msg.seconds))
            else:
                result = None
    except StopIteration as stop:
        return msgs, stop.value


def pulses(msgs: list[Message]) -> list[Pulse]:
    return [m for m in msgs if isinstance(m, Pulse)]


def reads_follow_pulses(msgs: list[Message]) -> bool:
    return all(isinstance(b, Read | Wait) for a, b in itertools.pairwise(msgs)
               if isinstance(a, Pulse))


# ------------------------------------------------------------------------------------ forming

def test_forming_voltage_ramp_stops_at_the_resistance_threshold() -> None:
    cfg = FormingConfig(v_start=1.0, v_step=0.25, v_max=3.0, r_threshold=50e3)  # 20 uS
    msgs, out = drive(form_cell((1, 2), cfg), Clocked(g0=5e-6))
    volts = [p.voltage for p in pulses(msgs)]
    np.testing.assert_allclose(volts, [1.0, 1.25, 1.5, 1.75, 2.0, 2.25])
    assert out.formed and out.v_formed == 2.25 and out.g_final >= 20e-6
    assert reads_follow_pulses(msgs) and isinstance(msgs[-1], Read)


def test_forming_width_ramp_doubles_the_width_at_v_max() -> None:
    cfg = FormingConfig(ramp="width", v_max=1.2, width_min=1e-4, width_max=1e-3,
                        g_threshold=1.0)  # never reached
    msgs, out = drive(form_cell((0, 0), cfg), Clocked(g0=1e-6))
    widths = [p.width for p in pulses(msgs)]
    np.testing.assert_allclose(widths, [1e-4, 2e-4, 4e-4, 8e-4])
    assert {p.voltage for p in pulses(msgs)} == {1.2}
    assert not out.formed and out.reason == "ramp ended unformed"


def test_forming_both_ramps_every_width_at_each_amplitude() -> None:
    cfg = FormingConfig(ramp="both", v_start=1.0, v_step=0.5, v_max=2.0, width_min=1e-4,
                        width_max=4e-4, pulses_per_step=2, interpulse=0.01)
    steps = ramp_steps(cfg)
    assert steps == [(v, w) for v in (1.0, 1.5, 2.0) for w in (1e-4, 2e-4, 4e-4)]
    msgs, _ = drive(form_cell((0, 0), cfg.model_copy(update={"g_threshold": 1.0})),
                    Clocked(g0=1e-9))
    assert len(pulses(msgs)) == 2 * len(steps)
    assert sum(m.seconds for m in msgs if isinstance(m, Wait)) == pytest.approx(0.01 * 18)
    assert max(p.voltage for p in pulses(msgs)) <= cfg.v_max


def test_forming_stops_at_a_compliance_hit_and_reports_the_device_voltage() -> None:
    cfg = FormingConfig(v_start=1.0, v_step=0.5, v_max=3.0, g_threshold=1.0, r_series=100.0)
    msgs, out = drive(form_cell((0, 0), cfg), Clocked(g0=1e-6, comply_above=1.9))
    assert [p.voltage for p in pulses(msgs)] == [1.0, 1.5, 2.0]
    assert not out.formed and out.compliance and out.reason.startswith("compliance")
    assert out.v_device == pytest.approx(2.0 - 1e-3 * 100.0)


def test_forming_config_errors_are_one_line_each() -> None:
    with pytest.raises(ConfigError) as err:
        validate_config({"protocol": {"kind": "forming", "v_start": 3, "v_max": 2,
                                      "width_factor": 0.5}}, ProtocolSession, "s.yaml")
    lines = str(err.value).splitlines()
    assert len(lines) == 1 and "width_factor" in lines[0] and lines[0].startswith("s.yaml")
    with pytest.raises(ConfigError, match="v_start must not exceed v_max"):
        validate_config({"protocol": {"kind": "forming", "v_start": 3, "v_max": 2}},
                        ProtocolSession, "s.yaml")


# ------------------------------------------------------------------------------ switch seeker

def test_switch_seeker_finds_the_threshold_and_polarity() -> None:
    # the scripted cell moves G by 0.5 (|V| - 1) per pulse: a 6 % change needs |V| > 1.12 V
    cfg = SwitchSeekerConfig(v_start=0.5, v_step=0.1, v_max=2.0, tolerance=0.06,
                             trailer_reads=2)
    msgs, out = drive(switch_seeker((0, 0), cfg), Clocked(g0=200e-6))
    assert out.positive.threshold == pytest.approx(1.2)
    assert out.negative.threshold == pytest.approx(-1.2)
    assert out.polarity == "normal"
    assert reads_follow_pulses(msgs)
    # two trailer reads after every pulse
    for k, m in enumerate(msgs):
        if isinstance(m, Pulse):
            assert isinstance(msgs[k + 1], Read) and isinstance(msgs[k + 2], Read)


def test_switch_seeker_reports_a_cell_that_never_switches() -> None:
    xbar = Clocked(g0=200e-6)
    xbar.stuck = True
    _, out = drive(switch_seeker((0, 0), SwitchSeekerConfig(v_max=1.5)), xbar)
    assert out.polarity == "none" and out.positive.threshold is None


# ---------------------------------------------------------------------------------- converge

class WidthCell(Clocked):
    """A cell whose change per pulse grows with the pulse width: 1 % x sqrt(width / 1 us)."""

    def pulse(self, cell: Any, voltage: float, width: float, scheme: Any) -> Any:
        self.calls.append(("pulse", (cell, voltage, width, scheme)))
        self.g[cell] *= 1.0 + np.sign(voltage) * 0.01 * np.sqrt(width / 1e-6)
        return super().pulse(cell, 0.0, width, scheme)  # 0 V: the parent changes nothing


def test_converge_width_ramp_multiplies_widths_and_restarts_on_reversal() -> None:
    cfg = ConvergeConfig(target_g=300e-6, ramp="width", set_start=1.1, reset_start=-1.1,
                         width=1e-6, width_max=1e-4, width_factor=2.0, tolerance=0.01)
    msgs, outs = drive(converge_cells([(1, 1)], cfg), WidthCell(g0=100e-6))
    o = outs[0]
    assert o.converged and abs(o.g_final - 300e-6) <= 3e-6
    ps = pulses(msgs)
    first_reset = next((i for i, p in enumerate(ps) if p.voltage < 0), len(ps))
    sets = [p.width for p in ps[:first_reset]]
    np.testing.assert_allclose(sets, [min(1e-6 * 2**k, 1e-4) for k in range(len(sets))])
    if first_reset < len(ps):
        assert ps[first_reset].width == 1e-6
    assert isinstance(msgs[-1], Checkpoint) and msgs[-1].data["converged"]


def test_converge_needs_exactly_one_target() -> None:
    with pytest.raises(ValueError, match="exactly one of target_g"):
        ConvergeConfig()


# -------------------------------------------------------------------------------- multistate

def test_multistate_counts_levels_that_stand_out_of_the_read_spread() -> None:
    cfg = MultiStateConfig(reset_voltage=-2.0, reset_pulses=2, v_start=0.9, v_step=0.1,
                           v_max=1.3, pulses_per_level=1, trailer_reads=3, tolerance=0.02)
    msgs, out = drive(multistate((0, 0), cfg), Clocked(g0=200e-6))
    # resets: x0.5 twice -> 50 uS; SETs at 0.9, 1.0 change nothing; 1.1, 1.2, 1.3 raise G
    assert [p.voltage for p in pulses(msgs)][:2] == [-2.0, -2.0]
    np.testing.assert_allclose(out.voltages, [0.0, 1.1, 1.2, 1.3])
    assert out.n_levels == 4 and np.all(np.diff(out.levels) > 0)
    assert out.min_separation == pytest.approx(out.levels[1] - out.levels[0])


# --------------------------------------------------------------------------------- retention

def test_retention_log_schedule_reads_at_the_planned_times() -> None:
    cfg = RetentionConfig(cells=[[0, 0], [1, 1]], duration=100.0, first=1.0, points=3)
    np.testing.assert_allclose(schedule(cfg), [1.0, 10.0, 100.0])
    xbar = Clocked()
    msgs, out = drive(retention([(0, 0), (1, 1)], cfg), xbar)
    np.testing.assert_allclose(out.times, [0, 1, 10, 100])
    assert xbar.clock == pytest.approx(100.0)
    assert out.g.shape == (4, 2)
    assert len([m for m in msgs if isinstance(m, Read)]) == 4


def test_retention_linear_schedule() -> None:
    cfg = RetentionConfig(schedule="linear", duration=10.0, interval=2.5)
    np.testing.assert_allclose(schedule(cfg), [2.5, 5.0, 7.5, 10.0])
    with pytest.raises(ValueError, match="interval must not exceed duration"):
        RetentionConfig(schedule="linear", duration=1.0, interval=2.0)


# --------------------------------------------------------------------------------- endurance

def test_endurance_reads_every_k_cycles_and_stops_a_stuck_cell() -> None:
    cfg = EnduranceConfig(cycles=100, read_every=5, fail_after=2, set_voltage=1.6,
                          reset_voltage=-1.6)
    xbar = Clocked(g0=200e-6)
    xbar.stuck = True
    msgs, out = drive(endurance((0, 0), cfg), xbar)
    assert out.failed == "stuck" and out.cycles == 10
    assert len(pulses(msgs)) == 20
    assert [m.tag for m in msgs if isinstance(m, Read)] == ["read_lrs", "read_hrs"] * 2


def test_endurance_healthy_cell_survives() -> None:
    cfg = EnduranceConfig(cycles=12, read_every=4, set_voltage=2.0, reset_voltage=-2.0)
    _, out = drive(endurance((0, 0), cfg), Clocked(g0=200e-6))
    assert out.failed == "" and [c[0] for c in out.checks] == [4, 8, 12]
    assert all(on > 1.5 * off for _, on, off in out.checks)


# ------------------------------------------------------------------------------ curve tracer

def test_curve_tracer_loops_and_cycles() -> None:
    cfg = CurveTracerConfig(v_pos=1.0, v_neg=-0.5, v_step=0.5, cycles=2, read_at="both")
    np.testing.assert_allclose(loop_voltages(cfg), [0, 0.5, 1.0, 0.5, 0, -0.5, 0])
    neg = cfg.model_copy(update={"order": "neg_first"})
    np.testing.assert_allclose(loop_voltages(neg), [0, -0.5, 0, 0.5, 1.0, 0.5, 0])
    msgs, out = drive(curve_tracer((0, 0), cfg), Clocked())
    assert len(pulses(msgs)) == 2 * 4  # zero steps apply nothing
    assert len([m for m in msgs if isinstance(m, Read)]) == 2 * 7
    assert [m.data["cycle"] for m in msgs if isinstance(m, Checkpoint)] == [1, 2]
    assert out.voltages.shape == out.g_read.shape == (2, 7)


def test_pulsed_curve_tracer_waits_between_pulses() -> None:
    cfg = CurveTracerConfig(mode="pulsed", read_at="v_read", v_pos=1.0, v_neg=-1.0,
                            v_step=0.5, interpulse=0.1, cycles=1)
    msgs, out = drive(curve_tracer((0, 0), cfg), Clocked())
    for k, m in enumerate(msgs):
        if isinstance(m, Pulse):
            assert isinstance(msgs[k + 1], Wait) and isinstance(msgs[k + 2], Read)
    assert np.isnan(out.currents).all()


# -------------------------------------------------------------------------------- volatility

def test_volatility_reads_on_a_log_grid_after_each_pulse() -> None:
    cfg = VolatilityConfig(voltage=1.5, duration=1.0, first=0.01, points=3, repeats=2)
    xbar = Clocked()
    msgs, out = drive(volatility((0, 0), cfg), xbar)
    assert len(pulses(msgs)) == 2
    np.testing.assert_allclose(out.times, [[0.01, 0.1, 1.0]] * 2)
    assert xbar.clock == pytest.approx(2.0)
    np.testing.assert_allclose(out.retained, 1.0)  # the scripted cell does not relax


# ---------------------------------------------------------------------------------- sequence

def test_sequence_expands_loops_and_runs_nested_protocols() -> None:
    cfg = SequenceConfig.model_validate({"steps": [
        {"loop": {"times": 3, "steps": [
            {"pulse": {"cell": [1, 1], "voltage": 1.5}},
            {"read": {"cells": [[1, 1]]}},
            {"delay": 0.5}]}},
        {"protocol": {"kind": "retention", "cells": [[0, 0]], "duration": 10, "first": 1,
                      "points": 2}},
    ]})
    xbar = Clocked()
    msgs, out = drive(plan_for(cfg, (4, 4)), xbar)
    kinds = [type(m).__name__ for m in msgs if not isinstance(m, Checkpoint)]
    assert kinds[:9] == ["Pulse", "Read", "Wait"] * 3
    assert xbar.clock == pytest.approx(1.5 + 10.0)
    assert len(out) == 2 and out[1].times[-1] == pytest.approx(10.0)


def test_sequence_step_needs_exactly_one_block() -> None:
    with pytest.raises(ConfigError, match="exactly one of pulse, read, delay"):
        validate_config({"protocol": {"kind": "sequence", "steps": [
            {"delay": 1, "read": {"cells": "all"}}]}}, ProtocolSession, "seq.yaml")


def test_cells_outside_the_array_are_refused() -> None:
    with pytest.raises(ValueError, match=r"cell \(9, 0\) is outside the 4 x 4 array"):
        plan_for(FormingConfig(cells=[[9, 0]]), (4, 4))
