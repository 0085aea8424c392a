"""One network on many simulated chips, before and after chip-in-the-loop compensation.

Each chip is one `program_network` run (`xbarlab.network.plan`) through the run engine on its
own simulated arrays (chip i draws its devices from ``SeedSequence([seed, i])``, so the same
chips serve every network and the result does not depend on the number of worker processes):
write-verify of every device (passes over the disturbed ones), read-back, inference of the
calibration and test splits through the crossbars' MVM, then the compensation rounds of
`xbarlab.network.compensation.compensation_rounds` (re-tune on the calibration split against
the measured chip, reprogram the moved devices, return to the best round's state when a round
makes the calibration accuracy worse). The test points are only scored: their correctness on
the chip is kept after programming ("before") and in the state the chip is left in ("after").

Cost per chip, split into programming and compensation: pulses, devices written, and the time
a bench would take by its operation timings (`OperationTiming`: every pulse and read, and the
calibration MVM rows the compensation needs; the test MVMs are scoring, not cost), next to the
simulator's CPU time.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from xbarlab.bench.config import OperationTiming
from xbarlab.crossbar import FloatArray
from xbarlab.documents import Document, EventKind
from xbarlab.engine import RunEngine
from xbarlab.messages import Plan
from xbarlab.network.compensation import compensation_rounds
from xbarlab.network.config import NetworkSessionConfig, NetworkSettings
from xbarlab.network.datasets import EvalSet
from xbarlab.network.inference import ChipPass
from xbarlab.network.mapping import NetworkMap
from xbarlab.network.model import Network
from xbarlab.network.plan import PROTOCOL, NetworkOutcome, NetworkProgram
from xbarlab.network.session import build_arrays, map_for


def study_config(*, rows: int = 8, cols: int = 8, device: str = "tio2-o921c",
                 fidelity: str = "wires", r_wire: float = 1.0, passes: int = 3,
                 pulse_scheme: str = "v/3", tolerance: float = 0.01, rounds: int = 3,
                 seed: int = 0) -> NetworkSessionConfig:
    """The study's chips: `rows` x `cols` simulated arrays of `device` (`fidelity`, `r_wire`
    ohm per wire segment), physical 100-500 µS pairs, one tile per array, write-verify to
    `tolerance` with `pulse_scheme` half-select biasing and `passes` over the devices later
    programming disturbed, up to `rounds` compensation rounds."""
    return NetworkSessionConfig.model_validate({
        "backend": "sim", "seed": seed,
        "sim": {"rows": rows, "cols": cols, "device": device, "fidelity": fidelity,
                "r_wire_row": r_wire, "r_wire_col": r_wire, "seed": seed},
        "network": {"pack": False, "passes": passes,
                    "write_verify": {"tolerance": tolerance, "pulse_scheme": pulse_scheme},
                    "compensation": {"rounds": rounds}}})


def chip_seed(seed: int, index: int) -> int:
    """Simulator seed of chip `index` of a study seeded `seed`."""
    return int(np.random.SeedSequence([seed, index]).generate_state(1)[0]) % (2**31)


class StudyProgram(NetworkProgram):
    """A `program_network` run that keeps the test points' correctness at every evaluation
    and compensates with `compensation_rounds` (which returns the chip to its best state)."""

    def __init__(self, nmap: NetworkMap, settings: NetworkSettings, data: EvalSet) -> None:
        self.comp = settings.compensation
        off = settings.model_copy(update={"compensation": self.comp.model_copy(
            update={"rounds": 0})})
        super().__init__(nmap, off, data)
        self.correct: dict[str, np.ndarray] = {}  # stage -> test points right (P,)
        self.last_cal: ChipPass | None = None

    def scored(self, stage: str, cal: ChipPass, test: ChipPass) -> None:
        self.correct[stage] = correct_points(test.logits, self.data.y_test)
        self.last_cal = cal

    def plan(self) -> Plan:
        out: NetworkOutcome = yield from super().plan()
        if self.comp.rounds and self.last_cal is not None:
            yield from compensation_rounds(self, self.comp, self.s.g_min, self.s.g_max,
                                           self.p.tolerance, out.final, out.evaluations[-1],
                                           self.last_cal)
        return out


def correct_points(logits: FloatArray, y: np.ndarray) -> np.ndarray:
    """Which points the logits classify right (binary: logit > 0 is class 1; else argmax)."""
    z = np.asarray(logits)
    pred = (z[:, 0] > 0).astype(np.int64) if z.shape[1] == 1 else z.argmax(axis=1)
    return np.asarray(pred == np.asarray(y), dtype=bool)


@dataclass
class PhaseCost:
    """Operations of one phase and the bench time they take by `OperationTiming`."""

    pulses: int = 0
    reads: int = 0
    mvm_rows: int = 0
    pulse_time: float = 0.0

    def bench_seconds(self, t: OperationTiming) -> float:
        return (self.pulses * t.pulse + self.pulse_time + self.reads * t.read
                + self.mvm_rows * t.mvm_row)


class CostBook:
    """Engine subscriber: pulses and reads before the first re-tune (programming) and from it
    on (compensation); MVMs count only when they pass the calibration split, which only the
    compensation needs (the test MVMs are scoring)."""

    def __init__(self) -> None:
        self.program = PhaseCost()
        self.compensation = PhaseCost()
        self._phase = self.program

    def __call__(self, doc: Document) -> None:
        kind = getattr(doc, "kind", None)
        if kind is EventKind.CHECKPOINT and getattr(doc, "message", "") == "retune":
            self._phase = self.compensation
        elif kind is EventKind.PULSE:
            self._phase.pulses += 1
            self._phase.pulse_time += float(getattr(doc, "width", 0.0))
        elif kind is EventKind.READ:
            cells = getattr(doc, "cells", None)
            self._phase.reads += 1 if cells is None else len(cells)
        elif kind is EventKind.MVM and "calibration" in str(getattr(doc, "step", "")):
            mvm_in = getattr(doc, "mvm_in", None)
            self.compensation.mvm_rows += 0 if mvm_in is None else len(mvm_in)


@dataclass
class ChipRecord:
    """One chip: test correctness before / after compensation, accuracies and cost."""

    index: int
    before: np.ndarray  # (P,) test points right after programming
    after: np.ndarray  # (P,) in the state the chip is left in
    cal_before: float
    cal_after: float
    stuck: int
    devices: int
    program: PhaseCost
    compensation: PhaseCost
    rounds: int  # compensation rounds reprogrammed
    rewritten: int  # devices written by the compensation (rounds and restore)
    restored: bool  # a round made it worse: the chip was returned to its best state
    cpu_seconds: float
    stages: list[str] = field(default_factory=list)


def run_chip(net: Network, data: EvalSet, cfg: NetworkSessionConfig, index: int
             ) -> ChipRecord:
    """Program, score, compensate and score again on simulated chip `index` of `cfg`."""
    t0 = time.process_time()
    chip_cfg = cfg.model_copy(update={"sim": cfg.sim.model_copy(
        update={"seed": chip_seed(cfg.sim.seed, index)})})
    nmap = map_for(chip_cfg, net, data, (cfg.sim.rows, cfg.sim.cols), cfg.network.max_arrays)
    arrays = build_arrays(chip_cfg, nmap.n_arrays)
    program = StudyProgram(nmap, cfg.network, data)
    book = CostBook()
    try:
        res = RunEngine(arrays, cfg.limits, [book]).run(program.plan(), protocol=PROTOCOL)
    finally:
        close = getattr(arrays, "close", None)
        if callable(close):
            close()
    out = res.value
    if not isinstance(out, NetworkOutcome):
        raise RuntimeError(f"chip {index}: program_network run {res.status.value}: "
                           f"{res.reason}")
    evs = out.evaluations
    first, last = evs[0], evs[-1]
    used = out.used()
    return ChipRecord(
        index, program.correct[first.stage], program.correct[last.stage], first.cal_acc,
        last.cal_acc, int((out.stuck & used).sum()), int(used.sum()), book.program,
        book.compensation, sum(1 for j in out.jobs if j.name.startswith("compensate/")),
        sum(j.cells for j in out.jobs if j.name.startswith(("compensate/", "restore/"))),
        any(e.stage.startswith("restore/") for e in evs), time.process_time() - t0,
        [e.stage for e in evs])


def _chips(args: tuple[Network, EvalSet, NetworkSessionConfig, list[int]]
           ) -> list[ChipRecord]:
    """A worker's share of the chips (module level: picklable for a process pool)."""
    net, data, cfg, indices = args
    return [run_chip(net, data, cfg, i) for i in indices]


def run_chips(net: Network, data: EvalSet, cfg: NetworkSessionConfig, n: int,
              workers: int = 1, progress: Callable[[int, int], None] | None = None,
              first: int = 0) -> list[ChipRecord]:
    """Chips `first` .. `first + n - 1` of `cfg`, in index order; `workers` processes share
    them (same records for any number)."""
    if n < 1 or workers < 1:
        raise ValueError(f"need n >= 1 chips and workers >= 1, got {n} and {workers}")
    data = data.limited(cfg.network.max_cal, cfg.network.max_test)
    indices = list(range(first, first + n))
    rows: list[ChipRecord] = []
    if workers == 1 or n == 1:
        for i in indices:
            rows.append(run_chip(net, data, cfg, i))
            if progress is not None:
                progress(len(rows), n)
        return rows
    from concurrent.futures import ProcessPoolExecutor

    chunk = max(1, min(5, n // (4 * workers)))
    jobs = [(net, data, cfg, indices[i:i + chunk]) for i in range(0, n, chunk)]
    with ProcessPoolExecutor(max_workers=workers) as pool:
        for part in pool.map(_chips, jobs):
            rows += part
            if progress is not None:
                progress(len(rows), n)
    return rows
