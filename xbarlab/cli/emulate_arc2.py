"""`xbarlab emulate` for an ArC TWO bench config: the emulated instrument behind its link."""

from __future__ import annotations

import time
from pathlib import Path

import yaml

from xbarlab.bench.arctwo_config import ArcTwoBenchConfig, load_mapping
from xbarlab.cli.console import Console
from xbarlab.config import ConfigError, SimConfig

console = Console()


def serve_arc2(cfg: ArcTwoBenchConfig, sim: SimConfig, target: Path, port: int,
               duration: float | None) -> None:
    """Serve an emulated ArC TWO over `sim` until Ctrl-C / SIGTERM (KeyboardInterrupt) or
    `duration`; write `cfg` pointing at it to `target`."""
    from xbarlab.drivers.emulators.arc2 import EmulatedInstrument
    from xbarlab.drivers.emulators.arc2_link import Arc2Server
    from xbarlab.sim.factory import build_sim_crossbar

    mapping = load_mapping(cfg.mapping)
    mapping.check((cfg.rows, cfg.cols), str(cfg.mapping))
    inst = EmulatedInstrument(build_sim_crossbar(sim, compliance=cfg.limits.compliance),
                              mapping.words[: cfg.rows], mapping.bits[: cfg.cols])
    try:
        server = Arc2Server(inst, port).start()
    except OSError as exc:
        raise ConfigError(f"port {port}: {exc.strerror or exc}; try --port 0 (any free port)"
                          ) from None
    try:
        emulated = cfg.model_copy(update={"address": server.address, "firmware": None})
        target.write_text(f"# emulated ArC TWO of bench '{cfg.name}' (xbarlab emulate), valid "
                          "while it runs\n" + yaml.safe_dump(emulated.model_dump(mode="json"),
                                                             sort_keys=False), encoding="utf-8")
        console.print(f"emulated ArC TWO '{cfg.name}' ({cfg.rows} x {cfg.cols}, mapping "
                      f"{mapping.name}) at {server.address}")
        console.print(f"bench config: {target}")
        console.print("serving; Ctrl-C to stop", highlight=False)
        deadline = None if duration is None else time.monotonic() + duration
        try:
            while deadline is None or time.monotonic() < deadline:
                time.sleep(0.1)
        except KeyboardInterrupt:
            pass
    finally:
        server.stop()
    state = "idle" if inst.safe else "NOT idle"
    console.print(f"stopped; instrument {state}, {len(server.errors)} problem(s), "
                  f"{len(inst.clamped)} clamped level(s)")
