"""Run a sweep's points on Dask: a local cluster by default, any scheduler when given.

Each point runs as one Dask task that writes its own outputs into the sweep folder:
`points/<id>.h5` (the point's HDF5 log) and `points/<id>.json` (its result row), each written
under a temporary name and renamed when complete, so a worker killed mid-point leaves nothing
that looks finished; the scheduler reruns the point on another worker. The merged table
(`results.parquet`) is rebuilt from the finished rows, also by an atomic rename, so it never
holds a half-written point and every point appears once. Rerunning a sweep skips the points
whose row says they finished; failed points rerun only with `retry_failed`.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import logging
import os
import socket
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from xbarlab.config import ConfigError
from xbarlab.sweep.spec import Point

POINTS_DIR = "points"
TABLE = "results.parquet"
FAILED_STATUSES = frozenset({"error", "failed", "aborted"})


def point_failed(row: dict[str, Any]) -> bool:
    """Whether a point's run did not finish. A write-verify that ran to its end with no cell in
    tolerance has status 'failed' too, but it is a result of the sweep (`completed`)."""
    return row.get("status") in FAILED_STATUSES and not row.get("completed", False)

Task = Callable[[Point, Path], dict[str, Any]]
"""Runs one point, writing its log to the given path; returns its result fields (status ...)."""


class SweepError(RuntimeError):
    """A sweep that cannot start (no Dask, unreachable scheduler, unusable folder)."""


@dataclass
class SweepReport:
    """What a sweep run did."""

    ran: list[str] = field(default_factory=list)  # point ids run now
    skipped: list[str] = field(default_factory=list)  # finished before, not rerun
    failed: list[str] = field(default_factory=list)  # ran now (or before) and did not finish
    table: Path | None = None
    dashboard: str | None = None
    wall_time: float = 0.0


def row_path(out_dir: Path, pid: str) -> Path:
    return out_dir / POINTS_DIR / f"{pid}.json"


def log_path(out_dir: Path, pid: str) -> Path:
    return out_dir / POINTS_DIR / f"{pid}.h5"


def read_row(out_dir: Path, pid: str) -> dict[str, Any] | None:
    """A point's finished row, or None if it has none (or an unreadable one)."""
    try:
        row = json.loads(row_path(out_dir, pid).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return row if isinstance(row, dict) else None


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def run_point(task: Task, point: Point, out_dir: str, token: str = "") -> dict[str, Any]:
    """Run one point with `task` (on a worker) and store its row; returns the row.

    The log is written as `<id>.h5.part` and renamed to `<id>.h5` when the task returns, the
    row last of all: a point with a row is complete. Exceptions become status 'error'. A
    point this sweep run (`token`) already finished is not run again: when the worker that
    held its result dies, the scheduler reruns the task, which then returns the stored row.
    """
    folder = Path(out_dir)
    done = read_row(folder, point.point_id)
    if token and done is not None and done.get("sweep_run") == token:
        return done
    final_log = log_path(folder, point.point_id)
    part_log = final_log.with_name(final_log.name + ".part")
    part_log.unlink(missing_ok=True)
    t0, cpu0, t0_epoch = time.perf_counter(), time.process_time(), time.time()
    try:
        fields = task(point, part_log)
    except Exception as exc:  # a point's failure is a result of the sweep, not its end
        fields = {"status": "error", "reason": f"{type(exc).__name__}: {exc}"}
    if part_log.exists():
        os.replace(part_log, final_log)
    row: dict[str, Any] = {
        "point": point.point_id,
        "index": point.index,
        "command": point.command,
        **{f"param.{k}": v for k, v in point.overrides.items()},
        "status": "error",
        "reason": "",
        "run_id": None,
        **fields,
        "log": str(final_log.relative_to(folder)) if final_log.exists() else None,
        "wall_time_s": round(time.perf_counter() - t0, 4),
        "cpu_time_s": round(time.process_time() - cpu0, 4),
        "started": t0_epoch,
        "worker": f"{socket.gethostname()}:{os.getpid()}",
        "sweep_run": token,
        "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    _atomic_write(row_path(folder, point.point_id), json.dumps(row, default=_plain))
    return row


def _plain(value: Any) -> Any:
    item = getattr(value, "item", None)
    return item() if callable(item) else str(value)


def merge_table(out_dir: Path, points: Sequence[Point]) -> Path:
    """Write the rows of `points` that have one into `results.parquet` (atomically)."""
    rows = [r for p in points if (r := read_row(out_dir, p.point_id)) is not None]
    frame = pd.DataFrame(rows)
    target = out_dir / TABLE
    tmp = out_dir / f".{TABLE}.{os.getpid()}.tmp"
    frame.to_parquet(tmp, index=False)
    os.replace(tmp, target)
    return target


def read_table(out_dir: str | Path) -> pd.DataFrame:
    """The merged results table of a sweep folder."""
    path = Path(out_dir) / TABLE
    if not path.exists():
        raise ConfigError(f"{out_dir}: no {TABLE} (not a sweep folder, or no point finished)")
    try:
        return pd.read_parquet(path)
    except Exception as exc:  # pyarrow raises several types for a damaged file
        raise ConfigError(f"{path}: unreadable results table ({exc})") from None


def plan_work(
    points: Sequence[Point], out_dir: Path, retry_failed: bool
) -> tuple[list[Point], list[Point]]:
    """Split `points` into (to run, skipped as finished)."""
    todo: list[Point] = []
    done: list[Point] = []
    for p in points:
        row = read_row(out_dir, p.point_id)
        finished = row is not None and (not point_failed(row) or not retry_failed)
        (done if finished else todo).append(p)
    return todo, done


def size_hint(point: Point) -> int:
    """A point's simulated array size in cells (1 without one): the Dask priority of its task.

    Larger points start first, so that a sweep does not end with one large point running
    alone while the other workers idle (longest-first scheduling)."""
    sim = point.config.get("sim")
    if not isinstance(sim, dict):
        return 1
    rows, cols = sim.get("rows", 1), sim.get("cols", 1)
    return rows * cols if isinstance(rows, int) and isinstance(cols, int) else 1


LOCAL_WORKER_CONFIG = {
    "distributed.worker.profile.enabled": False,
    "distributed.worker.memory.monitor-interval": "2s",
    "distributed.admin.system-monitor.interval": "2s",
}
"""Dask settings of the local cluster's workers (passed to the worker processes)."""


def require_dask() -> None:
    """Raise `SweepError` with the install line when dask.distributed is missing."""
    if importlib.util.find_spec("distributed") is None:
        raise SweepError("sweeps need dask.distributed: pip install 'xbarlab[sweep]'")


@contextlib.contextmanager
def dask_client(
    scheduler: str | None, workers: int | None, timeout: float = 10.0
) -> Iterator[Any]:
    """A connected `distributed.Client`: to `scheduler`, or to a new local cluster."""
    require_dask()
    import dask
    from distributed import Client, LocalCluster

    logging.getLogger("distributed").setLevel(logging.ERROR)
    if scheduler:
        try:
            client = Client(scheduler, timeout=f"{timeout}s")
        except (OSError, TimeoutError, ValueError) as exc:
            raise SweepError(f"cannot reach the Dask scheduler at {scheduler}: {exc}") from None
        try:
            yield client
        finally:
            client.close()
        return
    # ":0": a free port for the scheduler's HTTP server (the default 8787 may be taken).
    # The workers' sampling profiler (a thread that takes the GIL every 10 ms to walk the
    # task's stack) and their frequent memory / system polls cost each point CPU time and
    # GIL hand-overs; sweep points run for seconds to minutes, so they are switched off or
    # slowed down (the dashboard's profile page stays empty).
    with dask.config.set(LOCAL_WORKER_CONFIG), LocalCluster(
        n_workers=workers or os.cpu_count() or 1, threads_per_worker=1, processes=True,
        dashboard_address=":0", silence_logs=logging.ERROR,
    ) as cluster, Client(cluster) as client:
        yield client


def run_sweep(
    points: Sequence[Point],
    task: Task,
    out_dir: Path,
    *,
    scheduler: str | None = None,
    workers: int | None = None,
    retry_failed: bool = False,
    on_start: Callable[[int, int, str | None], None] | None = None,
    on_row: Callable[[dict[str, Any]], None] | None = None,
) -> SweepReport:
    """Run every unfinished point of `points` on Dask; merge the table; report.

    `on_start(n_to_run, n_skipped, dashboard_link)` is called once connected, `on_row(row)` as
    each point finishes (in completion order).
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / POINTS_DIR).mkdir(exist_ok=True)
    todo, done = plan_work(points, out_dir, retry_failed)
    report = SweepReport(skipped=[p.point_id for p in done])
    t0 = time.perf_counter()
    if todo:
        with dask_client(scheduler, workers) as client:
            from distributed import as_completed

            services = client.scheduler_info().get("services", {})
            has_pages = importlib.util.find_spec("bokeh") is not None  # the dashboard's pages
            report.dashboard = client.dashboard_link if "dashboard" in services and (
                has_pages or scheduler) else None
            if on_start:
                on_start(len(todo), len(done), report.dashboard)
            token = uuid.uuid4().hex
            futures = {
                client.submit(run_point, task, p, str(out_dir), token, priority=size_hint(p),
                              key=f"xbarlab-point-{p.point_id}-{token[:8]}", pure=False): p
                for p in sorted(todo, key=size_hint, reverse=True)  # stable: file order
            }
            for fut in as_completed(futures):
                p = futures[fut]
                try:
                    row = fut.result()
                except Exception as exc:  # KilledWorker after repeated worker deaths, ...
                    row = {"point": p.point_id, "index": p.index, "command": p.command,
                           "status": "error", "reason": f"{type(exc).__name__}: {exc}"}
                    _atomic_write(row_path(out_dir, p.point_id), json.dumps(row, default=_plain))
                report.ran.append(p.point_id)
                if on_row:
                    on_row(row)
    elif on_start:
        on_start(0, len(done), None)
    report.failed = [
        p.point_id for p in points
        if (r := read_row(out_dir, p.point_id)) is not None and point_failed(r)
    ]
    report.table = merge_table(out_dir, points)
    report.wall_time = time.perf_counter() - t0
    return report
