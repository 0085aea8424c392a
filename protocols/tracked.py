"""Write-verify that tracks the array's state through a circuit model (wired arrays).

With wire, source and sense resistance a grounded read measures only part of a device's
conductance, and that part depends on every device of the selected row and column; pulses
deliver only part of their amplitude; and programming a cell disturbs the finished cells of
its row and column. This plan keeps an estimate of every device's conductance and aims each
cell's verify reads and pulses through the circuit model at that estimate:

1. Read the array map (one grounded row read per row: an MVM with one row driven at V_read)
   and de-embed it through the model: the estimate of every device.
2. For each cell in the order: its read-space target is the model's read of the cell with the
   cell at its target and the others at their estimates (one model solve). Pulses come from
   the device model (`PulseLaw`: the device voltage that moves the estimated G to the target
   in one pulse, over the delivered share the model predicts, capped at the params' caps and
   the bench limits), learning each device's offset from what its pulses did; without a
   device model, ISPP with amplitudes scaled by the delivered share. The cell ends when a
   verify read lies within `band` x tolerance of its read-space target.
3. Every `map_cells` cells the map is read again and de-embedded (the estimate follows the
   disturb), and the pulse shares are updated.
4. Final passes: read the map, de-embed, and program again the cells whose estimate lies more
   than `retry` x tolerance from their target (disturbed by later cells), up to `passes`
   times; a final map gives the outcome.

The model (`ArrayModel`) sees estimates only, never a simulated device: the same plan runs on
a bench (`xbarlab.analysis.array_model.CircuitArrayModel` builds it from the session's circuit
section). Grounded reads only (a row read is the grounded read of its cells).
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

import numpy as np

from xbarlab.config import WriteVerifyParams
from xbarlab.crossbar import BiasScheme, Cell, FloatArray, MvmResult, ReadResult
from xbarlab.messages import Message, Mvm, Plan, Pulse, Read
from xbarlab.protocols.common import cell_done
from xbarlab.protocols.compensated import scaled_params
from xbarlab.protocols.disturb_plan import Offsets, apply_effect, mate_effect, pass_disturb
from xbarlab.protocols.pulse_law import PulseLaw
from xbarlab.protocols.write_verify import ArrayOutcome, WriteVerifyOutcome, write_verify


class ArrayModel(Protocol):
    """What the plan asks of a circuit model (conductances in S)."""

    def read_map(self, g: FloatArray) -> FloatArray: ...

    def read_cell(self, g: FloatArray, cell: Cell) -> float: ...

    def de_embed(self, reads: FloatArray, guess: FloatArray) -> FloatArray: ...

    def pulse_share(self, g: FloatArray, voltage: float) -> FloatArray: ...

    def mate_voltages(self, g: FloatArray, cell: Cell) -> tuple[FloatArray, FloatArray]: ...


@dataclass(frozen=True)
class TrackedSettings:
    """How closely the plan tracks the array, and how its pulses are chosen."""

    band: float = 0.5  # verify band, as a fraction of the tolerance
    retry: float = 0.8  # final passes: estimates beyond this fraction of the tolerance
    map_cells: int = 512  # cells programmed between two map reads (0: start and end only)
    passes: int = 8  # final passes at most
    aim: float = 1.0  # share of the way to the target each pulse aims at, when far
    max_pulses: int = 40  # per cell and attempt
    stall: int = 3  # pulses at the cap that together move G by < tolerance / 2: stuck
    prior: float = 0.6  # weight of the preset (offset 0) against one observed pulse
    learn_above: float = 0.015  # relative change of G a pulse must make to teach the offset
    min_width: float | None = None  # shortest pulse (s): each pulse takes the shortest width
    # of the ladder params.width / sqrt(10)^k down to it whose voltage stays below the cap
    # (shorter, higher pulses disturb the half-selected cells less); None: params.width only
    largest_first: bool = True
    anticipate: bool = True  # track the half-select disturb and aim against the pass's drift
    trust: bool = True  # plan a cell's first pulse from its estimate, without reading it
    drift_scale: float = 1.2  # first pass: real drift / planned drift (the plan misses the
    # corrections of the real pulses)
    first_band: float | None = 3.0  # the first pass's band (of the tolerance); None: `band`
    plan_pulses: int = 8  # pulses per cell the disturb plan follows (a cell at its cap takes
    # several)
    plan_rounds: int = 2  # disturb plans per pass: each round aims the cells at their target
    # minus the previous round's drift (their pulses, hence the drift, depend on it)


@dataclass(frozen=True)
class TrackedInputs:
    """What a tracked write-verify needs besides its config: the circuit `model` of the array,
    the device `law` (None: ISPP) and the bench's pulse limits [`v_min`, `v_max`] (V)."""

    model: ArrayModel
    law: PulseLaw | None
    v_min: float
    v_max: float


