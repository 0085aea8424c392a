"""The emulated bench's wiring: SMU terminals -> matrix buses -> relays -> crossbar lines.

`MatrixWiring` is the `Load` of every emulated SMU channel and the relay hook of the emulated
707B. It follows the bench config's pin map (`xbarlab.bench.config.PinMap`): matrix row
(bus) ``pins.drive`` carries the drive SMU, ``pins.sense`` the sense SMU and so on; matrix
column ``pins.rows[i]`` of slot ``pins.slot`` is crossbar row i, ``pins.cols[j]`` of slot
``pins.col_slot`` crossbar column j.

Line potentials follow from the present state: a line connected through a closed relay to a
bus whose SMU output is on sits at that SMU's level; any other line floats (NaN: the circuit
solves it by Kirchhoff's law). The current out of an SMU's HI terminal is the current its rows
deliver into the array minus the current its columns sink out of it, from the same
`SimCrossbar` circuit and devices the `sim` backend uses; a current beyond the channel's limit
is clipped to it and flagged (the SMU in compliance). A pulse holds the pulsing SMU at its
pulse level for the pulse width with every other line as it is, and evolves the devices
under the device voltages that result. DC levels between pulses do not evolve the devices
(the sim backend's convention: only pulses program).

An output that is off disconnects its lines here (as the instruments' high-impedance off mode
does); their normal off modes hold ~0 V at a low current limit instead. The bench never measures
through an output that is off, so no reading differs; only a line's potential while an SMU is
off (e.g. a 2450 drive between arming and firing its pulse) does, and DC levels do not evolve
the devices.

The wiring also watches safety: relays switched while an SMU output behind them is on, and two
live SMUs on one line, are recorded in `violations`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping

import numpy as np

from xbarlab.bench.config import PinMap
from xbarlab.crossbar import FloatArray
from xbarlab.drivers.emulators.state import SmuChannel, clip
from xbarlab.sim.crossbar import SimCrossbar


class MatrixWiring:
    """A simulated crossbar behind a switch matrix, as a bench config wires it."""

    def __init__(self, sim: SimCrossbar, pins: PinMap, buses: Mapping[str, str]) -> None:
        """`buses`: matrix row letter -> SMU channel key (e.g. ``{"A": "smu.a"}``)."""
        self.sim = sim
        self.pins = pins
        self.buses = dict(buses)
        self.lock = threading.RLock()
        self.channels: dict[str, SmuChannel] = {}
        self.closed: frozenset[str] = frozenset()
        self.violations: list[str] = []
        self.pulses: list[tuple[FloatArray, FloatArray, float]] = []  # row_v, col_v, width
        self.sync: Callable[[], None] = lambda: None  # the hub's: serve earlier lines first
        self._line: dict[tuple[int, int], tuple[str, int]] = {}
        for i, (slot, p) in enumerate(zip(pins.line_slots("row"), pins.rows, strict=True)):
            self._line[(slot, p)] = ("row", i)
        for j, (slot, p) in enumerate(zip(pins.line_slots("col"), pins.cols, strict=True)):
            self._line[(slot, p)] = ("col", j)

    def register(self, ch: SmuChannel) -> None:
        self.channels[ch.key] = ch

    # -- state -> potentials --------------------------------------------------------------------
    def _attachments(self) -> dict[str, list[tuple[str, int]]]:
        """SMU key -> lines it reaches through closed relays."""
        out: dict[str, list[tuple[str, int]]] = {}
        for name in self.closed:
            slot, bus, pin = int(name[0]), name[1], int(name[2:])
            key = self.buses.get(bus)
            line = self._line.get((slot, pin))
            if key is not None and line is not None:
                out.setdefault(key, []).append(line)
        return out

    def potentials(self, override: tuple[str, float] | None = None
                   ) -> tuple[FloatArray, FloatArray, dict[str, list[tuple[str, int]]]]:
        m, n = self.sim.shape
        row_v, col_v = np.full(m, np.nan), np.full(n, np.nan)
        attached = self._attachments()
        owner: dict[tuple[str, int], str] = {}
        for key, lines in sorted(attached.items()):
            ch = self.channels.get(key)
            on = ch is not None and (ch.output or (override is not None
                                                   and override[0] == key))
            if not on:
                continue
            assert ch is not None
            level = override[1] if override is not None and override[0] == key else ch.level
            for kind, idx in lines:
                target = row_v if kind == "row" else col_v
                if (kind, idx) in owner and target[idx] != level:
                    msg = (f"short: {owner[(kind, idx)]} and {key} drive {kind} {idx} at "
                           "different levels")
                    if msg not in self.violations:
                        self.violations.append(msg)
                    continue
                owner[(kind, idx)] = key
                target[idx] = level
        return row_v, col_v, attached

    def _solve(self, row_v: FloatArray, col_v: FloatArray):  # type: ignore[no-untyped-def]
        return self.sim.circuit.solve(self.sim.devices, row_v[None], col_v[None])

    @staticmethod
    def _terminal_current(sol, lines: list[tuple[str, int]]) -> float:  # type: ignore[no-untyped-def]
        total = 0.0
        for kind, idx in lines:
            total += float(sol.i_rows[0, idx]) if kind == "row" else -float(sol.i_cols[0, idx])
        return total

    # -- Load ---------------------------------------------------------------------------------
    def measure(self, ch: SmuChannel) -> tuple[float, bool]:
        with self.lock:
            self.sync()
            if not ch.output:
                return 0.0, False
            row_v, col_v, attached = self.potentials()
            lines = attached.get(ch.key, [])
            if not lines or (np.isnan(row_v).all() and np.isnan(col_v).all()):
                return 0.0, False
            i = self._terminal_current(self._solve(row_v, col_v), lines)
            i = float(self.sim.devices.read_noise(np.array([i]), self.sim.rng)[0])
            return clip(i, ch.limit)

    def pulse(self, ch: SmuChannel, volts: float, width: float) -> tuple[float, bool]:
        with self.lock:
            self.sync()
            row_v, col_v, attached = self.potentials(override=(ch.key, volts))
            lines = attached.get(ch.key, [])
            if not lines:
                return 0.0, False
            sol = self._solve(row_v, col_v)
            i = self._terminal_current(sol, lines)
            self.sim.devices.apply_voltage(sol.v_dev[0], width, self.sim.rng)
            self.sim.n_pulses += 1
            self.pulses.append((row_v, col_v, width))
            return clip(i, ch.limit)

    def changed(self, ch: SmuChannel) -> None:
        return None

    # -- relays -------------------------------------------------------------------------------
    def relays_changed(self, old: frozenset[str], new: frozenset[str]) -> None:
        """Hook of the emulated matrix: record hot switching, then take the new state."""
        with self.lock:
            self.sync()
            for name in sorted(old ^ new):
                key = self.buses.get(name[1])
                ch = self.channels.get(key) if key else None
                if ch is not None and ch.output and (int(name[0]), int(name[2:])) in self._line:
                    self.violations.append(f"relay {name} switched with {key} output on")
            self.closed = new
