"""Benchmark: evaluating N statistical transfers of the paper's 2-8-1 network on the test set.

Vectorised path (`xbarlab.nn.metrics.evaluate_transfers`: one draw of N transfers, one mapping,
two matrix products over all N networks), next to a reference measured in the same run: the
same model evaluated one transfer at a time (draw, map, forward per transfer), which is how
the authors' code proceeds (about 12 s for 2000 x 200 on this machine kind, see PHYSICS.md).
Both compute the same metric; the share of points >= 95 % correct is printed for each.
Target: 2000 transfers x 200 points <= 0.25 s.

``--compensate``: also the read-back compensation (`xbarlab.nn.compensation`, 300 Adam steps
on the non-test points) of all N transfers as one batch of N networks, next to the same
compensation run one transfer at a time for the first few transfers (extrapolated to N).

Run: .venv/bin/python bench/bench_transfer.py [--transfers N] [--repeat R] [--compensate]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from xbarlab.nn.data import load_moons
from xbarlab.nn.mapping import flat_map, flatten_params, layout_network, unflatten_params
from xbarlab.nn.metrics import correct_matrix, evaluate_transfers, mlp_logits, summarize
from xbarlab.nn.transfer import TransferModel, apply, draw

SIZES = (2, 8, 1)


def network(seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """A 2-8-1 network with weights of the trained nets' magnitude (no torch needed)."""
    rng = np.random.default_rng(seed)
    return [(rng.normal(0, 4, (8, 2)), rng.normal(0, 2, 8)),
            (rng.normal(0, 3, (1, 8)), rng.normal(0, 1, 1))]


def loop_per_transfer(params, layout, tm, x, y, n, rng):  # type: ignore[no-untyped-def]
    """Reference: one transfer at a time."""
    fmap = flat_map(layout)
    theta = flatten_params(params)
    k = layout.device_k()
    rows = []
    for _ in range(n):
        g, scale = fmap.targets(theta, tm.g_min, tm.g_max)
        g_t = apply(tm, g, draw(tm, k, 1, rng))
        p = unflatten_params(fmap.weights(g_t, scale)[0], SIZES)
        rows.append(correct_matrix(mlp_logits(x, p), y)[0])
    return summarize(np.array(rows))


def bench_compensation(params, layout, tm, data, n: int, n_loop: int = 20) -> None:  # type: ignore[no-untyped-def]
    """Batched compensation of n transfers vs one transfer at a time (n_loop, extrapolated)."""
    import torch

    from xbarlab.nn.compensation import CompensationConfig, compensate

    torch.set_num_threads(1)
    cfg = CompensationConfig(only_stuck_transfers=False)  # every transfer costs the same
    fit = data.selection_points()
    d = draw(tm, layout.device_k(), n, np.random.default_rng(2))
    t0 = time.perf_counter()
    batched = compensate(params, layout, tm, fit, d, np.random.default_rng(3), "physical", cfg)
    t_batch = time.perf_counter() - t0
    t0 = time.perf_counter()
    for i in range(n_loop):
        compensate(params, layout, tm, fit, d.take(i), np.random.default_rng(3), "physical", cfg)
    t_loop = (time.perf_counter() - t0) * n / n_loop
    print(f"compensation of {n} transfers ({cfg.steps} steps, {len(fit[1])} points, 1 thread): "
          f"batched {t_batch:.2f} s, one at a time {t_loop:.1f} s (from {n_loop}); "
          f"speed-up {t_loop / t_batch:.0f}x; "
          f"{batched.reprogrammed_per_transfer:.1f} devices reprogrammed per transfer")


def best_of(repeat: int, fn):  # type: ignore[no-untyped-def]
    times, out = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return min(times), float(np.median(times)), out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--transfers", type=int, default=2000)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--compensate", action="store_true", help="also time the compensation")
    args = ap.parse_args()
    data = load_moons()
    tm = TransferModel.from_preset()
    layout = layout_network(SIZES)
    params = network()
    n = args.transfers
    x, y = data.x_test, data.y_test
    evaluate_transfers(params, layout, tm, x, y, 10, np.random.default_rng(0))  # warm up
    best, med, m = best_of(args.repeat, lambda: evaluate_transfers(
        params, layout, tm, x, y, n, np.random.default_rng(1)))
    ref_best, ref_med, m_ref = best_of(1, lambda: loop_per_transfer(
        params, layout, tm, x, y, n, np.random.default_rng(1)))
    print(f"data: {data.source}; {n} transfers x {len(y)} points, {layout.n_devices} devices")
    print(f"{'method':<28}{'best (s)':>10}{'median (s)':>12}{'share >=95%':>13}")
    print(f"{'vectorised (xbarlab)':<28}{best:>10.4f}{med:>12.4f}{m.share_95:>13.3f}")
    print(f"{'loop per transfer (ref.)':<28}{ref_best:>10.4f}{ref_med:>12.4f}"
          f"{m_ref.share_95:>13.3f}")
    print(f"speed-up {ref_best / best:.0f}x; target <= 0.25 s: "
          f"{'met' if best <= 0.25 else 'MISSED'} (best {best:.3f} s, median {med:.3f} s)")
    if args.compensate:
        bench_compensation(params, layout, tm, data, n)


if __name__ == "__main__":
    main()
