"""`xbarlab run --estimate`: run a session's plan against the simulator first and say what the
session will do to the array, before anyone touches the bench.

The plan runs through the same engine and limits check on a simulated array drawn like the
session's (its `sim:` section, another seed: the bench's devices are not the simulator's).
A subscriber books every operation: pulses and reads per cell, the largest voltage each cell
sees (selected or half-selected, from the ideal line biases of the pulse's scheme), how many
pulses expose it as a half-selected cell, the energy of the pulses it receives (V I width),
the pulses and cell reads that hit the current compliance (the device then sees less than the
set voltage), and the bench time from the bench config's per-operation timings. Physics
checks run first:
verify reads whose half-selected or sneak current exceeds the tolerance band, and pulses that
lose so much to line resistance that a far cell never sees the start amplitude.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from xbarlab.bench.arctwo_config import load_any_bench_config
from xbarlab.bench.config import BenchConfig, OperationTiming
from xbarlab.biasing import line_biases
from xbarlab.config import WriteVerifyArrayProtocol
from xbarlab.crossbar import BiasScheme, FloatArray
from xbarlab.documents import Document, Event, EventKind, RunStop
from xbarlab.limits import BenchLimits
from xbarlab.protocol_configs import ProtocolSession
from xbarlab.units import si


@dataclass
class Booking:
    """What a run did to each cell of an (M, N) array (an engine subscriber)."""

    shape: tuple[int, int]
    timing: OperationTiming = field(default_factory=OperationTiming)
    pulses: np.ndarray = field(init=False)
    reads: np.ndarray = field(init=False)
    v_max: FloatArray = field(init=False)
    half_selected: np.ndarray = field(init=False)
    energy: FloatArray = field(init=False)
    n_mvm_rows: int = 0
    wait: float = 0.0
    pulse_time: float = 0.0
    refused: int = 0
    compliance: float = float("nan")  # A, the limit the run was simulated with
    pulse_hits: int = 0  # pulses that hit the compliance
    read_hits: int = 0  # cell reads that hit it
    status: str = ""
    reason: str = ""

    def __post_init__(self) -> None:
        self.pulses = np.zeros(self.shape, dtype=np.int64)
        self.reads = np.zeros(self.shape, dtype=np.int64)
        self.v_max = np.zeros(self.shape)
        self.half_selected = np.zeros(self.shape, dtype=np.int64)
        self.energy = np.zeros(self.shape)
        self._maps: dict[tuple[str, int, int], tuple[FloatArray, np.ndarray]] = {}

    def _exposure(self, scheme: str, cell: tuple[int, int]) -> tuple[FloatArray, np.ndarray]:
        """|V| on every cell per volt applied, and which unselected cells see a voltage."""
        key = (scheme, *cell)
        got = self._maps.get(key)
        if got is None:
            rows, cols = line_biases(self.shape, cell, 1.0, BiasScheme(scheme))
            v = np.abs(np.nan_to_num(rows)[:, None] - np.nan_to_num(cols)[None, :])
            exposed = v > 1e-12
            exposed[cell] = False
            got = (v, exposed)
            if len(self._maps) < 100_000:
                self._maps[key] = got
        return got

    def __call__(self, doc: Document) -> None:
        if isinstance(doc, RunStop):
            self.status, self.reason = doc.status.value, doc.reason
            return
        if not isinstance(doc, Event):
            return
        if doc.kind is EventKind.PULSE:
            r, c = (int(x) for x in doc.cells[0])
            volts = float(doc.voltages[0])
            self.pulses[r, c] += 1
            per_volt, exposed = self._exposure(doc.scheme or "v/2", (r, c))
            np.maximum(self.v_max, per_volt * abs(volts), out=self.v_max)
            self.half_selected += exposed
            if np.any(doc.compliance):
                self.pulse_hits += 1
            current = float(doc.currents[0])
            if np.isfinite(current):
                self.energy[r, c] += abs(volts * current) * float(doc.width)
            self.pulse_time += float(doc.width)
        elif doc.kind is EventKind.READ:
            cells = np.asarray(doc.cells)
            np.add.at(self.reads, (cells[:, 0], cells[:, 1]), 1)
            v = float(np.abs(doc.voltages).max()) if len(doc.voltages) else 0.0
            np.maximum.at(self.v_max, (cells[:, 0], cells[:, 1]), v)
            self.read_hits += int(np.count_nonzero(doc.compliance))
        elif doc.kind is EventKind.MVM and doc.mvm_in is not None:
            self.n_mvm_rows += len(doc.mvm_in)
        elif doc.kind is EventKind.CHECKPOINT and doc.message == "wait" and doc.data:
            self.wait += float(doc.data.get("seconds", 0.0))
        elif doc.kind is EventKind.REFUSED:
            self.refused += 1

    @property
    def bench_time(self) -> float:
        """Seconds the session would take on the bench (timings + pulse widths + waits)."""
        t = self.timing
        return float(self.reads.sum() * t.read + self.pulses.sum() * t.pulse + self.pulse_time
                     + self.n_mvm_rows * t.mvm_row + self.wait)


@dataclass
class Estimate:
    protocol: str
    shape: tuple[int, int]
    seed: int
    booking: Booking
    outcome: list[tuple[str, str]]
    warnings: list[str]
    blocking: list[str]  # physics problems that make the session pointless as configured

    @property
    def ok(self) -> bool:
        return not self.blocking and self.booking.status in ("success", "programmed", "partial")

    def to_json(self) -> dict[str, Any]:
        b = self.booking
        return {
            "protocol": self.protocol, "shape": list(self.shape), "seed": self.seed,
            "ok": self.ok, "status": b.status, "reason": b.reason,
            "pulses_total": int(b.pulses.sum()), "reads_total": int(b.reads.sum()),
            "mvm_rows": b.n_mvm_rows, "wait_s": b.wait, "bench_time_s": b.bench_time,
            "compliance_A": b.compliance, "pulses_in_compliance": b.pulse_hits,
            "reads_in_compliance": b.read_hits,
            "timing": b.timing.model_dump(),
            "per_cell": {
                "pulses": b.pulses.tolist(), "reads": b.reads.tolist(),
                "v_max_V": b.v_max.tolist(), "half_select_exposures": b.half_selected.tolist(),
                "energy_J": b.energy.tolist(),
            },
            "outcome": dict(self.outcome), "warnings": self.warnings, "blocking": self.blocking,
        }


def _timing(cfg: ProtocolSession) -> OperationTiming:
    if cfg.bench is None:
        return OperationTiming()
    bench = load_any_bench_config(cfg.bench)
    return bench.timing if isinstance(bench, BenchConfig) else OperationTiming()


def intersect(a: BenchLimits, b: BenchLimits) -> BenchLimits:
    """Limits that refuse whatever `a` or `b` refuses."""
    return BenchLimits(
        v_max=min(a.v_max, b.v_max), pulse_v_max=min(a.pulse_v_max, b.pulse_v_max),
        pulse_v_min=max(a.pulse_v_min, b.pulse_v_min), read_v_max=min(a.read_v_max, b.read_v_max),
        pulse_width_min=max(a.pulse_width_min, b.pulse_width_min),
        pulse_width_max=min(a.pulse_width_max, b.pulse_width_max),
        compliance=min(a.compliance, b.compliance),
    )


def estimate_session(cfg: ProtocolSession, seed: int | None = None) -> Estimate:
    """Simulate `cfg`'s plan on an array drawn with `seed` (default: the session's sim seed
    + 1, so the estimate is not the run's own device draw) and book what it does."""
    from xbarlab.analysis.physics_checks import (
        check_session,
        circuit_gains,
        circuit_tracking,
        model_sim,
    )
    from xbarlab.analysis.protocol_summary import summary_rows
    from xbarlab.engine import RunEngine
    from xbarlab.protocols.registry import plan_for
    from xbarlab.sim.factory import build_sim_crossbar

    seed = cfg.sim.seed + 1 if seed is None else seed
    sim_cfg = model_sim(cfg).model_copy(update={"seed": seed})
    xbar = build_sim_crossbar(sim_cfg, compliance=cfg.limits.compliance)
    warnings, blocking = check_session(cfg, xbar)
    booking = Booking(xbar.shape, _timing(cfg))
    if blocking:  # refuse up front: simulating a loop that cannot converge only costs time
        booking.status, booking.reason = "not simulated", "the physics checks failed"
        return Estimate(cfg.protocol.kind, xbar.shape, seed, booking, [], warnings, blocking)
    gains = circuit_gains(cfg)
    # a bench session passes two checks: the session's limits, then the bench config's own
    limits = cfg.limits if cfg.bench is None else intersect(
        cfg.limits, load_any_bench_config(cfg.bench).limits)
    booking.compliance = limits.compliance
    result = RunEngine(xbar, limits, [booking]).run(
        plan_for(cfg.protocol, xbar.shape, gains=gains, tracking=circuit_tracking(cfg)),
        protocol=cfg.protocol.kind)
    outcome = _outcome(cfg.protocol.kind, result.value, summary_rows)
    warnings += _compliance_warnings(booking)
    if isinstance(cfg.protocol, WriteVerifyArrayProtocol) and result.value is not None:
        from xbarlab.protocols.patterns import target_map

        targets = target_map(cfg.protocol.target, xbar.shape)
        err = np.abs(xbar.g - targets) / targets
        tol = cfg.protocol.params.tolerance
        outcome.append(("true conductance in tolerance (simulator)",
                        f"{int((err <= tol).sum())} / {err.size} ({(err <= tol).mean():.1%}); "
                        f"median |error| {np.median(err):.2%}"))
    return Estimate(cfg.protocol.kind, xbar.shape, seed, booking, outcome, warnings, blocking)


