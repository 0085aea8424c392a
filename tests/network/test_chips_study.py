"""Compensation rounds that return the chip to its best state, and the many-chip study."""

from __future__ import annotations

from collections.abc import Generator
from pathlib import Path
from typing import Any

import numpy as np

from tests.network.nets import moons, moons_net, sim_config
from xbarlab.crossbar import Cell, FloatArray
from xbarlab.messages import Checkpoint, Message
from xbarlab.network.chips_study import ChipRecord, run_chip, run_chips, study_config
from xbarlab.network.compensation import compensation_rounds
from xbarlab.network.inference import ChipPass
from xbarlab.network.model import activate
from xbarlab.network.plan import Evaluation, NetworkProgram
from xbarlab.network.session import map_for


class ScriptedChip(NetworkProgram):
    """A program whose chip is a bank map: a compensation write lands 4 % off its target
    (seeded), a restore write lands on it, stuck devices never move; the calibration accuracy
    of each stage is scripted (the re-tunes themselves are real)."""

    def __init__(self, cal_acc: dict[str, float]) -> None:
        cfg = sim_config()
        data = moons().limited(120, 100)
        net = moons_net(8)
        nmap = map_for(cfg, net, data, (8, 8), 8)
        super().__init__(nmap, cfg.network, data)
        rng = np.random.default_rng(3)
        self.state = self.out.targets * (1 + 0.15 * rng.standard_normal(nmap.bank_shape))
        self.stuck_cell = nmap.cells[5]
        self.out.stuck[self.stuck_cell] = True
        self.rng = rng
        self.cal_acc = cal_acc
        self.jobs: list[tuple[str, list[Cell], dict[Cell, float]]] = []
        self.reads: dict[str, FloatArray] = {}

    def job(self, name: str, cells: list[Cell], targets: FloatArray
            ) -> Generator[Message, Any, None]:
        self.jobs.append((name, list(cells), {c: float(targets[c]) for c in cells}))
        for c in cells:
            if self.out.stuck[c]:
                continue
            err = 0.0 if name.startswith("restore") else 0.04 * self.rng.standard_normal()
            self.state[c] = targets[c] * (1 + err)
        yield Checkpoint("job_done", {"job": name})

    def read_devices(self, tag: str) -> Generator[Message, Any, FloatArray]:
        yield Checkpoint("read", {"tag": tag})
        self.reads[tag] = self.state.copy()
        return self.state.copy()

    def evaluate(self, stage: str, g: FloatArray) -> Generator[Message, Any,
                                                               tuple[Evaluation, ChipPass]]:
        net = self.nmap.network_from(g)
        cal = ChipPass()
        u = self.data.x_cal
        for i, (w, b) in enumerate(net.layers):
            z = u @ w.T + b
            cal.inputs.append(u)
            cal.pre.append(z)
            u = activate(z, net.activation) if i < len(net.layers) - 1 else z
        ev = Evaluation(stage, self.cal_acc[stage], 0.5, 0.0, 0.0)
        self.out.evaluations.append(ev)
        yield Checkpoint("evaluation", ev.as_dict())
        return ev, cal


def drive(gen: Generator[Message, Any, Any]) -> Any:
    """Run a plan whose every message is a checkpoint (answered with None)."""
    try:
        msg = next(gen)
        while True:
            assert isinstance(msg, Checkpoint)
            msg = gen.send(None)
    except StopIteration as stop:
        return stop.value


def rounds_of(chip: ScriptedChip) -> FloatArray:
    comp = chip.s.compensation.model_copy(update={"rounds": 3, "noise": 0.0, "min_gain": 0.0,
                                                  "tolerance": 0.01})
    g0 = chip.state.copy()
    chip.out.final = g0
    best, cal = drive(chip.evaluate("programmed", g0))
    return drive(compensation_rounds(chip, comp, chip.s.g_min, chip.s.g_max, 0.05, g0, best,
                                     cal))


