"""Reading what a program-network log says (for the tests)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from xbarlab.log.reader import LogReader


def checkpoints(path: Path, label: str) -> list[dict[str, Any]]:
    with LogReader(path) as log:
        notes = log.annotations()
    return [d for m, d in zip(notes["message"], notes["data"], strict=True) if m == label]


def programmed_cells(path: Path, job: str | None = None) -> list[tuple[int, int]]:
    """Cells whose write-verify finished (cell_done), in order, of one job or all."""
    return [(int(d["cell"][0]), int(d["cell"][1])) for d in checkpoints(path, "cell_done")
            if job is None or d["job"] == job]


def pulsed_cells(path: Path) -> Counter[tuple[int, int]]:
    """Pulses per cell in the log."""
    with LogReader(path) as log:
        m = log.measurements()
    p = m[m["kind"] == "pulse"]
    return Counter(zip(p["row"].astype(int), p["col"].astype(int), strict=True))


def status(path: Path) -> str:
    with LogReader(path) as log:
        return log.status


def pulses_by_job(path: Path) -> dict[str, Counter[tuple[int, int]]]:
    """Pulses per cell of each job (the pulses logged between its `job` checkpoint and the
    next job's, by the engine's sequence numbers)."""
    with LogReader(path) as log:
        notes = log.annotations()
        m = log.measurements()
    starts = [(int(s), str(d["job"])) for s, msg, d in
              zip(notes["seq"], notes["message"], notes["data"], strict=True) if msg == "job"]
    out: dict[str, Counter[tuple[int, int]]] = {job: Counter() for _, job in starts}
    p = m[(m["kind"] == "pulse") & (m["seq"] >= 0)]
    for seq, r, c in zip(p["seq"], p["row"], p["col"], strict=True):
        owner = [job for s, job in starts if s < seq]
        if owner:
            out[owner[-1]][(int(r), int(c))] += 1
    return out


def done_by_job(path: Path) -> dict[str, set[tuple[int, int]]]:
    out: dict[str, set[tuple[int, int]]] = {}
    for d in checkpoints(path, "cell_done"):
        out.setdefault(str(d["job"]), set()).add((int(d["cell"][0]), int(d["cell"][1])))
    return out
