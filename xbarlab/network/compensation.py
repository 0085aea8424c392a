"""Chip-in-the-loop compensation: re-tune the targets against the measured chip, reprogram
only the devices that moved.

After the read-back every device's conductance is measured and the stuck ones are known (their
write-verify gave up, or a compliance trip stopped it). The re-tune fits the network's loss on
the calibration split (never test data) by moving the healthy devices' conductances, starting
from their measured values, with the stuck devices held where they are. The model of the chip
used in the fit is the read-back conductances plus, per layer and calibration point, the
residual the chip's own MVM showed against them (z_chip - z(read-back), measured in the same
forward pass): wire drops, sneak currents and read nonlinearity enter the fit to first order,
so the fit corrects what the chip computes, not what the conductances alone predict. The
layer inputs in the fit are propagated through the model (they start from the chip's).

Gradients are analytic (numpy, no torch); Adam in units of the window span; conductances stay
in the window [g_min, g_max]. The fit is noise-aware: each step averages the gradient over
draws of the healthy devices with the relative error the chip's own programming showed
(the spread of read-back vs target), so the new targets still work when write-verify lands
within its tolerance and the reprogramming disturbs its neighbours. A healthy device is
reprogrammed when its re-tuned value lies more than the tolerance (relative) from its
measured one; the others keep their state (their small moves are dropped before the
predicted loss is reported). The expected loss after reprogramming (the moved devices landing
within the measured spread) tells whether a round is worth its pulses.

`compensation_rounds` runs the rounds on a `program_network` run (a generator of engine
messages, like the plan itself): re-tune, reprogram the moved devices, read back, evaluate;
a round that does not raise the calibration accuracy ends them and the chip is written back to
the best round's state (`restore_state`), so compensation never leaves a chip worse on the
calibration split than its best measured state (within the write-verify tolerance).
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from xbarlab.crossbar import Cell, FloatArray
from xbarlab.messages import Checkpoint, Message
from xbarlab.network.config import CompensationSettings
from xbarlab.network.datasets import EvalSet
from xbarlab.network.inference import ChipPass
from xbarlab.network.mapping import LayerMap, NetworkMap
from xbarlab.network.model import activate, activate_grad


def loss_and_grad(logits: FloatArray, y: np.ndarray) -> tuple[float, FloatArray]:
    """Mean cross-entropy of `logits` (P, n_out) against labels `y` and d loss / d logits."""
    z = np.asarray(logits)
    y = np.asarray(y).astype(np.int64)
    p_count = len(z)
    if z.shape[1] == 1:
        t = y.astype(np.float64)
        s = 1.0 / (1.0 + np.exp(-np.clip(z[:, 0], -60, 60)))
        loss = np.mean(np.logaddexp(0.0, z[:, 0]) - t * z[:, 0])
        return float(loss), ((s - t) / p_count)[:, None]
    zs = z - z.max(axis=1, keepdims=True)
    logp = zs - np.log(np.exp(zs).sum(axis=1, keepdims=True))
    loss = -np.mean(logp[np.arange(p_count), y])
    grad = np.exp(logp)
    grad[np.arange(p_count), y] -= 1.0
    return float(loss), grad / p_count


def _rows_grad(lm: LayerMap, d_rows: FloatArray) -> FloatArray:
    """d loss / d G (layer matrix) from d loss / d w per row (n_in + 1, n_out)."""
    d = lm.row_scales()[:, None] * d_rows
    if not lm.paired:
        return d
    g = np.empty((lm.n_in + 1, 2 * lm.n_out))
    g[:, 0::2], g[:, 1::2] = d, -d
    return g


@dataclass
class ChipModel:
    """The read-back conductances and the chip's measured residuals on the calibration set."""

    nmap: NetworkMap
    x: FloatArray
    y: np.ndarray
    residuals: list[FloatArray]

    @classmethod
    def measure(cls, nmap: NetworkMap, g_layers: list[FloatArray], chip: ChipPass,
                y: np.ndarray) -> ChipModel:
        res = []
        for lm, g, u, z in zip(nmap.layers, g_layers, chip.inputs, chip.pre, strict=True):
            w, b = lm.params(g)
            res.append(z - (u @ w.T + b))
        return cls(nmap, chip.inputs[0], y, res)

    def forward(self, g_layers: list[FloatArray]) -> tuple[float, list[FloatArray], FloatArray]:
        """Loss, gradient per layer matrix, logits of conductances `g_layers`."""
        act = self.nmap.network.activation
        us, zs = [], []
        u = self.x
        n = len(g_layers)
        for i, (lm, g, r) in enumerate(zip(self.nmap.layers, g_layers, self.residuals,
                                           strict=True)):
            w, b = lm.params(g)
            z = u @ w.T + b + r
            us.append(u)
            zs.append(z)
            u = activate(z, act) if i < n - 1 else z
        loss, dz = loss_and_grad(zs[-1], self.y)
        grads: list[FloatArray] = [np.zeros(0)] * n
        for i in range(n - 1, -1, -1):
            lm = self.nmap.layers[i]
            w, _ = lm.params(g_layers[i])
            d_rows = np.vstack([us[i].T @ dz, dz.sum(axis=0)[None, :]])  # (n_in + 1, n_out)
            grads[i] = _rows_grad(lm, d_rows)
            if i:
                dz = (dz @ w) * activate_grad(zs[i - 1], act)
        return loss, grads, zs[-1]


