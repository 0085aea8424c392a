"""Compliance notes of reads and pulses, rebuilt from the measurement rows' compliance flags.

A read or pulse that hit the current compliance is recorded by its own measurement rows
(``compliance`` True; a read's conductance NaN). Logs of earlier xbarlab also hold a
separate ``compliance`` event right after such an operation (a message naming the cells and
data ``{"cells", "during", "compliance_A"}``); the run engine no longer emits it, because
logging it cost as much as logging the operation itself (a V/2 pulse on a 64 x 64 array hits
the compliance every time). `LogReader.annotations` lists one compliance note per such
operation for logs of both kinds, with the text the engine used to write (`compliance_note`),
so nothing a reader or tool showed is lost. An MVM with clamped outputs still gets its event.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from xbarlab.log import schema as sc

_READ, _PULSE = sc.KIND_CODE["read"], sc.KIND_CODE["pulse"]
_COMPLIANCE = sc.KIND_CODE["compliance"]


def compliance_note(limit: float, during: str,
                    cells: Iterable[tuple[int, int]]) -> tuple[str, dict[str, Any]]:
    """The message and data of the compliance note of an operation (`during`: "read at
    +0.2 V" or "pulse of +1.2 V, 1e-06 s") that hit `limit` (A) on `cells`."""
    listed = [(int(r), int(c)) for r, c in cells]
    shown = ", ".join(map(str, listed[:8])) + (" ..." if len(listed) > 8 else "")
    message = f"current compliance ({limit:g} A) reached during the {during} on {shown}"
    return message, {"cells": [list(c) for c in listed], "during": during,
                     "compliance_A": limit}


def flagged_operations(
    meas: np.ndarray[Any, Any], event_kinds: np.ndarray[Any, Any]
) -> list[tuple[int, str, list[tuple[int, int]]]]:
    """(row of /events, during, cells) of every read or pulse with measurement rows in
    compliance that no ``compliance`` event follows (in logs of earlier xbarlab one does).

    `meas`: /measurements rows; `event_kinds`: the kind code of each /events row."""
    kind = meas["kind"]
    hit = meas["compliance"].astype(bool) & ((kind == _READ) | (kind == _PULSE))
    owner = meas["event"][hit].astype(np.int64)
    n_events = len(event_kinds)
    noted = np.zeros(n_events, dtype=bool)  # the next event is a compliance event
    noted[:-1] = np.asarray(event_kinds[1:]) == _COMPLIANCE
    keep = (owner >= 0) & (owner < n_events)
    keep[keep] = ~noted[owner[keep]]
    rows = meas[hit][keep]
    owner = owner[keep]
    out: list[tuple[int, str, list[tuple[int, int]]]] = []
    if not len(rows):
        return out
    starts = np.flatnonzero(np.r_[True, owner[1:] != owner[:-1]])
    ends = np.r_[starts[1:], len(rows)]
    cells = np.stack([rows["row"], rows["col"]], axis=1).tolist()
    for a, b in zip(starts.tolist(), ends.tolist(), strict=True):
        first = rows[a]
        v = float(first["voltage"])
        during = (f"read at {v:+g} V" if int(first["kind"]) == _READ
                  else f"pulse of {v:+g} V, {float(first['width']):g} s")
        out.append((int(owner[a]), during, [(r, c) for r, c in cells[a:b]]))
    return out
