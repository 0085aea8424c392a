"""Terminal currents of many pad patterns from one reduction of a linear network.

A read under the floating scheme drives one row and one column and leaves every other line
open, so each cell of a read map is a different circuit. For linear devices, the array seen
from its pads is a multiport: with Z the pad-to-pad block of any generalized inverse of the
pad-free network (here: the network with one reference pad attached), a case driving pads D
at voltages V through series resistances R delivers the currents i that solve

    (R + Z_DD) i + c 1 = V,    1^T i = 0,

a (|D| + 1)-sized system (c absorbs the reference potential). One batched solve with one
right-hand side per pad tap gives Z, then every case costs a tiny dense solve.
"""

from __future__ import annotations

import numpy as np

from xbarlab.crossbar import BoolArray, FloatArray, IntArray
from xbarlab.sim.blas import one_blas_thread
from xbarlab.sim.solver_network import DirectEngine, Pads

#: the multiport route is taken for cases driving at most this many pads
MAX_PORTS = 8


class PadPorts:
    """The pad multiport of one linear conductance state.

    `engine`: a direct engine whose pattern drives a single pad (its factor is reused);
    `g`: device conductances (M, N); every line must be connected through devices; `used`:
    the pads any case may drive (P,), only their ports are formed.
    """

    def __init__(
        self, engine: DirectEngine, pads: Pads, g: FloatArray, used: BoolArray, chunk: int = 64
    ) -> None:
        taps, port = np.unique(engine.pad_node[used], return_inverse=True)
        self.used = np.array(used, copy=True)
        self.port_of_pad = np.full(used.size, -1, dtype=np.int64)
        self.port_of_pad[used] = port
        nnode = engine.nnode
        z = np.empty((taps.size, taps.size))
        zeros = np.zeros((nnode, 1))
        for c0 in range(0, taps.size, chunk):
            cols = np.arange(c0, min(c0 + chunk, taps.size))
            rhs = np.zeros((nnode, cols.size))
            rhs[taps[cols], np.arange(cols.size)] = 1.0
            v = engine.solve(g, rhs, np.broadcast_to(zeros, rhs.shape))
            z[:, cols] = v[taps]
        self.z = 0.5 * (z + z.T)
        self.r_series = pads.r_series
        self.g = np.array(g, copy=True)

    def pad_currents(self, volts: FloatArray) -> FloatArray:
        """Current (B, P) each pad's driver delivers, for pad voltages `volts` (B, P) with
        NaN = open; cases may drive at most `MAX_PORTS` pads each."""
        bsz, npad = volts.shape
        driven = ~np.isnan(volts)
        if (driven & ~self.used).any():
            raise ValueError("a case drives a pad this reduction has no port for")
        count = driven.sum(axis=1)
        out = np.zeros((bsz, npad))
        for k in np.unique(count):
            cases = np.flatnonzero(count == k)
            pads = np.nonzero(driven[cases])[1].reshape(cases.size, k)  # (C, k), sorted
            out[cases[:, None], pads] = self._solve_ports(pads, volts[cases[:, None], pads])
        return out

    def _solve_ports(self, pads: IntArray, v: FloatArray) -> FloatArray:
        c, k = pads.shape
        ports = self.port_of_pad[pads]
        a = np.zeros((c, k + 1, k + 1))
        a[:, :k, :k] = self.z[ports[:, :, None], ports[:, None, :]]
        a[:, np.arange(k), np.arange(k)] += self.r_series[pads]
        a[:, :k, k] = 1.0
        a[:, k, :k] = 1.0
        rhs = np.zeros((c, k + 1))
        rhs[:, :k] = v
        with one_blas_thread():
            sol: FloatArray = np.linalg.solve(a, rhs[:, :, None])[:, :k, 0]
        return sol


def reference_pattern(npad: int) -> BoolArray:
    """The pad pattern of the reference network: only the first pad attached."""
    driven = np.zeros(npad, dtype=bool)
    driven[0] = True
    return driven
