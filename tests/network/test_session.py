"""program-network as an engine run: sim and emulated bench, logging, abort and resume,
compensation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.network.logs import checkpoints, programmed_cells, pulsed_cells, status
from tests.network.nets import moons, moons_net, sim_config
from xbarlab.documents import Document, Event, EventKind, RunStatus
from xbarlab.network.config import NetworkSessionConfig
from xbarlab.network.mapping import LayoutError
from xbarlab.network.plan import NetworkOutcome
from xbarlab.network.session import run_session


def test_sim_programs_the_paper_network_and_logs_every_operation(tmp_path: Path) -> None:
    out = tmp_path / "net.h5"
    s = run_session(sim_config(8, 8), moons_net(8), moons(), out)
    o = s.result.value
    assert isinstance(o, NetworkOutcome)
    assert s.nmap.n_arrays == 2 and s.nmap.n_devices == 66  # 3 x 16 + 9 x 2 on 8 x 8 arrays
    assert s.result.status in (RunStatus.PROGRAMMED, RunStatus.PARTIAL)
    assert status(out) == s.result.status.value
    done = programmed_cells(out, "program/1")
    assert done == s.nmap.cells  # every device once, in the documented order
    assert set(pulsed_cells(out)) <= set(done)  # nothing else was pulsed
    assert sum(pulsed_cells(out).values()) == o.cost("program")[0]
    evals = checkpoints(out, "evaluation")
    assert [e["stage"] for e in evals] == ["programmed"]
    assert o.evaluations[0].test_acc >= o.software_test_acc - 0.05
    assert int(o.in_band().sum()) >= 60
    # the MVM ran through the engine: its inputs and outputs are in the log
    from xbarlab.log.reader import LogReader

    with LogReader(out) as log:
        # per tile (layer 0: 2 of 3 x 8; layer 1: 8 + 1 rows) and point (120 calibration,
        # 100 test), one batch row
        assert len(s.nmap.tiles) == 4 and len(log.mvm().inputs) == 4 * (120 + 100)


def test_bench_with_one_array_refuses_a_network_that_does_not_fit(tmp_path: Path) -> None:
    from tests.emulators.benches import BOARD, bench_config, emulated

    cfg = bench_config(BOARD)
    with emulated(cfg) as (emu, bench):
        ncfg = sim_config(8, 8).model_copy(update={"backend": "bench"})
        with pytest.raises(LayoutError, match="needs 2 arrays of 8 x 8"):
            run_session(ncfg, moons_net(8), moons(), tmp_path / "b.h5", backend=bench.crossbar)
        assert emu is not None
    assert not (tmp_path / "b.h5").exists()  # refused before the log was opened


def test_pulses_the_bench_cannot_make_are_refused_before_any_operation(tmp_path: Path) -> None:
    from tests.emulators.benches import K2600_707B, bench_config, emulated
    from xbarlab.config import ConfigError

    net = moons_net(2)  # 2-2-1: 3 x 4 + 3 x 2 devices fit one 8 x 8 array
    with emulated(bench_config(K2600_707B)) as (_, bench):
        ncfg = sim_config(8, 8).model_copy(update={"backend": "bench"})
        with pytest.raises(ConfigError, match="pulse width"):  # 1 us; this bench: >= 100 us
            run_session(ncfg, net, moons(), tmp_path / "b.h5", backend=bench.crossbar)
    assert not (tmp_path / "b.h5").exists()


@pytest.mark.slow
def test_emulated_bench_runs_the_same_session(tmp_path: Path) -> None:
    """The 2-8-1 network on a 12 x 12 emulated bench (serial board, instruments over TCP):
    the same code as the simulator; compare with the same array simulated."""
    from tests.emulators.benches import BOARD, bench_config, emulated
    from xbarlab.config import SimConfig

    cfg = bench_config({**BOARD, "rows": 12, "cols": 12})
    sim = SimConfig(rows=12, cols=12, device="simple", noise=False, seed=5)
    ncfg = sim_config(12, 12, max_cal=60, max_test=60).model_copy(update={"backend": "bench"})
    with emulated(cfg, sim) as (_, bench):
        b = run_session(ncfg, moons_net(8), moons(), tmp_path / "bench.h5",
                        backend=bench.crossbar)
    s = run_session(sim_config(12, 12, max_cal=60, max_test=60), moons_net(8), moons(),
                    tmp_path / "sim.h5")
    for run, log in ((b, "bench.h5"), (s, "sim.h5")):
        o = run.result.value
        assert isinstance(o, NetworkOutcome)
        assert run.nmap.n_arrays == 1
        assert programmed_cells(tmp_path / log, "program/1") == run.nmap.cells
        assert o.evaluations[0].test_acc >= o.software_test_acc - 0.05
        assert int(o.in_band().sum()) >= 60
    assert b.result.value.targets.shape == s.result.value.targets.shape


class _KillAfter:
    """A subscriber that interrupts the run (as Ctrl-C does) after `n` finished devices."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __call__(self, doc: Document) -> None:
        if isinstance(doc, Event) and doc.kind is EventKind.CHECKPOINT and \
                doc.message == "cell_done":
            self.n -= 1
            if self.n == 0:
                raise KeyboardInterrupt


