"""A resumed simulated run continues from the chip's physical state: the old runs' logged
operations replayed on a fresh simulator.

A simulated chip keeps no state between processes, and its last reads are not its state:
devices programmed early are disturbed by every later pulse (half-select, sneak currents), and
setting them back to their last read would erase that. A simulated chip is deterministic given
its config (device draws and noise stream from ``sim.seed``) and the operations sent to it,
and the log holds every operation (reads with their cells, voltage and scheme; pulses with
their amplitude, width and scheme; MVM inputs; waits). Replaying them in order on a chip built
from the same config reproduces its state, noise stream included, as it was at the last
logged operation (`replay`); a bench needs none of this (its devices keep their state).

What a killed process did after its log's last flush is lost with it; the replayed state is
the one the log records (the same log tells which devices were done).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from xbarlab.crossbar import BiasScheme, Crossbar
from xbarlab.log import schema as sc
from xbarlab.log.reader import LogReader

READ, PULSE, MVM, CHECKPOINT = (sc.KIND_CODE[k] for k in ("read", "pulse", "mvm",
                                                          "checkpoint"))


def replay_log(backend: Crossbar, path: Path) -> int:
    """Send the operations of log `path` to `backend` again, in their order; returns how many
    were replayed (the replay stops at the first operation whose rows are not all in the
    file: a log cut short by a kill)."""
    with LogReader(path) as log:
        events = log.events_array()
        meas = log.measurements_array()
        mvm_in = log.mvm().inputs
        n = 0
        for e in events:
            kind = int(e["kind"])
            if kind in (READ, PULSE):
                s, k = int(e["meas_start"]), int(e["meas_count"])
                if s < 0 or s + k > len(meas) or k == 0:
                    break
                rows = meas[s:s + k]
                scheme = BiasScheme(sc.SCHEMES[int(rows["scheme"][0])])
                cells = np.stack([rows["row"], rows["col"]], axis=1).astype(np.int64)
                if kind == READ:
                    backend.read(cells, float(rows["voltage"][0]), scheme)
                else:
                    backend.pulse((int(cells[0, 0]), int(cells[0, 1])), float(rows["voltage"][0]),
                                  float(rows["width"][0]), scheme)
            elif kind == MVM:
                s, k = int(e["mvm_start"]), int(e["mvm_count"])
                if s < 0 or s + k > len(mvm_in):
                    break
                backend.mvm(np.asarray(mvm_in[s:s + k]))
            elif kind == CHECKPOINT and _message(log, e) == "wait":
                wait = getattr(backend, "wait", None)
                data: Any = json.loads(log.text(int(e["data_start"]), int(e["data_len"])))
                if callable(wait):
                    wait(float(data["seconds"]))
            else:
                continue
            n += 1
    return n


def _message(log: LogReader, e: Any) -> str:
    return log.text(int(e["message_start"]), int(e["message_len"]))


def replay(backend: Crossbar, logs: Sequence[Path]) -> int:
    """`replay_log` of every log of `logs`, oldest first (a chain of resumed runs)."""
    return sum(replay_log(backend, p) for p in logs)
