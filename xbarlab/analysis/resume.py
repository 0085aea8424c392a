"""`xbarlab run --resume LOG`: continue an aborted or killed run from its log.

The cells a run finished are the cells of its ``cell_done`` checkpoints (following the chain of
earlier resumed runs through their ``resumed_from`` links); the resumed run works on the other
cells of the protocol's cell list, in the same order, and its RunStart config links to the old
run (id, log path, status). On the bench the devices keep their state between the two runs;
the simulator keeps none between processes, so a resumed simulated session first replays the
old runs' logged operations on a simulator built from the same config (`xbarlab.log.replay`:
the same state, disturb and noise stream included). Only when that cannot be done (another
sim section or compliance, or an older log of the chain gone) does it set every cell the old
logs read to its last read conductance instead, and says so.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from xbarlab.config import ConfigError, WriteVerifyArrayProtocol
from xbarlab.crossbar import Cell, Crossbar
from xbarlab.log.reader import LogDamaged, LogError, LogReader
from xbarlab.protocol_configs import ProtocolSession, resolve_cells, session_from_data

RESUMABLE = ("write_verify_array", "forming", "switch_seeker", "converge", "multistate",
             "endurance", "curve_tracer", "volatility")


def _open(path: Path) -> LogReader:
    """The old log (a log whose writer was killed opens as it is)."""
    try:
        return LogReader(path)
    except LogDamaged as exc:  # cut short (a full disk) or damaged: resume from its salvage
        copy = path.with_name(path.name.removesuffix(".h5") + ".recovered.h5")
        raise ConfigError(f"--resume {path}: {exc}; then resume from the salvaged copy: "
                          f"--resume {copy}") from None
    except LogError as exc:
        raise ConfigError(f"--resume {path}: {exc}") from None


@dataclass
class LoggedRun:
    """What one log says about its run."""

    path: Path
    run_id: str
    protocol: str
    status: str
    config: dict[str, Any]
    shape: tuple[int, int]
    done: list[Cell]
    last_g: np.ndarray  # (M, N) last read conductance, NaN where never read


def read_run(path: Path) -> LoggedRun:
    """The run of log `path` (a log whose writer was killed reads up to its last flush)."""
    if not path.exists():
        raise FileNotFoundError(f"--resume {path}: no such log file")
    with _open(path) as log:
        if not log.started:
            raise ConfigError(f"--resume {path}: the log holds no run")
        if log.status == "unfinished" and log.writer == "running":
            raise ConfigError(f"--resume {path}: its session is still running (its writer "
                              "holds the log); resume once it has ended or been stopped")
        info = log.info
        notes = log.annotations()
        done_rows = notes[(notes["kind"] == "checkpoint") & (notes["message"] == "cell_done")]
        done = [(int(d["cell"][0]), int(d["cell"][1])) for d in done_rows["data"]
                if isinstance(d, dict) and "cell" in d]
        return LoggedRun(path, info.run_id, info.protocol, log.status, dict(info.config),
                         info.shape, done, log.final_conductances())


def run_chain(path: Path) -> list[LoggedRun]:
    """The run of `path` and every earlier run it resumed (newest first; logs that are gone
    end the chain)."""
    chain = [read_run(path)]
    seen = {chain[0].run_id}
    while True:
        link = chain[-1].config.get("resumed_from") or {}
        older = Path(str(link.get("log", "")))
        if not link or not older.exists():
            return chain
        run = read_run(older)
        if run.run_id in seen:
            return chain
        seen.add(run.run_id)
        chain.append(run)


def logged_session(path: Path, name: str) -> ProtocolSession:
    """The session config a log was run with, for protocol `name`."""
    run = read_run(path)
    data = {k: v for k, v in run.config.items() if k != "resumed_from"}
    return session_from_data(name, data, f"{path} (logged config)")


@dataclass
class ResumeState:
    """What a resumed run does."""

    chain: list[LoggedRun]
    cells: list[Cell]  # the cells still to do, in order
    done: list[Cell] = field(default_factory=list)
    restored: int = 0  # simulated cells set to their last logged read
    replayed: int = 0  # logged operations replayed on the simulator
    why_not_replayed: str = ""

    def provenance(self) -> dict[str, Any]:
        old = self.chain[0]
        return {"run_id": old.run_id, "log": str(old.path.resolve()), "status": old.status,
                "cells_done": len(self.done), "chain": [r.run_id for r in self.chain]}

    def describe(self) -> str:
        old = self.chain[0]
        text = (f"resuming run {old.run_id[:8]} ({old.status}) of {old.path}: "
                f"{len(self.done)} cells done, {len(self.cells)} to go")
        if self.replayed:
            text += (f"; simulator: {self.replayed} logged operations replayed (its state "
                     "where the old run left it)")
        elif self.restored:
            text += (f"; simulator: {self.restored} cells set to their last logged read "
                     f"({self.why_not_replayed}: the disturb after those reads is lost)")
        return text


def cell_order(cfg: ProtocolSession, shape: tuple[int, int]) -> list[Cell]:
    """Every cell the session's protocol works on, in its order."""
    proto = cfg.protocol
    if isinstance(proto, WriteVerifyArrayProtocol):
        from xbarlab.protocols.write_verify import programming_order

        return programming_order(shape, proto.order)
    return resolve_cells(getattr(proto, "cells", "all"), shape)


