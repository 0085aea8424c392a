"""Nodal solver for passive (0T1R) crossbars: wire, source and sense resistance, sneak paths,
nonlinear devices.

Pure API: `CrossbarSolver(wires).solve(g, terminals, iv)` returns every node voltage, every
device's voltage and current and every terminal current (`CrossbarSolution`). The topology
is documented in `xbarlab.sim.solver_network`. `WireCircuit` adapts it to the `Circuit`
protocol that `SimCrossbar` uses (line potentials with NaN = floating).

Speed by design: cases of a batch that share a pad pattern share one matrix; the line
engine eliminates row lines exactly (tridiagonal) and runs preconditioned CG on the column
nodes (no whole-array factorization; best for one or a few inputs); the direct engine
(multifrontal Cholesky on the grid's nested-dissection tree, dense fronts batched by shape,
`solver_fronts`; SuperLU where zero-resistance segments merge nodes) covers every other
configuration, solves a batch of inputs with matrix products, and is cached keyed on the
device conductances, so a read after a pulse refactors only if a conductance actually
changed. Its symbolic analysis depends only on the shape and is shared by all solvers.
Nonlinear devices: damped Newton on the same engines; non-convergence raises
`NonConvergenceError` with the residual.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, cast

import numpy as np

from xbarlab.crossbar import BoolArray, FloatArray
from xbarlab.sim import circuit_kernels, solver_case_kernels, solver_column_kernels, solver_kernels
from xbarlab.sim.blas import one_blas_thread
from xbarlab.sim.circuit import CircuitSolution, check_conductances, line_currents
from xbarlab.sim.devices import DeviceArray
from xbarlab.sim.iv import IVLaw, LinearIV, SinhIV
from xbarlab.sim.solver_case_kernels import LineFactors
from xbarlab.sim.solver_network import (
    CircuitError,
    DirectEngine,
    LineEngine,
    NonConvergenceError,
    Pads,
    Terminals,
    Wires,
)
from xbarlab.sim.solver_ports import MAX_PORTS, PadPorts, reference_pattern

__all__ = [
    "CircuitError",
    "CrossbarSolution",
    "CrossbarSolver",
    "DeviceLaw",
    "NonConvergenceError",
    "Terminals",
    "WireCircuit",
    "Wires",
    "lumped_line_potentials",
]

Engine = Literal["auto", "direct", "lines"]
Side = Literal["start", "end", "both"]


@dataclass(frozen=True, slots=True)
class DeviceLaw:
    """Device currents and small-signal conductances as functions of device voltage."""

    current: Callable[[FloatArray], FloatArray]
    didv: Callable[[FloatArray], FloatArray]
    linear: bool
    g0: FloatArray  # dI/dV at 0 V, (M, N)
    #: (ga, b) of a sinh law I = ga sinh(b V) with one b (the compiled Newton's form)
    sinh: tuple[FloatArray, float] | None = None
    #: `circuit_kernels.conductance_state` of g0 when the devices found it, else -1
    g0_state: int = -1

    @classmethod
    def of_iv(cls, g: FloatArray, iv: IVLaw) -> DeviceLaw:
        g = np.asarray(g, dtype=np.float64)
        sinh = None
        if type(iv) is SinhIV and np.ndim(iv.a) == 0 and np.ndim(iv.b) == 0:
            sinh = (np.multiply(iv.a, g), float(iv.b))
        return cls(
            lambda v: iv.current(g, v),
            lambda v: iv.didv(g, v),
            bool(iv.linear),
            np.asarray(iv.didv(g, np.zeros(g.shape)), dtype=np.float64),
            sinh,
        )

    @classmethod
    def of_devices(cls, devices: DeviceArray, *, linearize: bool = False) -> DeviceLaw:
        """The law of a `DeviceArray`; `linearize` uses its small-signal conductance."""
        iv = getattr(devices, "iv", None)
        ab = iv.scalar_slope if type(iv) is SinhIV else None
        state = -1
        if ab is not None:
            # dI/dV at 0 V without a pass of cosh(0): the same product, bit for bit
            small = getattr(devices, "small_signal", None)
            if small is not None:  # the devices keep it per state, checked (TiO2Devices)
                g, g0, state = small(float(ab))
            else:
                g = devices.g
                g0 = np.multiply(ab, g)
                # a snapshot of a read-only state is read-only too: solvers key kept factors
                # and checks on it (`CrossbarSolver.solve_one`)
                g0.flags.writeable = bool(g.flags.writeable)
            if not (devices.linear or linearize):
                sinh_iv = cast(SinhIV, iv)
                ga = np.multiply(sinh_iv.a, g)
                return cls(devices.current, devices.conductance, False, g0,
                           (ga, float(sinh_iv.b)), state)
        else:
            g0 = np.asarray(devices.conductance(np.zeros(devices.shape)), dtype=np.float64)
        if devices.linear or linearize:
            return cls(
                lambda v: np.multiply(g0, v), lambda v: np.broadcast_to(g0, np.shape(v)).copy(),
                True, g0, None, state,
            )
        return cls(devices.current, devices.conductance, False, g0, None, state)


@dataclass(frozen=True, slots=True)
class CrossbarSolution:
    """A solved batch of B cases on an M x N array (SI units).

    `v_row`, `v_col`: (B, M, N) potentials of the row- and column-wire node at every cell.
    `v_dev`, `i_dev`: (B, M, N) device voltage (row minus column) and current (row to column).
    `i_pad`: (B, 2M + 2N) current each pad's driver delivers into the array (0 if open), pads
    in the order row starts, row ends, column starts, column ends.
    `iterations`: Newton iterations (0 for linear devices); `residual`: largest KCL residual
    over all free nodes (A); `method`: the engine(s) used.
    """

    v_row: FloatArray
    v_col: FloatArray
    v_dev: FloatArray
    i_dev: FloatArray
    i_pad: FloatArray
    iterations: int
    residual: float
    method: str

    @property
    def shape(self) -> tuple[int, int]:
        return (self.v_dev.shape[1], self.v_dev.shape[2])

    def _pads(self, k: int) -> FloatArray:
        m, n = self.shape
        edges = [0, m, 2 * m, 2 * m + n, 2 * m + 2 * n]
        return self.i_pad[:, edges[k] : edges[k + 1]]

    @property
    def i_row_start(self) -> FloatArray:
        return self._pads(0)

    @property
    def i_row_end(self) -> FloatArray:
        return self._pads(1)

    @property
    def i_col_start(self) -> FloatArray:
        return self._pads(2)

    @property
    def i_col_end(self) -> FloatArray:
        return self._pads(3)

    @property
    def i_rows(self) -> FloatArray:
        """(B, M) current delivered into each row by its driver(s)."""
        return line_currents(self.i_pad, self.shape)[0]

    @property
    def i_cols(self) -> FloatArray:
        """(B, N) current each column's terminal(s) sink out of the array (sensed current)."""
        return line_currents(self.i_pad, self.shape)[1]


