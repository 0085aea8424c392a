"""The `program_network` protocol: one plan that programs, reads back, evaluates and
compensates a mapped network; the run engine executes it like any other protocol.

Sequence (every step a logged operation or checkpoint):

1. ``job program/1``: write-verify of every device in the mapping's programming order
   (`xbarlab.network.mapping`), a ``cell_done`` checkpoint after each (job, cell, pulses,
   final verify read, target);
2. passes 2..n (``network.passes``): read the devices; reprogram, in the same order, those the
   later programming disturbed out of tolerance (not the stuck ones) as ``job program/k``;
3. read-back: one read of every device of the network; ``evaluation`` checkpoint with the
   accuracy through the chip's MVM on the calibration and test splits and the read-back
   conductances evaluated digitally;
4. compensation rounds (``network.compensation.rounds``): re-tune against the measured state
   (`xbarlab.network.compensation`); if the expected calibration loss after reprogramming
   (moved devices landing within the measured programming spread) beats the present one by
   ``min_gain``, reprogram only the moved devices as ``job compensate/r``
   (a real write-verify on the same chip: its disturb of the neighbours is whatever the
   backend does), read back, evaluate; when the calibration accuracy (ties: its loss) stops
   improving, write the devices that moved back to the best round's state (``job
   restore/r``), read back and evaluate, so the chip ends in its best state;
5. output calibration (``network.calibrate_outputs``): a gain and an offset per output of
   every layer in the digital periphery, fitted on the calibration split layer after layer so
   that the chip computes what its programmed targets say (`xbarlab.network.inference.
   fit_outputs`), evaluated, kept when the calibration accuracy improves.

With a circuit model (`xbarlab.network.aim`, ``network.verify``: the arrays have wire, source
or sense resistance) the plan first reads every cell of the arrays; each job programs its cells
in groups (a column or row of one array, in the programming order), each group's verify reads
aimed at the read a device at its target gives in the model with the group at its targets and
the other cells at their last deconvolved state, and pulse amplitudes scaled by the share the
cell receives; every read-back reads the whole arrays and deconvolves them through the model,
so the passes, the evaluation, the compensation and the verdict see conductances, not reads.

Each job starts with a ``job`` checkpoint (its cells and targets) and ends with ``job_done``.
A resumed run (`ResumePoint`) skips finished jobs, takes the cells and targets of an
interrupted job from the old log and skips its cells done: no device whose write-verify
finished is programmed again.
"""

from __future__ import annotations

import time
from collections.abc import Generator, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from xbarlab.config import WriteVerifyParams
from xbarlab.crossbar import Cell, FloatArray, ReadResult
from xbarlab.messages import Checkpoint, Message, Plan, Read
from xbarlab.network.aim import CircuitAim, verify_groups
from xbarlab.network.compensation import compensation_rounds, loss_and_grad
from xbarlab.network.config import NetworkSettings
from xbarlab.network.datasets import EvalSet
from xbarlab.network.inference import Calibration, ChipPass, chip_forward, fit_outputs
from xbarlab.network.mapping import NetworkMap
from xbarlab.network.model import accuracy
from xbarlab.protocols.compensated import scaled_params
from xbarlab.protocols.write_verify import WriteVerifyOutcome, write_verify

PROTOCOL = "program_network"


@dataclass
class ResumePoint:
    """What earlier runs of the same session finished (from their logs)."""

    done_jobs: set[str] = field(default_factory=set)
    started: dict[str, tuple[list[Cell], list[float]]] = field(default_factory=dict)
    done_cells: dict[str, set[Cell]] = field(default_factory=dict)
    stuck: set[Cell] = field(default_factory=set)  # cells given up as stuck (or compliance)


@dataclass
class JobCost:
    name: str
    cells: int
    pulses: int = 0
    seconds: float = 0.0
    skipped: int = 0  # cells done by an earlier run


