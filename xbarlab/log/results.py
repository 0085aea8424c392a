"""Analysis results (tables, curves, per-point data) to a small HDF5 file, and back.

Not the measurement log (`xbarlab.log.writer`): a plain tree written once. A nested mapping
becomes groups; numpy arrays and lists of numbers become datasets; scalars and strings become
attributes of their group; other mappings or lists are stored as JSON attributes.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

import h5py
import numpy as np

from xbarlab.log.schema import LIBVER

RESULTS_SCHEMA: Final = "xbarlab.results"
RESULTS_VERSION: Final = 1


def _is_numeric_list(v: Any) -> bool:
    if not isinstance(v, list | tuple) or not v:
        return False
    try:
        arr = np.asarray(v)
    except ValueError:
        return False
    return arr.dtype.kind in "biuf"


def _write(group: h5py.Group, tree: Mapping[str, Any]) -> None:
    for key, value in tree.items():
        name = str(key)
        if "/" in name or not name:
            raise ValueError(f"invalid result name {name!r} (empty or containing '/')")
        if isinstance(value, Mapping):
            _write(group.create_group(name), value)
        elif isinstance(value, np.ndarray) or _is_numeric_list(value):
            arr = np.asarray(value)
            if arr.dtype.kind not in "biuf":
                raise ValueError(f"{group.name}/{name}: only numeric arrays are stored as data")
            group.create_dataset(name, data=arr)
        elif isinstance(value, str | bool | int | float | np.generic) or value is None:
            group.attrs[name] = "null" if value is None else value
        else:
            group.attrs[name] = json.dumps(value, default=str)


def write_results(path: str | Path, tree: Mapping[str, Any], *, overwrite: bool = False) -> Path:
    """Write the nested mapping `tree` to `path`; refuses to replace a file unless `overwrite`."""
    p = Path(path)
    if p.exists() and not overwrite:
        raise FileExistsError(f"{p} exists; choose another name or allow overwriting")
    p.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(p, "w", libver=LIBVER) as f:
        f.attrs["schema"] = RESULTS_SCHEMA
        f.attrs["schema_version"] = RESULTS_VERSION
        f.attrs["created"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        _write(f, tree)
    return p


def _read(group: h5py.Group) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in group.attrs.items():
        if isinstance(v, bytes):
            v = v.decode()
        out[k] = v.item() if isinstance(v, np.generic) else v
    for k, item in group.items():
        out[k] = _read(item) if isinstance(item, h5py.Group) else item[()]
    return out


def read_results(path: str | Path) -> dict[str, Any]:
    """The tree of a results file (attributes and datasets side by side; JSON left as text)."""
    with h5py.File(path, "r") as f:
        if f.attrs.get("schema") != RESULTS_SCHEMA:
            raise ValueError(f"{path} is not an xbarlab results file")
        return _read(f)
