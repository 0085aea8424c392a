"""CPU time of the simulated device update of a pulse (`TiO2Devices.apply_voltage`), this
checkout against a reference revision (default: HEAD, i.e. uncommitted changes) in the
same run, on the same pulses, and whether both leave the same states bit for bit (issue 15).

Run: .venv/bin/python bench/bench_device_update.py [--reference REV] [--size 64]
     [--pulses 3000] [--sample 16] [--repeat 3]

The pulses are recorded once from a compensated write-verify (bench_write_verify's session:
`--size` squared, 1 ohm segments, 10 ohm source and sense, every `--sample`-th cell): each pulse's
device voltages, width and the random generator's state before it. Each side then replays
them, in its own subprocess (its own import of xbarlab; the reference is extracted with
`git archive`), on a fresh array of the same seed: the generator is set to the recorded
state, the voltages are copied into a buffer (in cache, as the solver's fresh voltages
are), and the update is timed (time.process_time, summed over the pulses; the best of
`--repeat` rounds, sides alternated; one BLAS / numba thread). The states after the last
pulse (R, its non-volatile and volatile parts, wear, programming times, g, the device
clock, the generator's state) must be equal bit for bit: the same draws, in the same order.
A replay sees the voltages of the recorded session, not the ones its own states would give:
a timing of the update alone, not a session.
"""

from __future__ import annotations

import argparse
import os
import pickle
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from bench_wired_ops import THREADS, extract  # type: ignore[import-not-found]

ROOT = Path(__file__).resolve().parents[1]
STATE = ("_r", "_r_base", "_r_vol", "_wear", "_t_prog")


def record(path: Path, n_pulses: int, sample: int, size: int) -> int:
    """Record the first `n_pulses` pulses of a compensated `size` x `size` wired session."""
    import bench_write_verify as bwv  # type: ignore[import-not-found]

    from xbarlab.sim.tio2 import TiO2Devices

    pulses: list[tuple[np.ndarray, float, dict[str, Any]]] = []
    apply = TiO2Devices.apply_voltage

    def recorded(self: TiO2Devices, v: Any, width: float, rng: np.random.Generator) -> None:
        if len(pulses) < n_pulses:
            pulses.append((np.array(v, dtype=np.float64), float(width),
                           rng.bit_generator.state))
        apply(self, v, width, rng)

    order = [(r, c) for r in range(size) for c in range(size)]
    TiO2Devices.apply_voltage = recorded  # type: ignore[method-assign]
    try:
        with tempfile.TemporaryDirectory() as tmp:
            bwv.session(size, "wires", order[::sample], "compiled", Path(tmp), compensate=True)
    finally:
        TiO2Devices.apply_voltage = apply  # type: ignore[method-assign]
    with open(path, "wb") as fh:
        pickle.dump(pulses, fh)
    return len(pulses)


def worker(pulses_file: Path, out: Path) -> None:
    """Replay the recorded pulses on a fresh array (this process's xbarlab); write the CPU
    time and the final state to `out`."""
    from xbarlab.config import SimConfig
    from xbarlab.sim.factory import build_sim_crossbar

    with open(pulses_file, "rb") as fh:
        pulses = pickle.load(fh)
    size = int(pulses[0][0].shape[0])
    cfg = SimConfig(rows=size, cols=size, fidelity="wires", r_wire_row=1.0, r_wire_col=1.0,
                    r_source=10.0, r_sense=10.0, seed=1)
    spare = build_sim_crossbar(cfg)  # loads (or compiles) the kernels, not timed
    for v, width, _ in pulses[:20]:
        spare.devices.apply_voltage(v, width, spare.rng)
    xbar = build_sim_crossbar(cfg)
    dev, rng = xbar.devices, xbar.rng
    bg = rng.bit_generator
    buf = np.empty((size, size))
    cpu = 0.0
    clock = time.process_time
    for v, width, state in pulses:
        bg.state = state
        buf[...] = v
        t0 = clock()
        dev.apply_voltage(buf, width, rng)
        cpu += clock() - t0
    final = {name: np.array(getattr(dev, name)) for name in STATE}
    final["g"] = np.array(dev.g)
    final["clock"] = np.array(dev.clock)  # type: ignore[attr-defined]
    final["rng"] = np.frombuffer(pickle.dumps(bg.state), dtype=np.uint8)
    np.savez(out, cpu=cpu / len(pulses), **final)


def run_side(root: Path, pulses_file: Path, out: Path) -> dict[str, np.ndarray]:
    env = {**os.environ, **THREADS, "PYTHONPATH": str(root)}
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", str(pulses_file),
           "--out", str(out)]
    done = subprocess.run(cmd, env=env, cwd=root, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"worker in {root} failed: {done.stderr.strip().splitlines()[-1:]}")
    with np.load(out) as z:
        return {k: z[k] for k in z.files}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--reference", default="HEAD",
                        help="git revision of the reference (default: HEAD)")
    parser.add_argument("--size", type=int, default=64, help="rows and columns")
    parser.add_argument("--pulses", type=int, default=3000)
    parser.add_argument("--sample", type=int, default=16, help="every k-th cell is programmed")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--worker", type=Path, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker is not None:
        worker(args.worker, args.out)
        return
    rev = args.reference
    load = os.getloadavg()
    print(f"device update per pulse: this checkout vs {rev[:12]}, load {load[0]:.1f} / "
          f"{load[1]:.1f} / {load[2]:.1f}, 1 BLAS / numba thread, CPU µs per pulse (best of "
          f"{args.repeat} rounds, sides alternated)")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        pulses_file = folder / "pulses.pkl"
        n = record(pulses_file, args.pulses, args.sample, args.size)
        ref_root = extract(rev, folder)
        best = {"ref": np.inf, "new": np.inf}
        final: dict[str, dict[str, np.ndarray]] = {}
        for _ in range(args.repeat):
            for side, root in (("ref", ref_root), ("new", ROOT)):
                res = run_side(root, pulses_file, folder / f"{side}.npz")
                best[side] = min(best[side], float(res.pop("cpu")))
                final[side] = res
    same = all(np.array_equal(final["new"][k], final["ref"][k]) for k in final["ref"])
    print(f"{n} pulses of a compensated {args.size} x {args.size} wired write-verify (every "
          f"{args.sample}th "
          f"cell): {1e6 * best['new']:.1f} µs per pulse (reference {1e6 * best['ref']:.1f} µs,"
          f" {best['ref'] / best['new']:.2f}x); final states and generator "
          + ("identical bit for bit" if same else "DIFFERENT"))
    load = os.getloadavg()
    print(f"load at the end: {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f}")
    if not same:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
