"""Train the paper's 2-8-1 half-moons networks (regular and hardware-aware, xbarlab.nn's
paper recipe) and save them as .npz for `xbarlab program-network` (needs torch).

    python examples/network/train_moons.py --seed 0 --out nets/
    xbarlab program-network nets/hardware-aware-0.npz --config examples/network/sim-wires.yaml \
        --out ha.h5 --plot ha.png
"""

from __future__ import annotations

import argparse
from pathlib import Path

from xbarlab.network.model import Network, save_npz
from xbarlab.nn.data import load_moons
from xbarlab.nn.training import paper_config, train


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=Path("."))
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    data = load_moons()
    for kind in ("regular", "hardware-aware"):
        res = train(paper_config(kind, seed=args.seed), data)  # type: ignore[arg-type]
        path = save_npz(Network.of(res.params, "sigmoid", "moons"),
                        args.out / f"{kind}-{args.seed}.npz")
        print(f"{path}: train accuracy {res.train_accuracy * 100:.1f} %, {res.seconds:.0f} s")


if __name__ == "__main__":
    main()
