"""Half-select disturb predicted with the device model, for a write-verify that tracks it.

Under V/2 every pulse on a cell puts about half its amplitude on the other devices of the
cell's row and column, and the device law (`PulseLaw`) moves them too (SET pulses raise them,
RESET pulses lower them). With the device voltages the circuit model gives per volt
(`mate_voltages`) and each device's learned offset, the plan can
- keep its estimates of the half-selected devices up to date after every pulse
  (`mate_effect`), and
- before a pass, predict how much the pulses of the cells programmed later in the pass will
  move each cell after it is finished (`pass_disturb`), so that the cell is aimed at its
  target minus that drift.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

import numpy as np

from xbarlab.crossbar import Cell, FloatArray
from xbarlab.protocols.pulse_law import PulseLaw


class MateModel(Protocol):
    def mate_voltages(self, g: FloatArray, cell: Cell) -> tuple[FloatArray, FloatArray]: ...


class Offsets:
    """Each device's learned voltage offset (V) per polarity: the mean of the observed
    offsets with `prior` pseudo-observations of 0 (the preset)."""

    def __init__(self, shape: tuple[int, int], prior: float) -> None:
        self.prior = prior
        self._sum = np.zeros((2, *shape))
        self._n = np.zeros((2, *shape))

    @staticmethod
    def _k(polarity: int) -> int:
        return 0 if polarity > 0 else 1

    def get(self, cell: Cell, polarity: int) -> float:
        k = self._k(polarity)
        return float(self._sum[k][cell] / (self._n[k][cell] + self.prior))

    def row(self, r: int, polarity: int) -> FloatArray:
        k = self._k(polarity)
        return np.asarray(self._sum[k, r, :] / (self._n[k, r, :] + self.prior))

    def col(self, c: int, polarity: int) -> FloatArray:
        k = self._k(polarity)
        return np.asarray(self._sum[k, :, c] / (self._n[k, :, c] + self.prior))

    def learn(self, cell: Cell, polarity: int, delta: float) -> None:
        k = self._k(polarity)
        self._sum[k][cell] += delta
        self._n[k][cell] += 1


def mate_effect(law: PulseLaw, est: FloatArray, cell: Cell, mates: tuple[FloatArray, FloatArray],
                voltage: float, width: float, offsets: Offsets
                ) -> tuple[FloatArray, FloatArray]:
    """Predicted change of G (S) of the devices along `cell`'s row (N,) and column (M,) from a
    pulse of `voltage` (applied, V) and `width` (s); the cell itself 0."""
    r, c = cell
    sign = 1.0 if voltage > 0 else -1.0
    out = []
    for v_per_volt, g, delta, own in ((mates[0], est[r, :], offsets.row(r, int(sign)), c),
                                      (mates[1], est[:, c], offsets.col(c, int(sign)), r)):
        v = np.clip(v_per_volt * voltage * sign, 0.0, None) * sign  # the pulse's polarity
        change = law.after(g, v, width, delta) - g
        change[own] = 0.0
        out.append(change)
    return out[0], out[1]


def apply_effect(est: FloatArray, cell: Cell, change: tuple[FloatArray, FloatArray]) -> None:
    """Add a `mate_effect` to the estimates `est` in place."""
    r, c = cell
    est[r, :] += change[0]
    est[:, c] += change[1]


def pass_disturb(cells: Sequence[Cell], est: FloatArray, aims: FloatArray, law: PulseLaw,
                 mates: Callable[[Cell], tuple[FloatArray, FloatArray]],
                 pulse: Callable[[Cell, float, float], tuple[float, float, float]],
                 offsets: Offsets, max_pulses: int = 1) -> FloatArray:
    """Predicted change of G (S) each cell of `cells` receives after it is finished, from the
    pulses of the cells programmed after it in the pass: each cell takes the pulses
    `pulse(cell, g, aim)` -> (applied V, width, G after it) from its predicted state towards
    its aim, up to `max_pulses` (a pulse at a voltage cap falls short: the real cell takes
    more), until `pulse` answers 0 V (within the band)."""
    sim = np.array(est, dtype=np.float64)
    drift = np.zeros_like(sim)
    done = np.zeros(sim.shape, dtype=bool)
    for cell in cells:
        r, c = cell
        for _ in range(max_pulses):
            voltage, width, g_next = pulse(cell, float(sim[cell]), float(aims[cell]))
            if not voltage:
                break
            change = mate_effect(law, sim, cell, mates(cell), voltage, width, offsets)
            apply_effect(sim, cell, change)
            drift[r, :] += np.where(done[r, :], change[0], 0.0)
            drift[:, c] += np.where(done[:, c], change[1], 0.0)
            sim[cell] = g_next
        sim[cell] = aims[cell]
        done[cell] = True
    return drift