def _tio2(**network: object) -> NetworkSessionConfig:
    cfg = sim_config(16, 16, **network)
    return cfg.model_copy(update={"sim": cfg.sim.model_copy(update={"device": "tio2-o921c"})})


def test_aborted_run_resumes_without_reprogramming_done_devices(tmp_path: Path) -> None:
    cfg = _tio2(write_verify={"tolerance": 0.05, "max_pulses": 200}, max_cal=60, max_test=60)
    net = moons_net(8)
    first = run_session(cfg, net, moons(), tmp_path / "a.h5", [_KillAfter(25)])
    assert first.result.status is RunStatus.ABORTED
    done = programmed_cells(tmp_path / "a.h5")
    assert len(done) == 25
    second = run_session(cfg, net, moons(), tmp_path / "b.h5", resume=tmp_path / "a.h5")
    again = programmed_cells(tmp_path / "b.h5")
    assert not set(again) & set(done)  # no device that was done is programmed again
    assert set(pulsed_cells(tmp_path / "b.h5")).isdisjoint(done)
    assert set(again) | set(done) == set(second.nmap.cells)
    o = second.result.value
    assert isinstance(o, NetworkOutcome)
    full = run_session(cfg, net, moons(), tmp_path / "c.h5").result.value
    assert isinstance(full, NetworkOutcome)
    assert int(o.in_band().sum()) >= int(full.in_band().sum()) - 4
    assert o.evaluations[-1].test_acc >= full.evaluations[-1].test_acc - 0.05


def test_compensation_reprograms_only_moved_devices_and_stops_when_no_better(
        tmp_path: Path) -> None:
    cfg = _tio2(write_verify={"tolerance": 0.05, "max_pulses": 200}, max_cal=80, max_test=80,
                compensation={"rounds": 3})
    cfg = cfg.model_copy(update={"sim": cfg.sim.model_copy(update={
        "fidelity": "wires", "r_wire_row": 0.3, "r_wire_col": 0.3, "seed": 11})})
    s = run_session(cfg, moons_net(8), moons(), tmp_path / "c.h5")
    o = s.result.value
    assert isinstance(o, NetworkOutcome)
    retunes = checkpoints(tmp_path / "c.h5", "retune")
    jobs = [j for j in o.jobs if j.name.startswith("compensate")]
    assert 1 <= len(retunes) <= 3 and len(jobs) <= len(retunes)
    for r, job in zip(retunes, jobs, strict=False):
        cells = programmed_cells(tmp_path / "c.h5", job.name)
        assert len(cells) == r["moved"] == job.cells > 0  # only the moved devices
    evals = o.evaluations
    assert len(evals) == len(jobs) + 1
    best = evals[0]
    for e in evals[1:-1]:  # every round but the last improved on the best so far
        assert (e.cal_acc, -e.cal_loss) > (best.cal_acc, -best.cal_loss)
        best = e
    if len(jobs) < 3 and len(jobs) == len(retunes):
        last = evals[-1]
        assert (last.cal_acc, -last.cal_loss) <= (best.cal_acc, -best.cal_loss + 1e-6)
    pulses, _, n = o.cost("compensate")
    assert pulses == sum(j.pulses for j in jobs) and n == sum(j.cells for j in jobs)
    assert np.isfinite(o.final[np.isfinite(o.nominal)]).all()
