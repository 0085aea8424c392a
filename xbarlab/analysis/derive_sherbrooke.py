"""Derive the disturb statistics of the `tio2-sherbrooke-2023` preset from the reference data.

Reads delta_dicts.json of the Hardware-Aware-Article release (Drolet et al., 2023) from the
reference folder and writes per-k counts, mean, std and quantiles into
data/devices/tio2-sherbrooke-2023-disturb.yaml.
Run: ``python -m xbarlab.analysis.derive_sherbrooke``.

The reference folder is $XBARLAB_REFERENCE_DIR (the hardware-aware-article folder or the
folder holding it; $XBARLAB_REFERENCE, its older name, is read too), else ../shared/reference
next to the repository.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from xbarlab.sim.presets import preset_dir

REFERENCE_ENV = "XBARLAB_REFERENCE_DIR"  # the variable `xbarlab.nn.data` reads too
OLD_REFERENCE_ENV = "XBARLAB_REFERENCE"
ARTICLE = "hardware-aware-article"
DISTURB_FILE = "tio2-sherbrooke-2023-disturb.yaml"
MIN_SAMPLES = 20
"""k values with fewer measured devices than this are left out (quantiles too coarse)."""
QUANTILE_LEVELS = [round(i / 100, 2) for i in range(101)]
CLIP = 40e-6
"""delta_dicts.json values are clipped at +-40 uS (reference README)."""
SOURCE = (
    "derived by xbarlab.analysis.derive_sherbrooke from delta_dicts.json of "
    "github.com/3it-inpaqt/Hardware-Aware-Article (Drolet et al. 2023, arXiv 2305.18495, MIT): "
    "conductance change of a device after k later programmings in the same 8x8 passive TiO2 "
    "array, clipped at +-40 uS"
)


def reference_dir() -> Path | None:
    """The folder holding hardware-aware-article/, or None when it is absent."""
    env = os.environ.get(REFERENCE_ENV) or os.environ.get(OLD_REFERENCE_ENV)
    if env:  # an explicit location is the only one looked at
        candidates = [Path(env)]
    else:
        candidates = [Path(__file__).resolve().parents[2].parent / "shared" / "reference"]
    for c in candidates:
        if (c / ARTICLE).is_dir():
            return c
        if c.name == ARTICLE and c.is_dir():
            return c.parent
    return None


def article_dir() -> Path | None:
    """The hardware-aware-article reference folder, or None when absent."""
    ref = reference_dir()
    return None if ref is None else ref / ARTICLE


def load_delta_dicts(folder: Path) -> dict[int, np.ndarray]:
    """k -> measured conductance changes (S)."""
    raw = json.loads((folder / "delta_dicts.json").read_text(encoding="utf-8"))
    return {int(k): np.asarray(v, dtype=np.float64) for k, v in raw.items()}


def _ns(x: float) -> float:
    """Round a conductance (S) to 1 nS, far below the measurement resolution."""
    return round(float(x), 9)


def disturb_statistics(deltas: dict[int, np.ndarray]) -> dict[str, Any]:
    """Per-k statistics and quantiles for every k with at least MIN_SAMPLES samples."""
    ks = sorted(k for k, v in deltas.items() if v.size >= MIN_SAMPLES)
    levels = np.asarray(QUANTILE_LEVELS)
    return {
        "source": SOURCE,
        "unit": "S",
        "clip": CLIP,
        "k": ks,
        "n": [int(deltas[k].size) for k in ks],
        "mean": [_ns(deltas[k].mean()) for k in ks],
        "std": [_ns(deltas[k].std(ddof=1)) for k in ks],
        "quantile_levels": [float(x) for x in levels],
        "quantiles": [[_ns(x) for x in np.quantile(deltas[k], levels)] for k in ks],
    }


def write_disturb_file(stats: dict[str, Any], out: Path) -> None:
    header = (
        "# Per-k disturb statistics of the tio2-sherbrooke-2023 preset (generated file).\n"
        "# Regenerate: python -m xbarlab.analysis.derive_sherbrooke\n"
        f"# k: number of later programmings; n: samples; mean/std/quantiles in S; levels 0..1.\n"
        f"# Only k with at least {MIN_SAMPLES} samples are kept.\n"
    )

    class _Dumper(yaml.SafeDumper):
        pass

    def _flow_list(dumper: yaml.SafeDumper, data: list[Any]) -> Any:
        return dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=True)

    _Dumper.add_representer(list, _flow_list)
    body = yaml.dump(stats, Dumper=_Dumper, sort_keys=False, width=100)
    out.write_text(header + body, encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    folder = article_dir()
    if folder is None:
        print(
            f"reference folder not found (set ${REFERENCE_ENV} or provide ../shared/reference)",
            file=sys.stderr,
        )
        return 1
    stats = disturb_statistics(load_delta_dicts(folder))
    out = preset_dir() / DISTURB_FILE
    write_disturb_file(stats, out)
    print(f"wrote {out}: k = {stats['k'][0]}..{stats['k'][-1]}")
    for k in (1, 10, 30):
        i = stats["k"].index(k)
        print(
            f"  k={k}: n={stats['n'][i]} mean={stats['mean'][i] * 1e6:.2f} uS "
            f"std={stats['std'][i] * 1e6:.2f} uS"
        )
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main(sys.argv[1:]))
