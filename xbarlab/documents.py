"""Documents the run engine emits to subscribers: one start, one event per operation, one stop.

Subscribers (the HDF5 writer, a progress bar, a live plot) are callables taking a `Document`.
Arrays in events are owned by the event: subscribers may keep references to them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from enum import StrEnum
from typing import Any

import numpy as np

from xbarlab.crossbar import BoolArray, FloatArray, IntArray

_EMPTY_F = np.zeros(0)
_EMPTY_B = np.zeros(0, dtype=bool)
_EMPTY_CELLS = np.zeros((0, 2), dtype=np.int64)
_NAN = float("nan")


class EventKind(StrEnum):
    """What an event records."""

    READ = "read"
    PULSE = "pulse"
    MVM = "mvm"
    CHECKPOINT = "checkpoint"
    REFUSED = "refused"  # an operation the safety check refused; nothing was applied
    FAULT = "fault"  # an instrument error, a timeout, a compliance trip that stopped the run
    # appended (the log stores kinds by position): new kinds go at the end
    COMPLIANCE = "compliance"  # a read or pulse hit the current compliance (cells, message)
    SAFE_STATE = "safe_state"  # the backend confirmed its safe state at the end of the run
    RECONNECT = "reconnect"  # a link was reopened (and the operation reached after it)


class RunStatus(StrEnum):
    """How a run ended (new members go last: the log stores the position)."""

    SUCCESS = "success"  # ran to the end; the protocol gives no verdict of its own (read map)
    FAILED = "failed"  # a fault, a refusal, or a job not done at all (reason says which)
    ABORTED = "aborted"  # stopped from outside (Ctrl-C, SIGTERM)
    PROGRAMMED = "programmed"  # write-verify: every programmed cell in tolerance at the end
    PARTIAL = "partial"  # ran to the end, job partly done (the reason gives the counts)


@dataclass(frozen=True, slots=True)
class RunStart:
    """The start of a run, with everything needed to reproduce it."""

    run_id: str
    time: float  # Unix time, s
    protocol: str
    config: Mapping[str, Any]
    seed: int | None
    version: str
    git_revision: str | None
    backend: Mapping[str, Any]
    limits: Mapping[str, Any]
    shape: tuple[int, int]


@dataclass(frozen=True, slots=True, init=False)
class Event:
    """One operation on the crossbar (or a refusal, a fault, a checkpoint).

    For a read of k cells: `cells` (k, 2), `voltages` (k,) applied, `currents` (k,) measured,
    `conductances` (k,) = I / V. For a pulse: one cell, its signed voltage and `width`.
    For an MVM: `mvm_in` (B, M) row voltages and `mvm_out` (B, N) column currents.

    Frozen like the other documents, but built by a hand-written ``__init__`` that sets the
    slots through their descriptors: the engine makes one or two per operation, and the
    generated frozen ``__init__`` (``object.__setattr__`` per field) costs twice as much.
    """

    seq: int
    time: float
    kind: EventKind
    protocol: str
    step: str
    scheme: str = ""
    width: float = float("nan")
    cells: IntArray = field(default_factory=lambda: _EMPTY_CELLS)
    voltages: FloatArray = field(default_factory=lambda: _EMPTY_F)
    currents: FloatArray = field(default_factory=lambda: _EMPTY_F)
    conductances: FloatArray = field(default_factory=lambda: _EMPTY_F)
    compliance: BoolArray = field(default_factory=lambda: _EMPTY_B)
    mvm_in: FloatArray | None = None
    mvm_out: FloatArray | None = None
    message: str = ""
    data: Mapping[str, Any] | None = None

    def __init__(  # same signature and defaults as the generated one
        self,
        seq: int,
        time: float,
        kind: EventKind,
        protocol: str,
        step: str,
        scheme: str = "",
        width: float = _NAN,
        cells: IntArray = _EMPTY_CELLS,
        voltages: FloatArray = _EMPTY_F,
        currents: FloatArray = _EMPTY_F,
        conductances: FloatArray = _EMPTY_F,
        compliance: BoolArray = _EMPTY_B,
        mvm_in: FloatArray | None = None,
        mvm_out: FloatArray | None = None,
        message: str = "",
        data: Mapping[str, Any] | None = None,
    ) -> None:
        (s_seq, s_time, s_kind, s_protocol, s_step, s_scheme, s_width, s_cells, s_voltages,
         s_currents, s_conductances, s_compliance, s_mvm_in, s_mvm_out, s_message,
         s_data) = _EVENT_SLOTS
        s_seq(self, seq)
        s_time(self, time)
        s_kind(self, kind)
        s_protocol(self, protocol)
        s_step(self, step)
        s_scheme(self, scheme)
        s_width(self, width)
        s_cells(self, cells)
        s_voltages(self, voltages)
        s_currents(self, currents)
        s_conductances(self, conductances)
        s_compliance(self, compliance)
        s_mvm_in(self, mvm_in)
        s_mvm_out(self, mvm_out)
        s_message(self, message)
        s_data(self, data)


_EVENT_SLOTS: tuple[Callable[[Event, Any], None], ...] = tuple(
    Event.__dict__[f.name].__set__ for f in fields(Event))
"""The slot setters of `Event`, in field order (what its ``__init__`` calls)."""


@dataclass(frozen=True, slots=True)
class RunStop:
    """The end of a run."""

    run_id: str
    time: float
    status: RunStatus
    reason: str
    n_events: int


Document = RunStart | Event | RunStop
Subscriber = Callable[[Document], None]
