"""A trained multilayer perceptron as plain numpy arrays: what `program-network` programs.

A network is a list of dense layers ``y = W x + b`` (W of shape (n_out, n_in)) with one
activation between layers (the output layer is linear: logits). A single output is a binary
classifier (class 1 when the logit is > 0); several outputs are classes (argmax).

`.npz` files (``load_npz`` / ``save_npz``) hold ``W0, b0, W1, b1, ...`` and optionally
``activation`` ("sigmoid", the paper's networks; "relu"; "tanh") and ``dataset`` (the name of
its evaluation set, see `xbarlab.network.datasets`). They load without torch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from xbarlab.crossbar import FloatArray

ACTIVATIONS = ("sigmoid", "relu", "tanh")


def activate(z: FloatArray, name: str) -> FloatArray:
    """The hidden-layer activation `name` applied to pre-activations `z`."""
    if name == "sigmoid":
        return 1.0 / (1.0 + np.exp(-np.clip(z, -60.0, 60.0)))
    if name == "relu":
        return np.maximum(z, 0.0)
    if name == "tanh":
        return np.tanh(z)
    raise ValueError(f"unknown activation {name!r}; use one of {', '.join(ACTIVATIONS)}")


def activate_grad(z: FloatArray, name: str) -> FloatArray:
    """d activation / dz at `z`."""
    if name == "sigmoid":
        s = activate(z, name)
        return s * (1.0 - s)
    if name == "relu":
        return (z > 0).astype(np.float64)
    if name == "tanh":
        return 1.0 - np.tanh(z) ** 2
    raise ValueError(f"unknown activation {name!r}")


@dataclass(frozen=True)
class Network:
    """Dense layers (weight (n_out, n_in), bias (n_out,)), hidden activation, data set name."""

    layers: tuple[tuple[FloatArray, FloatArray], ...]
    activation: str = "sigmoid"
    dataset: str = ""

    def __post_init__(self) -> None:
        if not self.layers:
            raise ValueError("a network needs at least one layer")
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation {self.activation!r}; use one of "
                             f"{', '.join(ACTIVATIONS)}")
        prev = None
        for i, (w, b) in enumerate(self.layers):
            if w.ndim != 2 or b.shape != (w.shape[0],):
                raise ValueError(f"layer {i}: weight {w.shape} and bias {b.shape} do not form "
                                 "a dense layer (weight (n_out, n_in), bias (n_out,))")
            if prev is not None and w.shape[1] != prev:
                raise ValueError(f"layer {i} takes {w.shape[1]} inputs, layer {i - 1} gives "
                                 f"{prev}")
            if not (np.all(np.isfinite(w)) and np.all(np.isfinite(b))):
                raise ValueError(f"layer {i}: weights or biases are not finite")
            prev = w.shape[0]

    @classmethod
    def of(cls, params: Sequence[tuple[FloatArray, FloatArray]], activation: str = "sigmoid",
           dataset: str = "") -> Network:
        layers = tuple((np.asarray(w, dtype=np.float64), np.asarray(b, dtype=np.float64))
                       for w, b in params)
        return cls(layers, activation, dataset)

    @property
    def sizes(self) -> tuple[int, ...]:
        return (self.layers[0][0].shape[1], *(w.shape[0] for w, _ in self.layers))

    def logits(self, x: FloatArray) -> FloatArray:
        """Outputs (P, n_out) of the network for inputs `x` (P, n_in), computed digitally."""
        h = np.asarray(x, dtype=np.float64)
        for i, (w, b) in enumerate(self.layers):
            h = h @ w.T + b
            if i < len(self.layers) - 1:
                h = activate(h, self.activation)
        return h


def predict(logits: FloatArray) -> np.ndarray:
    """Class of each row of `logits` (P, n_out): logit > 0 for one output, else argmax."""
    z = np.asarray(logits)
    if z.shape[1] == 1:
        return (z[:, 0] > 0).astype(np.int64)
    return np.argmax(z, axis=1)


def accuracy(logits: FloatArray, y: FloatArray) -> float:
    """Share of rows classified as labelled."""
    return float(np.mean(predict(logits) == np.asarray(y).astype(np.int64)))


def load_npz(path: Path) -> Network:
    """A network from an .npz of ``W0, b0, W1, b1, ...`` (+ optional ``activation``,
    ``dataset``); `ValueError` with one line for a file that does not hold one."""
    try:
        with np.load(path, allow_pickle=False) as z:
            data = {k: z[k] for k in z.files}
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path}: not a readable .npz file ({exc})") from None
    params = []
    i = 0
    while f"W{i}" in data:
        if f"b{i}" not in data:
            raise ValueError(f"{path}: W{i} has no bias b{i}")
        params.append((data[f"W{i}"], data[f"b{i}"]))
        i += 1
    if not params:
        raise ValueError(f"{path}: no layers (expected arrays W0, b0, W1, b1, ...; found "
                         f"{', '.join(sorted(data)) or 'nothing'})")
    activation = str(data["activation"]) if "activation" in data else "sigmoid"
    dataset = str(data["dataset"]) if "dataset" in data else ""
    return Network.of(params, activation, dataset)


def save_npz(net: Network, path: Path) -> Path:
    """Write `net` in the format `load_npz` reads."""
    arrays: dict[str, np.ndarray] = {"activation": np.array(net.activation),
                                     "dataset": np.array(net.dataset)}
    for i, (w, b) in enumerate(net.layers):
        arrays[f"W{i}"], arrays[f"b{i}"] = w, b
    np.savez(path, **arrays)  # type: ignore[arg-type]
    return path