def prepare_resume(path: Path, cfg: ProtocolSession, backend: Crossbar) -> ResumeState:
    """Check `path` against the session, find the cells left to do, restore a simulator."""
    kind = cfg.protocol.kind
    if kind not in RESUMABLE:
        raise ConfigError(f"--resume works for the per-cell protocols ({', '.join(RESUMABLE)}), "
                          f"not for {kind}")
    chain = run_chain(path)
    old = chain[0]
    if old.protocol != kind:
        raise ConfigError(f"--resume {path}: that run is {old.protocol}, not {kind}")
    if tuple(old.shape) != tuple(backend.shape):
        raise ConfigError(f"--resume {path}: that run was on a {old.shape[0]} x {old.shape[1]} "
                          f"array, this one is {backend.shape[0]} x {backend.shape[1]}")
    done_set = {c for run in chain for c in run.done}
    order = cell_order(cfg, backend.shape)
    state = ResumeState(chain, [c for c in order if c not in done_set],
                        [c for c in order if c in done_set])
    set_g = getattr(getattr(backend, "devices", None), "set_g", None)
    if not callable(set_g):  # a bench: its devices kept their state
        return state
    state.why_not_replayed = _why_not_replay(chain, cfg)
    if not state.why_not_replayed:  # the simulator: the same chip, the same operations
        from xbarlab.log.replay import replay

        state.replayed = replay(backend, [r.path for r in reversed(chain)])
        return state
    g = np.full(backend.shape, np.nan)  # the fallback: what the old runs last read
    for run in reversed(chain):  # newer reads win
        g = np.where(np.isfinite(run.last_g), run.last_g, g)
    mask = np.isfinite(g)
    set_g(np.where(mask, g, 1.0), mask)
    state.restored = int(mask.sum())
    return state


def _why_not_replay(chain: list[LoggedRun], cfg: ProtocolSession) -> str:
    """Why the old runs' operations cannot rebuild this simulator's state ("" if they can):
    the simulated chip must be the same (sim section, compliance) and every log of the chain
    present."""
    ours = cfg.model_dump(mode="json")
    for run in chain:
        if run.config.get("sim") != ours["sim"] or (
                run.config.get("limits", {}).get("compliance") != ours["limits"]["compliance"]):
            return f"{run.path} simulated another chip (its sim section or compliance differs)"
    if chain[-1].config.get("resumed_from"):
        return "an older log of the chain is missing"
    return ""