class CrossbarSolver:
    """Solves one array's wiring for many conductance states and bias batches.

    `engine`: "auto" (line engine where it applies and converges, else direct; a linear state
    solved `lu_after` times (16x that with the compiled
    line engine) gets a cached LU), "direct" or "lines" (raise where it does not
    apply). Engines are cached per pad pattern.
    """

    def __init__(
        self,
        wires: Wires,
        *,
        engine: Engine = "auto",
        max_newton: int = 50,
        newton_rtol: float = 1e-11,
        cache_size: int = 8,
        lu_after: int = 8,
        compiled: bool = True,
    ) -> None:
        if engine not in ("auto", "direct", "lines"):
            raise ValueError(f"engine must be 'auto', 'direct' or 'lines', got {engine!r}")
        if engine == "lines" and not wires.all_positive:
            raise CircuitError("the line engine needs every segment resistance > 0")
        self.wires = wires
        self._shape = wires.shape  # asked for on every single-cell case
        self.engine = engine
        self.max_newton = max_newton
        self.newton_rtol = newton_rtol
        self.pads = Pads.of(wires)
        self._lines_ok = wires.all_positive
        self._cache_size = cache_size
        self._direct: OrderedDict[bytes, DirectEngine] = OrderedDict()
        self._lines: OrderedDict[bytes, LineEngine] = OrderedDict()
        self._connected: OrderedDict[bytes, bool] = OrderedDict()
        self._seen: dict[bytes, tuple[FloatArray, int]] = {}
        self._ports: PadPorts | None = None
        self._warm: OrderedDict[bytes, tuple[float, FloatArray]] = OrderedDict()
        #: the solution each linear warm start replaced (a second start vector)
        self._warm_prev: dict[bytes, tuple[float, FloatArray]] = {}
        #: device voltages of the last direct solve, kept for its solution (no recompute)
        self._last_v_dev: FloatArray | None = None
        self._valid_g: FloatArray | None = None  # the read-only state `solve_one` checked
        #: line engine and driven pads per normalized single-case pad pattern (`_one_setup`)
        self._one_engines: dict[bytes, tuple[LineEngine, BoolArray]] = {}
        self._all_conduct = False
        #: `_one_setup`'s normalized and clean pad voltages for `column_one` (reused)
        self._scratch: tuple[FloatArray, FloatArray] | None = None
        self.lu_after = lu_after
        #: compiled line engine with warm starts (False: the numpy engine, cold starts)
        self.compiled = compiled and solver_kernels.AVAILABLE

    @property
    def shape(self) -> tuple[int, int]:
        return self._shape

    # -- engines -------------------------------------------------------------------------
    def _get(self, cache: OrderedDict[bytes, Any], key: bytes, make: Callable[[], Any]) -> Any:
        if key in cache:
            cache.move_to_end(key)
            return cache[key]
        eng = make()
        cache[key] = eng
        while len(cache) > self._cache_size:
            cache.popitem(last=False)
        return eng

    def direct_engine(self, driven: BoolArray) -> DirectEngine:
        return self._get(
            self._direct, driven.tobytes(), lambda: DirectEngine(self.wires, driven)
        )

    def _prefer_lines(self, driven: BoolArray, law: DeviceLaw, batch: int) -> bool:
        """Auto policy: the line engine, unless a direct LU for this very linear state is
        cached (a solve is then cheaper) or more than `lu_after` right-hand sides have been
        solved for it, this batch included (factor once, then reuse)."""
        if not self._lines_ok:
            return False
        if not law.linear or (self.compiled and batch == 1):
            return True  # one compiled line solve beats a one-input direct solve
        key = driven.tobytes()
        deng = self._direct.get(key)
        if deng is not None and deng.has_factor(law.g0):
            return False
        seen = self._seen.get(key)
        same = seen is not None and np.array_equal(seen[0], law.g0)
        count = (seen[1] if seen is not None and same else 0) + batch
        self._seen[key] = (np.array(law.g0, copy=True), count)
        while len(self._seen) > self._cache_size:
            self._seen.pop(next(iter(self._seen)))
        # a compiled line solve costs about 1/100 of a factorization: factor later
        return count <= (16 * self.lu_after if self.compiled else self.lu_after)

    def check_connected(self, driven: BoolArray, conducting: BoolArray) -> None:
        """Raise `CircuitError` naming lines without a path to a driven pad (cached)."""
        if conducting.all():
            return  # every line reaches every crossing line through a device
        key = driven.tobytes() + conducting.tobytes()
        if key in self._connected:
            return
        self.direct_engine(driven).check_connected(conducting)
        self._get(self._connected, key, lambda: True)

    def line_engine(self, driven: BoolArray) -> LineEngine:
        def make() -> LineEngine:
            y = np.where(driven, 1.0 / self.pads.r_series, 0.0)[None, :]
            eng = LineEngine(self.wires, y)
            eng.compiled = eng.compiled and self.compiled
            return eng

        return self._get(self._lines, driven.tobytes(), make)

    # -- public ----------------------------------------------------------------------------
    def solve(
        self,
        g: FloatArray | None,
        terminals: Terminals,
        iv: IVLaw | None = None,
        *,
        law: DeviceLaw | None = None,
    ) -> CrossbarSolution:
        """Solve every case of `terminals` for conductances `g` (M, N) under I-V law `iv`
        (default linear), or under an explicit `law` (then `g` may be None)."""
        law, volts, driven = self._prepare(g, terminals, iv, law)
        if volts.shape[0] == 1:  # a single-cell operation: the compiled single-case path
            one = self.solve_one(volts[0], law)
            if one is not None:
                return one
        m, n = self.shape
        out = _Accumulator(volts.shape[0], m, n)
        conducting = law.g0 > 0
        for pattern, cases in _group_rows(driven):
            self.check_connected(pattern, conducting)
            self._solve_group(pattern, volts[cases], law, cases, out)
        return out.result()

    def pad_currents(
        self,
        g: FloatArray | None,
        terminals: Terminals,
        iv: IVLaw | None = None,
        *,
        law: DeviceLaw | None = None,
    ) -> FloatArray:
        """Only the pad currents (B, 2M + 2N) of `solve`: what the terminals measure.

        For linear devices no case's node voltages are formed: cases driving few pads
        (floating-scheme reads, one circuit per cell) come from one pad multiport reduction
        (`solver_ports`), cases sharing a pad pattern from superposition of its independent
        cases. Nonlinear devices: the full solve.
        """
        law, volts, driven = self._prepare(g, terminals, iv, law)
        if not law.linear:
            return self._pad_currents_nonlinear(terminals, law, volts)
        if volts.shape[0] == 1:  # a single-cell operation
            self.check_connected(driven[0], law.g0 > 0)
            return self._pad_currents_group(driven[0], volts, law)
        out = np.zeros_like(volts)
        rest = np.ones(volts.shape[0], dtype=bool)
        few = driven.sum(axis=1) <= MAX_PORTS
        if few.sum() > 4 and len(_group_rows(driven[few])) > 4:
            ports = self._pad_ports(law, driven[few].any(axis=0))
            if ports is not None:
                out[few] = ports.pad_currents(volts[few])  # open pads are NaN already
                rest = ~few
        left = np.flatnonzero(rest)
        conducting = law.g0 > 0
        for pattern, cases in _group_rows(driven[left]) if left.size else []:
            self.check_connected(pattern, conducting)
            out[left[cases]] = self._pad_currents_group(pattern, volts[left[cases]], law)
        return out

    # -- internals -------------------------------------------------------------------------
    def _pad_currents_nonlinear(
        self, terminals: Terminals, law: DeviceLaw, volts: FloatArray
    ) -> FloatArray:
        """`pad_currents` with nonlinear devices: each distinct case once (a whole-array
        grounded read repeats its row's case for every cell of the row), one at a time on
        the compiled single-case path where it applies, else the batch's full solve."""
        bsz, width = volts.shape
        rows = np.ascontiguousarray(volts).view(np.dtype((np.void, 8 * width))).ravel()
        _, first, inverse = np.unique(rows, return_index=True, return_inverse=True)
        if bsz == 1 or len(first) > bsz // 2:
            return self.solve(None, terminals, law=law).i_pad
        out = np.empty((len(first), width))
        for k, case in enumerate(first):
            one = self.solve_one(volts[case], law, devices=False)
            if one is None:  # not on the single-case path: the batch's way, for the rest
                m, n = self.shape
                v = volts[first[k:]]
                rest = Terminals(v[:, :m], v[:, m : 2 * m], v[:, 2 * m : 2 * m + n],
                                 v[:, 2 * m + n :])
                out[k:] = self.solve(None, rest, law=law).i_pad
                break
            out[k] = one.i_pad[0]
        i_pad: FloatArray = out[inverse.ravel()]
        return i_pad

    def _prepare(
        self, g: FloatArray | None, terminals: Terminals, iv: IVLaw | None,
        law: DeviceLaw | None,
    ) -> tuple[DeviceLaw, FloatArray, BoolArray]:
        """Validated device law, pad voltages (B, P) and their driven mask."""
        m, n = self.shape
        if law is None:
            if g is None:
                raise CircuitError("give the conductances g or a DeviceLaw")
            g = np.asarray(g, dtype=np.float64)
            if g.shape != (m, n):
                raise CircuitError(f"g has shape {g.shape}, the wiring is for {(m, n)}")
            if not np.all(np.isfinite(g)) or np.any(g < 0):
                raise CircuitError("g must be finite and >= 0 S everywhere")
            law = DeviceLaw.of_iv(g, iv if iv is not None else LinearIV())
        if law.g0.shape != (m, n):
            raise CircuitError(f"device array is {law.g0.shape}, the wiring is for {(m, n)}")
        check_conductances(law.g0)
        if terminals.row_start.shape[1] != m or terminals.col_start.shape[1] != n:
            raise CircuitError(
                f"terminals are for {terminals.row_start.shape[1]} x "
                f"{terminals.col_start.shape[1]}, the array is {m} x {n}"
            )
        volts = terminals.stacked()
        driven = ~np.isnan(volts)
        if not driven.any(axis=1).all():
            b = int(np.argmin(driven.any(axis=1)))
            raise CircuitError(f"case {b}: every terminal is open; drive at least one line")
        return law, volts, driven

    def _pad_ports(self, law: DeviceLaw, used: BoolArray) -> PadPorts | None:
        """The pad multiport of this linear state for the `used` pads (cached), None if some
        line is connected to the rest only through non-conducting devices."""
        cached = self._ports
        if (cached is not None and np.array_equal(cached.g, law.g0)
                and not (used & ~cached.used).any()):
            return cached
        ref = reference_pattern(len(self.pads.tap))
        try:
            self.check_connected(ref, law.g0 > 0)
        except CircuitError:
            return None
        self._ports = PadPorts(self.direct_engine(ref), self.pads, law.g0, used)
        return self._ports

    def _pad_currents_group(
        self, driven: BoolArray, volts: FloatArray, law: DeviceLaw
    ) -> FloatArray:
        if volts.shape[0] > 8:
            basis = _voltage_basis(volts, driven)
            if basis is not None:
                virtual, coef = basis
                i_pad: FloatArray = coef @ self._solve_cases(driven, virtual, law)[0][3]
                return i_pad
        return self._solve_cases(driven, volts, law)[0][3]

    def _solve_group(
        self,
        driven: BoolArray,
        volts: FloatArray,
        law: DeviceLaw,
        cases: np.ndarray[Any, np.dtype[np.int64]],
        out: _Accumulator,
    ) -> None:
        if law.linear and volts.shape[0] > 8:
            basis = _voltage_basis(volts, driven)
            if basis is not None:
                # superposition: solve a basis of the cases' pad voltages, combine exactly
                virtual, coef = basis
                res, method = self._solve_cases(driven, virtual, law)
                vr, vc, i_dev, i_pad, iters, resid = res
                mix = lambda x: np.tensordot(coef, x, axes=1)  # noqa: E731
                out.put(cases, mix(vr), mix(vc), mix(i_dev), mix(i_pad), iters,
                        resid * float(np.abs(coef).sum(axis=1).max()), method=method)
                return
        res, method = self._solve_cases(driven, volts, law)
        out.put(cases, *res, method=method, v_dev=self._last_v_dev)

    def _warm_start(self, key: tuple[bytes, float] | None) -> FloatArray | None:
        """The state of the last solved case with the same pad pattern and the same voltages
        up to a factor, scaled to this case: column-node voltages (M, N) for linear devices
        (exact up to the device changes since), tap voltages (1, 2, M, N) for nonlinear
        ones (a start for Newton)."""
        if key is None:
            return None
        hit = self._warm.get(key[0])
        if hit is None:
            return None
        self._warm.move_to_end(key[0])
        return hit[1] * (key[1] / hit[0])

    def _keep_warm(self, key: tuple[bytes, float], x: FloatArray) -> None:
        self._warm[key[0]] = (key[1], x)
        while len(self._warm) > self._cache_size:
            self._warm.popitem(last=False)

    def _line_case(
        self, eng: LineEngine, driven: BoolArray, volts: FloatArray, law: DeviceLaw,
        key: tuple[bytes, float], warm: FloatArray | None, devices: bool = True,
        clean: FloatArray | None = None,
    ) -> _Result:
        """One linear case on the compiled line engine (a single-cell operation), warm
        started from the last case of the same shape, on chain factors kept while the
        conductances stay the same read-only array; its column voltages are kept."""
        fac = eng.case
        if fac is None:
            fac = eng.case = LineFactors(eng.y_row, eng.y_col_rows, eng.pad_y[0])
        if clean is None:
            clean = np.where(driven, volts[0], 0.0)
        before = self._warm_prev.get(key[0])  # the solution before the warm start
        x_prev = before[1] * (key[1] / before[0]) if before is not None and warm is not None \
            else None
        last = self._warm.get(key[0])
        vr, vc, v_dev, i_dev, i_pad, its, ok, resid = fac.solve(
            clean, law.g0, warm, devices=devices, x_prev=x_prev
        )
        if its < 0:
            raise CircuitError("line matrix not positive definite (check for g < 0)")
        if not ok:
            raise _LinesFailed
        if last is not None:
            self._warm_prev[key[0]] = last
            while len(self._warm_prev) > self._cache_size:
                self._warm_prev.pop(next(iter(self._warm_prev)))
        self._keep_warm(key, vc)
        self._last_v_dev = None if v_dev is None else v_dev[None]
        return (vr[None], vc[None], np.empty((1, 0, 0)) if i_dev is None else i_dev[None],
                i_pad[None], 0, resid)

    def solve_one(self, volts: FloatArray, law: DeviceLaw, *, devices: bool = True
                  ) -> CrossbarSolution | None:
        """One case, pad voltages `volts` (P,) (NaN = open), on the compiled line engine
        with a warm start: a single-cell read or pulse. Linear laws: kept chain factors;
        sinh laws with one b (`DeviceLaw.sinh`): compiled Newton from the last case of the
        same shape. None where that path does not apply (the caller then takes `solve`).
        With `devices` False (linear) only the pad currents are formed (`v_dev`, `i_dev`
        are empty)."""
        setup = self._one_setup(volts, law)
        if setup is None:
            return None
        eng, driven, clean, key = setup
        warm = self._warm_start(key)
        if not law.linear:
            return self._sinh_case(eng, clean, law, key, warm)
        try:
            vr, vc, i_dev, i_pad, _, resid = self._line_case(
                eng, driven, volts[None], law, key, warm, devices, clean
            )
        except _LinesFailed:
            return None
        v_dev = self._last_v_dev if devices else None
        self._last_v_dev = None
        empty = np.empty((1, 0, 0))
        return CrossbarSolution(vr, vc, empty if v_dev is None else v_dev, i_dev, i_pad, 0,
                                resid, "lines")

    def column_one(self, volts: FloatArray, law: DeviceLaw, col: int,
                   v_dev: FloatArray | None = None) -> float | None:
        """`solve_one` for a single-cell read or pulse with linear devices, reduced to what
        they need: the current column `col` sinks (``i_cols[0, col]`` to rounding) and, if
        `v_dev` (M, N) is given, the device voltages written into it
        (`solver_column_kernels`). None where the compiled path does not apply."""
        if not law.linear or not solver_column_kernels.AVAILABLE:
            return None
        setup = self._one_setup(volts, law, scratch=True)
        if setup is None:
            return None
        eng, _, clean, (key, s) = setup
        fac = eng.case
        if fac is None:
            fac = eng.case = LineFactors(eng.y_row, eng.y_col_rows, eng.pad_y[0])
        last = self._warm.get(key)
        before = self._warm_prev.get(key) if last is not None else None
        i_col, vc, its, ok = solver_column_kernels.column_case(
            fac, clean, law.g0, col,
            None if last is None else (s / last[0], last[1]),
            None if before is None else (s / before[0], before[1]), v_dev,
        )
        if its < 0:
            raise CircuitError("line matrix not positive definite (check for g < 0)")
        if not ok:
            return None
        if last is not None:
            self._warm_prev[key] = last
            while len(self._warm_prev) > self._cache_size:
                self._warm_prev.pop(next(iter(self._warm_prev)))
            self._warm.move_to_end(key)
        self._keep_warm((key, s), vc)
        return i_col

    def _one_setup(
        self, volts: FloatArray, law: DeviceLaw, *, scratch: bool = False
    ) -> tuple[LineEngine, BoolArray, FloatArray, tuple[bytes, float]] | None:
        """What a single case on the compiled line engine needs: (line engine, driven pads,
        pad voltages with 0 where open, warm-start key); None where that path does not
        apply. The conductances are checked once per read-only state; the engine is kept
        per normalized pad pattern (the warm-start key). With `scratch` the pad voltages
        are written into the solver's scratch array (valid until the next call: for a
        caller that only reads them during the case)."""
        m, n = self.shape
        if not ((law.linear or law.sinh is not None) and self.compiled and self._lines_ok
                and self.engine != "direct" and m * n > 1 and solver_case_kernels.AVAILABLE):
            return None
        g0 = law.g0
        if g0 is not self._valid_g:  # checked once per read-only state
            if g0.shape != (m, n) or g0.dtype != np.float64:
                return None
            state = law.g0_state if law.g0_state >= 0 else \
                circuit_kernels.conductance_state(g0)
            if state == 0:
                check_conductances(g0)  # raises, naming the device
            self._valid_g = g0 if not g0.flags.writeable else None
            self._all_conduct = state == 2
        if scratch:
            kept = self._scratch
            if kept is None or kept[0].shape != volts.shape:
                kept = self._scratch = (np.empty_like(volts), np.empty_like(volts))
            scaled, clean = kept
        else:
            scaled, clean = np.empty_like(volts), np.empty_like(volts)
        s = solver_case_kernels.normalized(volts, scaled, clean)
        if s == 0.0:
            return None
        key = scaled.tobytes() + (b"L" if law.linear else b"N")
        hit = self._one_engines.get(key)
        if hit is None:
            driven = ~np.isnan(volts)
            hit = self._one_engines[key] = (self.line_engine(driven), driven)
            while len(self._one_engines) > 4 * self._cache_size:
                self._one_engines.pop(next(iter(self._one_engines)))
        eng, driven = hit
        if not self._all_conduct:
            self.check_connected(driven, g0 > 0)
        return eng, driven, clean, (key, s)

    def _sinh_case(
        self, eng: LineEngine, v: FloatArray, law: DeviceLaw, key: tuple[bytes, float],
        warm: FloatArray | None,
    ) -> CrossbarSolution | None:
        """`solve_one` with sinh devices, pad voltages `v` (0 where open): compiled Newton
        (`LineFactors.solve_sinh`), from the warm start if any (cold again if it misleads
        Newton)."""
        assert law.sinh is not None
        fac = eng.case
        if fac is None:
            fac = eng.case = LineFactors(eng.y_row, eng.y_col_rows, eng.pad_y[0])
        ga, b = law.sinh
        for x0 in ((warm[0], None) if warm is not None else (None,)):
            vr, vc, v_dev, i_dev, i_pad, its, status, resid = fac.solve_sinh(
                v, ga, law.g0, b, law.g0, x0, rtol=self.newton_rtol,
                max_newton=self.max_newton, key=key[0],
            )
            if status != 1:
                break
        if status == 3:
            raise CircuitError("line matrix not positive definite (check for g < 0)")
        if status == 2:
            return None  # a line solve hit its cap: the general path decides
        if status == 1:
            raise NonConvergenceError(
                f"Newton did not converge in {self.max_newton} iterations", resid
            )
        self._keep_warm(key, fac.state[None])  # new for every solve: kept as it is
        return CrossbarSolution(vr[None], vc[None], v_dev[None], i_dev[None], i_pad[None], its,
                                resid, "lines")

    def _solve_cases(
        self, driven: BoolArray, volts: FloatArray, law: DeviceLaw
    ) -> tuple[_Result, str]:
        m, n = self.shape
        self._last_v_dev = None
        use_lines = m * n > 1 and (
            self.engine == "lines"
            or (self.engine == "auto" and self._prefer_lines(driven, law, volts.shape[0]))
        )
        if use_lines:
            eng = self.line_engine(driven)
            key = _warm_key(driven, volts, law.linear) if eng.compiled else None
            warm = self._warm_start(key)
            try:
                if key is not None and law.linear:
                    res = self._line_case(eng, driven, volts, law, key, warm)
                    return res, "lines"
                prob = _LineProblem(eng, self.pads, driven, volts)
                try:
                    res = prob.run(law, self, warm)
                except NonConvergenceError:
                    if warm is None:
                        raise
                    res = prob.run(law, self)  # the warm start misled Newton: start cold
            except _LinesFailed:
                if self.engine == "lines":
                    raise NonConvergenceError(
                        "line engine: CG did not converge; use engine 'direct'", float("nan")
                    ) from None
            else:
                if key is not None:
                    self._keep_warm(key, prob.x)
                return res, "lines"
        deng = self.direct_engine(driven)
        dprob = _DirectProblem(deng, volts)
        res = dprob.run(law, self)
        self._last_v_dev = dprob.v_dev
        return res, "direct"


