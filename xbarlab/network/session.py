"""A `program-network` session: backend, mapping, resume, one engine run logged to HDF5.

The same code runs on the simulator (one simulated chip per array the network needs, each
drawn from its own seed; array 0 uses the config's seed) and on a bench (its one array: the
network must fit on it). Resuming reads the old logs (`--resume LOG`, following the chain of
runs it resumed): finished jobs are skipped, an interrupted job goes on without its finished
devices. A simulated chip keeps no state between processes: it is rebuilt from the same
config and the old runs' logged operations are replayed on it (`xbarlab.log.replay`), so
the resumed run continues from the devices' true state, disturb included; a bench's devices
keep theirs.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from xbarlab.analysis.resume import run_chain
from xbarlab.config import ConfigError
from xbarlab.crossbar import Crossbar
from xbarlab.documents import Subscriber
from xbarlab.engine import RunEngine, RunResult
from xbarlab.log.reader import LogReader
from xbarlab.log.replay import replay
from xbarlab.network.aim import CircuitAim
from xbarlab.network.bank import ArrayBank
from xbarlab.network.config import NetworkSessionConfig
from xbarlab.network.datasets import EvalSet
from xbarlab.network.mapping import NetworkMap, map_network
from xbarlab.network.model import Network
from xbarlab.network.plan import PROTOCOL, NetworkProgram, ResumePoint
from xbarlab.sessions import build_backend as build_session_backend
from xbarlab.sim.crossbar import SimCrossbar


def array_seed(base: int, index: int) -> int:
    """Seed of simulated array `index` (array 0: the config's own seed)."""
    if index == 0:
        return base
    return int(np.random.SeedSequence([base, index]).generate_state(1)[0]) % (2**31)


def build_arrays(cfg: NetworkSessionConfig, n_arrays: int) -> Crossbar:
    """`n_arrays` simulated arrays (an `ArrayBank` when more than one), or the bench."""
    if cfg.backend == "bench":
        if n_arrays != 1:
            raise ConfigError(f"the network needs {n_arrays} arrays; a bench has one")
        return build_session_backend(cfg)
    from xbarlab.sim.factory import build_sim_crossbar

    arrays = [build_sim_crossbar(cfg.sim.model_copy(update={"seed": array_seed(cfg.sim.seed,
                                                                               a)}),
                                 compliance=cfg.limits.compliance) for a in range(n_arrays)]
    return arrays[0] if n_arrays == 1 else ArrayBank(arrays)


def map_for(cfg: NetworkSessionConfig, net: Network, data: EvalSet,
            array_shape: tuple[int, int], max_arrays: int) -> NetworkMap:
    n = cfg.network
    return map_network(net, array_shape, n.g_min, n.g_max, single_column=n.single_column,
                       order=n.order, pack=n.pack, max_arrays=max_arrays, x_ref=data.x_cal)


def _cell(v: Any) -> tuple[int, int]:
    return (int(v[0]), int(v[1]))


def resume_point(path: Path) -> tuple[ResumePoint, list[Any], np.ndarray]:
    """What the runs of log `path` (and those it resumed) finished, the chain, and the last
    read conductance of every cell (bank map, NaN where never read)."""
    chain = run_chain(path)
    if any(r.protocol != PROTOCOL for r in chain):
        raise ConfigError(f"--resume {path}: that log is not a program-network run")
    point = ResumePoint()
    last = np.full(chain[0].shape, np.nan)
    for run in reversed(chain):  # oldest first: newer runs win
        if tuple(run.shape) != tuple(chain[0].shape):
            raise ConfigError(f"--resume {path}: the runs of the chain differ in shape")
        last = np.where(np.isfinite(run.last_g), run.last_g, last)
        with LogReader(run.path) as log:
            notes = log.annotations()
        for msg, data in zip(notes["message"], notes["data"], strict=True):
            if not isinstance(data, dict):
                continue
            job = str(data.get("job", ""))
            if msg == "job" and job not in point.started:
                point.started[job] = ([_cell(c) for c in data["cells"]],
                                      [float(t) for t in data["targets"]])
            elif msg == "job_done":
                point.done_jobs.add(job)
            elif msg == "cell_done" and "cell" in data:
                cell = _cell(data["cell"])
                point.done_cells.setdefault(job, set()).add(cell)
                reason = str(data.get("reason", ""))
                if reason.startswith(("stuck", "compliance")):
                    point.stuck.add(cell)
                else:
                    point.stuck.discard(cell)
    return point, chain, last


@dataclass
class SessionResult:
    result: RunResult
    nmap: NetworkMap
    seconds: float
    resumed: str = ""  # what was resumed, in words


def run_session(cfg: NetworkSessionConfig, net: Network, data: EvalSet, out: Path,
                subscribers: Sequence[Subscriber] = (), *, overwrite: bool = False,
                resume: Path | None = None, backend: Crossbar | None = None,
                extra_config: dict[str, Any] | None = None) -> SessionResult:
    """Map, program, read back, evaluate (and compensate) `net` as one logged engine run.

    `backend`: an already opened backend (tests); else built from `cfg` (the caller closes
    nothing: this function puts the backend in its safe state and closes it)."""
    from xbarlab.log.writer import HDF5Writer

    if resume is not None and resume.resolve() == out.resolve():
        raise ValueError("--out must differ from the --resume log (the old log is kept)")
    n = cfg.network
    data = data.limited(n.max_cal, n.max_test)
    if data.n_inputs != net.sizes[0]:
        raise ValueError(f"the network takes {net.sizes[0]} inputs, data set {data.name} has "
                         f"{data.n_inputs}")
    opened = backend
    if cfg.backend == "bench" and opened is None:
        opened = build_arrays(cfg, 1)
    try:
        if isinstance(opened, ArrayBank):  # a bank given by the caller: its arrays
            nmap = map_for(cfg, net, data, opened.array_shape, len(opened.arrays))
        elif opened is not None:
            shape = tuple(int(v) for v in opened.shape)
            nmap = map_for(cfg, net, data, (shape[0], shape[1]), 1)
        else:
            nmap = map_for(cfg, net, data, (cfg.sim.rows, cfg.sim.cols), n.max_arrays)
            opened = build_arrays(cfg, nmap.n_arrays)
        point, resumed, extra = None, "", dict(extra_config or {})
        if resume is not None:
            point, chain, last = resume_point(resume)
            if tuple(chain[0].shape) != tuple(opened.shape):
                raise ConfigError(f"--resume {resume}: that run was on a {chain[0].shape[0]} x "
                                  f"{chain[0].shape[1]} bank, this one is {opened.shape[0]} x "
                                  f"{opened.shape[1]} (same config and network?)")
            _same_network(resume, point, nmap)
            done = sum(len(v) for v in point.done_cells.values())
            resumed = (f"resuming run {chain[0].run_id[:8]} ({chain[0].status}) of {resume}: "
                       f"{done} device programmings done, jobs finished: "
                       f"{', '.join(sorted(point.done_jobs)) or 'none'}")
            resumed += continue_simulator(cfg, opened, chain, last)
            extra["resumed_from"] = {"run_id": chain[0].run_id, "log": str(resume.resolve()),
                                     "status": chain[0].status,
                                     "chain": [r.run_id for r in chain]}
        check_fits(cfg, opened)
        supervisor = getattr(opened, "supervisor", None)
        if supervisor is not None:
            supervisor.log_to(out)  # its note goes next to the HDF5 log
        program = NetworkProgram(nmap, n, data, point, circuit_aim(cfg, nmap, opened))
        t0 = time.perf_counter()
        with HDF5Writer(out, overwrite=overwrite, **cfg.log.writer_options(cfg.backend)) as writer:
            engine = RunEngine(opened, cfg.limits, [writer, *subscribers])
            config = {**cfg.model_dump(mode="json"), "dataset": data.name,
                      "dataset_source": data.source, **extra}
            result = engine.run(program.plan(), protocol=PROTOCOL, config=config,
                                seed=cfg.seed)
        return SessionResult(result, nmap, time.perf_counter() - t0, resumed)
    finally:
        if opened is not None and backend is None:
            close = getattr(opened, "close", None)
            close() if callable(close) else opened.safe_state()


def _same_network(path: Path, point: ResumePoint, nmap: NetworkMap) -> None:
    """Refuse to resume a run that programmed other targets (another network or mapping)."""
    first = point.started.get("program/1")
    if first is None:
        return
    cells, values = first
    targets = nmap.targets()
    if cells != nmap.cells or not np.allclose([targets[c] for c in cells], values, rtol=1e-9,
                                              atol=0.0):
        raise ConfigError(f"--resume {path}: that run programmed another network or mapping "
                          "(its devices or targets differ); give the same network and config")


def circuit_aim(cfg: NetworkSessionConfig, nmap: NetworkMap, backend: Crossbar
                ) -> CircuitAim | None:
    """The circuit model the verify reads aim through (`xbarlab.network.aim`), or None
    (``network.verify``). Its circuit is the config's ``sim:`` section on the simulator and on
    a bench alike (there: the configured wire, source and sense resistances of the bench's
    array); pulse amplitudes it scales are capped at the tighter of the session's and the
    bench's own limits."""
    if not cfg.aims_through_circuit():
        return None
    p = cfg.network.write_verify
    v_max, v_min = cfg.limits.pulse_v_max, cfg.limits.pulse_v_min
    own = getattr(backend, "limits", None)
    if cfg.backend == "bench" and own is not None:
        v_max, v_min = min(v_max, own.pulse_v_max), max(v_min, own.pulse_v_min)
    return CircuitAim.of(cfg.sim, nmap.array_shape, nmap.n_arrays, p.v_read, p.pulse_scheme,
                         p.set_start, v_max, v_min)


def check_fits(cfg: NetworkSessionConfig, backend: Crossbar) -> None:
    """Refuse, before the first operation, pulses or biasing the backend cannot produce or
    the session's (and a bench's own) limits forbid (`ConfigError`, one line each)."""
    from xbarlab.bench.preflight import capability_of, session_problems

    p = cfg.network.write_verify
    limits = [("session", cfg.limits)]
    own = getattr(backend, "limits", None)
    if cfg.backend == "bench" and own is not None:
        limits.append(("bench", own))
    problems = session_problems([p.width], p.pulse_scheme, p.read_scheme,
                                capability_of(backend), limits)
    if problems:
        where = f"bench {cfg.bench}" if cfg.backend == "bench" else "the simulator"
        raise ConfigError(f"this session cannot run on {where}:\n  " + "\n  ".join(problems))


def simulated(backend: Crossbar) -> bool:
    """Whether `backend` is the simulator (one array or a bank of them)."""
    if isinstance(backend, ArrayBank):
        return all(isinstance(a, SimCrossbar) for a in backend.arrays)
    return isinstance(backend, SimCrossbar)


def continue_simulator(cfg: NetworkSessionConfig, backend: Crossbar, chain: list[Any],
                       last: np.ndarray) -> str:
    """Bring a fresh simulated chip to the state the resumed runs left it in: replay their
    logged operations (`xbarlab.log.replay`; the same config builds the same chip). If
    an older log of the chain is gone, fall back to setting every cell read to its last read
    (which erases the disturb it received after that read). Returns what was done, in words
    ("" on a bench: its devices kept their state)."""
    if not simulated(backend):
        return ""
    ours = cfg.model_dump(mode="json")
    for run in chain:
        theirs = run.config
        if theirs.get("sim") != ours["sim"] or (theirs.get("limits", {}).get("compliance")
                                                != ours["limits"]["compliance"]):
            raise ConfigError(f"--resume {run.path}: that run simulated another chip (its "
                              "sim section or compliance differs); a resumed simulated run "
                              "replays the old operations on the same chip: give the same "
                              "config")
    if chain[-1].config.get("resumed_from"):  # the chain's oldest log is gone
        restored = _restore(backend, last)
        return (f"; simulator: an older log of the chain is missing, so {restored} cells "
                "were set to their last logged read (the disturb after it is lost)")
    n = replay(backend, [r.path for r in reversed(chain)])
    return (f"; simulator: {n} logged operations replayed on the same chip (its state where "
            "the old run left it)")


def _restore(backend: Crossbar, last: np.ndarray) -> int:
    """Set a simulated backend's devices to their last logged reads; returns how many."""
    mask = np.isfinite(last)
    if isinstance(backend, ArrayBank):
        return backend.set_g(np.where(mask, last, 1.0), mask)
    setter = getattr(getattr(backend, "devices", None), "set_g", None)
    if callable(setter) and mask.any():
        setter(np.where(mask, last, 1.0), mask)
        return int(mask.sum())
    return 0
