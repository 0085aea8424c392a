"""The paper's network: an MLP (2-8-1 by default) with sigmoid hidden layers and a logit output.

All weights and biases live in one flat parameter vector ``theta`` (layer after layer: the
weight matrix row-major, then the bias; the layout `xbarlab.nn.mapping.FlatMap` indexes), so
the hardware-aware training maps, perturbs and restores them with a few vector operations.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor, nn

from xbarlab.crossbar import FloatArray
from xbarlab.nn.mapping import flatten_params, unflatten_params

Params = list[tuple[FloatArray, FloatArray]]


def n_parameters(sizes: Sequence[int]) -> int:
    return sum(b * (a + 1) for a, b in itertools.pairwise(sizes))


class MLP(nn.Module):
    """Fully connected layers of widths `sizes`; sigmoid between layers, raw logit out.

    init "torch": like ``torch.nn.Linear``, weights and biases ~ U(-1/sqrt(in), 1/sqrt(in));
    init "authors": as the authors' hardware-aware network, Xavier-uniform weights
    U(-sqrt(6 / (in + out)), +...) and every bias 0.01."""

    def __init__(self, sizes: Sequence[int] = (2, 8, 1), init: str = "torch") -> None:
        super().__init__()
        sizes = tuple(int(s) for s in sizes)
        if len(sizes) < 2 or any(s < 1 for s in sizes):
            raise ValueError(f"sizes must be >= 2 positive layer widths, got {sizes}")
        self.sizes = sizes
        if init == "torch":
            bounds = torch.cat([
                torch.full((b * (a + 1),), 1.0 / math.sqrt(a))
                for a, b in itertools.pairwise(sizes)
            ])
            self.theta = nn.Parameter((torch.rand(len(bounds)) * 2 - 1) * bounds)
        elif init == "authors":
            parts = []
            for a, b in itertools.pairwise(sizes):
                bound = math.sqrt(6.0 / (a + b))
                parts += [(torch.rand(a * b) * 2 - 1) * bound, torch.full((b,), 0.01)]
            self.theta = nn.Parameter(torch.cat(parts))
        else:
            raise ValueError(f"init must be 'torch' or 'authors', got {init!r}")

    def unpack(self, theta: Tensor) -> list[tuple[Tensor, Tensor]]:
        """Per-layer (weight (..., out, in), bias (..., out)) views of a flat vector (..., P)."""
        out, start = [], 0
        lead = theta.shape[:-1]
        for a, b in zip(self.sizes[:-1], self.sizes[1:], strict=True):
            w = theta[..., start : start + a * b].reshape(*lead, b, a)
            start += a * b
            out.append((w, theta[..., start : start + b]))
            start += b
        return out

    def forward(self, x: Tensor, theta: Tensor | None = None) -> Tensor:
        """Logits (batch,) for a single-output network, else (batch, out).

        `theta` of shape (K, P) evaluates K networks at once: logits (K, batch)."""
        ps = self.unpack(self.theta if theta is None else theta)
        h = x
        for i, (w, b) in enumerate(ps):
            if w.ndim == 2:
                h = torch.nn.functional.linear(h, w, b)
            else:  # (K, out, in): h (batch, in) or (K, batch, in) -> (K, batch, out)
                h = torch.matmul(h, w.transpose(-1, -2)) + b.unsqueeze(-2)
            if i < len(ps) - 1:
                h = torch.sigmoid(h)
        return h.squeeze(-1) if h.shape[-1] == 1 else h

    def theta_numpy(self) -> FloatArray:
        return self.theta.detach().cpu().numpy().astype(np.float64)

    def numpy_params(self) -> Params:
        """Copies of the weights and biases as float64 numpy arrays, per layer."""
        return [(w.copy(), b.copy()) for w, b in unflatten_params(self.theta_numpy(), self.sizes)]

    def load_numpy_params(self, params: Params) -> None:
        """Set weights and biases from per-layer numpy arrays of the right shapes."""
        for (w, b), (a, n_out) in zip(params, zip(self.sizes[:-1], self.sizes[1:], strict=True),
                                      strict=True):
            if np.shape(w) != (n_out, a) or np.shape(b) != (n_out,):
                raise ValueError(
                    f"parameter shapes {np.shape(w)}, {np.shape(b)} do not match "
                    f"({n_out}, {a}), ({n_out},)"
                )
        with torch.no_grad():
            self.theta.copy_(torch.as_tensor(flatten_params(params), dtype=self.theta.dtype))
