"""Sequence: elementary steps (pulse, read, delay, loop) and whole protocols, in order.

Described in YAML as a list of steps, e.g.::

    steps:
      - protocol: {kind: forming, cells: [[0, 0]]}
      - loop:
          times: 3
          steps:
            - pulse: {cell: [0, 0], voltage: 1.2, width: 1.0e-4}
            - read: {cells: [[0, 0]]}
            - delay: 0.5
      - protocol: {kind: retention, cells: [[0, 0]], duration: 60, points: 5}
"""

from __future__ import annotations

from typing import Any

from xbarlab.messages import Checkpoint, Plan, Pulse, Read, Wait
from xbarlab.protocol_configs import SequenceConfig, Step, resolve_cells


def _steps(steps: list[Step], shape: tuple[int, int], path: str) -> Plan:
    from xbarlab.protocols.registry import plan_for  # the registry builds nested protocols

    results: list[Any] = []
    for k, step in enumerate(steps):
        where = f"{path}{k + 1}"
        if step.pulse is not None:
            p = step.pulse
            results.append((yield Pulse((int(p.cell[0]), int(p.cell[1])), p.voltage, p.width,
                                        p.scheme, tag="seq_pulse")))
        elif step.read is not None:
            rd = step.read
            cells = None if rd.cells == "all" else tuple(resolve_cells(rd.cells, shape))
            results.append((yield Read(cells, rd.v_read, rd.scheme, tag="seq_read")))
        elif step.delay is not None:
            results.append((yield Wait(step.delay, tag="seq_delay")))
        elif step.loop is not None:
            for n in range(step.loop.times):
                results.append((yield from _steps(step.loop.steps, shape, f"{where}.{n + 1}.")))
        elif step.protocol is not None:
            yield Checkpoint("protocol_start", {"step": where, "kind": step.protocol.kind})
            results.append((yield from plan_for(step.protocol, shape)))
    return results


def sequence(cfg: SequenceConfig, shape: tuple[int, int]) -> Plan:
    """Run the steps of `cfg` on an array of `shape`; returns each top-level step's result."""
    results: list[Any] = []
    for k, step in enumerate(cfg.steps):
        value = yield from _steps([step], shape, f"{k + 1}:")
        results.append(value[0] if value else None)
        yield Checkpoint("step_done", {"progress": (k + 1, len(cfg.steps)), "step": k + 1})
    return results
