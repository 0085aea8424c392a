"""Load a torch state dict (.pt) as per-layer numpy (weight, bias) pairs, for
`xbarlab.network.model.Network` (torch imported here only; the network programming path itself
never needs torch).

Two layouts are understood: xbarlab's `xbarlab.nn.model.MLP` (one flat ``theta``; the layer
sizes come from `sizes`, or are inferred for one hidden layer from the data set's input and
output counts), and any state dict of dense layers (``<name>.weight`` (out, in) and
``<name>.bias``, in the dict's order, e.g. a ``torch.nn.Sequential`` of ``Linear`` layers).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from xbarlab.crossbar import FloatArray

Params = list[tuple[FloatArray, FloatArray]]


def _sizes_for(n_params: int, n_in: int, n_out: int) -> tuple[int, int, int]:
    hidden = (n_params - n_out) / (n_in + 1 + n_out)
    if hidden < 1 or hidden != int(hidden):
        raise ValueError(f"a flat theta of {n_params} values is no {n_in}-h-{n_out} network; "
                         "give the layer sizes (--sizes)")
    return (n_in, int(hidden), n_out)


def load_state_dict(path: Path, sizes: Sequence[int] | None = None, n_in: int | None = None,
                    n_out: int = 1) -> Params:
    """The layers of torch file `path`; `ValueError` with one line for anything else."""
    import torch

    try:
        obj: Any = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many kinds for a file that is not its own
        raise ValueError(f"{path}: not a torch state dict ({type(exc).__name__})") from None
    if hasattr(obj, "state_dict") and callable(obj.state_dict):
        obj = obj.state_dict()
    if not isinstance(obj, dict):
        raise ValueError(f"{path}: holds a {type(obj).__name__}, not a state dict")
    arrays = {str(k): v.detach().cpu().numpy().astype(np.float64) for k, v in obj.items()
              if hasattr(v, "detach")}
    if "theta" in arrays:
        from xbarlab.nn.mapping import unflatten_params

        theta = arrays["theta"].ravel()
        if sizes is None:
            if n_in is None:
                raise ValueError(f"{path}: a flat theta needs the layer sizes (--sizes)")
            sizes = _sizes_for(theta.size, n_in, n_out)
        expected = sum(b * (a + 1) for a, b in itertools.pairwise(sizes))
        if expected != theta.size:
            raise ValueError(f"{path}: theta has {theta.size} values, sizes "
                             f"{'-'.join(map(str, sizes))} need {expected}")
        return [(np.array(w), np.array(b)) for w, b in unflatten_params(theta, tuple(sizes))]
    layers = []
    for key, w in arrays.items():
        if key.endswith(".weight") and w.ndim == 2:
            bias = arrays.get(key[: -len("weight")] + "bias", np.zeros(w.shape[0]))
            layers.append((w, bias))
    if not layers:
        raise ValueError(f"{path}: no dense layers (theta, or <name>.weight / <name>.bias)")
    return layers