def _warm_key(
    driven: BoolArray, volts: FloatArray, linear: bool
) -> tuple[bytes, float] | None:
    """For a single case: a key equal for cases with the same pad pattern and proportional
    driven voltages (same device law kind), and the proportionality factor."""
    if volts.shape[0] != 1:
        return None
    v = volts[0, driven]
    if not v.size:
        return None
    s = float(v[int(np.argmax(np.abs(v)))])
    if s == 0.0:
        return None
    # exact bytes: a rounding difference between amplitudes only costs a warm start
    return driven.tobytes() + (v / s).tobytes() + (b"L" if linear else b"N"), s


def _voltage_basis(
    volts: FloatArray, driven: BoolArray, min_saving: float = 0.75
) -> tuple[FloatArray, FloatArray] | None:
    """Basis cases for a batch's driven-pad voltages, as pad voltages (r, P) (open pads NaN),
    and the coefficients (B, r) that rebuild every case from them; None if they do not
    reproduce the batch to 1e-12 of its scale, or when the basis would not be smaller than
    `min_saving` of the batch. The basis is the first case plus an
    orthonormal basis of the differences to it (eigenvectors of their Gram matrix; taking
    the differences keeps one dominant common direction from drowning the others)."""
    v = volts[:, driven]
    scale = float(np.abs(v).max()) if v.size else 0.0
    if scale == 0.0:
        basis = np.zeros((1, v.shape[1]))
        coef = np.zeros((v.shape[0], 1))
    else:
        d = (v - v[0]) / scale
        with one_blas_thread():
            if d.shape[0] < d.shape[1]:
                # the rank from the smaller Gram matrix first: independent inputs end here
                small = np.linalg.eigvalsh(d @ d.T)
                rank = np.count_nonzero(small > 1e-12 * max(float(small[-1]), 1e-300))
                if rank + 1 >= min_saving * v.shape[0]:
                    return None
            lam, vecs = np.linalg.eigh(d.T @ d)  # ascending
            keep = lam > 1e-12 * max(float(lam[-1]), 1e-300)
            wt = vecs[:, keep].T
            basis = np.vstack([v[:1], wt * scale])
            coef = np.hstack([np.ones((v.shape[0], 1)), d @ wt.T])
        if basis.shape[0] >= min_saving * v.shape[0]:
            return None
        if np.abs(coef @ basis - v).max() > 1e-12 * scale:
            return None
    virtual = np.full((basis.shape[0], volts.shape[1]), np.nan)
    virtual[:, driven] = basis
    return virtual, coef


