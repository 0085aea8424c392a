"""Many logs at once: one summary row per log, or every measurement lazily, on Dask.

A folder of hundreds of session logs (a sweep, a week on the bench) is read in parallel:
`summarise_logs` gives one row per log (run metadata as columns: protocol, status, backend,
shape, seed, config fields flattened with dots, and measurement statistics); `measurements`
gives a lazy `dask.dataframe` of every measurement row with the run id, protocol and seed as
columns, so nothing is loaded before it is computed. Unreadable files become rows with an
`error` column, never an exception that stops the whole analysis.
"""

from __future__ import annotations

import contextlib
import glob
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from xbarlab.log.reader import LogReader


def log_paths(sources: Iterable[str | Path]) -> list[Path]:
    """Files named, files in named folders (`*.h5`, recursively) and glob patterns, sorted."""
    out: set[Path] = set()
    for src in sources:
        p = Path(src)
        if p.is_dir():
            out.update(p.rglob("*.h5"))
        elif any(ch in str(src) for ch in "*?["):
            out.update(Path(m) for m in glob.glob(str(src), recursive=True))
        else:
            out.add(p)
    return sorted(out)


def _flatten(tree: Mapping[str, Any], prefix: str) -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(_flatten(value, name + "."))
        elif isinstance(value, list):
            flat[name] = str(value)
        else:
            flat[name] = value
    return flat


def summarise_log(path: str | Path) -> dict[str, Any]:
    """One row describing a log: metadata, status, counts and conductance statistics."""
    row: dict[str, Any] = {"path": str(path)}
    try:
        with LogReader(path) as reader:
            info = reader.info
            end = reader.end
            m = reader.measurements_array()
            reads = m[m["kind"] == 0] if len(m) else m
            row.update({
                "run_id": info.run_id, "protocol": info.protocol, "seed": info.seed,
                "rows": info.shape[0], "cols": info.shape[1],
                "backend": str(info.backend.get("kind", info.backend.get("name", ""))),
                "start_time": info.start_time, "status": reader.status,
                "reason": end.reason if end else "", "events": reader.counts()["events"],
                "measurements": len(m), "pulses": int(np.sum(m["kind"] == 1)) if len(m) else 0,
                "duration_s": (end.time - info.start_time) if end else np.nan,
                "g_final_median": float(np.nanmedian(reader.final_conductances()))
                if len(reads) else np.nan,
                "error": "",
            })
            row.update(_flatten(info.config, "config."))
    except Exception as exc:  # a damaged or foreign file is a row, not the end of the analysis
        row["error"] = f"{type(exc).__name__}: {exc}"
    return row


def summarise_logs(
    sources: Iterable[str | Path], *, scheduler: str | None = None, workers: int | None = None,
) -> pd.DataFrame:
    """One summary row per log, computed in parallel on Dask (local threads by default, or
    the cluster at `scheduler`)."""
    paths = log_paths(sources)
    if not paths:
        return pd.DataFrame(columns=["path", "error"])
    import dask

    tasks = [dask.delayed(summarise_log)(str(p)) for p in paths]
    if scheduler:
        from distributed import Client

        with Client(scheduler, timeout="10s") as client:
            rows = client.compute(tasks, sync=True)
    else:
        rows = dask.compute(*tasks, scheduler="threads", num_workers=workers)
    return pd.DataFrame(list(rows))


def _measurement_frame(path: str, empty: pd.DataFrame | None = None) -> pd.DataFrame:
    """The measurements of one log with its run columns; with `empty`, an unreadable log
    gives that (empty) frame instead of an error."""
    try:
        with LogReader(path) as reader:
            info = reader.info
            frame = reader.measurements()
    except Exception:
        if empty is None:
            raise
        return empty
    for name in ("kind", "scheme", "protocol", "step"):
        frame[name] = frame[name].astype(str)
    return frame.assign(run_id=info.run_id, run_protocol=info.protocol,
                        seed=-1 if info.seed is None else info.seed, path=path)


def measurements(sources: Iterable[str | Path], *, skip_unreadable: bool = True) -> Any:
    """Every measurement row of every log as a lazy `dask.dataframe` (one partition per log),
    with `run_id`, `run_protocol`, `seed` and `path` columns. Unreadable logs contribute no
    rows (`summarise_logs` names them) unless `skip_unreadable` is False."""
    import dask.dataframe as dd

    paths = [str(p) for p in log_paths(sources)]
    meta = None
    for p in paths:
        with contextlib.suppress(Exception):
            meta = _measurement_frame(p).iloc[:0]
            break
    if meta is None:
        raise FileNotFoundError("no readable logs found")
    return dd.from_map(_measurement_frame, paths, meta=meta,
                       empty=meta if skip_unreadable else None)
