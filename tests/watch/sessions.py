"""A simulated write-verify session that writes its HDF5 log in a background thread and stops
at gates, so a test knows exactly what the log holds while the watch page follows it."""

from __future__ import annotations

import threading
from collections.abc import Generator
from pathlib import Path
from typing import Any

from xbarlab.config import (
    PatternTarget,
    SessionConfig,
    SimConfig,
    WriteVerifyArrayProtocol,
    WriteVerifyParams,
)
from xbarlab.engine import RunEngine, RunResult
from xbarlab.limits import BenchLimits
from xbarlab.log.writer import HDF5Writer
from xbarlab.messages import Checkpoint, Message, Plan, Pulse
from xbarlab.protocols.patterns import target_map
from xbarlab.protocols.write_verify import write_verify_array
from xbarlab.sim.factory import build_sim_crossbar

SHAPE = (8, 8)
PARAMS = WriteVerifyParams(width=1e-6, tolerance=0.05, max_pulses=30)
# a compliance low enough for the strongest SET pulses to reach it (events on the page)
LIMITS = BenchLimits(compliance=2e-3)


def session_config() -> SessionConfig:
    return SessionConfig(
        sim=SimConfig(rows=SHAPE[0], cols=SHAPE[1], noise=False, seed=3), limits=LIMITS,
        protocol=WriteVerifyArrayProtocol(target=PatternTarget(), params=PARAMS))


class GatedSession(threading.Thread):
    """Runs the session; after cell number `g` of each gate is done (and, for the last gate,
    an out-of-limit pulse was refused), flushes the log and waits until `release()`."""

    def __init__(self, out: Path, gates: tuple[int, ...] = (8, 24), delay: float = 0.0,
                 refuse_at: int | None = None) -> None:
        super().__init__(name="gated-session", daemon=True)
        self.out = out
        self.gates = gates
        self.delay = delay
        self.refuse_at = refuse_at
        self.reached = threading.Event()
        self._go = threading.Event()
        self.at_gate: int | None = None
        self.result: RunResult | None = None
        self.error: BaseException | None = None
        self.writer: HDF5Writer | None = None

    def release(self) -> None:
        self.reached.clear()
        self._go.set()

    def wait_gate(self, timeout: float = 120.0) -> int:
        if not self.reached.wait(timeout):
            raise TimeoutError(f"the session did not reach a gate in {timeout} s "
                               f"(error: {self.error})")
        assert self.at_gate is not None
        return self.at_gate

    def _plan(self, inner: Plan) -> Generator[Message, Any, Any]:
        done = 0
        msg = next(inner)
        while True:
            result = yield msg
            if isinstance(msg, Checkpoint) and msg.label == "cell_done":
                done += 1
                if done == self.refuse_at:
                    yield Pulse((0, 0), voltage=50.0, width=1e-6)  # refused by the limits
                if done in self.gates:
                    assert self.writer is not None
                    self.writer.flush()
                    self._go.clear()
                    self.at_gate = done
                    self.reached.set()
                    self._go.wait(300)
            if self.delay:
                threading.Event().wait(self.delay)
            try:
                msg = inner.send(result)
            except StopIteration as stop:
                return stop.value

    def run(self) -> None:
        try:
            cfg = session_config()
            xbar = build_sim_crossbar(cfg.sim, compliance=cfg.limits.compliance)
            assert isinstance(cfg.protocol, WriteVerifyArrayProtocol)
            plan = write_verify_array(target_map(cfg.protocol.target, SHAPE), PARAMS)
            with HDF5Writer(self.out, flush_interval=0.2) as writer:
                self.writer = writer
                self.result = RunEngine(xbar, cfg.limits, [writer]).run(
                    self._plan(plan), protocol="write_verify_array",
                    config=cfg.model_dump(mode="json"), seed=cfg.seed)
        except BaseException as exc:  # reported by the test
            self.error = exc
        finally:
            self.at_gate = -1
            self.reached.set()