def _group_rows(
    driven: BoolArray,
) -> list[tuple[BoolArray, np.ndarray[Any, np.dtype[np.int64]]]]:
    """Cases grouped by identical pad pattern (one matrix per group)."""
    if (driven == driven[0]).all():
        return [(driven[0], np.arange(driven.shape[0]))]
    groups: dict[bytes, list[int]] = {}
    for b, row in enumerate(driven):
        groups.setdefault(row.tobytes(), []).append(b)
    return [(driven[idx[0]], np.array(idx, dtype=np.int64)) for idx in groups.values()]


class _LinesFailed(Exception):
    """The line engine's CG hit its iteration cap (the caller falls back to direct)."""


_Result = tuple[FloatArray, FloatArray, FloatArray, FloatArray, int, float]


class _Accumulator:
    """Collects the results of the pad-pattern groups of one batch; a group that is the
    whole batch is kept as is (no copy)."""

    def __init__(self, bsz: int, m: int, n: int) -> None:
        self.bsz, self.m, self.n = bsz, m, n
        self.parts: tuple[FloatArray, FloatArray, FloatArray, FloatArray] | None = None
        self.v_dev: FloatArray | None = None
        self.iterations = 0
        self.residual = 0.0
        self.methods: set[str] = set()

    def put(
        self,
        cases: np.ndarray[Any, np.dtype[np.int64]],
        vr: FloatArray,
        vc: FloatArray,
        i_dev: FloatArray,
        i_pad: FloatArray,
        iterations: int,
        residual: float,
        *,
        method: str,
        v_dev: FloatArray | None = None,
    ) -> None:
        if self.parts is None and len(cases) == self.bsz:  # the whole batch, in order
            self.parts = (vr, vc, i_dev, i_pad)
            self.v_dev = v_dev
        else:
            if self.parts is None:
                shape = (self.bsz, self.m, self.n)
                self.parts = (np.zeros(shape), np.zeros(shape), np.zeros(shape),
                              np.zeros((self.bsz, i_pad.shape[1])))
            for whole, part in zip(self.parts, (vr, vc, i_dev, i_pad), strict=True):
                whole[cases] = part
            self.v_dev = None
        self.iterations = max(self.iterations, iterations)
        self.residual = max(self.residual, residual)
        self.methods.add(method)

    def result(self) -> CrossbarSolution:
        assert self.parts is not None
        v_row, v_col, i_dev, i_pad = self.parts
        v_dev = self.v_dev if self.v_dev is not None else v_row - v_col
        return CrossbarSolution(
            v_row, v_col, v_dev, i_dev, i_pad,
            self.iterations, self.residual, "+".join(sorted(self.methods)),
        )