def _compliance_warnings(b: Booking) -> list[str]:
    """A session most of whose pulses the compliance clamps programs with weaker pulses than
    configured: say so before the bench does."""
    n = int(b.pulses.sum())
    if not n or b.pulse_hits < n / 2:
        return []
    return [f"{b.pulse_hits} of {n} pulses hit the current compliance "
            f"({si(b.compliance, 'A')}): their devices see less than the set voltage (with a "
            "v/2 or v/3 scheme the selected lines also carry the half-selected cells' current); "
            "raise `limits.compliance` if the devices allow it, or expect the write-verify to "
            "climb to higher amplitudes"]


def _outcome(kind: str, value: Any, rows: Any) -> list[tuple[str, str]]:
    from xbarlab.protocols.write_verify import ArrayOutcome

    if isinstance(value, ArrayOutcome):
        n = len(value.cells)
        return [("cells converged", f"{value.converged} / {n} ({value.converged / n:.1%})"),
                ("in tolerance at the final read", f"{value.in_tolerance_final} / {n}")]
    return [(k, v) for k, v in rows(kind, value)]


def _span(seconds: float) -> str:
    if seconds < 120:
        return si(seconds, "s")
    h, rem = divmod(round(seconds), 3600)
    return f"{h} h {rem // 60:02d} min" if h else f"{rem // 60} min {rem % 60:02d} s"


