"""SPICE netlist export of a crossbar case, and an ngspice batch runner to check solutions.

The netlist has exactly the topology of `xbarlab.sim.solver_network`: one resistor per wire
segment (zero-resistance segments merge nodes), one element per device (a resistor for a
linear law, a behavioural current source ``B ... I=`` for any other law, via
`IVLaw.spice_current`), and per driven pad a DC source behind its series resistance
(terminal resistance + end segment). Pad currents are read from the sources.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from xbarlab.crossbar import FloatArray, IntArray
from xbarlab.sim.iv import IVLaw, LinearIV
from xbarlab.sim.solver_network import (
    CircuitError,
    DirectEngine,
    Pads,
    Terminals,
    Wires,
    wire_edges,
)


@dataclass(frozen=True, slots=True)
class Netlist:
    """A SPICE deck for one case; `node_of_tap` maps the 2MN taps to node numbers and
    `source_of_pad` names the voltage source supplying each pad (None: open or shared)."""

    text: str
    shape: tuple[int, int]
    node_of_tap: IntArray
    source_of_pad: list[str | None]

    def write(self, path: str | Path) -> Path:
        p = Path(path)
        p.write_text(self.text)
        return p


def crossbar_netlist(
    wires: Wires,
    g: FloatArray,
    terminals: Terminals,
    iv: IVLaw | None = None,
    *,
    case: int = 0,
    title: str = "xbarlab passive crossbar",
) -> Netlist:
    """The SPICE deck of case `case` of `terminals` on `wires` with conductances `g`."""
    m, n = wires.shape
    g = np.asarray(g, dtype=np.float64)
    if g.shape != (m, n):
        raise CircuitError(f"g has shape {g.shape}, the wiring is for {(m, n)}")
    if not 0 <= case < terminals.batch:
        raise CircuitError(f"case {case} outside the batch of {terminals.batch}")
    law = iv if iv is not None else LinearIV()
    volts = terminals.stacked()[case]
    driven = ~np.isnan(volts)
    eng = DirectEngine(wires, driven)  # merges zero-resistance segments
    eng.check_connected(g > 0)
    node = eng.node_of_tap
    pads = Pads.of(wires)

    def nm(tap: int) -> str:
        return f"n{int(node[tap]) + 1}"

    lines = [f"* {title}", f"* {m} x {n} array, law {law.describe()}"]
    a, b, r = wire_edges(wires)
    for k in np.flatnonzero(r > 0):
        lines.append(f"RW{k} {nm(a[k])} {nm(b[k])} {float(r[k])!r}")
    mn = m * n
    for i in range(m):
        for j in range(n):
            t = i * n + j
            gij = float(g[i, j])
            if gij == 0.0:
                continue
            na, nb = nm(t), nm(mn + t)
            if law.linear:
                lines.append(f"RD{i}_{j} {na} {nb} {1.0 / gij!r}")
            else:
                expr = law.spice_current(f"v({na})-v({nb})", gij, (i, j))
                lines.append(f"BD{i}_{j} {na} {nb} I={{{expr}}}")
    sources: list[str | None] = [None] * len(volts)
    fixed_done: set[int] = set()
    for p in np.flatnonzero(driven):
        tap = int(pads.tap[p])
        v = float(volts[p])
        if pads.r_series[p] > 0:
            lines.append(f"VP{p} d{p} 0 DC {v!r}")
            lines.append(f"RP{p} d{p} {nm(tap)} {float(pads.r_series[p])!r}")
            sources[p] = f"vp{p}"
        elif int(node[tap]) not in fixed_done:
            fixed_done.add(int(node[tap]))
            shared = np.count_nonzero(eng.pad_node[eng.fixed_pad] == node[tap]) > 1
            lines.append(f"VP{p} {nm(tap)} 0 DC {v!r}")
            sources[p] = None if shared else f"vp{p}"
    lines.append(".options reltol=1e-12 abstol=1e-20 vntol=1e-15 itl1=500")
    lines.append(".op")
    lines.append(".end")
    return Netlist("\n".join(lines) + "\n", (m, n), node.copy(), sources)


@dataclass(frozen=True, slots=True)
class SpiceResult:
    """ngspice's operating point mapped back: tap potentials (M, N), pad currents into the
    array (NaN where the pad is open or its source is shared)."""

    v_row: FloatArray
    v_col: FloatArray
    i_pad: FloatArray


def ngspice_path() -> str | None:
    """The ngspice binary on PATH, or None."""
    return shutil.which("ngspice")


def run_ngspice(netlist: Netlist, *, timeout: float = 120.0) -> SpiceResult:
    """Operating point of `netlist` by ``ngspice -b`` (FileNotFoundError if not installed)."""
    exe = ngspice_path()
    if exe is None:
        raise FileNotFoundError("ngspice is not installed (Debian package 'ngspice')")
    with tempfile.TemporaryDirectory(prefix="xbarlab-spice-") as tmp:
        deck = Path(tmp) / "deck.cir"
        raw = Path(tmp) / "out.raw"
        deck.write_text(netlist.text)
        proc = subprocess.run(
            [exe, "-b", "-r", str(raw), str(deck)],
            capture_output=True, text=True, timeout=timeout, cwd=tmp,
            env={**os.environ, "SPICE_ASCIIRAWFILE": "1"}, check=False,
        )
        if proc.returncode != 0 or not raw.exists():
            raise RuntimeError(f"ngspice failed ({proc.returncode}): {proc.stderr[-2000:]}")
        values = _parse_ascii_raw(raw.read_text())
    m, n = netlist.shape
    node = netlist.node_of_tap

    def pot(k: int) -> float:
        return values.get(f"v(n{k + 1})", values.get(f"n{k + 1}", float("nan")))

    taps = np.array([pot(int(k)) for k in node])
    i_pad = np.full(len(netlist.source_of_pad), np.nan)
    for p, src in enumerate(netlist.source_of_pad):
        if src is not None:
            i_pad[p] = -values[f"i({src})"] if f"i({src})" in values else -values[f"{src}#branch"]
    return SpiceResult(taps[: m * n].reshape(m, n), taps[m * n :].reshape(m, n), i_pad)


def _parse_ascii_raw(text: str) -> dict[str, float]:
    """Variable name -> value of the single point of an ngspice ascii raw file."""
    lines = text.splitlines()
    names: list[str] = []
    k = 0
    while k < len(lines) and not lines[k].startswith("Variables:"):
        k += 1
    k += 1
    while k < len(lines) and not lines[k].startswith("Values:"):
        parts = lines[k].split()
        if len(parts) >= 2:
            names.append(parts[1].lower())
        k += 1
    nums: list[float] = []
    for line in lines[k + 1 :]:
        parts = line.split()
        if not parts:
            continue
        nums.append(float(parts[-1]))
    if len(nums) < len(names):
        raise RuntimeError("ngspice raw file is truncated")
    return dict(zip(names, nums[: len(names)], strict=True))