@dataclass(frozen=True, slots=True)
class TrackedOutcome(ArrayOutcome):
    """`ArrayOutcome` with `final` the estimated conductances after the session and `reads`
    the final read map they were de-embedded from."""

    reads: FloatArray = field(default_factory=lambda: np.zeros((0, 0)))
    maps: int = 0  # map reads (one operation each)

    def verdict(self) -> tuple[str, str]:
        status, reason = ArrayOutcome.verdict(self)
        return status, reason.replace("at the final read", "estimated from the final read map")


def read_rows(shape: tuple[int, int], v_read: float) -> Generator[Message, Any, FloatArray]:
    """Grounded read of every cell as one MVM with one row driven at a time; returns the map
    of I / V (S), NaN where the current compliance was reached."""
    m, n = shape
    res: MvmResult = yield Mvm(np.eye(m) * v_read, tag="read_map")
    g = np.asarray(res.currents, dtype=np.float64).reshape(m, n) / v_read
    tripped = np.asarray(res.compliance, dtype=bool).reshape(m, n)
    return np.where(tripped, np.nan, g)


@dataclass
class _Cell:
    """One cell's job: its true target, the G it is aimed at now (the target minus the drift
    the rest of the pass is predicted to bring), that aim's read and the delivered share."""

    cell: Cell
    target: float
    aim: float
    read_target: float
    share: float

    @property
    def gain(self) -> float:
        return self.read_target / self.aim


def _widths(p: WriteVerifyParams, s: TrackedSettings) -> list[float]:
    """The pulse widths (s), longest first."""
    widths = [p.width]
    while s.min_width is not None and widths[-1] / 10 ** 0.5 >= s.min_width * (1 - 1e-9):
        widths.append(widths[-1] / 10 ** 0.5)
    return widths


def _choose(law: PulseLaw, g: float, aim: float, delta: float, cap: float,
            widths: list[float]) -> tuple[float, float]:
    """(device voltage, width) of the pulse the law says moves `g` to `aim`: the shortest
    width whose voltage stays below 0.9 x `cap`, else the longest at the cap."""
    v_dev = cap
    width = widths[0]
    for width in reversed(widths):
        v_dev = law.voltage_for(g, aim, width, delta, cap)
        if abs(v_dev) < 0.9 * abs(cap):
            break
    return v_dev, width


def _caps(p: WriteVerifyParams, share: float, v_max: float, v_min: float) -> tuple[float, float]:
    """Device-voltage caps (SET, RESET) of a cell with delivered `share`."""
    return min(p.set_max, v_max * share), max(p.reset_min, v_min * share)