def _newton(
    x0: FloatArray,
    residual: Callable[[FloatArray], tuple[FloatArray, FloatArray]],
    step: Callable[[FloatArray, FloatArray], FloatArray],
    v_dev_of: Callable[[FloatArray], FloatArray],
    law: DeviceLaw,
    i_dev_scale: float,
    i_wire_scale: float,
    solver: CrossbarSolver,
) -> tuple[FloatArray, int, float]:
    """Damped Newton on node state x (B, ...). `residual(x)` -> (F, i_dev); `step(dg, F)` ->
    dx solving J dx = -F for device conductances dg (B, M, N)."""
    x = x0
    f, _ = residual(x)
    fnorm = np.abs(f).reshape(f.shape[0], -1).max(axis=1)
    # relative to the device currents, floored at what rounding in the pad terms allows
    atol = max(solver.newton_rtol * i_dev_scale, 16 * np.finfo(float).eps * i_wire_scale)
    for it in range(1, solver.max_newton + 1):
        if np.all(fnorm <= atol):
            return x, it - 1, float(fnorm.max())
        dg = law.didv(v_dev_of(x))
        dx = step(dg, f)
        t = np.ones(x.shape[0])
        shape = (-1,) + (1,) * (x.ndim - 1)
        while True:
            x_try = x + t.reshape(shape) * dx
            f_try, _ = residual(x_try)
            fn_try = np.abs(f_try).reshape(f.shape[0], -1).max(axis=1)
            bad = ~(fn_try <= (1.0 - 1e-4 * t) * fnorm) & (fnorm > atol)
            if not bad.any() or t.min() < 1e-4:
                break
            t = np.where(bad, t / 2.0, t)
        x, f, fnorm = x_try, f_try, fn_try
    if np.all(fnorm <= atol):
        return x, solver.max_newton, float(fnorm.max())
    raise NonConvergenceError(
        f"Newton did not converge in {solver.max_newton} iterations "
        f"(tolerance {atol:.3e} A)", float(fnorm.max())
    )


