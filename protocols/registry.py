"""One place that turns any protocol config into its plan (CLI, sequences, estimates)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel

from xbarlab.config import ReadMapProtocol, WriteVerifyArrayProtocol
from xbarlab.crossbar import Cell
from xbarlab.messages import Plan
from xbarlab.protocol_configs import (
    ConvergeConfig,
    CurveTracerConfig,
    EnduranceConfig,
    FormingConfig,
    MultiStateConfig,
    RetentionConfig,
    SequenceConfig,
    SwitchSeekerConfig,
    VolatilityConfig,
    resolve_cells,
)
from xbarlab.protocols.compensated import CircuitGains
from xbarlab.protocols.tracked import TrackedInputs

PROTOCOLS: dict[str, str] = {
    "write_verify_array": "write-verify of a target pattern into the whole array",
    "read_map": "read every cell once",
    "forming": "voltage / width ramps until each cell conducts",
    "switch_seeker": "switching polarity and threshold of each cell",
    "converge": "write-verify to one target by amplitude or width ramps",
    "multistate": "distinguishable conductance levels of each cell",
    "retention": "reads over time (linear or log schedule)",
    "endurance": "SET/RESET cycling until the window collapses",
    "curve_tracer": "I-V loops, staircase or pulsed",
    "volatility": "relaxation after a pulse",
    "sequence": "pulse / read / delay / loop blocks and protocols from YAML",
}
"""Every protocol `xbarlab run` knows, with a one-line description."""


def plan_for(cfg: BaseModel, shape: tuple[int, int], cells: Sequence[Cell] | None = None,
             gains: CircuitGains | None = None, tracking: TrackedInputs | None = None
             ) -> Plan:
    """The plan of protocol config `cfg` on an array of `shape`.

    `cells` overrides the cells the config names (a resumed run passes the cells not done);
    `gains` are the circuit model's predictions a compensated write-verify needs, `tracking`
    the circuit and device models a tracked one needs (`compensate: tracked`)."""
    from xbarlab.protocols import (
        converge,
        curve_tracer,
        endurance,
        forming,
        multistate,
        retention,
        sequence,
        switch_seeker,
        volatility,
    )
    from xbarlab.protocols.compensated import write_verify_compensated
    from xbarlab.protocols.patterns import target_map
    from xbarlab.protocols.read_map import read_map
    from xbarlab.protocols.tracked import write_verify_tracked
    from xbarlab.protocols.write_verify import programming_order, write_verify_array

    if isinstance(cfg, WriteVerifyArrayProtocol) and cfg.compensate == "tracked":
        if tracking is None:
            raise ValueError("a tracked write-verify needs the circuit and device models")
        order = list(cells) if cells is not None else programming_order(shape, cfg.order)
        return write_verify_tracked(target_map(cfg.target, shape), cfg.params, tracking.model,
                                    tracking.law, order, tracking.v_max, tracking.v_min)
    if isinstance(cfg, WriteVerifyArrayProtocol) and cfg.compensate:
        if gains is None:
            raise ValueError("a compensated write-verify needs the circuit model's gains")
        order = list(cells) if cells is not None else programming_order(shape, cfg.order)
        return write_verify_compensated(target_map(cfg.target, shape), cfg.params, gains, order)
    if isinstance(cfg, WriteVerifyArrayProtocol):
        return write_verify_array(target_map(cfg.target, shape), cfg.params, cfg.order,
                                  cells=cells, passes=cfg.passes)
    if isinstance(cfg, ReadMapProtocol):
        return read_map(shape, cfg.params.v_read, cfg.params.scheme)
    if isinstance(cfg, SequenceConfig):
        return sequence.sequence(cfg, shape)
    named: Any = getattr(cfg, "cells", "all")
    chosen = list(cells) if cells is not None else resolve_cells(named, shape)
    if isinstance(cfg, FormingConfig):
        return forming.form_cells(chosen, cfg)
    if isinstance(cfg, SwitchSeekerConfig):
        return switch_seeker.switch_seeker_cells(chosen, cfg)
    if isinstance(cfg, ConvergeConfig):
        return converge.converge_cells(chosen, cfg)
    if isinstance(cfg, MultiStateConfig):
        return multistate.multistate_cells(chosen, cfg)
    if isinstance(cfg, RetentionConfig):
        return retention.retention(chosen, cfg)
    if isinstance(cfg, EnduranceConfig):
        return endurance.endurance_cells(chosen, cfg)
    if isinstance(cfg, CurveTracerConfig):
        return curve_tracer.curve_tracer_cells(chosen, cfg)
    if isinstance(cfg, VolatilityConfig):
        return volatility.volatility_cells(chosen, cfg)
    raise TypeError(f"no plan for config {type(cfg).__name__}")