def _model_pulses(job: _Cell, p: WriteVerifyParams, law: PulseLaw, offsets: Offsets,
                  s: TrackedSettings, v_max: float, v_min: float,
                  on_pulse: Callable[[float, float], None], g_start: float | None = None,
                  band_of_tol: float | None = None) -> Plan:
    """Write-verify of one cell with pulses from the device model; `on_pulse(V, width)` after
    each pulse. A `g_start` estimate far enough from the aim is trusted for the first pulse
    (no verify read before it). Returns a `WriteVerifyOutcome` in true-conductance terms
    (estimates)."""
    cell, target, aim_g = job.cell, job.target, job.aim
    widths = _widths(p, s)
    band = (band_of_tol if band_of_tol is not None else s.band) * p.tolerance * target \
        * job.gain  # in read space
    cap_set, cap_reset = _caps(p, job.share, v_max, v_min)
    n_pulses = n_rev = in_band = stalled = 0
    streak_from = 0.0  # G when the current streak of pulses at the cap began
    last = 0

    def end(g: float, ok: bool, why: str) -> WriteVerifyOutcome:
        return WriteVerifyOutcome(cell, target, g, ok, n_pulses, n_rev, why)

    far_off = g_start is not None and abs(g_start - aim_g) > 3 * s.band * p.tolerance * target
    r: ReadResult | None = None
    if not far_off:
        r = yield Read((cell,), p.v_read, p.read_scheme, tag="verify")
    while True:
        if r is None:  # the first pulse, planned from the estimate
            g = float(g_start)  # type: ignore[arg-type]
        else:
            y = float(r.conductances[0])
            g = y / job.gain
            if bool(r.compliance[0]):
                return end(g, False, f"compliance: the verify read at {p.v_read:+g} V hit the "
                                     "current compliance")
            if abs(y - job.read_target) <= band:
                in_band += 1
                if in_band >= p.n_verify:
                    return end(g, True, "converged")
                r = yield Read((cell,), p.v_read, p.read_scheme, tag="verify")
                continue
        in_band = 0
        if n_pulses >= s.max_pulses:
            return end(g, False, f"{s.max_pulses} pulses spent")
        polarity = 1 if g < aim_g else -1
        if last and polarity != last:
            n_rev += 1
            if n_rev > p.max_reversals:
                return end(g, False, f"more than {p.max_reversals} polarity reversals")
        last = polarity
        far = abs(aim_g - g) > 3 * p.tolerance * target
        aim = g + s.aim * (aim_g - g) if far else aim_g
        cap = cap_set if polarity > 0 else cap_reset
        delta = offsets.get(cell, polarity)
        v_dev, width = _choose(law, g, aim, delta, cap, widths)
        voltage = float(np.clip(v_dev / job.share, v_min, v_max))
        tag = "set" if polarity > 0 else "reset"
        yield Pulse(cell, voltage, width, p.pulse_scheme, tag=tag)
        on_pulse(voltage, width)
        n_pulses += 1
        r = yield Read((cell,), p.v_read, p.read_scheme, tag="verify")
        g_new = float(r.conductances[0]) / job.gain
        v_seen = voltage * job.share
        expected = float(law.after(g, v_seen, width, delta)) - g
        moved = (g_new - g) * polarity  # towards the target
        if max(abs(expected), abs(moved)) > s.learn_above * g and not bool(r.compliance[0]):
            # a pulse that did (almost) nothing is informative too: the device is slower
            seen = law.offset_of(g, g + polarity * max(moved, 1e-4 * g), v_seen, width)
            if seen is not None:
                offsets.learn(cell, polarity, seen)
        at_cap = abs(v_seen) >= abs(cap) * (1 - 1e-9) or voltage in (v_min, v_max)
        if not at_cap:
            stalled = 0
        else:
            if stalled == 0:
                streak_from = g
            stalled += 1
            if (g_new - streak_from) * polarity >= 0.5 * p.tolerance * target:
                stalled = 0  # it moves, slowly: the reads' noise is no reason to give up
        if stalled >= s.stall:
            return end(g_new, False, f"stuck: {s.stall} pulses at {voltage:+.2f} V moved it "
                                     "no further")


def _ispp(job: _Cell, p: WriteVerifyParams, s: TrackedSettings, v_max: float,
          v_min: float) -> Plan:
    """Write-verify of one cell by ISPP with amplitudes scaled by the delivered share, aimed
    at its read-space target; returns a `WriteVerifyOutcome` in true-conductance terms."""
    q = scaled_params(p, 1.0 / job.share, v_max, v_min)
    q = q.model_copy(update={"tolerance": s.band * p.tolerance})
    o: WriteVerifyOutcome = yield from write_verify(job.cell, job.read_target, q)
    return replace(o, target=job.target, g_final=o.g_final / job.gain)