class _LineProblem:
    """One pad pattern on the line engine: pad injections and Newton plumbing."""

    def __init__(self, eng: LineEngine, pads: Pads, driven: BoolArray, volts: FloatArray) -> None:
        m, n = eng.shape
        self.eng, self.shape = eng, (m, n)
        bsz = volts.shape[0]
        y = np.where(driven, 1.0 / pads.r_series, 0.0)
        self.y = y
        self.v = np.where(driven[None, :], volts, 0.0)
        inj = y[None, :] * self.v
        b_r = np.zeros((bsz, m, n))
        b_c = np.zeros((bsz, m, n))
        b_r[:, :, 0] += inj[:, :m]
        b_r[:, :, n - 1] += inj[:, m : 2 * m]
        b_c[:, 0, :] += inj[:, 2 * m : 2 * m + n]
        b_c[:, m - 1, :] += inj[:, 2 * m + n :]
        self.b_r, self.b_c = b_r, b_c
        # rounding in the wire and pad terms: a segment carries up to y_wire * V
        v_max = float(np.abs(self.v).max()) if self.v.size else 0.0
        y_wire = max(float(eng.y_row.max(initial=0.0)), float(eng.y_col.max(initial=0.0)))
        self.i_scale = max(float(np.abs(inj).max()) if inj.size else 0.0, y_wire * v_max)

    def _lin(
        self, dg: FloatArray, b_r: FloatArray, b_c: FloatArray, x0: FloatArray | None = None
    ) -> FloatArray:
        vr, vc, _, ok = self.eng.solve(dg, b_r, b_c, x0=x0)
        if not ok.all():
            raise _LinesFailed
        return np.stack([vr, vc], axis=1)

    def _wire_apply(self, vr: FloatArray, vc: FloatArray) -> tuple[FloatArray, FloatArray]:
        """(T_r0 vr, T_c0 vc): wire and pad currents leaving each tap (devices excluded)."""
        m, n = self.shape
        y = self.y
        yr, yc = self.eng.y_row, self.eng.y_col.T  # (M, N-1), (M-1, N)
        fr = np.zeros_like(vr)
        dr = yr * (vr[:, :, :-1] - vr[:, :, 1:])
        fr[:, :, :-1] += dr
        fr[:, :, 1:] -= dr
        fr[:, :, 0] += y[:m] * vr[:, :, 0]
        fr[:, :, n - 1] += y[m : 2 * m] * vr[:, :, n - 1]
        fc = np.zeros_like(vc)
        dc = yc * (vc[:, :-1, :] - vc[:, 1:, :])
        fc[:, :-1, :] += dc
        fc[:, 1:, :] -= dc
        fc[:, 0, :] += y[2 * m : 2 * m + n] * vc[:, 0, :]
        fc[:, m - 1, :] += y[2 * m + n :] * vc[:, m - 1, :]
        return fr, fc

    def kcl(self, x: FloatArray, i_dev: FloatArray) -> FloatArray:
        """KCL residual (B, 2, M, N) of tap voltages `x` (B, 2, M, N) with device currents."""
        vr, vc = x[:, 0], x[:, 1]
        if self.eng.compiled:
            return solver_kernels.line_kcl(
                self.eng.y_row, self.eng.y_col_rows, self.y, vr, vc, i_dev, self.b_r, self.b_c
            )
        fr, fc = self._wire_apply(vr, vc)
        return np.stack([fr + i_dev - self.b_r, fc - i_dev - self.b_c], axis=1)

    def run(
        self, law: DeviceLaw, solver: CrossbarSolver, warm: FloatArray | None = None
    ) -> _Result:
        """Solve; `warm` (B, 2, M, N): tap voltages of a similar case for Newton to start
        from (nonlinear devices)."""
        m, n = self.shape
        use_warm = warm is not None and not law.linear
        x = warm if use_warm and warm is not None else self._lin(law.g0, self.b_r, self.b_c)

        def residual(x: FloatArray) -> tuple[FloatArray, FloatArray]:
            i_dev = law.current(x[:, 0] - x[:, 1])
            return self.kcl(x, i_dev), i_dev

        iterations = 0
        if not law.linear:
            i_dev0 = float(np.abs(law.current(x[:, 0] - x[:, 1])).max())

            def step(dg: FloatArray, f: FloatArray) -> FloatArray:
                return self._lin(dg, -f[:, 0], -f[:, 1])

            x, iterations, _ = _newton(
                x, residual, step, lambda s: s[:, 0] - s[:, 1], law, i_dev0, self.i_scale, solver
            )
        f, i_dev = residual(x)
        self.x = x
        vr, vc = x[:, 0], x[:, 1]
        # pad current from the tap's KCL (wires and device), not from y_pad * (V - v): with
        # a tiny terminal resistance the latter multiplies the node error by 1/R. Where both
        # pads of a line share its only tap, the residual splits by pad conductance.
        y = self.y
        tap_y = y.copy()
        if n == 1:
            tap_y[:m] = tap_y[m : 2 * m] = y[:m] + y[m : 2 * m]
        if m == 1:
            tap_y[2 * m : 2 * m + n] = tap_y[2 * m + n :] = y[2 * m : 2 * m + n] + y[2 * m + n :]
        share = np.divide(y, tap_y, out=np.zeros_like(y), where=tap_y > 0)
        f_tap = np.concatenate(
            [f[:, 0, :, 0], f[:, 0, :, n - 1], f[:, 1, 0, :], f[:, 1, m - 1, :]], axis=1
        )
        v_tap = np.concatenate(
            [vr[:, :, 0], vr[:, :, n - 1], vc[:, 0, :], vc[:, m - 1, :]], axis=1
        )
        i_pad = y * (self.v - v_tap) + share * f_tap
        return vr, vc, i_dev, i_pad, iterations, float(np.abs(f).max())


