"""Bad input to the crossbar solver: clear errors naming what is wrong."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from xbarlab.crossbar import BiasScheme
from xbarlab.sim.circuit import Circuit, IdealCircuit
from xbarlab.sim.crossbar import SimCrossbar
from xbarlab.sim.devices import SimpleDeviceParams, SimpleDevices
from xbarlab.sim.iv import SinhIV
from xbarlab.sim.solver import (
    CircuitError,
    CrossbarSolver,
    NonConvergenceError,
    Terminals,
    WireCircuit,
    Wires,
)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"r_row": -1.0}, "r_row must be finite and >= 0"),
        ({"r_col": float("nan")}, "r_col contains NaN"),
        ({"r_source": -5.0}, "r_source must be finite and >= 0"),
        ({"r_sense": float("inf")}, "r_sense must be finite"),
        ({"r_row": np.ones((3, 3))}, r"r_row must be a scalar or have shape \(3, 5\)"),
    ],
)
def test_bad_resistances_are_named(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(CircuitError, match=match):
        Wires.build((3, 4), **kwargs)  # type: ignore[arg-type]


def test_wire_circuit_validates_its_resistances_up_front() -> None:
    with pytest.raises(CircuitError, match="r_sense"):
        WireCircuit(r_sense=-1.0)


def test_shape_mismatches_are_named() -> None:
    wires = Wires.build((3, 4), 1.0, 1.0)
    solver = CrossbarSolver(wires)
    t = Terminals.build((3, 4), row_start=np.zeros((2, 3)), col_end=np.zeros((2, 4)))
    with pytest.raises(CircuitError, match=r"g has shape \(4, 3\)"):
        solver.solve(np.ones((4, 3)) * 1e-4, t)
    with pytest.raises(CircuitError, match=r"col_end must have shape \(2, 4\)"):
        Terminals.build((3, 4), row_start=np.zeros((2, 3)), col_end=np.zeros((1, 4)))
    with pytest.raises(CircuitError, match="terminals are for 2 x 4"):
        solver.solve(np.ones((3, 4)) * 1e-4, Terminals.build((2, 4), row_start=np.zeros((1, 2))))
    devices = SimpleDevices((3, 4), SimpleDeviceParams(), np.random.default_rng(0))
    with pytest.raises(CircuitError, match="do not fit a 3 x 4 array"):
        WireCircuit(r_wire_row=1.0).solve(devices, np.zeros((1, 4)), np.zeros((1, 4)))


def test_bad_conductances_are_rejected() -> None:
    solver = CrossbarSolver(Wires.build((2, 2), 1.0, 1.0))
    t = Terminals.build((2, 2), row_start=np.zeros((1, 2)), col_end=np.zeros((1, 2)))
    with pytest.raises(CircuitError, match="g must be finite and >= 0"):
        solver.solve(np.array([[1e-4, -1e-4], [1e-4, 1e-4]]), t)


@pytest.mark.parametrize("engine", ["auto", "direct"])
def test_a_line_without_path_to_a_driver_is_named(engine: str) -> None:
    g = np.full((3, 3), 1e-4)
    g[1, :] = 0.0  # row 1 touches nothing and is left floating
    t = Terminals.build(
        (3, 3), row_start=[[0.1, np.nan, 0.1]], col_end=np.zeros((1, 3))
    )
    solver = CrossbarSolver(Wires.build((3, 3), 1.0, 1.0, 1.0), engine=engine)  # type: ignore[arg-type]
    with pytest.raises(CircuitError, match="row 1: no path to any driven terminal"):
        solver.solve(g, t)


def test_all_terminals_open_is_rejected() -> None:
    solver = CrossbarSolver(Wires.build((2, 2), 1.0, 1.0))
    t = Terminals.build((2, 2), row_start=np.full((2, 2), np.nan))
    with pytest.raises(CircuitError, match="case 0: every terminal is open"):
        solver.solve(np.full((2, 2), 1e-4), t)


def test_shorted_drivers_at_different_voltages_are_unsolvable() -> None:
    # zero wire and terminal resistance: both ends of row 0 are one node
    solver = CrossbarSolver(Wires.build((2, 2)))
    t = Terminals.build(
        (2, 2), row_start=[[0.2, 0.0]], row_end=[[0.1, 0.0]], col_end=np.zeros((1, 2))
    )
    with pytest.raises(CircuitError, match="row 0 start and row 0 end are joined"):
        solver.solve(np.full((2, 2), 1e-4), t)


def test_non_convergence_raises_with_the_residual() -> None:
    solver = CrossbarSolver(Wires.build((4, 4), 5.0, 5.0, 10.0, 10.0), max_newton=1)
    t = Terminals.build((4, 4), row_start=np.full((1, 4), 3.0), col_end=np.zeros((1, 4)))
    with pytest.raises(NonConvergenceError, match="Newton did not converge") as exc:
        solver.solve(np.full((4, 4), 5e-4), t, SinhIV(1.0, 4.0))
    assert exc.value.residual > 0


def test_unknown_engine_and_drive_side_are_named() -> None:
    with pytest.raises(ValueError, match="engine must be"):
        CrossbarSolver(Wires.build((2, 2), 1.0, 1.0), engine="fast")  # type: ignore[arg-type]
    with pytest.raises(CircuitError, match="line engine needs every segment"):
        CrossbarSolver(Wires.build((2, 2), 0.0, 1.0), engine="lines")
    with pytest.raises(ValueError, match="row_drive must be"):
        WireCircuit(row_drive="left")  # type: ignore[arg-type]


def _simple_devices(bad: float) -> SimpleDevices:
    devices = SimpleDevices((3, 4), SimpleDeviceParams(), np.random.default_rng(0), noise=False)
    devices._g[1, 2] = bad  # a corrupted state, as a buggy device model could leave it
    return devices


def _wrappers() -> list[tuple[str, Callable[[SimpleDevices], object]]]:
    row_v = np.array([[0.2, 0.0, 0.0]])
    col_v = np.zeros((1, 4))
    floating = np.array([[0.2, np.nan, 0.0]])
    out: list[tuple[str, Callable[[SimpleDevices], object]]] = []
    circuits: list[tuple[str, Circuit]] = [
        ("ideal", IdealCircuit()),
        ("wires", WireCircuit(r_wire_row=1.0, r_wire_col=1.0, nonlinear=False)),
        ("nonlinear", WireCircuit(r_wire_row=1.0, r_wire_col=1.0, r_source=10.0)),
    ]
    for name, circ in circuits:
        out += [
            (f"{name}.solve", lambda d, c=circ: c.solve(d, row_v, col_v)),
            (f"{name}.sense", lambda d, c=circ: c.sense(d, row_v, col_v)),
            (f"{name}.solve floating", lambda d, c=circ: c.solve(d, floating, col_v)),
            (f"{name} SimCrossbar.read",
             lambda d, c=circ: SimCrossbar(d, c).read([(0, 1)], 0.2, BiasScheme.GROUNDED)),
            (f"{name} SimCrossbar.pulse",
             lambda d, c=circ: SimCrossbar(d, c).pulse((0, 1), 1.2, 1e-6, BiasScheme.HALF)),
            (f"{name} SimCrossbar.mvm", lambda d, c=circ: SimCrossbar(d, c).mvm(row_v)),
        ]
    return out


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -1e-4])
def test_bad_conductances_are_refused_by_every_wrapper(bad: float) -> None:
    for name, call in _wrappers():
        with pytest.raises(CircuitError, match=r"device \(1, 2\) has conductance") as exc:
            call(_simple_devices(bad))
        assert "finite and >= 0 S" in str(exc.value), name


def test_ideal_circuit_names_an_isolated_floating_line() -> None:
    devices = _simple_devices(1e-4)
    devices._g[1, :] = 0.0  # row 1 touches nothing
    row_v = np.array([[0.2, np.nan, 0.0]])
    with pytest.raises(CircuitError, match="row 1: floating and isolated"):
        IdealCircuit().solve(devices, row_v, np.zeros((1, 4)))
    # a floating line joined to a driven one through a device is fine
    devices._g[1, 3] = 1e-4
    sol = IdealCircuit().solve(devices, row_v, np.zeros((1, 4)))
    assert abs(sol.i_rows[0, 1]) < 1e-15  # no current leaves a floating line