def write_verify_tracked(
    targets: FloatArray, params: WriteVerifyParams, model: ArrayModel, law: PulseLaw | None,
    order: Sequence[Cell], v_max: float, v_min: float,
    settings: TrackedSettings = TrackedSettings(),
) -> Plan:
    """Program `order`'s cells to `targets` (S, true conductances) through `model`; pulses from
    `law` (None: ISPP), capped at the bench's pulse limits [`v_min`, `v_max`] (V). Returns a
    `TrackedOutcome`."""
    if BiasScheme(params.read_scheme) is not BiasScheme.GROUNDED:
        raise ValueError("a tracked write-verify reads rows: it needs the grounded read scheme")
    s = settings
    t = np.asarray(targets, dtype=np.float64)
    if t.ndim != 2 or not np.all(np.isfinite(t)) or (t <= 0).any():
        raise ValueError("targets must be a 2-D map of finite, positive conductances")
    shape = (int(t.shape[0]), int(t.shape[1]))
    v_pulse = 0.5 * (params.set_start + params.set_max)  # a typical SET, for the shares
    offsets = Offsets(shape, s.prior)
    widths = _widths(params, s)
    latest: dict[Cell, WriteVerifyOutcome] = {}
    attempts: list[WriteVerifyOutcome] = []
    maps = 0
    tracking = law is not None and s.anticipate

    def refresh(est: FloatArray) -> Generator[Message, Any, tuple[FloatArray, FloatArray,
                                                                   FloatArray]]:
        nonlocal maps
        reads = yield from read_rows(shape, params.v_read)
        maps += 1
        est = model.de_embed(reads, est)
        voltages.clear()
        return est, reads, model.pulse_share(est, v_pulse)

    voltages: dict[Cell, tuple[FloatArray, FloatArray]] = {}  # since the last map
    scale = [s.drift_scale]  # predicted drift x this = the drift seen (refit every pass)
    finished: dict[Cell, tuple[float, float]] = {}  # this pass: predicted drift, G at finish

    def mate_voltages(est: FloatArray, cell: Cell) -> tuple[FloatArray, FloatArray]:
        if cell not in voltages:
            voltages[cell] = model.mate_voltages(est, cell)
        return voltages[cell]

    def plan_pulse(share: FloatArray
                   ) -> Callable[[Cell, float, float], tuple[float, float, float]]:
        def pulse(cell: Cell, g: float, aim: float) -> tuple[float, float, float]:
            assert law is not None
            if abs(aim - g) <= s.band * params.tolerance * t[cell]:
                return 0.0, 0.0, g
            pol = 1 if aim > g else -1
            cap = _caps(params, float(share[cell]), v_max, v_min)[0 if pol > 0 else 1]
            delta = offsets.get(cell, pol)
            v_dev, width = _choose(law, g, aim, delta, cap, widths)
            voltage = float(np.clip(v_dev / share[cell], v_min, v_max))
            g_next = float(law.after(g, voltage * share[cell], width, delta))
            if abs(g_next - g) < 1e-3 * abs(aim - g):  # it does not move: stop planning it
                g_next = aim
            return voltage, width, g_next
        return pulse

    def drift_of(cells: list[Cell], est: FloatArray, share: FloatArray) -> FloatArray:
        """Predicted drift of each cell after its turn in a pass over `cells`."""
        if not tracking or not cells:
            return np.zeros(shape)
        assert law is not None

        def mates(cell: Cell) -> tuple[FloatArray, FloatArray]:
            return mate_voltages(est, cell)

        drift = np.zeros(shape)
        for _ in range(max(1, s.plan_rounds)):
            aims = np.clip(t - drift, 0.5 * t, 1.5 * t)
            drift = scale[0] * pass_disturb(cells, est, aims, law, mates, plan_pulse(share),
                                            offsets, s.plan_pulses)
        return drift

    def learn_scale(est: FloatArray) -> None:
        """Refit the drift scale on the last pass: the drift its cells showed (the new map's
        estimate against their estimate when they finished) over the drift predicted (the
        plan follows each cell's pulses from the law; the real ones miss and correct)."""
        if not finished:
            return
        cells = list(finished)
        pred = np.array([finished[c][0] for c in cells])
        seen = np.array([est[c] - finished[c][1] for c in cells])
        if float(pred @ pred) > 0:
            scale[0] *= float(np.clip((pred @ seen) / (pred @ pred), 0.5, 3.0))
            scale[0] = float(np.clip(scale[0], 0.5, 6.0))
        finished.clear()

    def program(cells: list[Cell], est: FloatArray, share: FloatArray, n_pass: int,
                ) -> Generator[Message, Any, tuple[FloatArray, FloatArray]]:
        drift = drift_of(cells, est, share)
        for k, cell in enumerate(cells):
            if s.map_cells and k and k % s.map_cells == 0:
                est, _, share = yield from refresh(est)
            aim = float(np.clip(t[cell] - drift[cell], 0.5 * t[cell], 1.5 * t[cell]))
            aimed = est.copy()
            aimed[cell] = aim
            job = _Cell(cell, float(t[cell]), aim, model.read_cell(aimed, cell),
                        float(share[cell]))
            if law is not None:
                vmap = mate_voltages(est, cell) if tracking else None

                def on_pulse(voltage: float, width: float, cell: Cell = cell,
                             vmap: Any = vmap, now: FloatArray = est) -> None:
                    if vmap is not None:
                        assert law is not None
                        apply_effect(now, cell, mate_effect(law, now, cell, vmap, voltage,
                                                            width, offsets))

                o = yield from _model_pulses(job, params, law, offsets, s, v_max, v_min,
                                             on_pulse, float(est[cell]) if s.trust else None,
                                             s.first_band if n_pass == 1 else None)
            else:
                o = yield from _ispp(job, params, s, v_max, v_min)
            est[cell] = o.g_final
            if o.converged:
                finished[cell] = (float(drift[cell]), o.g_final)
            latest[cell] = o
            attempts.append(o)
            yield cell_done(k + 1, len(cells), cell, converged=o.converged,
                            n_pulses=o.n_pulses, g_final=o.g_final, target=o.target,
                            aim=aim, read_target=job.read_target, pulse_gain=1.0 / job.share,
                            reason=o.reason, **{"pass": n_pass})
        return est, share

    def ranked(cells: list[Cell], est: FloatArray) -> list[Cell]:
        if not s.largest_first:
            return cells
        change = np.abs(np.log(est / t))
        return sorted(cells, key=lambda c: -change[c])

    def to_fix(est: FloatArray, share: FloatArray) -> list[Cell]:
        """Finished cells out of the retry band now, or predicted out of it by the pass."""
        ok = [c for c in order if latest[c].converged]  # the others were given up
        tol = s.retry * params.tolerance * t
        chosen = [c for c in ok if abs(est[c] - t[c]) > tol[c]]
        if tracking and chosen:
            drift = drift_of(ranked(chosen, est), est, share)
            chosen = [c for c in ok if abs(est[c] - t[c]) > tol[c]
                      or abs(est[c] + drift[c] - t[c]) > tol[c]]
        return ranked(chosen, est)

    order = [(int(r), int(c)) for r, c in order]
    est, reads, share = yield from refresh(np.full(shape, float(np.median(t))))
    est, share = yield from program(ranked(order, est), est, share, 1)
    n_pass = 1
    est, reads, share = yield from refresh(est)
    learn_scale(est)
    for n_pass in range(2, s.passes + 2):
        again = to_fix(est, share)
        if not again:
            n_pass -= 1
            break
        est, share = yield from program(again, est, share, n_pass)
        est, reads, share = yield from refresh(est)
        learn_scale(est)
    return TrackedOutcome(t, [latest[c] for c in order], est, params.tolerance, attempts,
                          n_pass, reads=reads, maps=maps)
