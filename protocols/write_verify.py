"""Write-verify: incremental step pulse programming (ISPP) of cells to target conductances.

The loop follows the Sherbrooke group's bench procedure: read; if the conductance is below the
tolerance band apply a SET pulse whose amplitude grows by `step` on each consecutive SET (and
the RESET amplitude returns to its start), the mirror with RESET above the band; stop after
`n_verify` consecutive reads inside the band, or when the pulse or polarity-reversal budget
is spent. Amplitudes are capped at `set_max` / `reset_min`; a cell that still has not reached
its band after `max_pulses_at_limit` consecutive pulses at the cap is given up as stuck, so a
dead device does not disturb its row and column with hundreds of full-amplitude pulses.
With `stall_pulses` = N > 0 a cell is given up sooner, once N consecutive pulses at the cap
moved its read by less than half the tolerance band towards the target (reason
``stuck: read stalled ...``): a device at its bound, or a target the read cannot show (with
wire and sense resistance a grounded read measures only part of the cell's current, so a
high target can lie beyond what any device state reads as).

Compliance stops a cell (outcome reason ``compliance: ...``, not converged, not retried in
later passes): a verify read that hit the current compliance has no conductance to compare
(the instrument clamped the current). A pulse that hit it is counted (`n_compliance_pulses`,
and the engine logs a compliance event); with ``stop_on_pulse_compliance`` it stops the cell
too (the cell did not see the intended amplitude).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from xbarlab.config import WriteVerifyParams
from xbarlab.crossbar import BoolArray, Cell, FloatArray, PulseResult, ReadResult
from xbarlab.messages import Checkpoint, Plan, Pulse, Read
from xbarlab.protocols.read_map import read_map


@dataclass(frozen=True, slots=True)
class WriteVerifyOutcome:
    """How one cell's write-verify ended."""

    cell: Cell
    target: float  # S
    g_final: float  # S, last verify read
    converged: bool
    n_pulses: int
    n_reversals: int
    reason: str
    n_compliance_pulses: int = 0  # pulses that hit the current compliance

    @property
    def compliance(self) -> bool:
        """Stopped because a read or a pulse hit the current compliance."""
        return self.reason.startswith(COMPLIANCE)


COMPLIANCE = "compliance"
"""Prefix of the outcome reason of a cell stopped by a compliance trip."""


def write_verify(cell: Cell, target: float, params: WriteVerifyParams) -> Plan:
    """Program `cell` to `target` siemens; returns a `WriteVerifyOutcome`."""
    if not target > 0:
        raise ValueError(f"target conductance must be positive, got {target!r} S")
    p = params
    amp_set, amp_reset = p.set_start, p.reset_start
    n_pulses = n_reversals = in_band = at_limit = n_comp = 0
    cap_reads: list[float] = []  # reads before the pulses of the current streak at the cap
    last_polarity = 0
    cell = (int(cell[0]), int(cell[1]))

    def end(g: float, converged: bool, reason: str) -> WriteVerifyOutcome:
        return WriteVerifyOutcome(cell, target, g, converged, n_pulses, n_reversals, reason,
                                  n_comp)

    while True:
        r: ReadResult = yield Read((cell,), p.v_read, p.read_scheme, tag="verify")
        g = float(r.conductances[0])
        if bool(r.compliance[0]):
            return end(g, False, f"{COMPLIANCE}: the verify read at {p.v_read:+g} V hit the "
                                 "current compliance")
        if abs(g - target) <= p.tolerance * target:
            in_band += 1
            if in_band >= p.n_verify:
                return end(g, True, "converged")
            continue
        in_band = 0
        if n_pulses >= p.max_pulses:
            return end(g, False, f"{p.max_pulses} pulses spent")
        polarity = 1 if g < target else -1
        if last_polarity and polarity != last_polarity:
            n_reversals += 1
            if n_reversals > p.max_reversals:
                return end(g, False, f"more than {p.max_reversals} polarity reversals")
        last_polarity = polarity
        if polarity > 0:
            voltage, tag = amp_set, "set"
            amp_set = min(amp_set + p.step, p.set_max)
            amp_reset = p.reset_start
        else:
            voltage, tag = amp_reset, "reset"
            amp_reset = max(amp_reset - p.step, p.reset_min)
            amp_set = p.set_start
        at_limit = at_limit + 1 if voltage in (p.set_max, p.reset_min) else 0
        if at_limit > p.max_pulses_at_limit:
            return end(g, False, f"stuck: {p.max_pulses_at_limit} pulses at {voltage:+.2f} V "
                                 "moved it no further")
        if p.stall_pulses:
            if at_limit:
                cap_reads.append(g)  # the read before each pulse at the cap, in this streak
            else:
                cap_reads.clear()
            if len(cap_reads) > p.stall_pulses:
                progress = (g - cap_reads[-1 - p.stall_pulses]) * polarity  # towards target
                band = p.tolerance * target
                if progress < 0.5 * band:
                    return end(g, False, f"stuck: read stalled, {p.stall_pulses} pulses at "
                                         f"{voltage:+.2f} V moved it {progress * 1e6:+.3g} µS "
                                         f"towards the target (band ±{band * 1e6:.3g} µS)")
        pr: PulseResult | None = yield Pulse(cell, voltage, p.width, p.pulse_scheme, tag=tag)
        n_pulses += 1
        tripped = pr is not None and pr.compliance
        n_comp += int(tripped)
        if tripped and p.stop_on_pulse_compliance:
            return end(g, False, f"{COMPLIANCE}: the {tag.upper()} pulse of {voltage:+g} V hit "
                                 "the current compliance")


