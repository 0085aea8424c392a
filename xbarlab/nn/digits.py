"""The 8 x 8 digits set (scikit-learn's `load_digits`) and a 63-32-10 MLP for 64 x 64 arrays.

Data: 1797 images of 8 x 8 pixels (0-16), 10 classes. One fixed, seeded, stratified split:
test 30 %, calibration 15 % (what chip-in-the-loop compensation may fit on, never scored),
training the rest. Inputs are pixel / 16 in [0, 1]; the MVM drives row i at ``v_in * x_i``.

Tiling: pixel 0 is zero in every image of the set (so are pixels 32 and 39), so it is dropped:
63 inputs + the bias row = 64 rows, one array tall. 32 hidden units in differential pairs =
64 columns: layer 1 fills one 64 x 64 array exactly; layer 2 (32 + 1 rows, 10 pairs) uses the
top-left 33 x 20 corner of a second array. Pixels 32 and 39 keep their rows (zero input, no
current); their weights only ever see weight decay.

Training (torch): Adam, cross-entropy, sigmoid hidden units (computed digitally between the
arrays), logits out. Hardware-aware training (`HardwareNoise`) perturbs every forward pass the
way the arrays do, on the mapped conductances of both devices of each pair (window
[g_min, g_max], per-tensor max|w| scaling as `xbarlab.nn.mapping.map_tensor`): relative tuning
error N(0, tuning^2) per device, devices stuck at random levels (rates of the device preset),
and, optionally, a per-cell effective-gain map of the wired array (cell voltage / applied row
voltage, measured on the simulator's exact wired MVM; `xbarlab.nn.digits_chip.gain_map`) so
that IR drop along the lines and the currents of the other cells are in the forward pass.
Gradients flow through the noisy forward pass (the noise itself is not differentiated).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from xbarlab.crossbar import FloatArray

Params = list[tuple[FloatArray, FloatArray]]

DROPPED_PIXELS = (0,)  # constant zero in load_digits
N_INPUTS = 64 - len(DROPPED_PIXELS)
HIDDEN = 32
N_CLASSES = 10
SIZES = (N_INPUTS, HIDDEN, N_CLASSES)
SPLIT_SEED = 2023
DATASET = "xbarlab.cli.digits:eval_set"  # how `xbarlab program-network` finds this split


@dataclass(frozen=True)
class DigitsData:
    """The digits split; inputs in [0, 1] with the dropped pixels removed."""

    x_train: FloatArray
    y_train: np.ndarray
    x_cal: FloatArray
    y_cal: np.ndarray
    x_test: FloatArray
    y_test: np.ndarray
    kept_pixels: np.ndarray = field(repr=False)


def load_digits_split(seed: int = SPLIT_SEED, test: float = 0.30, cal: float = 0.15
                      ) -> DigitsData:
    """The fixed stratified train / calibration / test split of scikit-learn's digits."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    if not (0 < test < 1 and 0 < cal < 1 and test + cal < 1):
        raise ValueError(f"split shares must be in (0, 1) and sum below 1, got {test}, {cal}")
    d = load_digits()
    keep = np.setdiff1d(np.arange(64), DROPPED_PIXELS)
    x = d.data[:, keep].astype(np.float64) / 16.0
    y = d.target.astype(np.int64)
    x_rest, x_test, y_rest, y_test = train_test_split(
        x, y, test_size=test, stratify=y, random_state=seed)
    x_train, x_cal, y_train, y_cal = train_test_split(
        x_rest, y_rest, test_size=cal / (1 - test), stratify=y_rest, random_state=seed + 1)
    return DigitsData(x_train, y_train, x_cal, y_cal, x_test, y_test, keep)


# --------------------------------------------------------------------------- model


def logits_numpy(x: FloatArray, params: Params) -> FloatArray:
    """Logits (P, 10) of the MLP `params` (sigmoid hidden layers) in float64."""
    h = np.asarray(x, dtype=np.float64)
    for i, (w, b) in enumerate(params):
        z = h @ np.asarray(w).T + np.asarray(b)
        h = 1.0 / (1.0 + np.exp(-np.clip(z, -60, 60))) if i < len(params) - 1 else z
    return h