def render_estimate(est: Estimate, console: Any) -> None:
    """The estimate as a table (and its warnings)."""
    from rich.table import Table

    b = est.booking
    table = Table(title=f"estimate: {est.protocol} on {est.shape[0]} x {est.shape[1]} "
                  f"(simulated array, seed {est.seed})", show_header=False)
    colour = "green" if est.ok else "red"
    table.add_row("simulated run", f"[{colour}]{b.status}[/] {b.reason}")
    if b.status == "not simulated":
        console.print(table)
        for w in est.blocking:
            console.print(f"[bold red]will not work:[/] {w}", highlight=False)
        return
    for k, v in est.outcome:
        table.add_row(k, v)
    touched = b.pulses > 0
    table.add_row("pulses", f"{int(b.pulses.sum())} total; per pulsed cell mean "
                  f"{b.pulses[touched].mean() if touched.any() else 0:.1f}, max "
                  f"{int(b.pulses.max())}")
    table.add_row("cell reads", f"{int(b.reads.sum())} total; per cell max {int(b.reads.max())}")
    if b.n_mvm_rows:
        table.add_row("MVM input rows", str(b.n_mvm_rows))
    if b.wait:
        table.add_row("waiting", _span(b.wait))
    table.add_row("bench time", f"{_span(b.bench_time)} (read {si(b.timing.read, 's')}, "
                  f"pulse {si(b.timing.pulse, 's')} + width per operation)")
    table.add_row("max voltage a cell sees", f"{si(float(b.v_max.max()), 'V')} (median over "
                  f"cells {si(float(np.median(b.v_max)), 'V')})")
    table.add_row("half-select exposures per cell", f"mean {b.half_selected.mean():.0f}, max "
                  f"{int(b.half_selected.max())}")
    table.add_row("pulse energy per cell", f"mean {si(float(b.energy.mean()), 'J')}, max "
                  f"{si(float(b.energy.max()), 'J')}, total {si(float(b.energy.sum()), 'J')}")
    hits = [f"{k} of {n} {what}" for k, n, what in (
        (b.pulse_hits, int(b.pulses.sum()), "pulses"), (b.read_hits, int(b.reads.sum()),
                                                        "cell reads")) if k]
    table.add_row("current compliance", (", ".join(hits) + " hit " if hits else "nothing hits ")
                  + si(b.compliance, "A"))
    if b.refused:
        table.add_row("refused by the limits", str(b.refused))
    console.print(table)
    for w in est.blocking:
        console.print(f"[bold red]will not work:[/] {w}", highlight=False)
    for w in est.warnings:
        console.print(f"[yellow]warning:[/] {w}", highlight=False)