class _DirectProblem:
    """One pad pattern on the direct engine (node space, fixed nodes held). Node arrays are
    node-major (nnode, B); the Newton loop sees their batch-major transposes."""

    def __init__(self, eng: DirectEngine, volts: FloatArray) -> None:
        self.eng = eng
        self.inj, self.fixed_v = eng.pad_rhs(volts)
        self.volts = np.where(np.isnan(volts), 0.0, volts)
        self.v_dev: FloatArray | None = None
        v_max = float(np.abs(self.volts).max()) if self.volts.size else 0.0
        y_wire = float(eng.e_y.max(initial=0.0))
        # injections are nonzero only on pad nodes: no pass over the whole array
        pads = np.unique(eng.pad_node)
        self.i_scale = max(float(np.abs(self.inj[pads]).max()) if self.inj.size else 0.0,
                           y_wire * v_max)

    def _lin(
        self, dg: FloatArray, rhs: FloatArray, fixed_v: FloatArray, pads_only: bool = False
    ) -> FloatArray:
        eng = self.eng
        if not eng.free.size:
            return fixed_v.copy()
        if dg.ndim == 2:
            return eng.solve(dg, rhs, fixed_v, pads_only=pads_only)
        return np.concatenate(
            [eng.solve(dg[b], rhs[:, b : b + 1], fixed_v[:, b : b + 1])
             for b in range(dg.shape[0])],
            axis=1,
        )

    def residual(self, v: FloatArray, law: DeviceLaw) -> tuple[FloatArray, FloatArray]:
        """KCL residual (nnode, B) and device currents (B, M, N) of node voltages `v`."""
        vr, vc = self.eng.taps(v)
        i_dev = law.current(vr - vc)
        return self.eng.kcl(v, i_dev, self.inj), i_dev

    def run(self, law: DeviceLaw, solver: CrossbarSolver) -> _Result:
        eng = self.eng
        v = self._lin(law.g0, self.inj, self.fixed_v, pads_only=True)  # `pad_rhs`'s rows
        iterations = 0
        free = eng.free

        if not law.linear and free.size:

            def residual(xb: FloatArray) -> tuple[FloatArray, FloatArray]:
                f, i_dev = self.residual(xb.T, law)
                return f[free].T, i_dev

            def step(dg: FloatArray, f_free: FloatArray) -> FloatArray:
                rhs = np.zeros_like(self.inj)
                rhs[free] = -f_free.T
                return self._lin(dg, rhs, np.zeros_like(self.fixed_v)).T

            i_dev0 = float(np.abs(law.current(np.subtract(*eng.taps(v)))).max())
            xb, iterations, _ = _newton(
                v.T, residual, step, lambda x: np.subtract(*eng.taps(x.T)), law, i_dev0,
                self.i_scale, solver,
            )
            v = np.ascontiguousarray(xb.T)
        vr, vc = eng.taps(v)
        self.v_dev = vr - vc  # kept: the solution reuses it (one batch-sized array less)
        i_dev = law.current(self.v_dev)
        i_pad = np.zeros_like(self.volts)
        res = eng.driven & ~eng.fixed_pad
        i_pad[:, res] = eng.pad_y[res] * (self.volts[:, res] - v[eng.pad_node[res]].T)
        fp = np.flatnonzero(eng.fixed_pad)
        share = np.bincount(eng.pad_node[fp], minlength=eng.nnode)[eng.pad_node[fp]]
        # the KCL residual on the free nodes (fixed nodes carry their pads' currents)
        resid, f_fp = eng.kcl_check(v, i_dev, self.inj, eng.pad_node[fp])
        if fp.size:  # a fixed pad supplies what leaves its node into the network (split)
            i_pad[:, fp] = f_fp.T / share
        return vr, vc, i_dev, i_pad, iterations, resid


def lumped_line_potentials(
    devices: DeviceArray, row_v: FloatArray, col_v: FloatArray
) -> tuple[FloatArray, FloatArray]:
    """Line potentials with floating (NaN) lines filled in, for ideal (resistance-free)
    lines and any device law: each line is one node, driven lines hold their potential."""
    m, n = devices.shape
    solver = CrossbarSolver(Wires.build((m, n)))
    nan_r, nan_c = np.full_like(row_v, np.nan), np.full_like(col_v, np.nan)
    law = DeviceLaw.of_devices(devices)
    sol = solver.solve(None, Terminals(row_v, nan_r, col_v, nan_c), law=law)
    return sol.v_row[:, :, 0], sol.v_col[:, 0, :]