def accuracy(logits: FloatArray, y: np.ndarray) -> float:
    return float(np.mean(np.argmax(logits, axis=1) == y))


def save_npz(path: str | Path, params: Params, **meta: str) -> Path:
    """The network as ``W0, b0, W1, b1`` (+ ``activation``, ``dataset``): the .npz that
    `xbarlab program-network` loads (its ``dataset`` names the digits split's loader)."""
    arrays: dict[str, object] = {}
    for i, (w, b) in enumerate(params):
        arrays[f"W{i}"], arrays[f"b{i}"] = np.asarray(w), np.asarray(b)
    arrays["activation"] = np.array(meta.get("activation", "sigmoid"))
    arrays["dataset"] = np.array(meta.get("dataset", DATASET))
    path = Path(path)
    np.savez(path, **arrays)  # type: ignore[arg-type]
    return path


def load_npz(path: str | Path) -> Params:
    with np.load(path) as f:
        n = sum(1 for k in f.files if k.startswith("W"))
        return [(np.asarray(f[f"W{i}"], dtype=np.float64), np.asarray(f[f"b{i}"], np.float64))
                for i in range(n)]


@dataclass(frozen=True)
class HardwareNoise:
    """What hardware-aware training injects (see the module docstring)."""

    tuning: float = 0.03  # relative std of a device's programmed conductance
    stuck_low: float = 0.005  # share of devices stuck low (uniform in [stuck_g_low, g_min])
    stuck_high: float = 0.005  # share stuck high (around 573 uS in the preset)
    g_min: float = 100e-6
    g_max: float = 500e-6
    stuck_g_low: float = 10e-6
    stuck_g_high: float = 573e-6
    gains: tuple[FloatArray, ...] | None = None  # per layer (n_in + 1, 2 n_out) cell gains


def _map(w: Tensor, g_min: float, g_max: float) -> tuple[Tensor, Tensor, Tensor]:
    """(g_pos, g_neg, scale) of tensor `w` as `map_tensor` does, differentiable in w."""
    w_max = w.detach().abs().max().clamp_min(1e-12)
    span = g_max - g_min
    return (g_min + span * torch.relu(w) / w_max, g_min + span * torch.relu(-w) / w_max,
            w_max / span)


def noisy_layer(w: Tensor, b: Tensor, hw: HardwareNoise, gain: Tensor | None,
                gen: torch.Generator) -> tuple[Tensor, Tensor]:
    """(weight, bias) as one draw of programmed arrays represents them."""
    out = []
    for t, rows in ((w, slice(0, -1)), (b, slice(-1, None))):
        gp, gn, scale = _map(t, hw.g_min, hw.g_max)
        pairs = []
        for g, col in ((gp, 0), (gn, 1)):
            g = g * (1 + hw.tuning * torch.randn(g.shape, generator=gen))
            u = torch.rand(g.shape, generator=gen)
            low = hw.stuck_g_low + (hw.g_min - hw.stuck_g_low) * torch.rand(g.shape, generator=gen)
            g = torch.where(u < hw.stuck_low, low, g)
            g = torch.where((u >= hw.stuck_low) & (u < hw.stuck_low + hw.stuck_high),
                            torch.full_like(g, hw.stuck_g_high), g)
            if gain is not None:  # gain (n_in + 1, 2 n_out): transpose to (out, in) / (out,)
                cell = gain[rows, col::2]
                g = g * (cell.T if t.ndim == 2 else cell[0])
            pairs.append(g)
        out.append(scale * (pairs[0] - pairs[1]))
    return out[0], out[1]


