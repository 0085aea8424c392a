"""Regular and hardware-aware networks on many simulated chips, with and without
chip-in-the-loop compensation (`xbarlab reproduce drolet2023-compensation`).

Networks: the paper's 2-8-1 half-moons classifiers trained with xbarlab's recipe on the
physical mapping (`xbarlab.nn.reproduce.RECIPES["physical"]["xbarlab"]`: regular 2000 epochs;
hardware-aware against the paper's transfer statistics, no weight decay, 8 transfers per step,
cosine lr, 2000 epochs), seeds 0, 1, ... as asked. Every network is programmed onto the same
chips (`xbarlab.network.chips_study`: chip i draws its devices from the study seed and i) and
scored on the paper's 200 test points before and after compensation; the compensation fits on
the training and validation points that are not test points.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from xbarlab.network.chips_report import NetworkChips
from xbarlab.network.chips_study import run_chips
from xbarlab.network.config import NetworkSessionConfig
from xbarlab.network.datasets import EvalSet
from xbarlab.network.model import Network
from xbarlab.nn.data import load_moons
from xbarlab.nn.metrics import correct_matrix, mlp_logits
from xbarlab.nn.reproduce import RECIPES
from xbarlab.nn.training import paper_config, train

KINDS = ("hardware-aware", "regular")  # the one the target is about first


def train_network(kind: str, seed: int, epochs: int, cfg: NetworkSessionConfig,
                  threads: int = 1) -> tuple[Network, float]:
    """Network `kind` of `seed` (xbarlab's physical recipe) and its nominal test accuracy."""
    data = load_moons()
    recipe = {k: v for k, v in RECIPES["physical"]["xbarlab"][kind].items() if k != "epochs"}
    tcfg = paper_config(kind, epochs=epochs, seed=seed,  # type: ignore[arg-type]
                        array_rows=cfg.sim.rows, array_cols=cfg.sim.cols,
                        order=cfg.network.order, threads=threads, **recipe)
    params = train(tcfg, data).params
    nominal = float(correct_matrix(mlp_logits(data.x_test, params, dtype=np.float64),
                                   data.y_test)[0].mean())
    return Network.of(params, "sigmoid", "moons"), nominal


def evalset() -> EvalSet:
    """Calibration: training and validation points that are not test points; test: the
    paper's 200 (or the matched scikit-learn draw's)."""
    d = load_moons()
    x_cal, y_cal = d.selection_points()
    return EvalSet(x_cal, y_cal.astype(np.int64), d.x_test, d.y_test.astype(np.int64),
                   "moons", d.source)


@dataclass
class Study:
    nets: list[NetworkChips]
    seconds: float


def run_study(cfg: NetworkSessionConfig, chips: int, seeds: int = 1, epochs: int = 2000,
              workers: int = 1, threads: int = 1,
              say: Callable[[str], None] | None = None,
              done: Callable[[NetworkChips], None] | None = None, first_seed: int = 0,
              kinds: tuple[str, ...] = KINDS) -> Study:
    """Train each of `kinds` for seeds `first_seed` .. `first_seed + seeds - 1` and program
    each network on `chips` chips; `done` gets every network as soon as its chips are
    finished."""
    tell = say or (lambda _m: None)
    t0 = time.perf_counter()
    data = evalset()
    nets = []
    for seed in range(first_seed, first_seed + seeds):
        for kind in kinds:
            tell(f"training {kind} seed {seed}")
            net, nominal = train_network(kind, seed, epochs, cfg, threads)
            tell(f"{kind} seed {seed}: nominal accuracy {100 * nominal:.1f} %; programming "
                 f"{chips} chips")
            t1 = time.perf_counter()

            def chip_done(k: int, n: int, kind: str = kind, seed: int = seed,
                          t1: float = t1) -> None:
                left = (time.perf_counter() - t1) / k * (n - k)
                tell(f"{kind} seed {seed}: chip {k}/{n} (about {left / 60:.0f} min left)")

            records = run_chips(net, data, cfg, chips, workers, chip_done)
            nc = NetworkChips(kind, seed, nominal, records)
            nets.append(nc)
            if done is not None:
                done(nc)
    return Study(nets, time.perf_counter() - t0)