def programming_order(shape: tuple[int, int], order: str) -> list[Cell]:
    """Cells in programming order: "row-major" or "column-major"."""
    rows, cols = shape
    if order == "row-major":
        return [(r, c) for r in range(rows) for c in range(cols)]
    if order == "column-major":
        return [(r, c) for c in range(cols) for r in range(rows)]
    raise ValueError(f"unknown programming order {order!r}: use 'row-major' or 'column-major'")


@dataclass(frozen=True, slots=True)
class ArrayOutcome:
    """Write-verify of a whole target pattern, with the final read map."""

    targets: FloatArray  # (M, N) S
    cells: list[WriteVerifyOutcome]  # the last attempt on each cell, in programming order
    final: FloatArray  # (M, N) S, read after every cell was programmed
    tolerance: float
    attempts: list[WriteVerifyOutcome] = field(default_factory=list)  # every attempt, in order
    passes: int = 1

    @property
    def converged(self) -> int:
        return sum(o.converged for o in self.cells)

    @property
    def in_tolerance_final(self) -> int:
        """Cells still within tolerance at the final read (disturb by later cells shows here)."""
        return int(self.in_band(self.final).sum())

    def in_band(self, g: FloatArray) -> BoolArray:
        """Which cells of map `g` lie within tolerance of their target."""
        return np.asarray(np.abs(g - self.targets) <= self.tolerance * self.targets)

    @property
    def n_pulses(self) -> int:
        return sum(o.n_pulses for o in (self.attempts or self.cells))

    @property
    def n_compliance(self) -> int:
        """Cells whose last attempt was stopped by a compliance trip."""
        return sum(o.compliance for o in self.cells)

    def verdict(self) -> tuple[str, str]:
        """How well the job was done, judged on the programmed cells at the final read:
        ("programmed" | "partial" | "failed", reason with the counts). The run engine records
        it as the run's status."""
        if not self.cells:
            return "failed", "no cell was programmed"
        idx = tuple(np.array([o.cell for o in self.cells]).T)
        inside = self.in_band(self.final)[idx]
        n, k = len(self.cells), int(inside.sum())
        band = f"±{self.tolerance * 100:.3g} % of target at the final read"
        if k == n:
            return "programmed", f"all {n} cells within {band}"
        stuck = sum(o.reason.startswith("stuck") for o in self.cells)
        stalled = sum(o.reason.startswith("stuck: read stalled") for o in self.cells)
        given_up = f" ({stuck} given up as stuck" if stuck else ""
        if stalled:
            given_up += f", {stalled} of them with a stalled read at the cap"
        given_up += ")" if stuck else ""
        if self.n_compliance:
            given_up += f" ({self.n_compliance} stopped by compliance)"
        if k == 0:
            return "failed", f"none of the {n} cells within {band}{given_up}"
        return "partial", f"{k} / {n} cells within {band}; {n - k} outside{given_up}"


def write_verify_array(
    targets: FloatArray,
    params: WriteVerifyParams,
    order: str = "row-major",
    cells: Sequence[Cell] | None = None,
    passes: int = 1,
) -> Plan:
    """Program every cell (or `cells`, in that order) to `targets` (M, N), then read the map.

    With ``passes > 1``, the cells that the final read map shows out of tolerance (disturbed
    by the programming of later cells) are programmed again, in the same order, up to `passes`
    times in all; cells given up as stuck are not retried. Yields a ``Checkpoint("cell_done")``
    after each cell with ``progress = (done, total)`` of the current pass and ``pass``.
    """
    targets = np.asarray(targets, dtype=np.float64)
    if targets.ndim != 2:
        raise ValueError(f"targets must be a 2-D conductance map, got shape {targets.shape}")
    if not np.all(np.isfinite(targets)) or (targets <= 0).any():
        raise ValueError("every target conductance must be finite and positive")
    if passes < 1:
        raise ValueError(f"passes must be >= 1, got {passes}")
    order_all = list(cells) if cells is not None else programming_order(targets.shape, order)
    latest: dict[Cell, WriteVerifyOutcome] = {}
    attempts: list[WriteVerifyOutcome] = []
    sequence = order_all
    final = np.full(targets.shape, np.nan)
    n_pass = 0
    for n_pass in range(1, passes + 1):
        for i, cell in enumerate(sequence):
            outcome = yield from write_verify(cell, float(targets[cell]), params)
            latest[cell] = outcome
            attempts.append(outcome)
            yield Checkpoint(
                "cell_done",
                {
                    "progress": (i + 1, len(sequence)),
                    "pass": n_pass,
                    "cell": cell,
                    "converged": outcome.converged,
                    "n_pulses": outcome.n_pulses,
                    "g_final": outcome.g_final,
                    "target": outcome.target,
                    "reason": outcome.reason,
                },
            )
        final = yield from read_map(targets.shape, params.v_read, params.read_scheme)
        off = np.abs(final - targets) > params.tolerance * targets
        sequence = [c for c in order_all if off[c] and not latest[c].reason.startswith("stuck")
                    and not latest[c].compliance]
        if not sequence:
            break
    return ArrayOutcome(targets, [latest[c] for c in order_all], final, params.tolerance,
                        attempts, n_pass)
