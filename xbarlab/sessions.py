"""A session config made concrete: its `Crossbar` backend and its protocol's plan.

Shared by the command line (`xbarlab run`, `xbarlab demo`) and the sweep tasks, which run
sessions without a terminal.
"""

from __future__ import annotations

from xbarlab.config import ConfigError, SessionConfig
from xbarlab.crossbar import Crossbar
from xbarlab.messages import Plan
from xbarlab.protocols.registry import plan_for


def build_backend(cfg: SessionConfig) -> Crossbar:
    """The `Crossbar` backend a session config asks for."""
    if cfg.backend == "sim":
        from xbarlab.sim.factory import build_sim_crossbar

        return build_sim_crossbar(cfg.sim, compliance=cfg.limits.compliance)
    if cfg.bench is None:
        raise ConfigError("backend 'bench' needs `bench:` (the bench config file)")
    from xbarlab.drivers.registry import open_bench_crossbar

    return open_bench_crossbar(cfg.bench)


def build_plan(cfg: SessionConfig, shape: tuple[int, int]) -> Plan:
    """The plan of the session's protocol for an array of `shape` (any protocol of
    `xbarlab.protocols.registry`; a compensated write-verify needs `plan_for` with its gains)."""
    return plan_for(cfg.protocol, shape)
