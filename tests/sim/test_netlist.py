"""SPICE export: the deck has the solver's topology (element counts, merges, open pads)."""

from __future__ import annotations

import re

import numpy as np
import pytest

from xbarlab.sim.iv import SinhIV
from xbarlab.sim.netlist import _parse_ascii_raw, crossbar_netlist
from xbarlab.sim.solver import CircuitError, Terminals, Wires


def _elements(text: str, prefix: str) -> list[str]:
    return [ln for ln in text.splitlines() if ln.upper().startswith(prefix)]


def test_deck_has_one_element_per_segment_device_and_driven_pad() -> None:
    m, n = 3, 4
    wires = Wires.build((m, n), 1.0, 2.0, 10.0, 5.0)
    t = Terminals.build((m, n), row_start=[[0.2, np.nan, 0.1]], col_end=np.zeros((1, n)))
    deck = crossbar_netlist(wires, np.full((m, n), 1e-4), t).text
    assert len(_elements(deck, "RW")) == m * (n - 1) + n * (m - 1)  # internal segments
    assert len(_elements(deck, "RD")) == m * n  # linear devices as resistors
    assert len(_elements(deck, "VP")) == 2 + n  # two driven rows, every column end
    # the pad resistor lumps the terminal resistance with the end segment
    assert any(re.fullmatch(r"RP0 d0 n\d+ 11\.0", ln) for ln in deck.splitlines())
    assert ".op" in deck and deck.rstrip().endswith(".end")


def test_nonlinear_devices_become_behavioural_sources() -> None:
    law = SinhIV(0.5, 2.0)
    wires = Wires.build((2, 2), 1.0, 1.0, 0.0, 0.0)
    t = Terminals.build((2, 2), row_start=[[1.0, 0.5]], col_end=np.zeros((1, 2)))
    deck = crossbar_netlist(wires, np.full((2, 2), 2e-4), t, law).text
    bsrc = _elements(deck, "BD")
    assert len(bsrc) == 4
    assert "I={0.0001*sinh(2.0*(v(" in bsrc[0]


def test_zero_resistance_segments_merge_nodes() -> None:
    wires = Wires.build((2, 3), 0.0, 1.0, 10.0, 0.0)  # each row wire is one node
    t = Terminals.build((2, 3), row_start=[[0.2, 0.1]], col_end=np.zeros((1, 3)))
    nl = crossbar_netlist(wires, np.full((2, 3), 1e-4), t)
    assert len(set(nl.node_of_tap[:3])) == 1 and len(set(nl.node_of_tap[3:6])) == 1
    assert not any(" 0.0" in ln for ln in _elements(nl.text, "RW"))


def test_bad_case_and_shape_are_named() -> None:
    wires = Wires.build((2, 2), 1.0, 1.0)
    t = Terminals.build((2, 2), row_start=np.zeros((1, 2)), col_end=np.zeros((1, 2)))
    with pytest.raises(CircuitError, match="case 3 outside the batch of 1"):
        crossbar_netlist(wires, np.full((2, 2), 1e-4), t, case=3)
    with pytest.raises(CircuitError, match=r"g has shape \(3, 2\)"):
        crossbar_netlist(wires, np.full((3, 2), 1e-4), t)


def test_ascii_raw_parser_reads_names_and_values() -> None:
    raw = (
        "Title: x\nNo. Variables: 2\nNo. Points: 1\nVariables:\n\t0\tv(n1)\tvoltage\n"
        "\t1\tvp0#branch\tcurrent\nValues:\n 0\t1.5e-01\n\t-2.0e-05\n"
    )
    assert _parse_ascii_raw(raw) == {"v(n1)": 0.15, "vp0#branch": -2.0e-05}