@dataclass
class Retune:
    """A re-tune's result: new conductances per layer and what the model predicts."""

    g_layers: list[FloatArray]
    moved: list[np.ndarray]  # bool per layer matrix
    loss_before: float
    loss_after: float
    acc_before: float
    acc_after: float
    loss_expected: float = float("nan")  # mean loss when the moved devices land within noise

    @property
    def n_moved(self) -> int:
        return int(sum(m.sum() for m in self.moved))


def _accuracy(logits: FloatArray, y: np.ndarray) -> float:
    from xbarlab.network.model import accuracy

    return accuracy(logits, y)


def retune(model: ChipModel, g_meas: list[FloatArray], stuck: list[np.ndarray],
           g_min: float, g_max: float, steps: int, lr: float, tolerance: float,
           noise: float = 0.0, samples: int = 1, seed: int = 0) -> Retune:
    """Re-tune the healthy devices (Adam, `steps`, `lr` in window units) from `g_meas`.

    With `noise` > 0 every step averages the gradient over `samples` draws of the healthy
    devices perturbed by a relative Gaussian error of std `noise` (what reprogramming and its
    disturb will leave): the fit prefers targets that still work when they are not hit
    exactly, instead of a sharp optimum write-verify cannot reach."""
    rng = np.random.default_rng(seed)
    span = g_max - g_min
    free = [~s & np.isfinite(g) for s, g in zip(stuck, g_meas, strict=True)]
    g0 = [np.nan_to_num(g, nan=g_min) for g in g_meas]
    z = [np.where(f, np.clip((g - g_min) / span, 0.0, 1.0), (g - g_min) / span)
         for f, g in zip(free, g0, strict=True)]
    m1 = [np.zeros_like(a) for a in z]
    m2 = [np.zeros_like(a) for a in z]
    b1, b2, eps = 0.9, 0.999, 1e-8
    loss0, _, logits0 = model.forward(g0)
    for k in range(1, steps + 1):
        g = [g_min + span * a for a in z]
        if noise > 0:
            grads = [np.zeros_like(a) for a in z]
            for _ in range(samples):
                jitter = [np.where(f, a * (1 + noise * rng.standard_normal(a.shape)), a)
                          for f, a in zip(free, g, strict=True)]
                _, gs, _ = model.forward(jitter)
                grads = [acc + gr / samples for acc, gr in zip(grads, gs, strict=True)]
        else:
            _, grads, _ = model.forward(g)
        for i, gr in enumerate(grads):
            gz = np.where(free[i], gr * span, 0.0)
            m1[i] = b1 * m1[i] + (1 - b1) * gz
            m2[i] = b2 * m2[i] + (1 - b2) * gz * gz
            step = lr * (m1[i] / (1 - b1**k)) / (np.sqrt(m2[i] / (1 - b2**k)) + eps)
            z[i] = np.where(free[i], np.clip(z[i] - step, 0.0, 1.0), z[i])
    tuned = [g_min + span * a for a in z]
    moved = [f & (np.abs(t - g) > tolerance * np.abs(g)) for f, t, g in
             zip(free, tuned, g0, strict=True)]
    final = [np.where(mv, t, g) for mv, t, g in zip(moved, tuned, g0, strict=True)]
    loss1, _, logits1 = model.forward(final)
    expected = loss1
    if noise > 0 and any(m.any() for m in moved):
        draws = [model.forward([np.where(mv, t * (1 + noise * rng.standard_normal(t.shape)), t)
                                for mv, t in zip(moved, final, strict=True)])[0]
                 for _ in range(max(8, samples * 4))]
        expected = float(np.mean(draws))
    return Retune(final, moved, loss0, loss1, _accuracy(logits0, model.y),
                  _accuracy(logits1, model.y), expected)


# --------------------------------------------------------------------------- the rounds


class CompensatingProgram(Protocol):
    """What the rounds need of a `program_network` run (`xbarlab.network.plan.NetworkProgram`)."""

    nmap: NetworkMap
    data: EvalSet
    resume: Any
    out: Any  # NetworkOutcome: targets, final, stuck (bank maps)

    def job(self, name: str, cells: list[Cell], targets: FloatArray
            ) -> Generator[Message, Any, None]: ...

    def read_devices(self, tag: str) -> Generator[Message, Any, FloatArray]: ...

    def evaluate(self, stage: str, g: FloatArray) -> Generator[Message, Any, Any]: ...

    def measured_spread(self, g: FloatArray) -> float: ...


