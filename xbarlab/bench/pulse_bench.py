"""`PulseBenchCrossbar`: a matrix bench whose programming pulses come from a pulse generator.

Reads and MVM are the SMU bench's (`BenchCrossbar`). A pulse of cell (r, c):

1. every SMU output and the generator output confirmed off;
2. break-before-make routing: generator bus -> row r, sense SMU bus -> column c (held at 0 V),
   bias SMUs -> unselected lines (V/2 or V/3 levels, 0 V for grounded; floating: none);
3. the SMUs in use on at 0 V; the generator armed (levels, width, edges; output on idling at
   0 V); the bias levels set;
4. ``fire``: one software-triggered pulse, waited for;
5. generator output off (confirmed), SMUs to 0 V and off.

As on the SMU bench, bias lines are DC: they sit at their level for a few command round trips
around the pulse, not only during it (see `xbarlab.bench.crossbar`). The generator's edges are
the bench config's ``pulse_edge``.
"""

from __future__ import annotations

from typing import Any

from xbarlab.bench.crossbar import BenchCrossbar, Setup, _disable_each
from xbarlab.bench.pulse_source import PulseSource
from xbarlab.bench.safety import BenchFault, SafeStateError, check_pulse, switch
from xbarlab.crossbar import BiasScheme, Cell, PulseCapability, PulseResult, as_cells, check_cells
from xbarlab.limits import LimitViolation


class PulseBenchCrossbar(BenchCrossbar):
    """SMUs read, a pulse generator programs. No I/O in the constructor."""

    def __init__(self, *args: Any, pulser: PulseSource, pulse_bus: str, edge: float = 1e-8,
                 **kwargs: Any) -> None:
        self.pulser = pulser  # before the base class: its set-up looks at every instrument
        self.pulse_bus = pulse_bus
        self.edge = edge
        super().__init__(*args, **kwargs)
        if self.wiring is None:
            raise ValueError("a pulse-generator bench needs the matrix wiring")
        lo, hi = pulser.pulse_width_range
        self.pulse_capability = PulseCapability(
            source=f"pulse generator {pulser.name}", width_min=max(lo, edge / 0.625),
            width_max=hi, edge=edge,
            note="unselected lines biased by DC SMUs around the pulse")

    @property
    def instruments(self) -> list[Any]:
        return [*super().instruments, self.pulser]

    def prepare(self) -> None:
        self.pulser.configure(v_high=self.limits.pulse_v_max, v_low=self.limits.pulse_v_min)
        super().prepare()

    def describe(self) -> dict[str, Any]:
        out = super().describe()
        cap = self.pulse_capability
        out.update({"backend": "bench-pulse", "pulse_source": self.pulser.name,
                    "pulse_bus": self.pulse_bus, "pulse_edge": self.edge,
                    "pulse_width": [cap.width_min, cap.width_max]})
        return out

    def safe_state(self) -> None:
        """Generator output off first, then the SMUs and relays; every step tried."""
        failure: BaseException | None = None
        try:
            self.pulser.safe_state()
        except BaseException as exc:
            failure = exc
        try:
            super().safe_state()
        except BaseException as exc:
            if failure is None:
                raise
            raise SafeStateError(f"{self.pulser.name}: {failure} | {exc}") from exc
        if failure is not None:
            raise SafeStateError(f"safe state incomplete: {self.pulser.name}: "
                                 f"{type(failure).__name__}: {failure}") from failure

    def pulse(self, cell: Cell, voltage: float, width: float, scheme: BiasScheme) -> PulseResult:
        check_pulse(self.limits, cell, voltage, width)
        check_cells(as_cells([cell]), self._shape)
        problem = self.pulse_capability.width_problem(float(width))
        if problem is not None:
            raise LimitViolation(problem)
        r, c = int(cell[0]), int(cell[1])
        setup = self._pulse_setup((r, c), float(voltage), BiasScheme(scheme))
        with self._operation():
            self._pulse_applied(setup, float(voltage), float(width))
        return PulseResult((r, c), float(voltage), float(width))

    def _pulse_setup(self, cell: Cell, volts: float, scheme: BiasScheme) -> Setup:
        base = self._plan(cell, volts, scheme)
        w = self.wiring
        assert w is not None
        points = (base.points - {w.row_point(w.drive, cell[0])}) | {
            w.row_point(self.pulse_bus, cell[0])}
        levels = {k: v for k, v in base.levels.items() if k != "drive"}
        return Setup(frozenset(points), levels)

    def _pulse_applied(self, setup: Setup, volts: float, width: float) -> None:
        assert self.matrix is not None
        used = [self._src(role) for role in setup.levels]
        for s in self.sources:
            if s.output_on:
                s.disable()
        if self.pulser.output_on:
            self.pulser.disable()
        if self.pulser.output_on:
            raise BenchFault(f"{self.pulser.name}: output not confirmed off; not switching")
        switch(self.matrix, self.sources, setup.points, self.settle)
        try:
            for s in used:
                s.set_voltage(0.0)
                s.enable()
            self.pulser.arm(volts, width, self.edge)
            for role, v in setup.levels.items():
                if v != 0.0:
                    self._src(role).set_voltage(v)
            self.pulser.fire()
        except BaseException as exc:
            for failure in self._all_off(used):
                exc.add_note(f"turning the outputs off afterwards also failed: {failure}")
            raise
        failures = self._all_off(used)
        if failures:
            raise failures[0]

    def _all_off(self, used: list[Any]) -> list[Exception]:
        failures: list[Exception] = []
        try:
            self.pulser.disable()
        except Exception as exc:
            failures.append(exc)
        return failures + _disable_each(used)