class WireCircuit:
    """`Circuit` with wire, source and sense resistance (fidelity 'wires' or 'nonlinear').

    Rows are driven from `row_drive` end(s), columns terminated at `col_drive` end(s); a NaN
    line potential leaves that line's pads open. With `nonlinear=False` devices act at their
    small-signal conductance (linear); with True their full I-V is solved by Newton.
    """

    def __init__(
        self,
        *,
        r_wire_row: float = 0.0,
        r_wire_col: float = 0.0,
        r_source: float = 0.0,
        r_sense: float = 0.0,
        row_drive: Side = "start",
        col_drive: Side = "end",
        nonlinear: bool = True,
        engine: Engine = "auto",
        compiled: bool = True,
    ) -> None:
        for name, side in (("row_drive", row_drive), ("col_drive", col_drive)):
            if side not in ("start", "end", "both"):
                raise ValueError(f"{name} must be 'start', 'end' or 'both', got {side!r}")
        self.params = {
            "r_wire_row": r_wire_row, "r_wire_col": r_wire_col,
            "r_source": r_source, "r_sense": r_sense,
        }
        Wires.build((1, 1), r_wire_row, r_wire_col, r_source, r_sense)  # validate now
        self.row_drive, self.col_drive = row_drive, col_drive
        self.nonlinear = nonlinear
        self.engine: Engine = engine
        self.compiled = compiled
        self._solver: CrossbarSolver | None = None
        self.last: CrossbarSolution | None = None
        self._law_cache: tuple[DeviceArray, FloatArray, DeviceLaw] | None = None
        self._open: tuple[FloatArray, FloatArray] | None = None

    def solver_for(self, shape: tuple[int, int]) -> CrossbarSolver:
        if self._solver is None or self._solver.shape != shape:
            p = self.params
            wires = Wires.build(
                shape, p["r_wire_row"], p["r_wire_col"], p["r_source"], p["r_sense"]
            )
            self._solver = CrossbarSolver(wires, engine=self.engine, compiled=self.compiled)
        return self._solver

    def terminals(self, row_v: FloatArray, col_v: FloatArray) -> Terminals:
        """Pad voltages for line potentials under this circuit's drive sides."""
        nan_r, nan_c = np.full_like(row_v, np.nan), np.full_like(col_v, np.nan)
        return Terminals(
            row_v if self.row_drive in ("start", "both") else nan_r,
            row_v if self.row_drive in ("end", "both") else nan_r,
            col_v if self.col_drive in ("start", "both") else nan_c,
            col_v if self.col_drive in ("end", "both") else nan_c,
        )

    @staticmethod
    def _check(
        devices: DeviceArray, row_v: FloatArray, col_v: FloatArray
    ) -> tuple[FloatArray, FloatArray]:
        if not (type(row_v) is np.ndarray and row_v.ndim == 2 and row_v.dtype == np.float64):
            row_v = np.atleast_2d(np.asarray(row_v, dtype=np.float64))
        if not (type(col_v) is np.ndarray and col_v.ndim == 2 and col_v.dtype == np.float64):
            col_v = np.atleast_2d(np.asarray(col_v, dtype=np.float64))
        m, n = devices.shape
        if row_v.shape[1] != m or col_v.shape[1] != n or row_v.shape[0] != col_v.shape[0]:
            raise CircuitError(
                f"line potentials {row_v.shape} and {col_v.shape} do not fit a {m} x {n} "
                "array (want (B, M) and (B, N))"
            )
        return row_v, col_v

    def _law(self, devices: DeviceArray) -> DeviceLaw:
        """The devices' law, kept while their state is the same read-only array (TiO2
        devices: `g` is a new array after every change), so an unchanged state is not
        linearized again."""
        g = devices.g
        hit = self._law_cache
        if hit is not None and hit[0] is devices and hit[1] is g and not g.flags.writeable:
            return hit[2]
        law = DeviceLaw.of_devices(devices, linearize=not self.nonlinear)
        self._law_cache = (devices, g, law)
        return law

    def _pad_volts(self, row_v: FloatArray, col_v: FloatArray) -> FloatArray:
        """Pad voltages (P,) of one case (NaN = open), in `Terminals` order."""
        m, n = row_v.shape[1], col_v.shape[1]
        v = np.full(2 * m + 2 * n, np.nan)
        if self.row_drive != "end":
            v[:m] = row_v[0]
        if self.row_drive != "start":
            v[m : 2 * m] = row_v[0]
        if self.col_drive != "end":
            v[2 * m : 2 * m + n] = col_v[0]
        if self.col_drive != "start":
            v[2 * m + n :] = col_v[0]
        return v

    def solve(self, devices: DeviceArray, row_v: FloatArray, col_v: FloatArray) -> CircuitSolution:
        row_v, col_v = self._check(devices, row_v, col_v)
        solver = self.solver_for(devices.shape)
        law = self._law(devices)
        one = solver.solve_one(self._pad_volts(row_v, col_v), law) \
            if row_v.shape[0] == 1 else None
        sol = one if one is not None else \
            solver.solve(None, self.terminals(row_v, col_v), law=law)
        self.last = sol
        return CircuitSolution(sol.v_dev, sol.i_dev, sol.i_rows, sol.i_cols)

    def sense(
        self, devices: DeviceArray, row_v: FloatArray, col_v: FloatArray
    ) -> tuple[FloatArray, FloatArray]:
        """Only the line currents (B, M), (B, N) of `solve` (see `CrossbarSolver.pad_currents`:
        far cheaper for whole-array reads with linear devices)."""
        row_v, col_v = self._check(devices, row_v, col_v)
        solver = self.solver_for(devices.shape)
        law = self._law(devices)
        if row_v.shape[0] == 1:
            one = solver.solve_one(self._pad_volts(row_v, col_v), law, devices=False)
            if one is not None:
                return line_currents(one.i_pad, devices.shape)
        i_pad = solver.pad_currents(None, self.terminals(row_v, col_v), law=law)
        return line_currents(i_pad, devices.shape)

    def column(self, devices: DeviceArray, row_v: FloatArray, col_v: FloatArray, col: int,
               v_dev: FloatArray | None = None) -> float | None:
        """A single-cell read or pulse with linear devices (fidelity 'wires'): one case with
        line potentials row_v (M,), col_v (N,), the current column `col` sinks (`solve`'s
        ``i_cols[0, col]`` to rounding) and the device voltages into `v_dev` (M, N) if
        given (`CrossbarSolver.column_one`). None where that path does not apply (sinh
        devices, no numba, ...): then use `solve` / `sense`."""
        if self.nonlinear or row_v.ndim != 1 or col_v.ndim != 1:
            return None
        shape = devices.shape
        if row_v.shape[0] != shape[0] or col_v.shape[0] != shape[1]:
            return None
        solver = self._solver
        if solver is None or solver.shape != shape:
            solver = self.solver_for(shape)
        nan_r, nan_c = self._open_pads(shape)
        volts = np.concatenate((
            row_v if self.row_drive != "end" else nan_r,
            row_v if self.row_drive != "start" else nan_r,
            col_v if self.col_drive != "end" else nan_c,
            col_v if self.col_drive != "start" else nan_c,
        ))
        return solver.column_one(volts, self._law(devices), col, v_dev)

    def _open_pads(self, shape: tuple[int, int]) -> tuple[FloatArray, FloatArray]:
        """NaN pad voltages (M,), (N,) for the pads of an undriven end (kept)."""
        kept = self._open
        if kept is None or kept[0].shape[0] != shape[0] or kept[1].shape[0] != shape[1]:
            kept = self._open = (np.full(shape[0], np.nan), np.full(shape[1], np.nan))
        return kept

    def describe(self) -> dict[str, Any]:
        return {
            "circuit": "nonlinear" if self.nonlinear else "wires",
            **self.params,
            "row_drive": self.row_drive,
            "col_drive": self.col_drive,
            "engine": self.engine,
        }
