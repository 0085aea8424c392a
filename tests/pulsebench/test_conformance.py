"""The pulse-generator bench (real drivers, pyvisa-py sockets, emulated 33522B + 2636B + 2450 +
707B over the simulator) gives the `sim` backend's operations and results, with 1 µs and
200 ns pulses, and ends safe with every relay switched with every output off."""

from __future__ import annotations

import numpy as np
import pytest

from tests.emulators.benches import (
    SIM,
    TARGET,
    WV_PARAMS,
    bench_config,
    emulated,
    events,
    operations,
    run,
    sim_backend,
)
from tests.pulsebench.benches import PULSE_BENCH
from xbarlab.crossbar import BiasScheme
from xbarlab.documents import EventKind
from xbarlab.drivers.emulators.fgen_33500 import Fgen33500
from xbarlab.limits import LimitViolation
from xbarlab.messages import Plan, Pulse, Read
from xbarlab.protocols.patterns import target_map
from xbarlab.protocols.write_verify import write_verify_array


@pytest.mark.parametrize(("width", "scheme"), [(1e-6, BiasScheme.HALF), (2e-7, BiasScheme.HALF)])
def test_write_verify_agrees_with_sim(width: float, scheme: BiasScheme) -> None:
    cfg = bench_config(PULSE_BENCH)
    params = WV_PARAMS.model_copy(update={"width": width, "pulse_scheme": scheme})
    targets = target_map(TARGET, (8, 8))
    ref_xbar = sim_backend(cfg)
    ref, ref_docs = run(ref_xbar, cfg, write_verify_array(targets, params))
    with emulated(cfg, SIM) as (emu, bench):
        got, docs = run(bench.crossbar, cfg, write_verify_array(targets, params))
        bench.close()
        assert emu.safe, emu.unsafe()
        assert emu.violations == [] and emu.server_errors == []
        fgen = emu.instruments["fgen"]
        assert isinstance(fgen, Fgen33500)
        n_pulses = len(fgen.pulses)
        widths = {w for _, w, _ in fgen.pulses}
        g = emu.sim.g.copy()
    assert ref.ok and got.ok, (ref.reason, got.reason)
    assert operations(docs) == operations(ref_docs)
    assert got.value.converged == ref.value.converged == 64
    np.testing.assert_allclose(got.value.final, ref.value.final, rtol=1e-12)
    np.testing.assert_allclose(g, ref_xbar.g, rtol=1e-9)  # type: ignore[attr-defined]
    assert n_pulses == len(events(docs, EventKind.PULSE)) > 64  # every pulse was the generator's
    assert widths == {width}


def _mixed() -> Plan:
    for k, (v, scheme) in enumerate([(1.4, BiasScheme.FLOATING), (-1.5, BiasScheme.GROUNDED),
                                     (1.6, BiasScheme.HALF), (-1.3, BiasScheme.FLOATING)]):
        cell = (k, 7 - k)
        yield Read((cell,), 0.2, BiasScheme.GROUNDED)
        yield Pulse(cell, v, 5e-8, scheme)
        yield Read((cell, (k, 0)), 0.2, BiasScheme.HALF)


def test_floating_and_grounded_pulses_agree_with_sim() -> None:
    cfg = bench_config(PULSE_BENCH)
    ref_xbar = sim_backend(cfg)
    ref, ref_docs = run(ref_xbar, cfg, _mixed())
    with emulated(cfg, SIM) as (emu, bench):
        got, docs = run(bench.crossbar, cfg, _mixed())
        bench.close()
        assert emu.safe and emu.violations == []
        g = emu.sim.g.copy()
    assert ref.ok and got.ok, (ref.reason, got.reason)
    assert operations(docs) == operations(ref_docs)
    for a, b in zip(events(ref_docs, EventKind.READ), events(docs, EventKind.READ), strict=True):
        np.testing.assert_allclose(b.currents, a.currents, rtol=1e-12)
    np.testing.assert_allclose(g, ref_xbar.g, rtol=1e-9)  # type: ignore[attr-defined]
    assert not np.allclose(g, sim_backend(cfg).g)  # type: ignore[attr-defined]  # it programmed


def test_widths_the_generator_cannot_make_are_refused_before_any_command() -> None:
    cfg = bench_config(PULSE_BENCH, limits={**PULSE_BENCH["limits"], "pulse_width_min": 1e-9})
    with emulated(cfg, SIM) as (emu, bench):
        before = {n: len(e.received) for n, e in emu.instruments.items()}
        with pytest.raises(LimitViolation, match="pulse generator"):
            bench.crossbar.pulse((0, 0), 1.0, 1.2e-8, BiasScheme.HALF)  # edges need 16 ns
        assert {n: len(e.received) for n, e in emu.instruments.items()} == before
