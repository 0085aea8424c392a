"""The rescue the safety supervisor runs when a bench session died: fresh links, safe states.

`rescue_bench(config)` opens its own link to every instrument a bench config uses, checks the
identity (a wrong instrument at the address is left alone), and puts every channel the roles
use in its safe state with the driver's own `safe_state` (abort, 0 V, output off confirmed;
relays open and confirmed; board off), SMUs first, then matrices, then boards. Every
instrument is tried even when another fails. It returns one line per instrument and raises
nothing. Run by `xbarlab.bench.watchdog` in the supervisor process.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from xbarlab.bench.config import SMU_DRIVERS, BenchConfig
from xbarlab.bench.lock import BenchInUse, instrument_locks
from xbarlab.drivers.base import SmuLimits
from xbarlab.drivers.registry import default_transport, make_driver

LOCKS_FREED_WITHIN = 2.0
"""s the rescue waits for a dead session's instrument locks to be freed by the kernel."""
_ORDER = {"keithley707b": 1, "serial_board": 2}  # SMUs (0) first: relays open after outputs off


def prepare() -> None:
    """Import and build what a rescue needs now (pyvisa-py's resource manager, which pyvisa
    shares per VISA library), so the rescue after a death does not wait for it."""
    import contextlib

    import pyvisa
    import serial  # noqa: F401

    with contextlib.suppress(Exception):  # no pyvisa-py: the rescue reports it per instrument
        pyvisa.ResourceManager("@py")


def _channels(config: BenchConfig) -> dict[str, list[str]]:
    """Instrument -> the channels the roles use ("" for single-channel instruments)."""
    r = config.roles
    out: dict[str, list[str]] = {}
    for ref in (r.drive, r.sense, r.bias_row, r.bias_col, r.pulse, r.matrix, r.board):
        if ref is None:
            continue
        inst, _, ch = ref.partition(".")
        chans = out.setdefault(inst, [])
        if ch not in chans:
            chans.append(ch)
    return out


def _rescue_one(cfg: BenchConfig, name: str, channels: list[str]) -> str:
    """Safe state of one instrument on a new link; one line, never raises."""
    icfg = cfg.instruments[name]
    t0 = time.monotonic()
    transport = default_transport(name, icfg)
    try:
        drivers = [make_driver(name, icfg, transport, ch, (cfg.rows, cfg.cols),
                               v_max=cfg.limits.v_max, limits=SmuLimits.from_bench(cfg.limits))
                   for ch in channels]
        drivers[0].connect(icfg.identity)
        failures = []
        for d in drivers:
            try:
                d.safe_state()
            except Exception as exc:  # every channel is tried
                failures.append(f"{d.name}: {type(exc).__name__}: {exc}")
        if failures:
            return f"{name} FAILED ({'; '.join(failures)})"
        kind = "outputs off" if icfg.driver in (*SMU_DRIVERS, "keysight33500") else (
            "relays open" if icfg.driver == "keithley707b" else "lines off")
        return f"{name} safe ({kind}, {(time.monotonic() - t0) * 1e3:.0f} ms)"
    except Exception as exc:  # a dead link, a wrong identity: reported, the others go on
        return f"{name} FAILED ({type(exc).__name__}: {exc})"
    finally:
        with contextlib.suppress(Exception):
            transport.close()


def rescue_bench(config: Mapping[str, Any]) -> list[str]:
    """Safe state of every instrument of `config` on new links; one line per instrument.

    The SMUs are done in parallel (one thread per instrument: their round trips overlap),
    then the matrices, then the boards."""
    cfg = BenchConfig.model_validate(config)
    used = _channels(cfg)
    stages: dict[int, list[str]] = {}
    for name in sorted(used):
        stages.setdefault(_ORDER.get(cfg.instruments[name].driver, 0), []).append(name)
    lines: list[str] = []
    # The dead session's locks went with it: taking them keeps a new session off the bench
    # while it is made safe. Held already: a new session has the bench and set it up itself
    # (a retry minutes later must not switch its outputs off under it): left alone.
    locks = instrument_locks({n: cfg.instruments[n].address for n in used},
                             "the safety supervisor, making a dead session's bench safe")
    deadline = time.monotonic() + LOCKS_FREED_WITHIN
    while True:
        try:
            locks.acquire()
            break
        except BenchInUse as exc:
            # a process that dies closes its files one by one: the pipe that woke the
            # supervisor can close a few ms before the lock files
            if time.monotonic() < deadline:
                time.sleep(0.005)
                continue
            held = str(exc).split("; wait")[0]
            return [f"{held}: not touched (a new session has the bench)"]
        except OSError:  # no lock folder: the rescue goes on (safety first)
            break
    try:
        for stage in sorted(stages):
            names = stages[stage]
            with ThreadPoolExecutor(max_workers=len(names)) as pool:
                lines += pool.map(lambda n: _rescue_one(cfg, n, used[n]), names)
    finally:
        locks.release()
    return lines
