"""Small networks and configs the network-programming tests share (numpy only: no torch)."""

from __future__ import annotations

import functools
import itertools
from typing import Any

import numpy as np

from xbarlab.network.compensation import loss_and_grad
from xbarlab.network.config import NetworkSessionConfig
from xbarlab.network.datasets import EvalSet, load_dataset
from xbarlab.network.model import Network, activate, activate_grad


def train(sizes: tuple[int, ...], x: np.ndarray, y: np.ndarray, steps: int = 1500,
          seed: int = 0, lr: float = 0.03, activation: str = "sigmoid") -> Network:
    """Full-batch Adam on cross-entropy: a network good enough to tell programming errors."""
    rng = np.random.default_rng(seed)
    ps = []
    for a, b in itertools.pairwise(sizes):
        ps += [rng.normal(0, 1 / np.sqrt(a), (b, a)), np.zeros(b)]
    m = [np.zeros_like(p) for p in ps]
    v = [np.zeros_like(p) for p in ps]
    n = len(sizes) - 1
    for k in range(1, steps + 1):
        hs, zs = [x], []
        for i in range(n):
            z = hs[-1] @ ps[2 * i].T + ps[2 * i + 1]
            zs.append(z)
            hs.append(activate(z, activation) if i < n - 1 else z)
        _, dz = loss_and_grad(zs[-1], y)
        grads: list[np.ndarray] = [np.zeros(0)] * (2 * n)
        for i in range(n - 1, -1, -1):
            grads[2 * i], grads[2 * i + 1] = dz.T @ hs[i], dz.sum(axis=0)
            if i:
                dz = (dz @ ps[2 * i]) * activate_grad(zs[i - 1], activation)
        for j, g in enumerate(grads):
            m[j] = 0.9 * m[j] + 0.1 * g
            v[j] = 0.999 * v[j] + 0.001 * g * g
            ps[j] = ps[j] - lr * (m[j] / (1 - 0.9**k)) / (np.sqrt(v[j] / (1 - 0.999**k)) + 1e-8)
    return Network.of([(ps[2 * i], ps[2 * i + 1]) for i in range(n)], activation, "moons")


@functools.cache
def moons() -> EvalSet:
    return load_dataset("moons")


@functools.cache
def moons_net(hidden: int = 8) -> Network:
    d = moons()
    return train((2, hidden, 1), d.x_cal, d.y_cal)


WV = {"tolerance": 0.05, "max_pulses": 150, "max_pulses_at_limit": 10}
"""Write-verify that converges fast on the 'simple' device (few pulses per cell)."""


def sim_config(rows: int = 8, cols: int = 8, **network: Any) -> NetworkSessionConfig:
    data = {"backend": "sim", "seed": 1,
            "sim": {"rows": rows, "cols": cols, "device": "simple", "noise": False, "seed": 5},
            "limits": {"pulse_width_max": 1e-3},
            "network": {"write_verify": WV, "max_cal": 120, "max_test": 100, **network}}
    return NetworkSessionConfig.model_validate(data)
