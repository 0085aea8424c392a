"""Write-verify that compensates what the circuit predicts (line and source resistance).

With wire resistance a cell sees only part of a pulse's amplitude (`pulse_gain` = applied /
delivered, > 1) and a read measures a different conductance than the cell has
(`read_gain` = read / true). A grounded read's gain depends on the other devices of the
selected row and column (their current loads the source and wire resistance, and part of the
cell's current leaks through the column's other devices), so it changes as the session
programs them: `verify` holds each cell's gain at its own turn (the cells before it in the
order at their targets, the others as they are), `read` the gain at the end (what the final
read map shows). The plan programs each cell with its amplitudes (start, cap and step)
multiplied by its pulse gain, capped at the bench's pulse limits, and aims its verify reads
at target x verify gain, so that the cell's own conductance lands on the target. The gains
come from a circuit model (`xbarlab.analysis` computes them on the simulator); the plan
itself only sees the `Crossbar` interface.

The gains are fixed before the session: they do not follow the half-select disturb that
programming later cells brings to the earlier ones (on 64 x 64 with 1 ohm segments and 10 ohm
source and sense, 2-6 % of the devices end within 1 % of their target). `protocols/tracked.py`
follows the array's state instead (map reads de-embedded through the circuit model, the
disturb predicted by the device model, passes over the cells it moved).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from xbarlab.config import WriteVerifyParams
from xbarlab.crossbar import Cell, FloatArray
from xbarlab.messages import Plan
from xbarlab.protocols.common import cell_done
from xbarlab.protocols.read_map import read_map
from xbarlab.protocols.write_verify import ArrayOutcome, WriteVerifyOutcome, write_verify


@dataclass(frozen=True)
class CircuitGains:
    """Per-cell gains a circuit model predicts, and the bench's pulse limits (V)."""

    pulse: FloatArray  # (M, N) applied / delivered amplitude
    read: FloatArray  # (M, N) read / true conductance, after the session
    v_max: float
    v_min: float
    verify: FloatArray | None = None  # (M, N) read / true at each cell's turn; None: `read`


def scaled_params(p: WriteVerifyParams, gain: float, v_max: float, v_min: float
                  ) -> WriteVerifyParams:
    """`p` with every amplitude and the step multiplied by `gain`, capped at [v_min, v_max]."""
    set_max = min(p.set_max * gain, v_max)
    reset_min = max(p.reset_min * gain, v_min)
    return p.model_copy(update={
        "set_start": min(p.set_start * gain, set_max), "set_max": set_max,
        "reset_start": max(p.reset_start * gain, reset_min), "reset_min": reset_min,
        "step": p.step * gain,
    })


def write_verify_compensated(
    targets: FloatArray, params: WriteVerifyParams, gains: CircuitGains, order: Sequence[Cell]
) -> Plan:
    """Program `order`'s cells to `targets` (S) with circuit-compensated amplitudes and verify
    targets, then read the map; returns an `ArrayOutcome` whose targets are the read-space
    targets of the final map (target x read gain)."""
    g_t = np.asarray(targets, dtype=np.float64)
    aim = g_t * np.asarray(gains.read, dtype=np.float64)
    at_turn = g_t * np.asarray(gains.verify if gains.verify is not None else gains.read,
                               dtype=np.float64)
    outcomes: list[WriteVerifyOutcome] = []
    for k, cell in enumerate(order):
        gain = float(gains.pulse[cell])
        p = scaled_params(params, gain, gains.v_max, gains.v_min)
        o = yield from write_verify(cell, float(at_turn[cell]), p)
        outcomes.append(o)
        yield cell_done(k + 1, len(order), o.cell, converged=o.converged, n_pulses=o.n_pulses,
                        g_final=o.g_final, target=o.target, pulse_gain=gain,
                        read_gain=float(o.target / g_t[cell]))
    final = yield from read_map(aim.shape, params.v_read, params.read_scheme)
    return ArrayOutcome(aim, outcomes, final, params.tolerance, list(outcomes), 1)
