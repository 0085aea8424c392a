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
from typing import Any

from xbarlab.bench.config import SMU_DRIVERS, BenchConfig
from xbarlab.drivers.registry import default_transport, make_driver

_ORDER = {"keithley707b": 1, "serial_board": 2}  # SMUs (0) first: relays open after outputs off


def prepare() -> None:
    """Import what a rescue needs now, so the rescue after a death does not wait for it."""
    import pyvisa  # noqa: F401
    import serial  # noqa: F401


def _channels(config: BenchConfig) -> dict[str, list[str]]:
    """Instrument -> the channels the roles use ("" for single-channel instruments)."""
    r = config.roles
    out: dict[str, list[str]] = {}
    for ref in (r.drive, r.sense, r.bias_row, r.bias_col, r.matrix, r.board):
        if ref is None:
            continue
        inst, _, ch = ref.partition(".")
        chans = out.setdefault(inst, [])
        if ch not in chans:
            chans.append(ch)
    return out


def rescue_bench(config: Mapping[str, Any]) -> list[str]:
    """Safe state of every instrument of `config` on new links; one line per instrument."""
    cfg = BenchConfig.model_validate(config)
    shape = (cfg.rows, cfg.cols)
    used = _channels(cfg)
    lines = []
    for name in sorted(used, key=lambda n: (_ORDER.get(cfg.instruments[n].driver, 0), n)):
        icfg = cfg.instruments[name]
        t0 = time.monotonic()
        transport = default_transport(name, icfg)
        try:
            drivers = [make_driver(name, icfg, transport, ch, shape, v_max=cfg.limits.v_max)
                       for ch in used[name]]
            drivers[0].connect(icfg.identity)
            failures = []
            for d in drivers:
                try:
                    d.safe_state()
                except Exception as exc:  # every channel is tried
                    failures.append(f"{d.name}: {type(exc).__name__}: {exc}")
            kind = "outputs off" if icfg.driver in SMU_DRIVERS else (
                "relays open" if icfg.driver == "keithley707b" else "lines off")
            ms = (time.monotonic() - t0) * 1e3
            lines.append(f"{name} FAILED ({'; '.join(failures)})" if failures
                         else f"{name} safe ({kind}, {ms:.0f} ms)")
        except Exception as exc:  # a dead link, a wrong identity: reported, others go on
            lines.append(f"{name} FAILED ({type(exc).__name__}: {exc})")
        finally:
            with contextlib.suppress(Exception):
                transport.close()
    return lines