@dataclass
class Evaluation:
    """Accuracy of the programmed network at one stage."""

    stage: str
    cal_acc: float
    cal_loss: float
    test_acc: float
    readback_test_acc: float  # read-back conductances evaluated digitally
    clamped: int = 0

    def as_dict(self) -> dict[str, Any]:
        return dict(vars(self))


@dataclass
class NetworkOutcome:
    """Everything the session measured; `verdict` decides the run's status."""

    targets: FloatArray  # bank map of the final targets, NaN where no device
    nominal: FloatArray  # bank map of the mapping's targets
    programmed: FloatArray  # bank map read back after programming (before compensation)
    final: FloatArray  # bank map at the last read
    stuck: np.ndarray  # bank map, bool
    tolerance: float
    software_test_acc: float
    evaluations: list[Evaluation] = field(default_factory=list)
    jobs: list[JobCost] = field(default_factory=list)
    outcomes: dict[Cell, WriteVerifyOutcome] = field(default_factory=dict)
    aimed: bool = False  # verify aimed through a circuit model; reads deconvolved through it

    def used(self) -> np.ndarray:
        return np.isfinite(self.nominal)

    def in_band(self) -> np.ndarray:
        """Devices within tolerance of their final target at the last read (bank map)."""
        with np.errstate(invalid="ignore"):
            return self.used() & (np.abs(self.final - self.targets)
                                  <= self.tolerance * self.targets)

    def cost(self, prefix: str) -> tuple[int, float, int]:
        """(pulses, seconds, devices programmed) of the jobs whose name starts with `prefix`."""
        jobs = [j for j in self.jobs if j.name.startswith(prefix)]
        return (sum(j.pulses for j in jobs), sum(j.seconds for j in jobs),
                sum(j.cells - j.skipped for j in jobs))

    def verdict(self) -> tuple[str, str]:
        n = int(self.used().sum())
        k = int(self.in_band().sum())
        stuck = int((self.stuck & self.used()).sum())
        band = f"±{self.tolerance * 100:.3g} % of target at the final read"
        if self.aimed:
            band += " (deconvolved through the circuit model)"
        acc = ""
        if self.evaluations:
            e = self.evaluations[-1]
            acc = f"; test accuracy through the MVM {e.test_acc * 100:.1f} %"
        extra = f" ({stuck} stuck)" if stuck else ""
        if n and k == n:
            return "programmed", f"all {n} devices within {band}{acc}"
        if k == 0:
            return "failed", f"none of the {n} devices within {band}{extra}{acc}"
        return "partial", f"{k} / {n} devices within {band}{extra}{acc}"


def _stuck(o: WriteVerifyOutcome) -> bool:
    return o.reason.startswith("stuck") or o.compliance