class DigitsMLP(nn.Module):
    """Dense layers of `sizes` with sigmoid hidden units; optional hardware noise."""

    def __init__(self, sizes: Sequence[int] = SIZES, seed: int = 0) -> None:
        super().__init__()
        gen = torch.Generator().manual_seed(seed)
        self.sizes = tuple(int(s) for s in sizes)
        self.weights = nn.ParameterList()
        self.biases = nn.ParameterList()
        for a, b in zip(self.sizes[:-1], self.sizes[1:], strict=True):
            bound = 1.0 / np.sqrt(a)
            self.weights.append(nn.Parameter((torch.rand(b, a, generator=gen) * 2 - 1) * bound))
            self.biases.append(nn.Parameter((torch.rand(b, generator=gen) * 2 - 1) * bound))

    def forward(self, x: Tensor, hw: HardwareNoise | None = None,
                gen: torch.Generator | None = None) -> Tensor:
        h = x
        n = len(self.weights)
        for i, (w, b) in enumerate(zip(self.weights, self.biases, strict=True)):
            if hw is not None and gen is not None:
                gain = None if hw.gains is None else torch.as_tensor(hw.gains[i])
                w, b = noisy_layer(w, b, hw, gain, gen)
            h = torch.nn.functional.linear(h, w, b)
            if i < n - 1:
                h = torch.sigmoid(h)
        return h

    def numpy_params(self) -> Params:
        return [(w.detach().double().numpy().copy(), b.detach().double().numpy().copy())
                for w, b in zip(self.weights, self.biases, strict=True)]


@dataclass
class DigitsTraining:
    params: Params
    train_accuracy: float
    epochs: int


def train_digits(
    x: FloatArray, y: np.ndarray, *, hw: HardwareNoise | None = None, epochs: int = 300,
    lr: float = 0.01, batch: int = 64, weight_decay: float = 1e-4, seed: int = 0,
    sizes: Sequence[int] = SIZES, init: Params | None = None,
) -> DigitsTraining:
    """Adam on cross-entropy; hardware-aware when `hw` is given (one noise draw per step).
    One torch thread (the runs are small; the machine is shared)."""
    torch.set_num_threads(1)
    torch.manual_seed(seed)
    model = DigitsMLP(sizes, seed).double()
    if init is not None:
        with torch.no_grad():
            for p, (w, b) in zip(zip(model.weights, model.biases, strict=True), init,
                                 strict=True):
                p[0].copy_(torch.as_tensor(w))
                p[1].copy_(torch.as_tensor(b))
    xt = torch.as_tensor(np.asarray(x, dtype=np.float64))
    yt = torch.as_tensor(np.asarray(y, dtype=np.int64))
    opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    gen = torch.Generator().manual_seed(seed + 17)
    order_rng = np.random.default_rng(seed)
    for _ in range(epochs):
        perm = torch.as_tensor(order_rng.permutation(len(xt)))
        for s in range(0, len(xt), batch):
            idx = perm[s : s + batch]
            opt.zero_grad()
            loss = nn.functional.cross_entropy(model(xt[idx], hw, gen), yt[idx])
            loss.backward()
            opt.step()
    params = model.numpy_params()
    return DigitsTraining(params, accuracy(logits_numpy(x, params), np.asarray(y)), epochs)


def noisy_accuracy(x: FloatArray, y: np.ndarray, params: Params, hw: HardwareNoise,
                   draws: int = 20, seed: int = 0) -> FloatArray:
    """Accuracy of `params` under `draws` independent draws of `hw` (no training)."""
    model = DigitsMLP(tuple([params[0][0].shape[1], *(w.shape[0] for w, _ in params)])).double()
    with torch.no_grad():
        for (pw, pb), (w, b) in zip(zip(model.weights, model.biases, strict=True), params,
                                    strict=True):
            pw.copy_(torch.as_tensor(w))
            pb.copy_(torch.as_tensor(b))
        gen = torch.Generator().manual_seed(seed)
        xt = torch.as_tensor(np.asarray(x, dtype=np.float64))
        return np.array([
            float((model(xt, hw, gen).argmax(1).numpy() == y).mean()) for _ in range(draws)])
