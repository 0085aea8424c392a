"""Retention: read the same cells again and again over time, on a linear or log schedule.

Time passes through `Wait` messages: the simulator advances its device clock (states drift
and relax, no sleeping), a bench really waits. Every point records the clock the backend
reported after the wait, so the logged times are the times the reads were made.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from xbarlab.crossbar import Cell, FloatArray, ReadResult
from xbarlab.messages import Checkpoint, Plan, Read, Wait, WaitResult
from xbarlab.protocol_configs import RetentionConfig


def schedule(cfg: RetentionConfig) -> FloatArray:
    """Read times after t = 0 (s): every `interval`, or `points` log-spaced from `first`."""
    if cfg.schedule == "linear":
        n = int(np.floor(cfg.duration / cfg.interval + 1e-9))
        return np.asarray(cfg.interval * np.arange(1, n + 1), dtype=np.float64)
    return np.asarray(np.geomspace(cfg.first, cfg.duration, cfg.points), dtype=np.float64)


@dataclass(frozen=True, slots=True)
class RetentionOutcome:
    cells: list[Cell]
    times: FloatArray  # (T,) s since the first read
    g: FloatArray  # (T, k) S

    @property
    def drift(self) -> FloatArray:
        """(k,) relative change of each cell from the first to the last read."""
        return np.asarray((self.g[-1] - self.g[0]) / self.g[0])


def retention(cells: Sequence[Cell], cfg: RetentionConfig) -> Plan:
    """Read `cells` at t = 0 and at every `schedule` time; returns a `RetentionOutcome`."""
    cells = [(int(r), int(c)) for r, c in cells]
    times_planned = schedule(cfg)
    start: WaitResult = yield Wait(0.0, tag="retention_wait")
    clock0, clock = start.clock, start.clock
    times, gs = [], []
    for i, t in enumerate(np.concatenate([[0.0], times_planned])):
        if i:
            w: WaitResult = yield Wait(max(0.0, float(t) - (clock - clock0)),
                                       tag="retention_wait")
            clock = w.clock
        r: ReadResult = yield Read(tuple(cells), cfg.v_read, cfg.read_scheme,
                                   tag="retention_read")
        g = np.asarray(r.conductances, dtype=np.float64)
        times.append(clock - clock0)
        gs.append(g)
        yield Checkpoint("retention_point", {
            "progress": (i + 1, len(times_planned) + 1), "t": clock - clock0,
            "g_mean": float(g.mean()),
        })
    return RetentionOutcome(cells, np.array(times), np.array(gs))