class NetworkProgram:
    """State of one `program_network` run; `plan()` is the generator the engine drives."""

    def __init__(self, nmap: NetworkMap, settings: NetworkSettings, data: EvalSet,
                 resume: ResumePoint | None = None, aim: CircuitAim | None = None) -> None:
        self.nmap = nmap
        self.s = settings
        self.p: WriteVerifyParams = settings.write_verify
        self.data = data
        self.resume = resume or ResumePoint()
        self.aim = aim
        self.calibration: Calibration | None = None  # the periphery's output calibration
        nominal = nmap.targets()
        # aim only: what every cell of the bank holds (the last read map, deconvolved)
        self.estimate = np.full(nominal.shape, np.nan)
        self.out = NetworkOutcome(
            nominal.copy(), nominal, np.full(nominal.shape, np.nan),
            np.full(nominal.shape, np.nan), np.zeros(nominal.shape, dtype=bool),
            self.p.tolerance,
            accuracy(nmap.network.logits(data.x_test), data.y_test), aimed=aim is not None)
        for c in self.resume.stuck:
            self.out.stuck[c] = True

    # -- building blocks ----------------------------------------------------------------------
    def job(self, name: str, cells: list[Cell], targets: FloatArray
            ) -> Generator[Message, Any, None]:
        """Write-verify `cells` to `targets` (bank map) as job `name` (resumable)."""
        r = self.resume
        if name in r.started:  # the old run chose these cells and targets: keep them
            cells, values = r.started[name]
            for c, v in zip(cells, values, strict=True):
                targets[c] = v
                self.out.targets[c] = v
        if name in r.done_jobs:
            return
        done = r.done_cells.get(name, set())
        cost = JobCost(name, len(cells))
        self.out.jobs.append(cost)
        yield Checkpoint("job", {"job": name, "cells": [list(c) for c in cells],
                                 "targets": [float(targets[c]) for c in cells]})
        t0 = time.perf_counter()
        cost.skipped = sum(1 for c in cells if c in done)
        todo = [c for c in cells if c not in done]
        pos = {c: i for i, c in enumerate(cells)}
        for group, aims in self._aimed(todo, targets):
            for cell in group:
                read_aim, pulse_gain = aims.get(cell, (float(targets[cell]), 1.0))
                p = self.p if pulse_gain == 1.0 else scaled_params(
                    self.p, pulse_gain, self.aim.v_max, self.aim.v_min)  # type: ignore[union-attr]
                o = yield from write_verify(cell, read_aim, p)
                self.out.outcomes[cell] = o
                self.out.stuck[cell] = _stuck(o)
                cost.pulses += o.n_pulses
                data = {"progress": (pos[cell] + 1, len(cells)), "job": name, "cell": cell,
                        "converged": o.converged, "n_pulses": o.n_pulses,
                        "g_final": o.g_final, "target": o.target, "reason": o.reason}
                if aims:
                    data |= {"g_target": float(targets[cell]), "pulse_gain": pulse_gain}
                yield Checkpoint("cell_done", data)
        cost.seconds = time.perf_counter() - t0
        yield Checkpoint("job_done", {"job": name, "pulses": cost.pulses,
                                      "programmed": cost.cells - cost.skipped,
                                      "seconds": cost.seconds})

    def _aimed(self, cells: list[Cell], targets: FloatArray
               ) -> Iterator[tuple[list[Cell], dict[Cell, tuple[float, float]]]]:
        """`cells` in verify groups with each cell's (verify read aim, pulse gain): through
        the circuit model (see the module doc), or one group aimed at the targets."""
        aim = self.aim
        if aim is None:
            yield cells, {}
            return
        m = self.nmap.array_shape[0]
        model = np.where(np.isfinite(self.estimate), self.estimate,
                         np.where(np.isfinite(targets), targets, self.s.g_min))
        healthy = ~self.out.stuck
        after = model.copy()  # every cell of the job at its target: the pulse gains
        for c in cells:
            after[c] = targets[c] if healthy[c] else after[c]
        gains = aim.pulse_gains(after, sorted({c[0] // m for c in cells}))
        for group in verify_groups(cells, m, self.nmap.order):
            for c in group:
                if healthy[c]:
                    model[c] = targets[c]
            reads = aim.verify_reads(model, group)
            yield group, {c: (reads[c] * float(targets[c]) / float(model[c]),
                              float(gains[c])) for c in group}

    def read_devices(self, tag: str) -> Generator[Message, Any, FloatArray]:
        """Read every device of the network once; returns the bank map (NaN elsewhere).
        With a circuit model: read every cell of the arrays, deconvolve the map through the
        model (`estimate`), and return the network's devices of it."""
        cells = self.nmap.cells
        g = np.full(self.nmap.bank_shape, np.nan)
        if self.aim is None:
            res: ReadResult = yield Read(tuple(cells), self.p.v_read, self.p.read_scheme,
                                         tag=tag)
            g[tuple(np.asarray(res.cells).T)] = res.conductances
            return g
        whole: ReadResult = yield Read(None, self.p.v_read, self.p.read_scheme, tag=tag)
        raw = np.full(self.nmap.bank_shape, np.nan)
        raw[tuple(np.asarray(whole.cells).T)] = whole.conductances
        self.estimate = self.aim.deconvolve(raw)
        idx = tuple(np.asarray(cells).T)
        g[idx] = self.estimate[idx]
        return g

    def evaluate(self, stage: str, g: FloatArray) -> Generator[Message, Any,
                                                               tuple[Evaluation, ChipPass]]:
        """Accuracy through the MVM (calibration, test) and of the read-back, digitally."""
        d = self.data
        cal: ChipPass = yield from chip_forward(self.nmap, d.x_cal, self.s.v_read,
                                                f"{stage}/calibration", self.calibration)
        test: ChipPass = yield from chip_forward(self.nmap, d.x_test, self.s.v_read,
                                                 f"{stage}/test", self.calibration)
        loss, _ = loss_and_grad(cal.logits, d.y_cal)
        g_fill = np.where(np.isfinite(g), g, self.out.targets)
        readback = self.nmap.network_from(g_fill).logits(d.x_test)
        ev = Evaluation(stage, accuracy(cal.logits, d.y_cal), loss,
                        accuracy(test.logits, d.y_test), accuracy(readback, d.y_test),
                        cal.clamped + test.clamped)
        self.out.evaluations.append(ev)
        self.scored(stage, cal, test)
        yield Checkpoint("evaluation", ev.as_dict())
        return ev, cal

    def scored(self, stage: str, cal: ChipPass, test: ChipPass) -> None:
        """Called with every evaluation's chip passes (a study keeps what it needs of them)."""

    def measured_spread(self, g: FloatArray) -> float:
        """Relative std of the programming error the read-back shows on healthy devices
        (robust: median |error| / 0.674, as for a normal distribution)."""
        t = self.out.targets
        ok = np.isfinite(g) & np.isfinite(t) & ~self.out.stuck
        if not ok.any():
            return 0.0
        return float(np.median(np.abs(g[ok] - t[ok]) / t[ok]) / 0.6745)

    # -- the plan -----------------------------------------------------------------------------
    def plan(self) -> Plan:
        out, s = self.out, self.s
        cells = self.nmap.cells
        targets = out.targets
        yield Checkpoint("network", self.nmap.describe())
        if self.aim is not None:  # the state the circuit model starts from
            yield from self.read_devices("read/initial")
        yield from self.job("program/1", cells, targets)
        for k in range(2, s.passes + 1):
            g = yield from self.read_devices(f"pass{k - 1}")
            with np.errstate(invalid="ignore"):
                off = np.abs(g - targets) > self.p.tolerance * targets
            todo = [c for c in cells if off[c] and not out.stuck[c]]
            if not todo and f"program/{k}" not in self.resume.started:
                break
            yield from self.job(f"program/{k}", todo, targets)
        g = yield from self.read_devices("read_back")
        out.programmed = g.copy()
        out.final = g
        best, cal = yield from self.evaluate("programmed", g)
        g = yield from compensation_rounds(self, s.compensation, s.g_min, s.g_max,
                                           self.p.tolerance, g, best, cal)
        if s.calibrate_outputs:
            yield from self.calibrate_outputs(g)
        return out

    def calibrate_outputs(self, g: FloatArray) -> Generator[Message, Any, None]:
        """Fit the periphery's output calibration on the calibration split against what the
        programmed targets compute (`fit_outputs`), evaluate; keep it when the calibration
        accuracy (ties: its loss) improves on the chip as it is, else drop it."""
        ref = self.nmap.network_from(self.out.targets)
        calib: Calibration = yield from fit_outputs(self.nmap, self.data.x_cal,
                                                    self.s.v_read, ref, "calibrate")
        before = self.out.evaluations[-1]
        self.calibration = calib
        ev, _ = yield from self.evaluate("calibrated", g)
        kept = ev.cal_acc > before.cal_acc or (ev.cal_acc == before.cal_acc
                                               and ev.cal_loss < before.cal_loss)
        yield Checkpoint("output_calibration", {
            "kept": kept, "gain": [c[0].tolist() for c in calib],
            "offset": [c[1].tolist() for c in calib]})
        if not kept:
            self.calibration = None
            self.out.evaluations.pop()
