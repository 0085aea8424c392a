"""A session config made concrete: its `Crossbar` backend and its protocol's plan.

Shared by the command line (`xbarlab run`, `xbarlab demo`) and the sweep tasks, which run
sessions without a terminal.
"""

from __future__ import annotations

from xbarlab.config import ConfigError, SessionConfig, WriteVerifyArrayProtocol
from xbarlab.crossbar import Crossbar
from xbarlab.messages import Plan
from xbarlab.protocols.patterns import target_map
from xbarlab.protocols.read_map import read_map
from xbarlab.protocols.write_verify import write_verify_array


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
    """The plan of the session's protocol for an array of `shape`."""
    proto = cfg.protocol
    if isinstance(proto, WriteVerifyArrayProtocol):
        return write_verify_array(
            target_map(proto.target, shape), proto.params, proto.order, passes=proto.passes
        )
    return read_map(shape, proto.params.v_read, proto.params.scheme)
