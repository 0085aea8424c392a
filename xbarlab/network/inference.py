"""Inference through the crossbars' MVM: rows driven by voltages, column currents sensed at
virtual ground (wires, sneak paths and read nonlinearity included on the simulator).

Encoding of layer l (see `xbarlab.network.mapping`): row i carries t_i = a u_i (input u_i times
the layer's input scale a) or t = 1 (bias row) and weighs k_i = s_i / a (inputs) or s_b
(bias); it is driven at V_i = v_read t_i k_i / max k, so no row exceeds v_read. The
pre-activation of output j is then

    z_j = max k / v_read (I+_j - I-_j) + sum_i offset_i u_i

with I+ / I- the currents of the positive / negative column summed over the layer's tiles (a
layer without negative columns subtracts the nominal g_min digitally instead of I-). Each tile
is driven on its own (the other rows of the bank at 0 V) and only its own columns are used.
The activation between layers is computed digitally (periphery), and so is the optional
output calibration (`fit_outputs`: a gain and an offset per output, fitted on calibration data).
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from xbarlab.crossbar import FloatArray, MvmResult
from xbarlab.messages import Message, Mvm, Plan
from xbarlab.network.mapping import LayerMap, NetworkMap
from xbarlab.network.model import Network, activate


def row_weights(lm: LayerMap) -> FloatArray:
    """(n_in + 1,) k_i: weight units per siemens per unit of drive t_i."""
    k = lm.row_scales().copy()
    k[:-1] /= lm.in_scale
    return k


def drive(lm: LayerMap, u: FloatArray, v_read: float) -> FloatArray:
    """Row voltages (P, n_in + 1) of layer inputs `u` (P, n_in); clipped to +-v_read (a DAC's
    range) where an input exceeds the range the mapping was scaled for."""
    k = row_weights(lm)
    t = np.concatenate([np.asarray(u) * lm.in_scale, np.ones((len(u), 1))], axis=1)
    return np.clip(v_read * t * k / k.max(), -v_read, v_read)


def decode(lm: LayerMap, currents: FloatArray, u: FloatArray, v_read: float) -> FloatArray:
    """Pre-activations (P, n_out) from the layer's column currents (P, n_cols)."""
    k = row_weights(lm)
    uu = np.concatenate([np.asarray(u), np.ones((len(u), 1))], axis=1)
    if lm.paired:
        z = k.max() / v_read * (currents[:, 0::2] - currents[:, 1::2])
    else:
        z = k.max() / v_read * currents - (uu * lm.row_scales() * lm.g_min).sum(axis=1)[:, None]
    return z + (uu * lm.row_offsets()).sum(axis=1)[:, None]


@dataclass
class ChipPass:
    """What one forward pass through the chip measured, layer by layer."""

    inputs: list[FloatArray] = field(default_factory=list)  # u_l (P, n_in_l)
    pre: list[FloatArray] = field(default_factory=list)  # z_l measured (P, n_out_l)
    clamped: int = 0  # column outputs that hit the current compliance

    @property
    def logits(self) -> FloatArray:
        return self.pre[-1]


Calibration = list[tuple[FloatArray, FloatArray]]
"""Per layer, the periphery's per-output (gain, offset): z <- gain z + offset."""


def layer_pass(nmap: NetworkMap, li: int, u: FloatArray, v_read: float, tag: str
               ) -> Generator[Message, Any, tuple[FloatArray, int]]:
    """Pre-activations (P, n_out) of layer `li` for inputs `u` through the arrays (one MVM
    message per tile) and the number of column outputs clamped by the compliance."""
    lm = nmap.layers[li]
    m = nmap.array_shape[0]
    v = drive(lm, u, v_read)
    currents = np.zeros((len(u), lm.n_cols))
    clamped = 0
    for t in (t for t in nmap.tiles if t.layer == li):
        v_bank = np.zeros((len(u), nmap.bank_shape[0]))
        top = t.array * m + t.ar
        v_bank[:, top:top + t.rows] = v[:, t.r0:t.r0 + t.rows]
        res: MvmResult = yield Mvm(v_bank, tag=f"{tag}/layer{li}")
        comp = np.asarray(res.compliance, dtype=bool).reshape(res.currents.shape)
        clamped += int(comp[:, t.ac:t.ac + t.cols].sum())
        currents[:, t.c0:t.c0 + t.cols] += res.currents[:, t.ac:t.ac + t.cols]
    return decode(lm, currents, u, v_read), clamped


def chip_forward(nmap: NetworkMap, x: FloatArray, v_read: float, tag: str = "inference",
                 calibration: Calibration | None = None) -> Plan:
    """Forward pass of inputs `x` (P, n_in) through the programmed arrays; returns a
    `ChipPass`. One MVM message (a batch of P vectors) per tile; `calibration` applied to
    each layer's outputs (the digital periphery)."""
    out = ChipPass()
    u = np.asarray(x, dtype=np.float64)
    n_layers = len(nmap.layers)
    for li in range(n_layers):
        z, clamped = yield from layer_pass(nmap, li, u, v_read, tag)
        if calibration is not None:
            z = z * calibration[li][0] + calibration[li][1]
        out.clamped += clamped
        out.inputs.append(u)
        out.pre.append(z)
        u = activate(z, nmap.network.activation) if li < n_layers - 1 else z
    return out


def fit_outputs(nmap: NetworkMap, x: FloatArray, v_read: float, reference: Network,
                tag: str = "calibrate") -> Generator[Message, Any, Calibration]:
    """Per-output gain and offset of every layer (least squares over the inputs `x`, layer
    after layer on the chip's own calibrated activations) that bring the chip's
    pre-activations onto those `reference` computes from the same layer inputs: what the
    periphery corrects of a gain error common to an output's column pair (half-select disturb
    compresses the programmed window; IR drop lowers the cells' voltages)."""
    u = np.asarray(x, dtype=np.float64)
    n_layers = len(nmap.layers)
    out: Calibration = []
    for li, (w, b) in enumerate(reference.layers):
        z, _ = yield from layer_pass(nmap, li, u, v_read, tag)
        z_ref = u @ w.T + b
        gain, offset = np.ones(z.shape[1]), np.zeros(z.shape[1])
        for j in range(z.shape[1]):
            a = np.stack([z[:, j], np.ones(len(z))], axis=1)
            (gain[j], offset[j]), *_ = np.linalg.lstsq(a, z_ref[:, j], rcond=None)
        out.append((gain, offset))
        z = z * gain + offset
        u = activate(z, nmap.network.activation) if li < n_layers - 1 else z
    return out