def _better(ev: Any, best: Any) -> bool:
    """Calibration accuracy higher, or equal with a lower calibration loss."""
    return bool(ev.cal_acc > best.cal_acc or (ev.cal_acc == best.cal_acc
                                              and ev.cal_loss < best.cal_loss - 1e-6))


def compensation_rounds(program: CompensatingProgram, comp: CompensationSettings,
                        g_min: float, g_max: float, wv_tolerance: float, g: FloatArray,
                        best: Any, cal: ChipPass) -> Generator[Message, Any, FloatArray]:
    """Chip-in-the-loop compensation rounds after the read-back `g` (bank map) whose
    evaluation is `best` (calibration pass `cal`); returns the last read bank map.

    Each round re-tunes against the measured state (`retune`), reprograms the moved devices
    as job ``compensate/r`` when the expected calibration loss beats the present one by
    `comp.min_gain`, reads back and evaluates. A round that does not improve the calibration
    accuracy (ties: its loss) ends the rounds and the chip is **returned to the best round's
    state**: every healthy device whose read now lies beyond the tolerance from its read in
    that state is written back to it (job ``restore/r``, a real write-verify: its disturb is
    the backend's), then read back and evaluated (stage ``restore/r``)."""
    out = program.out
    nmap = program.nmap
    cells = nmap.cells
    tol = comp.tolerance or wv_tolerance
    best_g = g.copy()
    for r in range(1, comp.rounds + 1):
        g_layers = nmap.from_bank(g)
        stuck_layers = [m.astype(bool) for m in nmap.from_bank(out.stuck.astype(np.float64))]
        model = ChipModel.measure(nmap, g_layers, cal, program.data.y_cal)
        noise = comp.noise if comp.noise is not None else program.measured_spread(g)
        rt = retune(model, g_layers, stuck_layers, g_min, g_max, comp.steps, comp.lr, tol,
                    noise, comp.samples, seed=r)
        moved_bank = nmap.to_bank([m.astype(np.float64) for m in rt.moved]) == 1.0
        todo = [c for c in cells if moved_bank[c]]
        worth = rt.loss_expected < (1 - comp.min_gain) * rt.loss_before
        yield Checkpoint("retune", {"round": r, "moved": len(todo), "noise": noise,
                                    "predicted_cal_loss": [rt.loss_before, rt.loss_after],
                                    "expected_cal_loss": rt.loss_expected,
                                    "predicted_cal_acc": [rt.acc_before, rt.acc_after],
                                    "reprogram": bool(todo and worth)})
        name = f"compensate/{r}"
        if not (todo and worth) and name not in program.resume.started:
            break  # nothing to move, or no gain expected beyond the programming spread
        new_t = out.targets.copy()
        if name not in program.resume.started:  # else the old run's targets (in `job`)
            tuned = nmap.to_bank(rt.g_layers)
            for c in todo:
                new_t[c] = tuned[c]
            out.targets[:] = np.where(moved_bank, tuned, out.targets)
        yield from program.job(name, todo, new_t)
        g = yield from program.read_devices(f"read_back/{r}")
        out.final = g
        ev, cal = yield from program.evaluate(name, g)
        if _better(ev, best):
            best, best_g = ev, g.copy()
            continue
        g = yield from restore_state(program, best_g, tol, r)
        break
    return g


def restore_state(program: CompensatingProgram, best_g: FloatArray, tolerance: float,
                  r: int) -> Generator[Message, Any, FloatArray]:
    """Write every healthy device read beyond `tolerance` (relative) from its conductance in
    `best_g` (bank map) back to it (job ``restore/r``), read back, evaluate; returns the read.
    With nothing to restore, no device is written; the chip is evaluated either way, so the
    last evaluation is of the state the chip is left in."""
    out = program.out
    with np.errstate(invalid="ignore"):
        off = (np.isfinite(best_g) & np.isfinite(out.final) & ~out.stuck
               & (np.abs(out.final - best_g) > tolerance * np.abs(best_g)))
    todo = [c for c in program.nmap.cells if off[c]]
    name = f"restore/{r}"
    yield Checkpoint("restore", {"round": r, "devices": len(todo)})
    g = np.asarray(out.final)
    if todo or name in program.resume.started:
        targets = out.targets.copy()
        for c in todo:
            targets[c] = best_g[c]
        out.targets[:] = np.where(off, best_g, out.targets)
        yield from program.job(name, todo, targets)
        g = yield from program.read_devices(f"read_back/{name}")
        out.final = g
    yield from program.evaluate(name, g)
    return g