def test_a_round_that_lowers_the_calibration_accuracy_is_undone() -> None:
    chip = ScriptedChip({"programmed": 0.80, "compensate/1": 0.90, "compensate/2": 0.85,
                         "restore/2": 0.90})
    g = rounds_of(chip)
    names = [j[0] for j in chip.jobs]
    assert names == ["compensate/1", "compensate/2", "restore/2"]
    best = chip.reads["read_back/1"]  # the state after round 1, the best one
    worse = chip.reads["read_back/2"]
    _, cells, targets = chip.jobs[2]
    off = [c for c in chip.nmap.cells
           if not chip.out.stuck[c] and abs(worse[c] - best[c]) > 0.01 * best[c]]
    assert cells == off and len(off) > 10  # round 2 moved many devices; all are written back
    assert chip.stuck_cell not in cells
    assert all(targets[c] == best[c] for c in cells)  # back to their reads in the best state
    for c in chip.nmap.cells:  # the chip is in its best state again (stuck device untouched)
        assert abs(g[c] - best[c]) <= 0.01 * best[c]
        assert chip.out.targets[c] == best[c] or c not in cells
    assert np.array_equal(g, chip.out.final, equal_nan=True)
    assert [e.stage for e in chip.out.evaluations][-1] == "restore/2"  # scored as left


def test_rounds_that_keep_improving_restore_nothing() -> None:
    chip = ScriptedChip({"programmed": 0.80, "compensate/1": 0.85, "compensate/2": 0.90,
                         "compensate/3": 0.95})
    g = rounds_of(chip)
    assert [j[0] for j in chip.jobs] == ["compensate/1", "compensate/2", "compensate/3"]
    assert np.array_equal(g, chip.reads["read_back/3"], equal_nan=True)


def _record_equal(a: ChipRecord, b: ChipRecord) -> bool:
    return (np.array_equal(a.before, b.before) and np.array_equal(a.after, b.after)
            and a.program == b.program and a.compensation == b.compensation
            and a.stages == b.stages)


def test_study_chips_compensate_on_the_circuit_and_count_their_cost() -> None:
    """Two chips of the study's kind (TiO2 compact model, wires, sinh reads, physical
    window): compensation never leaves a chip worse on the calibration split, its cost is
    counted apart from programming, and a chip is the same whichever run draws it."""
    cfg = study_config(rows=8, cols=8, passes=1, rounds=2)
    data = moons().limited(160, 120)
    net = moons_net(8)
    rows = run_chips(net, data, cfg, 2, first=0)
    assert [r.index for r in rows] == [0, 1]
    for r in rows:
        assert r.before.shape == r.after.shape == (120,)
        assert r.devices == 66
        assert r.program.pulses > r.devices  # write-verify of every device
        assert r.program.mvm_rows == 0  # scoring the test split is no cost
        assert r.compensation.mvm_rows >= 160 * 4  # the calibration split, 4 tiles
        assert r.cal_after >= r.cal_before  # a worse round is undone
        if r.rounds:
            assert r.compensation.pulses > 0
        else:
            assert r.compensation.pulses == 0
    assert any(r.rounds for r in rows)
    assert _record_equal(run_chip(net, data, cfg, 1), rows[1])


def test_cli_study_on_two_chips(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from xbarlab.cli.main import app
    from xbarlab.log.results import read_results

    runner = CliRunner()
    out = tmp_path / "study"
    res = runner.invoke(app, ["reproduce", "drolet2023-compensation", "--chips", "2",
                              "--epochs", "30", "--passes", "1", "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert "compensated" in res.output and "programmed" in res.output
    tree = read_results(out / "compensation_results.h5")
    for name in ("regular", "hardware_aware"):
        node = tree[name]
        assert node["programmed"]["correct"].shape == node["compensated"]["correct"].shape
        assert node["programmed"]["correct"].shape[0] == 2
        assert list(node["chip_index"]) == [0, 1]  # the same chips for both networks
    assert (out / "compensation.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    again = runner.invoke(app, ["reproduce", "drolet2023-compensation", "--out", str(out)])
    assert again.exit_code == 2 and "exists" in again.output
    for bad in (["--full"], ["--transfers", "3"], ["--jobs", "2"], ["--data", "sklearn"],
                ["--mapping", "authors"]):
        res = runner.invoke(app, ["reproduce", "drolet2023-compensation", *bad,
                                  "--out", str(tmp_path / "o")])
        assert res.exit_code == 2 and "Traceback" not in res.output


def test_worker_processes_give_the_same_chips() -> None:
    cfg = study_config(fidelity="ideal", r_wire=0.0, passes=1, rounds=1)
    data = moons().limited(60, 40)
    net = moons_net(8)
    alone = run_chips(net, data, cfg, 3, first=5)
    shared = run_chips(net, data, cfg, 3, workers=2, first=5)
    assert [r.index for r in shared] == [5, 6, 7]
    assert all(_record_equal(a, b) for a, b in zip(alone, shared, strict=True))
